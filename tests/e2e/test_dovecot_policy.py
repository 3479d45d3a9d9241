"""Grants from a real Dovecot 2.3 through its auth policy, configured with
the README's recipe: a POP3 or IMAP login writes the grant before the
client reads OK, a failed one writes none, a dead smtpgate never stops a
login, other protocols and callers without the key get nothing."""

import http.client
import json
import signal
import socket
import subprocess
import time

import pytest

from conftest import free_port, wait_until
from dovecot_harness import Dovecot, pop3_login, wipe_base_dir
from smtp_harness import gate_factory, sink  # noqa: F401

KEY = "test-key-0123456789abcdef"
USERS = {"alice": "secret", "bob": "b0b-pass"}
GRANT = "authbridge:grant:"
TIMEOUT_MS = 1000               # the recipe's auth_policy_server_timeout_msecs


@pytest.fixture
def door_port():
    return free_port()


@pytest.fixture
def dgate(gate_factory, door_port):
    """smtpgate with the Dovecot door; Dovecot connects from 127.0.0.1."""
    return gate_factory(dovecot_listen=f"127.0.0.1:{door_port}",
                        dovecot_api_key=KEY,
                        trusted_networks=["127.0.0.1/32"])


@pytest.fixture
def dovecot_factory(tmp_path, door_port):
    started = []

    def make(key=KEY, extra="", **kw):
        dc = Dovecot(tmp_path / f"dovecot{len(started)}", USERS, door_port,
                     key, extra=extra, **kw)
        started.append(dc)
        return dc.start()
    yield make
    for dc in started:
        dc.stop()
        wipe_base_dir(dc)


@pytest.fixture
def dovecot(dovecot_factory, dgate):
    return dovecot_factory()


def relay(gate, source):
    with gate.smtp(source) as s:
        s.ehlo("customer.example")
        s.mail("alice@example.net")
        return s.rcpt("friend@remote.example")[0]


def test_pop3_login_is_a_grant_before_the_client_reads_ok(dovecot, dgate,
                                                          rdb):
    assert relay(dgate, "127.0.6.1") == 550
    reply, _ = pop3_login(dovecot, "127.0.6.1", "alice", "secret")
    assert reply.startswith(b"+OK")
    g = rdb.hgetall(GRANT + "127.0.6.1")      # no sleep: it is there already
    assert g["user"] == "alice" and g["method"] == "POP3-PLAIN"
    assert g["node"] == socket.gethostname() and g["logins"] == "1"
    assert 0 < rdb.ttl(GRANT + "127.0.6.1") <= 1800
    assert relay(dgate, "127.0.6.1") == 250
    assert relay(dgate, "127.0.6.2") == 550
    line = dgate.wait_log(r"event=dovecot_login .*rip=127\.0\.6\.1 ")
    assert "protocol=pop3 user=alice" in line and "grant=ok" in line


def test_imap_login_is_a_grant_before_the_client_reads_ok(dovecot, dgate,
                                                          rdb):
    i = dovecot.imap("127.0.6.3")
    typ, _ = i.login("bob", "b0b-pass")
    assert typ == "OK"
    g = rdb.hgetall(GRANT + "127.0.6.3")      # before any sleep
    i.logout()
    assert g["user"] == "bob" and g["method"] == "IMAP-PLAIN"
    assert relay(dgate, "127.0.6.3") == 250
    assert rdb.hgetall(GRANT + "127.0.6.1") == {}


def test_a_wrong_password_is_no_grant(dovecot, dgate, rdb):
    reply, _ = pop3_login(dovecot, "127.0.6.4", "alice", "wrong")
    assert b"-ERR" in reply
    i = dovecot.imap("127.0.6.5")
    with pytest.raises(i.error):
        i.login("bob", "wrong")
    i.logout()
    time.sleep(0.3)               # nothing is on its way either
    assert rdb.keys(GRANT + "*") == []
    assert relay(dgate, "127.0.6.4") == 550
    assert "event=dovecot_login" not in dgate.log()


def test_before_auth_checks_cannot_grant_a_wrong_password(dovecot_factory,
                                                          dgate, rdb):
    # Dovecot's default sends the same command=allow before the password
    # check: the passdb's verified=yes is what tells them apart.
    dc = dovecot_factory(extra="auth_policy_check_before_auth = yes\n")
    reply, _ = pop3_login(dc, "127.0.6.6", "alice", "wrong")
    assert b"-ERR" in reply
    dgate.wait_log(r"event=dovecot_policy .*rip=127\.0\.6\.6 "
                   r"result=not_verified")
    assert rdb.hgetall(GRANT + "127.0.6.6") == {}
    reply, _ = pop3_login(dc, "127.0.6.7", "alice", "secret")
    assert reply.startswith(b"+OK")
    assert rdb.hget(GRANT + "127.0.6.7", "user") == "alice"


