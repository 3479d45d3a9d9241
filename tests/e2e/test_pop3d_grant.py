"""Every successful POP3 login writes the grant before +OK; failures never do."""

import base64
import hashlib
import re
import threading
import time
import poplib

import pytest

from conftest import NODE, wait_until, write_config
from conftest import cli  # noqa: F401
from pop3_harness import pop3d, pop3d_factory, unverified_context  # noqa: F401

GRANT_FIELDS = {"user", "since", "renewed", "node", "method", "tls", "logins"}


def grant(rdb, addr):
    return rdb.hgetall(f"authbridge:grant:{addr}")


def check_grant(rdb, addr, user, method, tls):
    g = grant(rdb, addr)
    assert set(g) == GRANT_FIELDS, g
    assert (g["user"], g["method"], g["tls"], g["node"]) == \
        (user, method, tls, NODE)
    assert abs(int(g["renewed"]) - time.time()) < 10
    ttl = rdb.ttl(f"authbridge:grant:{addr}")
    assert 1790 <= ttl <= 1800
    return g


def test_user_pass_writes_grant_before_ok(pop3d, rdb):
    p = pop3d.client("127.0.0.21")
    p.user("alice")
    p.pass_("secret")
    # Checked right after +OK, before anything else: it must be there.
    check_grant(rdb, "127.0.0.21", "alice", "USER", "0")
    p.quit()
    entries = rdb.xrange("authbridge:log")
    assert entries[-1][1] == {"event": "grant", "addr": "127.0.0.21",
                              "user": "alice", "method": "USER", "tls": "0",
                              "node": NODE, "ttl": "1800"}


def test_apop_grant(pop3d, rdb):
    p = pop3d.client("127.0.0.22")
    stamp = re.search(rb"<[^>]+>", p.getwelcome()).group(0)
    p._shortcmd("APOP alice " + hashlib.md5(stamp + b"secret").hexdigest())
    check_grant(rdb, "127.0.0.22", "alice", "APOP", "0")
    p.quit()


def test_sasl_plain_over_stls_grant(pop3d, rdb):
    p = pop3d.client("127.0.0.23")
    p.stls(context=unverified_context())
    p._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0dave\0dave-pw").decode())
    check_grant(rdb, "127.0.0.23", "dave", "SASL-PLAIN", "1")
    p.quit()


def test_pop3s_grant(pop3d, rdb):
    p = pop3d.tls_client("127.0.0.24")
    p.user("bob")
    p.pass_("hunter2")
    check_grant(rdb, "127.0.0.24", "bob", "USER", "1")
    p.quit()


def test_renewal_keeps_since_and_counts_logins(pop3d, rdb):
    for _ in range(3):
        p = pop3d.client("127.0.0.25")
        p.user("alice")
        p.pass_("secret")
        p.quit()
    g = grant(rdb, "127.0.0.25")
    assert g["logins"] == "3" and int(g["since"]) <= int(g["renewed"])


def test_failed_logins_write_nothing(pop3d, rdb):
    p = pop3d.client("127.0.0.26")
    p.user("alice")
    with pytest.raises(poplib.error_proto):
        p.pass_("wrong")
    p.user("ghost")
    with pytest.raises(poplib.error_proto):
        p.pass_("secret")
    with pytest.raises(poplib.error_proto):
        p.apop("alice", "wrong")
    p.close()
    assert grant(rdb, "127.0.0.26") == {}
    assert all(e[1].get("addr") != "127.0.0.26"
               for e in rdb.xrange("authbridge:log"))


def test_in_use_login_writes_no_grant(pop3d, rdb):
    a = pop3d.client("127.0.0.27")
    a.user("alice")
    a.pass_("secret")
    b = pop3d.client("127.0.0.28")
    b.user("alice")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        b.pass_("secret")
    assert grant(rdb, "127.0.0.28") == {}
    a.quit()
    b.close()


def test_each_address_gets_its_own_grant(pop3d, rdb):
    for src in ("127.0.0.31", "127.0.0.32"):
        p = pop3d.client(src)
        p.user("dave")
        p.pass_("dave-pw")
        p.quit()
    assert grant(rdb, "127.0.0.31")["user"] == "dave"
    assert grant(rdb, "127.0.0.32")["user"] == "dave"
    assert grant(rdb, "127.0.0.33") == {}


def test_redis_down_login_succeeds_and_grant_lands_later(pop3d, redis_server,
                                                         rdb):
    redis_server.stop()
    p = pop3d.client("127.0.0.41")
    p.user("alice")
    assert p.pass_("secret").startswith(b"+OK Logged in")
    p.quit()
    assert re.search(r"event=login .*rip=127\.0\.0\.41 .*grant=failed",
                     pop3d.log())
    redis_server.start()
    client = redis_server.client()
    g = wait_until(lambda: grant(client, "127.0.0.41"), 5,
                   what="the background grant retry")
    assert g["user"] == "alice" and g["method"] == "USER"
    assert client.ttl("authbridge:grant:127.0.0.41") > 1790
    assert "event=grant_retried addr=127.0.0.41" in pop3d.log()


