"""Every cap of smtpgate/limits.h and the [smtpgate] limits, both sides of
each: the largest thing accepted, the smallest refused.
"""

import time


from smtp_harness import gate, gate_factory, sink  # noqa: F401

TRUSTED = "127.0.0.5"


def in_transaction(g, source=TRUSTED):
    r = g.raw(source)
    assert r.cmd("EHLO c.example")[0] == 250
    assert r.cmd("MAIL FROM:<a@example.net>")[0] == 250
    return r


def test_command_line_of_512_octets_is_accepted(gate):
    r = gate.raw()
    line = b"NOOP " + b"x" * (512 - 5 - 2)
    assert len(line + b"\r\n") == 512
    assert r.cmd(line) == (250, "2.0.0 Ok")


def test_command_line_of_513_octets_is_refused_and_closed(gate):
    r = gate.raw()
    line = b"NOOP " + b"x" * (513 - 5 - 2)
    code, text = r.cmd(line)
    assert code == 500 and text.startswith("5.5.6 Line too long"), text
    assert r.closed()


def test_endless_line_is_refused_without_waiting_for_its_end(gate):
    r = gate.raw()
    r.send(b"NOOP " + b"x" * 20000)
    assert r.reply()[0] == 500
    assert r.closed()


def test_100_recipients_accepted_then_452(gate, sink):
    r = in_transaction(gate)
    for i in range(100):
        r.send(f"RCPT TO:<r{i}@remote.example>\r\n")
    assert [r.reply()[0] for _ in range(100)] == [250] * 100
    code, text = r.cmd("RCPT TO:<r100@remote.example>")
    assert (code, text) == (452, "4.5.3 Too many recipients")
    assert r.cmd("DATA")[0] == 354
    assert r.cmd(b"x\r\n.")[0] == 250
    assert len(sink.messages()[0]["rcpts"]) == 100


def test_refused_recipients_do_not_count_towards_the_recipient_cap(gate,
                                                                   sink):
    r = in_transaction(gate, "127.0.0.66")
    for i in range(19):
        r.send(f"RCPT TO:<r{i}@remote.example>\r\n")
    assert [r.reply()[0] for _ in range(19)] == [550] * 19
    for i in range(100):
        r.send(f"RCPT TO:<bob+{i}@example.net>\r\n")
    assert [r.reply()[0] for _ in range(100)] == [250] * 100


def test_twenty_refused_recipients_end_the_session_with_421(gate):
    """Postfix's smtpd_hard_error_limit: a client refused 20 times is
    probing, not sending (one took 120,000 refusals in 5 s)."""
    r = in_transaction(gate, "127.0.0.67")
    # One write: the gate may close before a slower sender finished.
    r.send("".join(f"RCPT TO:<r{i}@remote.example>\r\n" for i in range(25)))
    codes = [r.reply()[0] for _ in range(21)]
    assert codes == [550] * 20 + [421], codes
    assert r.closed()
    gate.wait_log(r"event=too_many_errors .*client=127.0.0.67 .*errors=20 "
                  r"limit=errors")


def test_refused_recipients_and_bad_commands_add_up(gate):
    r = in_transaction(gate, "127.0.0.68")
    for _ in range(9):
        assert r.cmd("FROBNICATE")[0] == 500
    for i in range(10):
        assert r.cmd(f"RCPT TO:<r{i}@remote.example>")[0] == 550
    assert r.cmd("RCPT TO:<r10@remote.example>")[0] == 550
    assert r.reply()[0] == 421
    assert r.closed()


def test_temporary_failures_do_not_count_as_errors(gate, redis_server):
    """451 is our fault (Redis down), not the client's."""
    redis_server.stop()
    r = in_transaction(gate, "127.0.0.69")
    for i in range(25):
        assert r.cmd(f"RCPT TO:<r{i}@remote.example>")[0] == 451
    assert r.cmd("NOOP")[0] == 250


def test_size_parameter_over_the_limit_is_refused_at_mail(gate_factory):
    g = gate_factory(max_message_size=2048)
    r = g.raw(TRUSTED)
    r.cmd("EHLO c.example")
    assert r.cmd("MAIL FROM:<a@example.net> SIZE=2048")[0] == 250
    r.cmd("RSET")
    code, text = r.cmd("MAIL FROM:<a@example.net> SIZE=2049")
    assert code == 552 and text.startswith("5.3.4 "), text
    ehlo = r.cmd("EHLO c.example")[1]
    assert "SIZE 2048" in ehlo.split("\n")


def test_message_of_the_maximum_size_passes_one_more_octet_does_not(
        gate_factory, sink):
    g = gate_factory(max_message_size=2048)
    body = b"x" * 1022 + b"\r\n" + b"y" * 1022 + b"\r\n"
    assert len(body) == 2048
    r = in_transaction(g)
    r.cmd("RCPT TO:<b@remote.example>")
    r.cmd("DATA")
    assert r.cmd(body + b".")[0] == 250
    r.cmd("MAIL FROM:<a@example.net>")
    r.cmd("RCPT TO:<b@remote.example>")
    r.cmd("DATA")
    code, text = r.cmd(b"z" + body + b".")
    assert code == 552 and text.startswith("5.3.4 "), text
    assert [m["data"] for m in sink.messages()] == [body]
    # The MTA connection of the refused message was dropped mid-DATA.
    sink.wait_closed()
    assert sink.sessions[-1].aborted_data is not None