def test_logins_go_on_when_smtpgate_is_down_or_hung(dovecot, dgate, rdb):
    dgate.stop()
    reply, took = pop3_login(dovecot, "127.0.6.8", "alice", "secret")
    assert reply.startswith(b"+OK") and took < TIMEOUT_MS / 1000 + 2
    dovecot.wait_log(r"Policy server HTTP error")
    dgate.start()
    dgate.signal(signal.SIGSTOP)  # accepts (the kernel does), never answers
    try:
        i = dovecot.imap("127.0.6.9")
        t0 = time.monotonic()
        typ, _ = i.login("bob", "b0b-pass")
        took = time.monotonic() - t0
        i.logout()
    finally:
        dgate.signal(signal.SIGCONT)
    assert typ == "OK" and took < TIMEOUT_MS / 1000 + 2
    assert rdb.hgetall(GRANT + "127.0.6.8") == {}
    # The hung gate, woken, still answers what Dovecot asked: a verified
    # login, so its grant is right, only late.
    wait_until(lambda: rdb.hget(GRANT + "127.0.6.9", "user") == "bob", 5,
               what="the late grant")


def test_smtp_and_doveadm_logins_are_no_grant(dovecot, dgate, rdb):
    # Postfix's SASL through Dovecot (service smtp) and doveadm are logins
    # too: Dovecot asks, smtpgate answers 0 and writes nothing.
    for service, rip in (("smtp", "127.0.6.10"), ("doveadm", "127.0.6.11")):
        out = subprocess.run(
            ["doveadm", "-c", str(dovecot.config), "auth", "test", "-x",
             f"service={service}", "-x", f"rip={rip}", "alice", "secret"],
            capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        dgate.wait_log(rf"event=dovecot_policy .*protocol={service} "
                       rf".*rip={rip.replace('.', '[.]')} "
                       r"result=other_protocol")
    assert rdb.keys(GRANT + "*") == []


def policy_post(port, headers, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    body = body if body is not None else json.dumps(
        {"protocol": "pop3", "remote": "127.0.6.12", "user": "alice",
         "verified": "yes"})
    c.request("POST", "/?command=allow", body, headers)
    r = c.getresponse()
    out = r.status, r.read()
    c.close()
    return out


def test_requests_without_the_api_key_are_refused(dgate, door_port, rdb):
    assert policy_post(door_port, {})[0] == 403
    dgate.wait_log(r"event=dovecot_refused .*reason=no_api_key")
    assert policy_post(door_port, {"X-API-Key": KEY + "x"})[0] == 403
    assert policy_post(door_port, {"Authorization": "Basic ZG92ZWNvdDp4"}
                       )[0] == 403
    dgate.wait_log(r"event=dovecot_refused .*reason=wrong_api_key")
    assert rdb.keys(GRANT + "*") == []
    assert policy_post(door_port, {"X-API-Key": KEY}) == \
        (200, b'{"status":0}')
    assert rdb.hget(GRANT + "127.0.6.12", "user") == "alice"


def test_a_dovecot_with_the_wrong_key_logs_in_without_grants(dovecot_factory,
                                                             dgate, rdb):
    dc = dovecot_factory(key="not-the-key-of-this-gate")
    reply, _ = pop3_login(dc, "127.0.6.13", "alice", "secret")
    assert reply.startswith(b"+OK")
    dgate.wait_log(r"event=dovecot_refused .*reason=wrong_api_key")
    dc.wait_log(r"Policy server HTTP error: 403")
    assert rdb.keys(GRANT + "*") == []


def test_redis_down_login_goes_on_and_the_grant_follows(dovecot, dgate,
                                                        redis_server, rdb):
    redis_server.stop()
    reply, took = pop3_login(dovecot, "127.0.6.14", "alice", "secret")
    assert reply.startswith(b"+OK") and took < TIMEOUT_MS / 1000 + 2
    dgate.wait_log(r"event=dovecot_login .*rip=127\.0\.6\.14 .*grant=failed")
    redis_server.start()
    wait_until(lambda: rdb.hget(GRANT + "127.0.6.14", "user") == "alice", 10,
               what="the grant retried once Redis is back")
