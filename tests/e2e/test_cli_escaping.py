"""What the admin command prints from Redis can never drive the admin's
terminal or forge a field: a hostile HELO name and sender sent to the
policy service, and hostile grant fields, come out escaped and quoted."""

import subprocess

from conftest import program, read_line, wait_until
from smtp_harness import gate, gate_factory, sink  # noqa: F401
from test_smtpgate_policy import LineClient, policy_request

HOSTILE_HELO = "evil\x1b]0;pwned\x07\x1b[2J"
HOSTILE_SENDER = 'a" user="root'


def admin(gate, *args):
    return subprocess.run([str(program("authbridge/authbridge")), "-c",
                           str(gate.config), *args], capture_output=True,
                          timeout=15)


def printable(data):
    return all(b == 0x0a or 0x20 <= b < 0x7f for b in data)


def test_watch_escapes_control_bytes_and_cannot_be_given_a_forged_field(
        gate, rdb):
    watch = subprocess.Popen([str(program("authbridge/authbridge")), "-c",
                              str(gate.config), "watch"],
                             stdout=subprocess.PIPE, text=False)
    try:
        wait_until(lambda: any("XREAD" in c.get("cmd", "") or
                               c.get("flags") == "b"
                               for c in rdb.client_list()), 5,
                   what="watch to wait on the stream")
        gate.grant(rdb, "192.0.2.40", "alice")
        c = LineClient(gate.policy_port, "127.0.0.1")
        assert c.request(policy_request(
            "192.0.2.40", sender=HOSTILE_SENDER,
            helo_name=HOSTILE_HELO)) == "action=OK"
        c.close()
        lines = []
        for _ in range(2):                 # the grant, then the decision
            line = read_line(watch, timeout=5)
            assert line, "watch printed nothing"
            lines.append(line)
        decision = lines[1]
        assert printable(decision), decision
        assert b"\x1b" not in decision and b"\x07" not in decision
        assert b"\\x1b]0;pwned\\x07\\x1b[2J" in decision
        # The sender is one quoted value, not a sender and a user=root.
        assert b'sender="a\\" user=\\"root"' in decision
        assert b" user=root" not in decision
    finally:
        watch.kill()
        watch.communicate(timeout=5)


def test_list_and_show_escape_what_redis_holds(gate, rdb):
    gate.grant(rdb, "192.0.2.41", "alice")
    rdb.hset("authbridge:grant:192.0.2.41",
             mapping={"user": "bob\x1b[31m red", "node": "n\x07",
                      "method": 'x" tls="1'})
    for args in (["list"], ["show", "192.0.2.41"]):
        out = admin(gate, *args)
        assert out.returncode == 0, out.stderr
        assert printable(out.stdout), out.stdout
        assert b'"bob\\x1b[31m red"' in out.stdout
    show = admin(gate, "show", "192.0.2.41").stdout
    assert b'method:  "x\\" tls=\\"1"' in show and b"n\\x07" in show


def test_why_escapes_what_redis_and_clients_put_there(gate, rdb):
    gate.grant(rdb, "192.0.2.42", "alice")
    c = LineClient(gate.policy_port, "127.0.0.1")
    assert c.request(policy_request(
        "192.0.2.42", sender=HOSTILE_SENDER,
        helo_name=HOSTILE_HELO)) == "action=OK"
    c.close()
    rdb.hset("authbridge:grant:192.0.2.42",
             mapping={"user": "bob\x1b[31m red", "node": "n\x07"})
    out = admin(gate, "why", "192.0.2.42")
    assert out.returncode == 0, out.stderr
    assert printable(out.stdout), out.stdout
    assert b"bob\\x1b[31m red" in out.stdout and b"n\\x07" in out.stdout
