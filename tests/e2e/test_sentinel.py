"""Scale-out on Redis Sentinel: one master, one replica, three sentinels.

pop3d and the admin command find the master through the sentinels; when
the master dies the grant written before (WAIT-ed onto the replica) is
still honoured after the failover, and new grants land on the new master.
"""

import re
import subprocess
import time

import redis

from conftest import Cli, free_port, program, wait_until, write_config
from pop3_harness import Pop3d
from sentinel_harness import (MASTER, NO_REDIS, cluster,  # noqa: F401
                              sentinel_sections, use_sentinels)


class SentinelPop3d(Pop3d):
    """Pop3d whose [redis] section names sentinels instead of an address."""

    def __init__(self, tmp_path, cluster):
        super().__init__(tmp_path, NO_REDIS)
        use_sentinels(self, cluster)


def login(d, source):
    p = d.client(source)
    p.user("alice")
    assert p.pass_("secret").startswith(b"+OK")
    p.quit()


def test_grants_survive_a_failover(cluster, tmp_path):
    d = SentinelPop3d(tmp_path, cluster).start()
    try:
        assert re.search(rf"event=redis_up redis=127\.0\.0\.1:{cluster.master_port}"
                         rf"\(master {MASTER}\)", d.log())
        login(d, "127.0.3.1")
        # WAIT put it on the replica before +OK.
        replica = redis.Redis(port=cluster.replica_port, decode_responses=True)
        assert replica.hget("authbridge:grant:127.0.3.1", "user") == "alice"

        cli = Cli(d.config)
        out = cli("show", "127.0.3.1")
        assert out.returncode == 0 and "alice" in out.stdout

        t0 = time.monotonic()
        cluster.procs["master"].kill()
        wait_until(lambda: int(cluster.master_addr()[1]) == cluster.replica_port,
                   30, interval=0.1, what="the sentinels to promote the replica")
        promoted = time.monotonic() - t0

        # The old grant is honoured by the new master ...
        out = cli("show", "127.0.3.1")
        assert out.returncode == 0 and "alice" in out.stdout, out.stderr
        # ... and pop3d follows the failover: a new grant lands there.
        def relogin():
            login(d, "127.0.3.2")
            return replica.hget("authbridge:grant:127.0.3.2", "user")
        assert wait_until(relogin, 15, interval=0.2,
                          what="a grant on the new master") == "alice"
        followed = time.monotonic() - t0
        assert re.search(rf"event=redis_up redis=127\.0\.0\.1:"
                         rf"{cluster.replica_port}\(master {MASTER}\)", d.log())
        assert replica.execute_command("ROLE")[0] == "master"
        print(f"\nfailover: promoted after {promoted:.1f}s, "
              f"pop3d writing to the new master after {followed:.1f}s")
    finally:
        d.stop()


def test_admin_command_finds_the_master(cluster, tmp_path):
    conf = write_config(tmp_path / "a.conf", sentinel_sections(cluster))
    cli = Cli(conf)
    out = cli("grant", "192.0.2.9", "carol")
    assert out.returncode == 0, out.stderr
    master = redis.Redis(port=cluster.master_port, decode_responses=True)
    assert master.hget("authbridge:grant:192.0.2.9", "user") == "carol"


def test_postlogin_finds_the_master(cluster, tmp_path):
    conf = write_config(tmp_path / "p.conf", sentinel_sections(cluster))
    out = subprocess.run([str(program("authbridge/authbridge")), "-c",
                          str(conf), "postlogin", "/bin/echo", "ran"],
                         env={"IP": "192.0.2.77", "USER": "alice"},
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and out.stdout == "ran\n", out.stderr
    master = redis.Redis(port=cluster.master_port, decode_responses=True)
    assert master.hget("authbridge:grant:192.0.2.77", "method") == "POSTLOGIN"


def test_no_sentinel_answers_gives_a_clear_error(tmp_path):
    conf = write_config(tmp_path / "a.conf", {
        "redis": {"sentinels": f"127.0.0.1:{free_port()}", "master_name": MASTER}})
    out = Cli(conf)("list")
    assert out.returncode == 3
    assert "no sentinel knows master 'mymaster'" in out.stderr