def test_long_text_lines_pass_through(gate, sink):
    """RFC 5321 4.5.3.1.6 allows refusing lines over 1000 octets; the gate
    passes them (it streams, a long line costs nothing) and leaves the
    policy to the MTA (limits.h)."""
    body = b"a" * 998 + b"\r\n" + b"b" * 5000 + b"\r\n"
    r = in_transaction(gate)
    r.cmd("RCPT TO:<b@remote.example>")
    r.cmd("DATA")
    assert r.cmd(body + b".")[0] == 250
    assert sink.messages()[0]["data"] == body


def test_bad_command_counter_closes_after_ten(gate):
    r = gate.raw()
    for i in range(9):
        code, text = r.cmd("BOGUS")
        assert (code, text) == (500, "5.5.2 Command unrecognized"), i
    code, text = r.cmd("MAIL FROM:<a@example.net>")   # before EHLO: 503
    assert code == 421 and "Too many errors" in text
    assert r.closed()


def test_sequence_and_syntax_errors(gate):
    r = gate.raw()
    assert r.cmd("MAIL FROM:<a@example.net>") == (503, "5.5.1 Send EHLO or "
                                                  "HELO first")
    assert r.cmd("EHLO")[0] == 501
    r.cmd("EHLO c.example")
    assert r.cmd("RCPT TO:<a@example.net>")[0] == 503
    assert r.cmd("DATA")[0] == 503
    assert r.cmd(b"NO\x00OP")[0] == 500
    r.cmd("MAIL FROM:<a@example.net>")
    assert r.cmd("MAIL FROM:<a@example.net>")[0] == 503
    assert r.cmd("DATA")[0] == 554                    # no valid recipients
    assert r.cmd("RSET")[0] == 250
    assert r.cmd("VRFY bob")[0] == 252
    assert r.cmd("EXPN list")[0] == 502
    assert r.cmd("HELP")[0] == 214
    assert r.cmd("QUIT")[0] == 221
    assert r.closed()


def test_http_request_closes_the_connection(gate):
    r = gate.raw()
    code, _ = r.cmd("GET / HTTP/1.0")
    assert code == 421
    assert r.closed()


def test_command_timeout(gate_factory):
    g = gate_factory(command_timeout=1)
    r = g.raw()
    r.cmd("EHLO c.example")
    started = time.monotonic()
    code, text = r.reply()        # RFC 5321 4.5.3.2: 421 before closing
    assert (code, text) == (421, "4.4.2 gate.test Error: timeout exceeded")
    assert r.closed(timeout=5)
    assert 0.8 < time.monotonic() - started < 3
    g.wait_log(r"event=disconnect .*reason=timeout")


def trickle(r, data, every=0.25):
    """Send data a byte at a time; seconds until the server closed (None
    if it never did)."""
    started = time.monotonic()
    for b in data:
        try:
            r.send(bytes([b]))
        except OSError:
            break
        if r.closed(timeout=every):
            return time.monotonic() - started
    return time.monotonic() - started if r.closed(timeout=every) else None


def test_a_line_trickled_byte_by_byte_still_times_out(gate_factory):
    """Every byte restarts the read timeout, but a command line must arrive
    whole within command_timeout (as Postfix's smtpd_per_record_deadline):
    36 bytes at 4 a second would otherwise hold the connection 9 s."""
    g = gate_factory(command_timeout=1)
    r = g.raw()
    elapsed = trickle(r, b"NOOP" + b" " * 32)
    assert elapsed is not None and 0.8 < elapsed < 3
    assert r.buf == b"421 4.4.2 gate.test Error: timeout exceeded\r\n"
    g.wait_log(r"event=disconnect .*reason=timeout")


def test_data_timeout_never_ends_the_message(gate_factory, sink):
    g = gate_factory(data_timeout=1, command_timeout=30)
    r = in_transaction(g)
    r.cmd("RCPT TO:<b@remote.example>")
    assert r.cmd("DATA")[0] == 354
    r.send(b"started but never ended\r\n")
    assert r.closed(timeout=5)
    sink.wait_closed()
    assert sink.messages() == []
    g.wait_log(r"event=disconnect .*reason=timeout state=DATA")


def test_connections_per_address_cap(gate_factory):
    g = gate_factory(max_connections_per_addr=2)
    a, b = g.raw("127.0.0.40"), g.raw("127.0.0.40")
    third = g.raw("127.0.0.40", greet=False)
    code, text = third.reply()
    assert code == 421 and text.startswith("4.7.0 ") and "your address" in text
    assert third.closed()
    other = g.raw("127.0.0.41")                       # another address: fine
    a.close()
    g.wait_log(r"event=disconnect .*client=127.0.0.40")
    again = g.raw("127.0.0.40")                       # room again
    for c in (b, other, again):
        c.close()


def test_total_connection_cap(gate_factory):
    g = gate_factory(max_connections=2)
    a, b = g.raw("127.0.0.42"), g.raw("127.0.0.43")
    third = g.raw("127.0.0.44", greet=False)
    assert third.reply()[0] == 421
    a.close()
    b.close()
