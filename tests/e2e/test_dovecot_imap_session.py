"""Long IMAP sessions keep their grants: Dovecot's event exporter (the
README's recipe) posts every finished IMAP command, smtpgate renews the
session's grant at most once per interval, and a session that ends stops
renewing, so the grant runs out."""

import time

import pytest

from conftest import free_port, wait_until
from dovecot_harness import Dovecot, wipe_base_dir
from smtp_harness import gate_factory, sink  # noqa: F401

KEY = "test-key-0123456789abcdef"
USERS = {"alice": "secret", "bob": "b0b-pass"}
GRANT = "authbridge:grant:"
TTL = 3                          # renewals every TTL/3 = 1 s


@pytest.fixture
def setup(tmp_path, gate_factory, redis_server):
    port = free_port()
    g = gate_factory(start=False, dovecot_listen=f"127.0.0.1:{port}",
                     dovecot_api_key=KEY, trusted_networks=["127.0.0.1/32"])
    g.sections["grant"]["ttl"] = TTL
    g.rewrite_config()
    g.start()
    dc = Dovecot(tmp_path / "dovecot", USERS, port, KEY, events=True).start()
    yield g, dc
    dc.stop()
    wipe_base_dir(dc)


def grant_entries(rdb, addr):
    return [f for _, f in rdb.xrange("authbridge:log")
            if f.get("event") == "grant" and f.get("addr") == addr]


def test_an_imap_session_keeps_its_grant_past_the_ttl(setup, rdb):
    gate, dc = setup
    i = dc.imap("127.0.7.1")
    assert i.login("alice", "secret")[0] == "OK"
    assert rdb.hget(GRANT + "127.0.7.1", "method") == "IMAP-PLAIN"
    end = time.monotonic() + 3 * TTL
    while time.monotonic() < end:          # a client that polls its INBOX
        assert i.noop()[0] == "OK"
        assert rdb.hget(GRANT + "127.0.7.1", "user") == "alice"
        time.sleep(0.3)
    assert rdb.hget(GRANT + "127.0.7.1", "method") == "IMAP-SESSION"
    # ~30 commands in 9 s, renewed about once a second, not per command.
    renewals = len(grant_entries(rdb, "127.0.7.1")) - 1
    assert 3 <= renewals <= 3 * TTL + 2, renewals
    i.logout()
    # Ended: no more renewals, the grant runs out.
    wait_until(lambda: not rdb.exists(GRANT + "127.0.7.1"), TTL + 2,
               interval=0.1, what="the grant to expire after logout")


def test_a_session_does_not_take_another_users_grant(setup, rdb):
    gate, dc = setup
    i = dc.imap("127.0.7.2")
    assert i.login("alice", "secret")[0] == "OK"
    # Someone else logs in from the same (NAT) address afterwards.
    j = dc.imap("127.0.7.2")
    assert j.login("bob", "b0b-pass")[0] == "OK"
    assert rdb.hget(GRANT + "127.0.7.2", "user") == "bob"
    for _ in range(8):
        i.noop()
        time.sleep(0.25)
    gate.wait_log(r"event=dovecot_renew addr=127\.0\.7\.2 user=alice "
                  r"result=other_user")
    assert rdb.hget(GRANT + "127.0.7.2", "user") == "bob"
    i.logout()
    j.logout()


def test_a_session_whose_grant_ran_out_gets_it_back(setup, rdb):
    gate, dc = setup
    i = dc.imap("127.0.7.3")
    assert i.login("alice", "secret")[0] == "OK"
    rdb.delete(GRANT + "127.0.7.3")        # as if it had expired while idle
    time.sleep(1.1)                        # past the renewal interval
    assert i.noop()[0] == "OK"
    wait_until(lambda: rdb.hget(GRANT + "127.0.7.3", "user") == "alice", 3,
               what="the grant renewed by the next command")
    i.logout()
