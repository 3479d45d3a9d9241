"""SMTP smuggling (2023): only CRLF.CRLF ends DATA at the gate. A message
with a bare CR or LF is refused (550 5.6.0) and the MTA connection is
dropped without an end-of-data dot, so even an MTA that takes "\\n.\\n" as
the end (the sink here is that lenient) never sees a second message.
"""

import pytest

from conftest import wait_until

from smtp_harness import gate, gate_factory, sink  # noqa: F401

TRUSTED = "127.0.0.5"
SMUGGLED = (b"MAIL FROM:<evil@attacker.example>\r\n"
            b"RCPT TO:<victim@remote.example>\r\n"
            b"DATA\r\n"
            b"From: ceo@example.net\r\n\r\nsmuggled\r\n")


def open_data(g):
    r = g.raw(TRUSTED)
    assert r.cmd("EHLO c.example")[0] == 250
    assert r.cmd("MAIL FROM:<a@example.net>")[0] == 250
    assert r.cmd("RCPT TO:<b@remote.example>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    return r


@pytest.mark.parametrize("seq", [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n",
                                 b"\r\n.\r", b"\n\n.\n\n", b"\r\n.\rX\n"],
                         ids=["LF.LF", "CR.CR", "CRLF.LF", "LF.CRLF",
                              "CRLF.CR", "LFLF.LFLF", "CRLF.CRX"])
def test_smuggling_sequence_never_makes_a_second_message(gate, sink, seq):
    sink.lenient_dot = True
    r = open_data(gate)
    r.send(b"Subject: first\r\n\r\nhello" + seq + SMUGGLED)
    code, text = r.cmd(b"\r\n.")
    assert code == 550 and text.startswith("5.6.0 "), text
    # The session is fine afterwards, and a clean message goes through.
    assert r.cmd("MAIL FROM:<a@example.net>")[0] == 250
    assert r.cmd("RCPT TO:<b@remote.example>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    assert r.cmd(b"clean\r\n.")[0] == 250
    r.cmd("QUIT")
    # Exactly one message, the clean one; nothing of the smuggled one.
    assert [m["data"] for m in sink.wait_messages(1)] == [b"clean\r\n"]
    assert not [l for l in sink.all_lines() if b"attacker" in l]
    # The first MTA connection ended mid-DATA, without an end.
    wait_until(lambda: sink.sessions[0].closed, 5, what="the first to close")
    first = sink.sessions[0]
    assert first.messages == [] and first.aborted_data is not None
    assert seq not in first.aborted_data
    gate.wait_log(r"event=data_bare_cr_lf .*action=refuse")
    gate.wait_log(r"event=message .*result=bare_cr_lf code=550")


def test_bare_lf_inside_a_line_is_refused_too(gate, sink):
    r = open_data(gate)
    r.send(b"Subject: x\r\n\r\nfirst line\nsecond line\r\n")
    assert r.cmd(b".")[0] == 550
    assert sink.messages() == []


def test_pipelined_commands_after_a_refused_message_still_work(gate, sink):
    r = open_data(gate)
    r.send(b"a\n.\nb\r\n.\r\nMAIL FROM:<a@example.net>\r\n"
           b"RCPT TO:<b@remote.example>\r\nDATA\r\n")
    assert r.reply()[0] == 550
    assert r.reply()[0] == 250
    assert r.reply()[0] == 250
    assert r.reply()[0] == 354
    assert r.cmd(b"ok\r\n.")[0] == 250
    assert [m["data"] for m in sink.messages()] == [b"ok\r\n"]


def test_what_follows_a_real_end_is_judged_like_any_command(gate, sink):
    """"\r\r\n.\r\n" holds a real CRLF.CRLF: the message ends there (and
    is refused for its bare CR); what follows is the client's next
    transaction, and the gate judges it: no grant, no relay."""
    r = gate.raw("127.0.0.66")
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@elsewhere.example>")
    assert r.cmd("RCPT TO:<b@example.net>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(b"hello\r\r\n.\r\n" + SMUGGLED)
    assert r.reply()[0] == 550                  # the bare CR
    assert r.reply()[0] == 250                  # MAIL
    assert r.reply()[0] == 550                  # RCPT victim: relay denied
    assert r.reply()[0] == 554                  # DATA: no valid recipients
    assert sink.messages() == []
    assert not [l for l in sink.all_lines() if b"victim" in l]
