"""The relay decision through the SMTP gate: grants, local domains, trusted
networks, Redis outages, sender binding, and what is logged and streamed.
"""

import re
import subprocess
import time


from conftest import wait_until
from smtp_harness import DENY_HINT, gate, gate_factory, sink  # noqa: F401

DECISIONS = "authbridge:decisions"
GRANTED = "127.0.0.21"
OTHER = "127.0.0.22"


def rcpt(g, source, to, sender="someone@elsewhere.example"):
    """(code, text) of RCPT TO:<to> after MAIL, from source."""
    with g.smtp(source) as s:
        s.ehlo("client.example")
        code, text = s.mail(sender)
        assert code == 250, text
        return s.rcpt(to)


def stream(rdb, event=None):
    entries = [f for _, f in rdb.xrange(DECISIONS)]
    return [e for e in entries if event is None or e["event"] == event]


def test_relay_refused_without_a_grant_with_the_hint(gate, sink):
    code, text = rcpt(gate, GRANTED, "bob@remote.example")
    assert code == 550
    assert text.decode() == f"5.7.1 <bob@remote.example>: {DENY_HINT}"
    assert sink.all_lines() == []          # no MTA connection for a refusal


def test_relay_allowed_after_a_grant_from_that_address_only(gate, sink, rdb):
    gate.grant(rdb, GRANTED, "alice")
    with gate.smtp(GRANTED) as s:
        s.ehlo("client.example")
        s.mail("alice@example.net")
        assert s.rcpt("bob@remote.example")[0] == 250
        assert s.data(b"Subject: t\r\n\r\nhi\r\n")[0] == 250
    assert sink.messages()[0]["rcpts"] == ["bob@remote.example"]
    assert rcpt(gate, OTHER, "bob@remote.example")[0] == 550


def test_relay_refused_again_after_the_grant_expires(gate, rdb):
    gate.grant(rdb, GRANTED, "alice", ttl=1)
    assert rcpt(gate, GRANTED, "bob@remote.example")[0] == 250
    wait_until(lambda: rdb.exists(f"authbridge:grant:{GRANTED}") == 0, 5,
               what="the grant to expire")
    assert rcpt(gate, GRANTED, "bob@remote.example")[0] == 550


def test_local_recipients_accepted_from_anyone(gate, sink):
    for to in ("bob@example.net", "Carol@EXAMPLE.ORG", "postmaster",
               "dave@example.net."):
        assert rcpt(gate, OTHER, to)[0] == 250, to
    rcpts = [m for s in sink.sessions for m in s.lines if m.startswith(b"RCPT")]
    # The trailing dot is gone: the MTA gets the domain the gate judged.
    assert b"RCPT TO:<dave@example.net>" in rcpts
    assert b"RCPT TO:<postmaster>" in rcpts


def test_trusted_networks_relay_without_a_grant(gate):
    assert rcpt(gate, "127.0.0.5", "bob@remote.example")[0] == 250
    assert rcpt(gate, "127.0.1.77", "bob@remote.example")[0] == 250
    assert rcpt(gate, "127.0.0.6", "bob@remote.example")[0] == 550


def test_every_decision_is_logged_once_and_relays_streamed(gate, rdb):
    gate.grant(rdb, GRANTED, "alice")
    with gate.smtp(GRANTED) as s:
        s.ehlo("client.example")
        s.mail("alice@example.net")
        s.rcpt("bob@remote.example")
        s.rcpt("carol@example.net")
    with gate.smtp(OTHER) as s:
        s.ehlo("other.example")
        s.mail("x@elsewhere.example")
        s.rcpt("bob@remote.example")
    line = gate.wait_log(r"event=rcpt .*rcpt=bob@remote.example path=grant")
    assert f"client={GRANTED} helo=client.example sender=alice@example.net" \
        in line
    assert "user=alice" in line
    gate.wait_log(r"event=rcpt .*client=127.0.0.22 .*path=denied")
    assert len(re.findall(r"event=rcpt .*rcpt=carol@example.net path=local",
                          gate.log())) == 1
    wait_until(lambda: stream(rdb, "relay-denied"), 5, what="the denial")
    allowed = stream(rdb, "relay-allowed")
    denied = stream(rdb, "relay-denied")
    assert len(allowed) == 1 and len(denied) == 1
    assert allowed[0]["client"] == GRANTED and allowed[0]["user"] == "alice"
    assert allowed[0]["rcpt"] == "bob@remote.example"
    assert allowed[0]["path"] == "grant" and allowed[0]["node"] == "gate-node"
    assert denied[0]["client"] == OTHER and denied[0]["path"] == "denied"
    # Local deliveries are not relays: no stream entry.
    assert not [e for e in stream(rdb) if e.get("rcpt") == "carol@example.net"]


