"""The gate as a transparent proxy in front of the MTA: what the MTA sees
(XCLIENT / XFORWARD, MAIL parameters, the exact DATA octets), the MTA's own
answers coming back, and an MTA that is down, dies or times out.
"""

import smtplib
import socket
import time


from conftest import free_port
from smtp_harness import gate, gate_factory, sink  # noqa: F401

TRUSTED = "127.0.0.5"
CLIENT = "127.0.0.21"


def send_one(g, body, source=TRUSTED, to=("bob@remote.example",),
             sender="alice@example.net"):
    with g.smtp(source) as s:
        s.ehlo("client.example")
        s.mail(sender)
        for t in to:
            s.rcpt(t)
        return s.data(body)


def test_data_passes_through_octet_for_octet(gate, sink):
    body = (b"From: a@example.net\r\nSubject: octets\r\n\r\n"
            b"..a stuffed dot line\r\nline with 8bit \xe9\xe8\r\n"
            b"trailing spaces   \r\n\r\n\r\nlast")
    r = gate.raw(TRUSTED)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.net> BODY=8BITMIME")
    assert r.cmd("RCPT TO:<bob@remote.example>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    code, text = r.cmd(body + b"\r\n.")
    assert code == 250 and text == "2.0.0 Ok: queued"
    # Dots stay stuffed: the MTA unstuffs, the gate forwards as received.
    assert sink.messages()[0]["data"] == body + b"\r\n"


def test_a_large_message_streams_with_back_pressure(gate, sink):
    """8 MB to an MTA that reads slowly: the gate stops reading the client
    while the MTA side is behind, and every octet arrives. The kernel
    queues up to 4 MB towards the MTA (tcp_wmem's default maximum) before
    the gate's own buffer grows, so the message is larger than that and
    the MTA's receive buffer is kept small (no autotuning to 32 MB)."""
    sink.srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sink.slow_read = 0.002
    lines = [b"line %07d " % i + b"x" * 60 + b"\r\n" for i in range(110000)]
    body = b"".join(lines)
    assert len(body) > 8_000_000
    r = gate.raw(TRUSTED)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.net> SIZE=%d" % len(body))
    r.cmd("RCPT TO:<b@remote.example>")
    assert r.cmd("DATA")[0] == 354
    r.send(body)
    assert r.cmd(b".")[0] == 250
    assert sink.messages()[0]["data"] == body
    gate.wait_log(r"event=data_paused")


def test_the_mtas_final_refusal_comes_back(gate, sink):
    sink.final_reply = b"554 5.7.1 Message rejected: spam score 99"
    code, text = send_one(gate, b"Subject: spam\r\n\r\nbuy\r\n")
    assert (code, text) == (554, b"5.7.1 Message rejected: spam score 99")
    gate.wait_log(r"event=message .*result=refused_by_mta code=554")


def test_the_mtas_per_recipient_answers_come_back(gate, sink):
    sink.rcpt_replies = {
        "nobody@example.net": b"550 5.1.1 <nobody@example.net>: user unknown",
        "full@example.net": b"452-4.2.2 mailbox full\r\n452 4.2.2 try later",
        "plain@example.net": b"550 no enhanced code here",
    }
    with gate.smtp("127.0.0.44") as s:
        s.ehlo("c.example")
        s.mail("x@elsewhere.example")
        assert s.rcpt("nobody@example.net") == (
            550, b"5.1.1 <nobody@example.net>: user unknown")
        assert s.rcpt("full@example.net") == (
            452, b"4.2.2 mailbox full\n4.2.2 try later")
        # Every reply carries an enhanced code, even when the MTA's had none.
        assert s.rcpt("plain@example.net") == (550, b"5.0.0 no enhanced code here")
        assert s.rcpt("ok@example.net")[0] == 250
        assert s.data(b"hi\r\n")[0] == 250
    assert sink.messages()[0]["rcpts"] == ["ok@example.net"]


def test_long_and_broken_mta_replies(gate, sink):
    long_reply = b"\r\n".join(b"550-5.1.1 " + b"%02d " % i + b"x" * 400
                               for i in range(19)) + b"\r\n550 5.1.1 end"
    sink.rcpt_replies = {
        "long@example.net": long_reply,
        "many@example.net": b"\r\n".join([b"550-x"] * 70 + [b"550 x"]),
    }
    r = gate.raw(TRUSTED)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.net>")
    # Cut to fit 4 KB, but still one well-formed reply.
    code, text = r.cmd("RCPT TO:<long@example.net>")
    assert code == 550
    assert 5 <= len(text.split("\n")) < 19
    assert r.cmd("NOOP")[0] == 250
    # More than 64 lines is not an MTA we can trust to be in step.
    code, text = r.cmd("RCPT TO:<many@example.net>")
    assert code == 451 and text.startswith("4.4.0 "), text


def test_xclient_tells_the_mta_who_the_client_is(gate, sink):
    sink.xclient = ["NAME", "ADDR", "PROTO", "HELO", "LOGIN"]
    send_one(gate, b"hi\r\n", source="127.0.0.5")
    sess = sink.sessions[0]
    assert sess.xclient == [b"XCLIENT NAME=[UNAVAILABLE] ADDR=127.0.0.5 "
                            b"PROTO=ESMTP HELO=client.example"]
    # EHLO again after XCLIENT's 220, with our own name each time.
    assert sess.helo == [b"gate.test", b"gate.test"]
    assert sess.xforward == []


def test_xclient_only_sends_the_attributes_offered(gate, sink):
    sink.xclient = ["ADDR", "HELO"]
    with gate.smtp("127.0.0.5") as s:
        s.helo("odd+name=x")
        s.mail("a@example.net")
        s.rcpt("b@example.net")
    assert sink.sessions[0].xclient == [b"XCLIENT ADDR=127.0.0.5 "
                                        b"HELO=odd+2Bname+3Dx"]


def test_xforward_before_every_transaction(gate, sink):
    sink.xforward = ["NAME", "ADDR", "PROTO", "HELO", "SOURCE"]
    with gate.smtp(TRUSTED) as s:
        s.ehlo("client.example")
        for n in range(2):
            s.mail("a@example.net")
            s.rcpt("b@remote.example")
            assert s.data(b"n\r\n")[0] == 250
    sess = sink.sessions[0]
    assert len(sink.sessions) == 1          # one connection, kept
    assert sess.xforward == [b"XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.5 "
                             b"PROTO=ESMTP HELO=client.example"] * 2
    assert len(sess.messages) == 2


def test_mail_parameters_only_when_the_mta_offers_them(gate, sink):
    with gate.smtp(TRUSTED) as s:
        s.ehlo("c.example")
        s.mail("a@example.net", ["SIZE=1234", "BODY=8BITMIME", "AUTH=<>"])
        s.rcpt("b@example.net")
        s.rset()
    assert b"MAIL FROM:<a@example.net> SIZE=1234 BODY=8BITMIME" in \
        sink.all_lines()
    # A new MTA connection (the idle one dropped) that offers no SIZE.
    sink.size = False
    sink.drop_all()
    with gate.smtp(TRUSTED) as s:
        s.ehlo("c.example")
        s.mail("a@example.net", ["SIZE=1234"])
        assert s.rcpt("b@example.net")[0] == 250
    assert len(sink.sessions) == 2
    assert b"MAIL FROM:<a@example.net>" in sink.sessions[1].lines


def test_no_mta_connection_until_a_recipient_is_allowed(gate, sink):
    with gate.smtp("127.0.0.66") as s:
        s.ehlo("c.example")
        s.mail("a@elsewhere.example")
        assert s.rcpt("x@remote.example")[0] == 550
        assert s.rcpt("y@remote.example")[0] == 550
        s.rset()
    assert sink.sessions == []


def test_rset_is_passed_on_and_the_connection_kept(gate, sink):
    with gate.smtp(TRUSTED) as s:
        s.ehlo("c.example")
        s.mail("a@example.net")
        s.rcpt("b@remote.example")
        assert s.rset()[0] == 250
        s.mail("c@example.net")
        s.rcpt("d@remote.example")
        assert s.data(b"x\r\n")[0] == 250
    assert len(sink.sessions) == 1
    lines = [l.split(b":")[0] for l in sink.sessions[0].lines]
    assert lines == [b"EHLO gate.test", b"MAIL FROM", b"RCPT TO", b"RSET",
                     b"MAIL FROM", b"RCPT TO", b"DATA"]
    assert sink.messages()[0]["mail"] == b"MAIL FROM:<c@example.net>"


def test_the_next_session_reuses_the_idle_mta_connection(gate, sink):
    """A connect, a greeting and an EHLO saved per session; XFORWARD tells
    the MTA about each client before each MAIL."""
    sink.xforward = ["NAME", "ADDR", "PROTO", "HELO"]
    for source in ("127.0.0.5", "127.0.1.7"):
        assert send_one(gate, b"m\r\n", source=source)[0] == 250
    sink.wait_messages(2)
    assert len(sink.sessions) == 1
    assert sink.sessions[0].helo == [b"gate.test"]
    assert [x.split(b" ")[2] for x in sink.sessions[0].xforward] == \
        [b"ADDR=127.0.0.5", b"ADDR=127.0.1.7"]
    gate.wait_log(r"event=ds_reuse")


def test_xclient_connections_are_never_shared(gate, sink):
    """XCLIENT makes the MTA take the connection for that client."""
    sink.xclient = ["NAME", "ADDR", "PROTO", "HELO"]
    for source in ("127.0.0.5", "127.0.1.7"):
        assert send_one(gate, b"m\r\n", source=source)[0] == 250
    sink.wait_closed()
    assert len(sink.sessions) == 2
    assert sink.sessions[0].lines[-1] == b"QUIT"
    assert [x.split(b" ")[2] for s in sink.sessions for x in s.xclient] == \
        [b"ADDR=127.0.0.5", b"ADDR=127.0.1.7"]


def test_a_reused_connection_that_dies_unanswered_is_replaced(gate, sink):
    """The MTA closes a pooled connection just as it is used again: nothing
    was answered there, so the gate starts over on a new connection."""
    assert send_one(gate, b"one\r\n")[0] == 250
    sink.hangup_after = 1
    assert send_one(gate, b"two\r\n")[0] == 250
    assert [m["data"] for m in sink.wait_messages(2)] == [b"one\r\n",
                                                          b"two\r\n"]
    assert len(sink.sessions) == 2
    gate.wait_log(r"event=ds_stale .*action=reconnect")


def test_an_idle_connection_the_mta_closed_is_replaced(gate, sink):
    assert send_one(gate, b"one\r\n")[0] == 250
    sink.drop_all()
    # At once: the gate may not have noticed yet; it must cope either way.
    assert send_one(gate, b"two\r\n")[0] == 250
    assert [m["data"] for m in sink.wait_messages(2)] == [b"one\r\n",
                                                          b"two\r\n"]
    assert len(sink.sessions) == 2


def test_pipelined_commands_answered_in_order(gate, sink):
    r = gate.raw(TRUSTED)
    r.send(b"EHLO c.example\r\nMAIL FROM:<a@example.net>\r\n"
           b"RCPT TO:<x@remote.example>\r\nRCPT TO:<y@example.net>\r\n"
           b"RCPT TO:<bad address>\r\nDATA\r\n")
    codes = [r.reply()[0] for _ in range(6)]
    assert codes == [250, 250, 250, 250, 501, 354]
    r.send(b"pipelined body\r\n.\r\nNOOP\r\nQUIT\r\n")
    assert [r.reply()[0] for _ in range(3)] == [250, 250, 221]
    assert sink.messages()[0]["rcpts"] == ["x@remote.example", "y@example.net"]


def test_mta_down_gives_451_never_250(gate_factory):
    g = gate_factory(downstream=f"127.0.0.1:{free_port()}")
    with g.smtp(TRUSTED) as s:
        s.ehlo("c.example")
        s.mail("a@example.net")
        code, text = s.rcpt("b@remote.example")
        assert code == 451 and text.startswith(b"4.4.1 "), text
        code, _ = s.rcpt("c@example.net")
        assert code == 451
        assert s.docmd("DATA")[0] == 554     # nothing was accepted
    g.wait_log(r"event=ds_failed .*reason=\"connect failed\"")


def test_mta_refusing_mail_from_is_the_recipients_answer(gate, sink):
    sink.mail_reply = b"553 5.1.8 <a@bad.example>: Sender address rejected"
    with gate.smtp(TRUSTED) as s:
        s.ehlo("c.example")
        s.mail("a@bad.example")
        assert s.rcpt("b@remote.example") == (
            553, b"5.1.8 <a@bad.example>: Sender address rejected")
        assert s.rcpt("c@remote.example")[0] == 553


def test_mta_dying_mid_data_gives_451(gate, sink):
    sink.die_in_data = 1000
    r = gate.raw(TRUSTED)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.net>")
    r.cmd("RCPT TO:<b@remote.example>")
    assert r.cmd("DATA")[0] == 354
    r.send(b"x" * 70 + b"\r\n")
    for _ in range(200):
        r.send(b"y" * 70 + b"\r\n")
    code, text = r.cmd(b".")
    assert code == 451 and text.startswith("4.4.2 "), text
    assert sink.messages() == []
    # The session goes on: the next transaction opens a new connection.
    sink.die_in_data = None
    r.cmd("MAIL FROM:<a@example.net>")
    assert r.cmd("RCPT TO:<b@remote.example>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    assert r.cmd(b"fine\r\n.")[0] == 250
    assert len(sink.messages()) == 1


def test_mta_giving_up_mid_data_is_heard(gate, sink):
    """An MTA that answers before the end (and closes): its reason, not a
    250, reaches the client once the client has finished."""
    sink.early_reply = (2000, b"552 5.3.4 Message too big for this MTA")
    r = gate.raw(TRUSTED)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.net>")
    r.cmd("RCPT TO:<b@remote.example>")
    assert r.cmd("DATA")[0] == 354
    for _ in range(400):
        r.send(b"z" * 70 + b"\r\n")
    assert r.cmd(b".") == (552, "5.3.4 Message too big for this MTA")
    assert sink.messages() == []


def test_mta_timing_out_gives_451(gate_factory, sink):
    g = gate_factory(downstream_timeout=1)
    sink.final_delay = 3
    started = time.monotonic()
    code, text = send_one(g, b"slow\r\n")
    assert code == 451 and text.startswith(b"4.4.2 "), text
    assert time.monotonic() - started < 2.9


def test_mta_that_never_greets(gate_factory):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        g = gate_factory(downstream=f"127.0.0.1:{silent.getsockname()[1]}",
                         downstream_timeout=1)
        with g.smtp(TRUSTED) as s:
            s.ehlo("c.example")
            s.mail("a@example.net")
            assert s.rcpt("b@remote.example")[0] == 451
    finally:
        silent.close()


def test_client_leaving_mid_data_never_ends_the_message(gate, sink):
    r = gate.raw(TRUSTED)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.net>")
    r.cmd("RCPT TO:<b@remote.example>")
    assert r.cmd("DATA")[0] == 354
    r.send(b"half a message\r\n")
    r.close()
    sink.wait_closed()
    assert sink.messages() == []
    # What (if anything) got there before the close is a prefix, no end.
    assert b"half a message\r\n".startswith(sink.sessions[0].aborted_data)


def test_ipv6_client_grant_and_xclient(gate_factory, sink, rdb):
    g = gate_factory(start=False)
    v6_port = free_port()
    g.rewrite_config(listen=[f"127.0.0.1:{g.port}", f"[::1]:{v6_port}"])
    g.start()
    sink.xclient = ["NAME", "ADDR", "PROTO", "HELO"]
    g.grant(rdb, "::1", "alice")
    with smtplib.SMTP("::1", v6_port, timeout=10) as s:
        s.helo("v6.example")
        s.mail("alice@example.net")
        assert s.rcpt("bob@remote.example")[0] == 250
    assert sink.sessions[0].xclient == [
        b"XCLIENT NAME=[UNAVAILABLE] ADDR=IPV6:::1 PROTO=SMTP HELO=v6.example"]
    g.wait_log(r"event=rcpt .*client=::1 .*path=grant user=alice")
