"""`authbridge why ADDR`: what the helpdesk sees, checked against what
the real daemons do. Logins at a real pop3d (poplib), relays at a real
smtpgate (smtplib), the answer read as text and as --json."""

import json
import re
import time

import pytest

from conftest import Cli, write_config
from pop3_harness import pop3d_factory  # noqa: F401
from smtp_harness import gate_factory, sink  # noqa: F401

CUSTOMER, ELSEWHERE, TRUSTED = "127.0.6.1", "127.0.6.2", "127.0.1.9"
REMOTE = "friend@remote.example"


def login(pop, source, user="alice", pw="secret"):
    p = pop.client(source)
    p.user(user)
    assert p.pass_(pw).startswith(b"+OK")
    p.quit()


def gate_says(gate, source, rcpt=REMOTE, sender="alice@example.net"):
    with gate.smtp(source) as s:
        s.ehlo("client.example")
        s.mail(sender)
        code = s.rcpt(rcpt)[0]
        s.rset()
        return code


@pytest.fixture
def setup(pop3d_factory, gate_factory):
    gate = gate_factory()
    return pop3d_factory(), gate, Cli(gate.config)


def why(cli, *args):
    out = cli("why", *args)
    return out.returncode, out.stdout, out.stderr


def why_json(cli, *args):
    rc, out, err = why(cli, *args, "--json")
    assert rc in (0, 1), err
    return rc, json.loads(out)


def test_refused_before_a_pop3_login_and_granted_after(setup):
    pop, gate, cli = setup
    rc, out, _ = why(cli, CUSTOMER, "--rcpt", REMOTE)
    assert rc == 1 and gate_says(gate, CUSTOMER) == 550
    assert out.startswith(f"{CUSTOMER} to {REMOTE}: Refused: there is no "
                          f"live grant for {CUSTOMER}"), out
    assert f"smtpgate answers: 550 5.7.1 <{REMOTE}>: Relaying denied." in out
    login(pop, CUSTOMER)
    rc, out, _ = why(cli, CUSTOMER, "--rcpt", REMOTE)
    assert rc == 0 and gate_says(gate, CUSTOMER) == 250
    assert re.search(rf"Relayed, by a grant: alice checked mail from "
                     rf"{CUSTOMER} \d+ s ago; relay rights for (29|30) min more",
                     out), out
    assert "by USER on e2e-node" in out
    rc, j = why_json(cli, CUSTOMER)
    assert rc == 0 and j["decision"] == "relay" and j["path"] == "grant"
    assert j["grant"]["user"] == "alice" and j["grant"]["method"] == "USER"
    assert 1790 <= j["grant"]["ttl"] <= 1800 and j["grant"]["age"] <= 10
    assert j["user_last_login"]["address"] == CUSTOMER


def test_an_expired_grant_and_the_users_login_elsewhere(pop3d_factory,
                                                        gate_factory):
    pop = pop3d_factory(start=False)
    pop.sections["grant"]["ttl"] = 2
    write_config(pop.config, pop.sections)
    pop.start()
    gate = gate_factory()
    cli = Cli(gate.config)
    login(pop, CUSTOMER)
    time.sleep(3)
    assert gate_says(gate, CUSTOMER) == 550
    login(pop, ELSEWHERE)
    rc, out, _ = why(cli, CUSTOMER)
    assert rc == 1
    assert re.search(r"This address's grant \(alice\) expired \d+ s ago",
                     out), out
    assert (f"alice last logged in from {ELSEWHERE}, 0 s ago (a different "
            f"address") in out, out
    # The refusal the gate just gave is in the decisions stream.
    assert re.search(rf"relay-denied via smtp  from alice@example.net to "
                     rf"{REMOTE}  path denied", out), out
    rc, j = why_json(cli, CUSTOMER)
    assert rc == 1 and j["grant"] is None and j["path"] == "denied"
    assert j["last_grant"]["user"] == "alice"
    assert j["last_grant"]["expires"] < time.time()
    assert j["user_last_login"]["address"] == ELSEWHERE
    assert j["recent"][0]["event"] == "relay-denied"
    assert j["recent"][0]["rcpt"] == REMOTE


def test_a_trusted_network_relays_without_a_grant(setup):
    _, gate, cli = setup
    rc, out, _ = why(cli, TRUSTED)
    assert rc == 0 and gate_says(gate, TRUSTED) == 250
    assert f"Relayed: {TRUSTED} is in smtpgate's trusted_networks." in out
    assert why_json(cli, TRUSTED)[1]["path"] == "trusted"


def test_a_local_recipient_is_accepted_from_anyone(setup):
    _, gate, cli = setup
    rc, out, _ = why(cli, CUSTOMER, "--rcpt", "Bob@Example.NET")
    assert rc == 0 and gate_says(gate, CUSTOMER, "Bob@Example.NET") == 250
    assert "Accepted: Bob@Example.NET is in a local domain" in out
    # smtpgate's own path rules: a percent hack is not local.
    rc, j = why_json(cli, CUSTOMER, "--rcpt", "bob%remote.example@example.net")
    assert rc == 1 and j["path"] == "denied"
    assert gate_says(gate, CUSTOMER, "bob%remote.example@example.net") == 550


def test_a_sender_that_is_not_the_users_is_refused_with_sender_binding(
        pop3d_factory, gate_factory):
    pop = pop3d_factory()
    gate = gate_factory(sender_binding=True)
    cli = Cli(gate.config)
    login(pop, CUSTOMER)
    rc, out, _ = why(cli, CUSTOMER, "--from", "bob@example.net")
    assert rc == 1
    assert gate_says(gate, CUSTOMER, sender="bob@example.net") == 553
    assert ("sender_binding is on and bob@example.net is not one of alice's "
            "addresses") in out, out
    assert ("smtpgate answers: 553 5.7.1 <bob@example.net>: Sender address "
            "is not owned") in out
    rc, j = why_json(cli, CUSTOMER, "--from", "alice@example.net")
    assert rc == 0 and j["path"] == "grant" and j["sender_binding"] is True
    assert gate_says(gate, CUSTOMER, sender="alice@example.net") == 250
    # Without --from, binding is not judged: the grant is.
    assert why_json(cli, CUSTOMER)[1]["path"] == "grant"


def test_redis_down_is_exit_3(setup, redis_server):
    _, _, cli = setup
    redis_server.stop()
    rc, out, err = why(cli, CUSTOMER)
    assert rc == 3 and out == ""
    assert err.startswith("authbridge: ") and len(err.splitlines()) == 1


def test_bad_arguments_are_exit_2(setup):
    _, _, cli = setup
    assert why(cli)[0] == 2
    assert why(cli, "not-an-address")[0] == 2
    rc, _, err = why(cli, CUSTOMER, "--rcpt", "no domain")
    assert rc == 2 and "501" in err
    assert why(cli, CUSTOMER, "--bogus")[0] == 2