def test_master_lost_during_wait_writes_the_grant_again(pop3d_factory,
                                                        redis_server):
    """With [grant] replicas, a master that dies while pop3d waits for
    its replicas may take the grant with it: pop3d writes it again."""
    d = pop3d_factory(start=False)
    d.sections["grant"]["replicas"] = 1          # no replica: WAIT waits
    d.sections["redis"]["timeout_ms"] = 4000     # for 2 s
    write_config(d.config, d.sections)
    d.start()
    p = d.client("127.0.0.43")
    p.user("alice")
    answer = []
    t = threading.Thread(target=lambda: answer.append(p.pass_("secret")))
    t.start()
    client = redis_server.client()
    wait_until(lambda: grant(client, "127.0.0.43") and "cmd=wait" in
               str(client.execute_command("CLIENT", "LIST")), 3,
               what="pop3d to wait for its replicas")
    redis_server.stop()                          # the grant dies with it
    redis_server.start()
    t.join(10)
    assert answer and answer[0].startswith(b"+OK Logged in"), answer
    client = redis_server.client()
    g = wait_until(lambda: grant(client, "127.0.0.43"), 5,
                   what="the grant written again")
    assert g["user"] == "alice"
    assert "event=grant_wait_lost" in d.log()
    p.quit()


def test_hung_redis_delays_login_by_at_most_the_timeout(pop3d_factory,
                                                        redis_server):
    d = pop3d_factory()
    redis_server.pause()
    try:
        p = d.client("127.0.0.42")
        p.user("alice")
        t0 = time.monotonic()
        assert p.pass_("secret").startswith(b"+OK")
        took = time.monotonic() - t0
        p.quit()
    finally:
        redis_server.resume()
    assert took < 0.5 + 0.5, f"login waited {took:.2f}s on a hung Redis"
    assert "event=redis_timeout" in d.log()
    client = redis_server.client()
    assert wait_until(lambda: grant(client, "127.0.0.42"), 5,
                      what="grant after Redis resumed")["user"] == "alice"


def raw_login(family_addr, port, source=None):
    import socket
    s = socket.create_connection((family_addr, port), 5,
                                 source_address=source)
    f = s.makefile("rb")
    assert f.readline().startswith(b"+OK")
    s.sendall(b"USER alice\r\nPASS secret\r\nQUIT\r\n")
    assert f.readline() == b"+OK\r\n"
    assert f.readline().startswith(b"+OK Logged in")
    f.close()
    s.close()


def test_ipv6_client_is_granted_its_prefix(pop3d_factory, rdb):
    d = pop3d_factory(start=False)
    d.sections["grant"]["ipv6_prefix"] = 64
    d.rewrite_config(listen=f"[::1]:{d.port}")
    d.start(address="::1")
    raw_login("::1", d.port)
    assert grant(rdb, "::/64")["user"] == "alice"
    assert rdb.ttl("authbridge:grant:::/64") > 1790


def test_ipv4_mapped_client_is_granted_as_ipv4(pop3d_factory, rdb):
    d = pop3d_factory(start=False)
    d.rewrite_config(listen=f"[::]:{d.port}")
    d.start()
    raw_login("127.0.0.1", d.port, source=("127.0.0.43", 0))
    assert grant(rdb, "127.0.0.43")["user"] == "alice"
    assert grant(rdb, "::ffff:127.0.0.43") == {}


def commandstats(rdb):
    return {k: v["calls"] for k, v in rdb.info("commandstats").items()}


def test_a_grant_is_one_redis_command_and_writes_what_the_admin_writes(
        pop3d, rdb, cli):
    """The daemons write a grant with one EVALSHA (not MULTI, five
    commands, EXEC); the admin command's transaction writes the same."""
    p = pop3d.client("127.0.0.24")
    p.user("alice")
    p.pass_("secret")          # first login: loads the script (NOSCRIPT)
    p.quit()
    before = commandstats(rdb)
    p = pop3d.client("127.0.0.24")
    p.user("alice")
    p.pass_("secret")
    p.quit()
    after = commandstats(rdb)
    grew = {k: after[k] - before.get(k, 0) for k in after
            if after[k] != before.get(k, 0)}
    # The grant, the throttle's count and its forgiveness: one each.
    assert grew.get("cmdstat_evalsha") == 3, grew
    # (commandstats also counts the calls inside the scripts)
    assert "cmdstat_multi" not in grew and "cmdstat_exec" not in grew, grew
    by_daemon = grant(rdb, "127.0.0.24")
    assert by_daemon["logins"] == "2" and by_daemon["since"] <= \
        by_daemon["renewed"]
    out = cli("grant", "127.0.0.25", "alice")
    assert out.returncode == 0, out.stderr
    by_admin = grant(rdb, "127.0.0.25")
    assert set(by_admin) == set(by_daemon) == GRANT_FIELDS
    entries = [e for _, e in rdb.xrange("authbridge:log")]
    assert set(entries[-1]) == set(entries[-2]), entries[-2:]


def test_grants_survive_a_flushed_script_cache(pop3d, rdb):
    rdb.script_flush()
    p = pop3d.client("127.0.0.26")
    p.user("alice")
    p.pass_("secret")
    check_grant(rdb, "127.0.0.26", "alice", "USER", "0")
    p.quit()
