"""TLS and SMTP AUTH at the gate: STARTTLS (RFC 3207), implicit TLS
(RFC 8314), AUTH PLAIN and LOGIN (RFC 4954) only over TLS or from trusted
networks, failure delays and limits, and the login reaching the MTA.
"""

import base64
import socket
import time


from smtp_harness import USERS, gate, gate_factory, sink, unverified_context  # noqa: F401

UNTRUSTED = "127.0.0.21"


def b64(data):
    return base64.b64encode(data).decode()


def tls_session(g, source=UNTRUSTED):
    s = g.smtp(source)
    s.ehlo("client.example")
    assert "starttls" in s.esmtp_features
    assert "auth" not in s.esmtp_features
    s.starttls(context=unverified_context())
    s.ehlo("client.example")
    return s


def test_auth_plain_after_starttls_allows_relay(gate, sink):
    with tls_session(gate) as s:
        assert s.esmtp_features["auth"].strip() == "PLAIN LOGIN"
        assert "starttls" not in s.esmtp_features
        assert s.login("alice", "secret") == (235, b"2.7.0 Authentication "
                                                   b"successful")
        s.mail("alice@example.net")
        assert s.rcpt("bob@remote.example")[0] == 250
        assert s.data(b"via auth\r\n")[0] == 250
    line = gate.wait_log(r"event=rcpt .*path=auth")
    assert "user=alice" in line
    gate.wait_log(r"event=auth .*mech=PLAIN user=alice result=ok")


def test_auth_login_after_starttls(gate):
    with tls_session(gate) as s:
        s.user, s.password = "alice", "secret"
        code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        assert code == 235
        s.mail("bob@example.net")
        assert s.rcpt("carol@remote.example")[0] == 250


def test_auth_login_with_an_initial_response_and_spaces_in_the_password(gate):
    with tls_session(gate) as s:
        s.user, s.password = "bob", USERS["bob"]
        assert s.auth("LOGIN", s.auth_login, initial_response_ok=True)[0] == 235


def test_auth_is_refused_before_tls_from_untrusted_addresses(gate):
    r = gate.raw(UNTRUSTED)
    ehlo = r.cmd("EHLO c.example")[1].split("\n")
    assert "STARTTLS" in ehlo and not [l for l in ehlo if l.startswith("AUTH")]
    code, text = r.cmd("AUTH PLAIN " + b64(b"\0alice\0secret"))
    assert code == 538 and text.startswith("5.7.11 ")
    r.cmd("MAIL FROM:<alice@example.net>")
    assert r.cmd("RCPT TO:<bob@remote.example>")[0] == 550


def test_auth_offered_without_tls_to_trusted_networks(gate):
    r = gate.raw("127.0.1.9")
    assert "AUTH PLAIN LOGIN" in r.cmd("EHLO c.example")[1].split("\n")
    assert r.cmd("AUTH PLAIN " + b64(b"\0alice\0secret"))[0] == 235


def test_wrong_password_is_delayed_and_three_close(gate_factory):
    g = gate_factory(auth_fail_delay_ms=300)
    with tls_session(g) as s:
        for attempt in range(2):
            started = time.monotonic()
            code, text = s.docmd("AUTH", "PLAIN " + b64(b"\0alice\0wrong"))
            assert code == 535 and text.startswith(b"5.7.8 "), text
            assert time.monotonic() - started >= 0.29
        code, text = s.docmd("AUTH", "PLAIN " + b64(b"\0nobody\0x"))
        assert code == 421 and b"Too many failed" in text
    g.wait_log(r"event=auth .*user=nobody result=failed")
    assert "wrong" not in g.log()           # never a password in the log


def test_auth_plain_in_two_steps_and_cancel(gate):
    with tls_session(gate) as s:
        assert s.docmd("AUTH", "PLAIN") == (334, b"")
        assert s.docmd("*")[0] == 501
        assert s.docmd("AUTH", "LOGIN") == (334, b"VXNlcm5hbWU6")
        assert s.docmd(b64(b"alice")) == (334, b"UGFzc3dvcmQ6")
        assert s.docmd(b64(b"secret"))[0] == 235
        assert s.docmd("AUTH", "PLAIN")[0] == 503          # already done


