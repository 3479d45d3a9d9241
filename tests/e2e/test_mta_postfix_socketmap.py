"""Postfix, the second way: check_client_access on smtpgate's socketmap
(conf/postfix-socketmap.cf.sample), with the private Postfix of
test_smtpgate_postfix.py running that sample's restrictions, started once
for the module."""

import subprocess

import pytest

from conftest import program
from mta_harness import (CUSTOMER, LOCAL, NEIGHBOUR, REMOTE, check_mail,
                         rcpt_reply, swaks)
from pop3_harness import pop3d_factory  # noqa: F401
from smtp_harness import gate_factory, sink  # noqa: F401
from test_smtpgate_postfix import Postfix

DENIED = f"554 5.7.1 <{REMOTE}>: Relay access denied"
# What Postfix says for any lookup it cannot complete (TEMP, or nobody
# listening): its words, but a deferral, so the client retries.
DEFERRED = f"451 4.3.5 <unknown[{CUSTOMER}]>: Client host rejected: " \
    "Server configuration error"


@pytest.fixture(scope="module")
def postfix():
    pf = Postfix(sample="postfix-socketmap.cf.sample")
    try:
        pf.start()
        yield pf
    finally:
        pf.stop()


@pytest.fixture
def map_gate(postfix, gate_factory):
    return gate_factory(socketmap_listen=f"127.0.0.1:{postfix.map_port}")


def reply(postfix, source, to=REMOTE):
    return rcpt_reply(postfix.port, source, to)


def test_postfix_refuses_a_relay_without_a_grant(postfix, map_gate):
    assert reply(postfix, NEIGHBOUR) == DENIED
    map_gate.wait_log(rf"event=rcpt via=socketmap .*client={NEIGHBOUR} "
                      r"map=relay path=none answer=NOTFOUND")
    # Postfix also asked about the client's name (it has none here): not
    # an address, so NOTFOUND, not the PERM that would break every client.
    map_gate.wait_log(r"event=socketmap .*map=relay key=unknown "
                      r"answer=NOTFOUND why=not_an_address")


def test_postfix_relays_after_a_pop3_login(postfix, map_gate, pop3d_factory):
    pop = pop3d_factory()
    assert reply(postfix, CUSTOMER) == DENIED
    check_mail(pop, CUSTOMER)
    out = swaks(postfix.port, CUSTOMER, REMOTE)
    assert "<-  250 2.0.0 Ok: queued as" in out, out
    line = map_gate.wait_log(rf"event=rcpt via=socketmap .*client={CUSTOMER} "
                             r".*path=grant")
    assert "user=alice" in line
    assert reply(postfix, NEIGHBOUR) == DENIED


def test_postfix_refuses_again_once_the_grant_is_revoked(postfix, map_gate,
                                                         rdb):
    map_gate.grant(rdb, CUSTOMER, "alice")
    assert reply(postfix, CUSTOMER).startswith("250 2.1.5")
    revoked = subprocess.run([str(program("authbridge/authbridge")), "-c",
                              str(map_gate.config), "revoke", CUSTOMER],
                             capture_output=True, text=True, timeout=10)
    assert revoked.returncode == 0, revoked.stderr
    assert reply(postfix, CUSTOMER) == DENIED


def test_postfix_defers_relays_while_redis_is_down_and_takes_local_mail(
        postfix, map_gate, rdb, redis_server):
    map_gate.grant(rdb, CUSTOMER, "alice")
    redis_server.stop()
    assert reply(postfix, CUSTOMER) == DEFERRED
    assert reply(postfix, NEIGHBOUR).startswith("451 4.3.5 ")
    local = swaks(postfix.port, NEIGHBOUR, LOCAL)
    assert "<-  250 2.0.0 Ok: queued as" in local, local


def test_postfix_defers_relays_while_smtpgate_is_down(postfix, map_gate, rdb):
    map_gate.grant(rdb, CUSTOMER, "alice")
    map_gate.stop()
    assert reply(postfix, CUSTOMER) == DEFERRED
    local = swaks(postfix.port, CUSTOMER, LOCAL)
    assert "<-  250 2.0.0 Ok: queued as" in local, local


def test_local_mail_never_asks_smtpgate(postfix, map_gate):
    local = swaks(postfix.port, NEIGHBOUR, LOCAL)
    assert "<-  250 2.0.0 Ok: queued as" in local, local
    assert "via=socketmap" not in map_gate.log()
    assert "event=socketmap " not in map_gate.log()
