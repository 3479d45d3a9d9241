"""Scale-out on Redis Sentinel: one master, one replica, three sentinels.

pop3d and the admin command find the master through the sentinels; when
the master dies the grant written before (WAIT-ed onto the replica) is
still honoured after the failover, and new grants land on the new master.
"""

import re
import subprocess
import time

import pytest
import redis

from conftest import (REDIS_SERVER, Cli, free_port, program, wait_until,
                      write_config)
from pop3_harness import Pop3d

MASTER = "mymaster"


def spawn(args, folder, name):
    log = open(folder / f"{name}.log", "ab")
    return subprocess.Popen(args, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)


def ping(port):
    try:
        return redis.Redis(port=port, socket_timeout=0.3,
                           socket_connect_timeout=0.3).ping()
    except redis.RedisError:
        return False


class Cluster:
    def __init__(self, folder):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs = {}

    def start(self):
        for role, port in (("master", self.master_port),
                           ("replica", self.replica_port)):
            args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir",
                    str(self.folder)]
            if role == "replica":
                args += ["--replicaof", "127.0.0.1", str(self.master_port)]
            self.procs[role] = spawn(args, self.folder, role)
            wait_until(lambda p=port: ping(p), 5, what=f"redis {role}")
        r = redis.Redis(port=self.replica_port)
        wait_until(lambda: r.info("replication")["master_link_status"] == "up",
                   10, what="the replica to sync")
        for i, port in enumerate(self.sentinel_ports):
            conf = self.folder / f"sentinel{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 800\n"
                f"sentinel failover-timeout {MASTER} 4000\n"
                f"sentinel parallel-syncs {MASTER} 1\n")
            self.procs[f"s{i}"] = spawn([REDIS_SERVER, str(conf), "--sentinel"],
                                        self.folder, f"sentinel{i}")
        for port in self.sentinel_ports:
            s = redis.Redis(port=port, decode_responses=True)
            wait_until(lambda s=s: ping(port) and s.execute_command(
                "SENTINEL", "replicas", MASTER), 15,
                what="sentinels to see the replica")
        return self

    def master_addr(self):
        s = redis.Redis(port=self.sentinel_ports[0], decode_responses=True)
        return tuple(s.sentinel_get_master_addr_by_name(MASTER))

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path / "cluster")
    try:
        yield c.start()
    finally:
        c.stop()


def sentinel_sections(cluster, **pop3d):
    return {
        "redis": {"sentinels": [f"127.0.0.1:{p}" for p in cluster.sentinel_ports],
                  "master_name": MASTER, "timeout_ms": 500},
        "grant": {"ttl": 1800, "replicas": 1},
        "pop3d": {"node": "e2e-node", **pop3d},
    }


class SentinelPop3d(Pop3d):
    """Pop3d whose [redis] section names sentinels instead of an address."""

    def __init__(self, tmp_path, cluster):
        class NoRedis:
            address = "127.0.0.1:1"
            running = True
        super().__init__(tmp_path, NoRedis())
        self.sections.update({k: v for k, v in sentinel_sections(cluster).items()
                              if k != "pop3d"})
        write_config(self.config, self.sections)


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