def test_malformed_auth_responses(gate):
    with tls_session(gate) as s:
        assert s.docmd("AUTH", "CRAM-MD5")[0] == 504
        assert s.docmd("AUTH", "PLAIN not-base64!")[0] == 501
        assert s.docmd("AUTH", "PLAIN " + b64(b"bob\0alice\0secret"))[0] == 501
        assert s.docmd("AUTH", "PLAIN " + b64(b"no nuls"))[0] == 501


def test_auth_lines_may_exceed_512_octets(gate):
    """RFC 4954 section 4: AUTH lines up to 12288 octets."""
    with tls_session(gate) as s:
        long = b64(b"\0alice\0" + b"p" * 900)
        assert len("AUTH PLAIN " + long) > 512
        assert s.docmd("AUTH", "PLAIN " + long)[0] == 535


def test_starttls_discards_pipelined_plaintext(gate):
    """CVE-2011-0411: commands sent with STARTTLS in one packet must not be
    run as if they came over TLS."""
    raw = socket.create_connection(("127.0.0.1", gate.port), 10,
                                   source_address=(UNTRUSTED, 0))
    f = raw.makefile("rb")
    assert f.readline().startswith(b"220 ")
    raw.sendall(b"EHLO c.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    raw.sendall(b"STARTTLS\r\nRSET\r\nMAIL FROM:<x@y.example>\r\n")
    assert f.readline().startswith(b"220 2.0.0 ")
    tls = unverified_context().wrap_socket(raw)
    tls.sendall(b"NOOP\r\n")
    assert tls.recv(1024) == b"250 2.0.0 Ok\r\n"   # no replies to RSET/MAIL
    tls.sendall(b"MAIL FROM:<a@example.net>\r\n")
    assert tls.recv(1024).startswith(b"503 5.5.1 Send EHLO")  # state reset
    f.close()
    tls.close()


def test_implicit_tls_port(gate):
    with gate.smtps(UNTRUSTED) as s:
        s.ehlo("client.example")
        assert "starttls" not in s.esmtp_features
        assert s.esmtp_features["auth"].strip() == "PLAIN LOGIN"
        assert s.login("alice", "secret")[0] == 235
        s.mail("alice@example.net")
        assert s.rcpt("bob@remote.example")[0] == 250


def test_the_mta_learns_the_login_through_xclient(gate, sink):
    sink.xclient = ["NAME", "ADDR", "PROTO", "HELO", "LOGIN"]
    with tls_session(gate) as s:
        s.login("alice", "secret")
        s.mail("alice@example.net")
        s.rcpt("bob@remote.example")
    assert sink.sessions[0].xclient == [
        b"XCLIENT NAME=[UNAVAILABLE] ADDR=127.0.0.21 PROTO=ESMTP "
        b"HELO=client.example LOGIN=alice"]


def test_failures_are_throttled_with_pop3d_across_sessions(gate_factory, rdb):
    """The shared throttle (Redis): past block_after failures from an
    address, AUTH is refused without the password being checked."""
    from conftest import write_config
    g = gate_factory(start=False)
    g.sections["throttle"] = {"block_after": 2, "delay_after": 100}
    write_config(g.config, g.sections)
    g.start()
    for _ in range(2):
        with tls_session(g) as s:
            assert s.docmd("AUTH", "PLAIN " + b64(b"\0alice\0wrong"))[0] == 535
    assert rdb.get(f"authbridge:fail:{UNTRUSTED}") == "2"
    assert rdb.get("authbridge:failuser:alice") == "2"
    with tls_session(g) as s:
        code, text = s.docmd("AUTH", "PLAIN " + b64(b"\0alice\0secret"))
        assert code == 454 and text.startswith(b"4.7.0 "), text
    g.wait_log(r"event=auth_blocked .*user=alice reason=address")
    # Another address is not blocked.
    with tls_session(g, "127.0.0.23") as s:
        assert s.login("alice", "secret")[0] == 235