def test_admin_stats_count_the_gate_decisions(gate, rdb):
    gate.grant(rdb, GRANTED, "alice")
    rcpt(gate, GRANTED, "bob@remote.example")
    rcpt(gate, OTHER, "bob@remote.example")
    rcpt(gate, OTHER, "bob@remote.example")
    # The second refusal from OTHER within a minute is only counted; it
    # reaches the stream when the minute ends, or when the gate stops.
    wait_until(lambda: len(stream(rdb, "relay-denied")) == 1, 5,
               what="the first denial in the stream")
    gate.stop()
    assert len(stream(rdb, "relay-denied")) == 2
    from conftest import program
    out = subprocess.run([str(program("authbridge/authbridge")), "-c",
                          str(gate.config), "stats"], capture_output=True,
                         text=True, timeout=10)
    assert re.search(r"relays allowed\s+1\b", out.stdout), out.stdout
    assert re.search(r"relays denied\s+2\b", out.stdout), out.stdout


def test_redis_down_defers_relays_but_not_local_mail(gate, redis_server, rdb):
    gate.grant(rdb, GRANTED, "alice")
    redis_server.stop()
    with gate.smtp(GRANTED) as s:
        s.ehlo("client.example")
        s.mail("alice@example.net")
        code, text = s.rcpt("bob@remote.example")
        assert code == 451 and text.startswith(b"4.3.0 "), text
        assert s.rcpt("carol@example.net")[0] == 250
        assert s.rcpt("dave@remote.example")[0] == 451
    gate.wait_log(r"event=rcpt .*path=tempfail")
    # Back without a restart of the gate (the grant died with Redis).
    redis_server.start()
    gate.wait_log(r"event=redis_up", timeout=5)
    wait_until(lambda: gate.log().count("event=redis_up") >= 2, 5,
               what="the gate to reconnect")
    gate.grant(rdb, GRANTED, "alice")
    assert rcpt(gate, GRANTED, "bob@remote.example")[0] == 250
    wait_until(lambda: stream(rdb, "relay-allowed"), 5, what="the entry")


def test_redis_hung_defers_within_the_timeout(gate, redis_server, rdb):
    gate.grant(rdb, GRANTED, "alice")
    redis_server.pause()
    try:
        started = time.monotonic()
        code, _ = rcpt(gate, GRANTED, "bob@remote.example")
        assert code == 451
        assert time.monotonic() - started < 3      # redis.timeout_ms = 500
    finally:
        redis_server.resume()


def test_sender_binding(gate_factory, rdb, tmp_path):
    sender_map = tmp_path / "senders"
    sender_map.write_text("sales@example.org  alice, bob\n")
    g = gate_factory(sender_binding=True, sender_map=str(sender_map))
    g.grant(rdb, GRANTED, "alice")
    assert rcpt(g, GRANTED, "x@remote.example", "alice@example.net")[0] == 250
    assert rcpt(g, GRANTED, "x@remote.example", "ALICE@example.org")[0] == 250
    assert rcpt(g, GRANTED, "x@remote.example", "sales@example.org")[0] == 250
    code, text = rcpt(g, GRANTED, "x@remote.example", "bob@example.net")
    assert code == 553 and text.startswith(b"5.7.1 <bob@example.net>: ")
    assert rcpt(g, GRANTED, "x@remote.example", "")[0] == 553
    # Binding is about grants: local mail and trusted clients are unbound.
    assert rcpt(g, GRANTED, "carol@example.net", "bob@example.net")[0] == 250
    assert rcpt(g, "127.0.0.5", "x@remote.example", "bob@example.net")[0] == 250
    g.wait_log(r"event=rcpt .*sender=bob@example.net .*path=sender_mismatch "
               r"user=alice")
    wait_until(lambda: [e for e in stream(rdb, "relay-denied")
                        if e["path"] == "sender_mismatch"], 5,
               what="the mismatch in the stream")


def test_a_grant_hash_written_by_hand_is_honoured(gate, rdb):
    """The schema is the interface: any writer of <prefix>grant:<addr>."""
    rdb.hset(f"authbridge:grant:{GRANTED}", mapping={"user": "alice"})
    assert rcpt(gate, GRANTED, "bob@remote.example")[0] == 250


def test_swaks_conversation(gate, rdb, sink):
    def swaks(*extra):
        return subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{gate.port}",
             "--local-interface", GRANTED, "--from", "alice@example.net",
             "--to", "bob@remote.example", "--helo", "swaks.example",
             "--timeout", "10", *extra],
            capture_output=True, text=True, timeout=30)
    refused = swaks("--quit-after", "RCPT")
    assert refused.returncode != 0
    assert "<** 550 5.7.1 <bob@remote.example>: Relaying denied." in \
        refused.stdout
    gate.grant(rdb, GRANTED, "alice")
    sent = swaks("--body", "hello from swaks")
    assert sent.returncode == 0, sent.stdout
    assert "<-  250 2.0.0 Ok: queued" in sent.stdout
    assert b"hello from swaks" in sink.messages()[-1]["data"]


def test_reload_applies_new_local_domains(gate):
    assert rcpt(gate, OTHER, "bob@new.example")[0] == 550
    gate.rewrite_config(local_domains=["example.net", "new.example"])
    import signal
    gate.signal(signal.SIGHUP)
    gate.wait_log(r"event=reloaded")
    assert rcpt(gate, OTHER, "bob@new.example")[0] == 250
    assert rcpt(gate, OTHER, "bob@example.org")[0] == 550
