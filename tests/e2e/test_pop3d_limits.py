"""Every cap in pop3d/limits.h and the config, from both sides."""

import hashlib
import re
import socket
import time
import poplib

import pytest

from pop3_harness import pop3d, pop3d_factory, unverified_context  # noqa: F401


def logged_in_raw(d, source="127.0.0.1"):
    r = d.raw(source)
    r.send(b"USER alice\r\nPASS secret\r\n")
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Logged in")
    return r


# ---- command line length (RFC 2449: 255 octets with CRLF) ----------------------

def test_253_octet_command_is_accepted(pop3d):
    r = pop3d.raw()
    line = b"USER " + b"u" * 248
    assert len(line) == 253
    r.send(line + b"\r\n")
    assert r.line() == b"+OK"
    r.send(b"NOOP\r\n")           # still talking (NOOP is a bad cmd here)
    assert r.line().startswith(b"-ERR")


def test_254_octet_command_gets_one_error_and_close(pop3d):
    r = pop3d.raw()
    r.send(b"USER " + b"u" * 249 + b"\r\n")
    assert r.line().startswith(b"-ERR Line too long")
    assert r.closed()
    assert "event=line_too_long" in pop3d.log()


def test_endless_line_without_newline_is_cut_off(pop3d):
    r = pop3d.raw()
    r.send(b"A" * 100000)
    assert r.line().startswith(b"-ERR Line too long")
    assert r.closed()


# ---- bytes ------------------------------------------------------------------------

def test_nul_and_bare_cr_are_refused(pop3d):
    r = pop3d.raw()
    r.send(b"US\x00ER alice\r\n")
    assert r.line() == b"-ERR NUL or bare CR in command."
    r.send(b"USER al\rice\r\n")
    assert r.line() == b"-ERR NUL or bare CR in command."


def test_bare_lf_ends_a_line(pop3d):
    r = pop3d.raw()
    r.send(b"USER alice\nPASS secret\n")
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Logged in")


def test_8bit_garbage_is_an_unknown_command(pop3d):
    r = pop3d.raw()
    r.send(b"\xff\xfe\xc3\xa9\r\n")
    assert r.line() == b"-ERR Unknown command."


# ---- numbers ---------------------------------------------------------------------

@pytest.mark.parametrize("cmd", [b"RETR 0", b"RETR -1", b"RETR +1", b"RETR 1x",
                                 b"RETR 2", b"LIST 4294967297", b"DELE 01x",
                                 b"TOP 1 -1", b"UIDL 18446744073709551617"])
def test_malformed_or_out_of_range_numbers(pop3d, cmd):
    pop3d.deliver("alice", b"x\n")
    r = logged_in_raw(pop3d)
    r.send(cmd + b"\r\n")
    assert r.line().startswith(b"-ERR")
    r.send(b"STAT\r\n")
    assert r.line() == b"+OK 1 3"


def test_arguments_missing_or_extra(pop3d):
    pop3d.deliver("alice", b"x\n")
    r = logged_in_raw(pop3d)
    for cmd in (b"RETR", b"RETR 1 2", b"TOP 1", b"STAT 1", b"LIST  1"):
        r.send(cmd + b"\r\n")
        assert r.line() == b"-ERR Syntax error in arguments.", cmd


def test_dele_twice(pop3d):
    pop3d.deliver("alice", b"x\n")
    r = logged_in_raw(pop3d)
    r.send(b"DELE 1\r\nDELE 1\r\n")
    assert r.line() == b"+OK Message 1 deleted."
    assert r.line() == b"-ERR Message 1 is deleted."


# ---- bad-command counter: 3 before login, 20 after ----------------------------------

def test_two_bad_commands_before_login_are_tolerated(pop3d):
    r = pop3d.raw()
    r.send(b"FOO\r\nSTAT\r\nUSER alice\r\nPASS secret\r\n")
    assert r.line() == b"-ERR Unknown command."
    assert r.line() == b"-ERR [AUTH] Log in first."
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Logged in")


def test_third_bad_command_before_login_closes(pop3d):
    r = pop3d.raw()
    r.send(b"FOO\r\nBAR\r\nBAZ\r\nUSER alice\r\n")
    assert r.line() == b"-ERR Unknown command."
    assert r.line() == b"-ERR Unknown command."
    assert r.line() == b"-ERR Too many bad commands, closing connection."
    assert r.closed()


def test_twenty_bad_commands_after_login(pop3d):
    r = logged_in_raw(pop3d)
    r.send(b"FOO\r\n" * 19 + b"NOOP\r\n")
    for _ in range(19):
        assert r.line() == b"-ERR Unknown command."
    assert r.line() == b"+OK"
    r.send(b"FOO\r\n")
    assert r.line() == b"-ERR Too many bad commands, closing connection."
    assert r.closed()


# ---- timeouts ------------------------------------------------------------------------

def test_login_timeout(pop3d_factory):
    d = pop3d_factory(login_timeout=1)
    r = d.raw()
    assert not r.closed(timeout=0.5)
    assert r.closed(timeout=4)
    assert r.buf == b"-ERR Login took too long, closing connection.\r\n"


def test_idle_timeout_after_login(pop3d_factory):
    d = pop3d_factory(login_timeout=1, idle_timeout=2)
    r = logged_in_raw(d)
    time.sleep(1.2)               # past the login timeout: no effect now
    r.send(b"NOOP\r\n")
    assert r.line() == b"+OK"
    assert not r.closed(timeout=1)
    assert r.closed(timeout=5)
    assert r.buf == b"-ERR Disconnected for inactivity.\r\n"
    assert re.search(r"event=logout .*reason=timeout", d.log())
    assert "below RFC 1939" in d.log()


def test_a_line_trickled_byte_by_byte_still_times_out(pop3d_factory):
    """Every byte restarts the idle timeout, but a command line must arrive
    whole within it: a client cannot hold the mailbox lock by sending a
    byte now and then (40 bytes at 4 a second would take 10 s)."""
    d = pop3d_factory(login_timeout=1, idle_timeout=2)
    r = logged_in_raw(d)
    started = time.monotonic()
    closed_after = None
    for b in b"NOOP" + b" " * 36:
        try:
            r.send(bytes([b]))
        except OSError:
            break
        if r.closed(timeout=0.25):
            closed_after = time.monotonic() - started
            break
    assert closed_after is not None and 1.8 < closed_after < 4
    assert r.buf == b"-ERR Disconnected for inactivity.\r\n"
    assert re.search(r"event=logout .*reason=timeout", d.log())
    p = d.client()                # and the lock went with it
    p.user("alice")
    assert p.pass_("secret").startswith(b"+OK")
    p.quit()


# ---- connection caps -------------------------------------------------------------------

def test_per_address_cap(pop3d_factory):
    d = pop3d_factory(max_connections_per_addr=2)
    held = [d.raw("127.0.0.51"), d.raw("127.0.0.51")]
    third = socket.create_connection(("127.0.0.1", d.port), 5,
                                     source_address=("127.0.0.51", 0))
    assert third.recv(200).startswith(b"-ERR [SYS/TEMP] Too many connections")
    other = d.raw("127.0.0.52")     # another address is still served
    other.send(b"QUIT\r\n")
    assert other.line() == b"+OK Bye."
    held[0].send(b"QUIT\r\n")
    assert held[0].line() == b"+OK Bye." and held[0].closed()
    again = d.raw("127.0.0.51")     # the slot came back
    assert again.greeting.startswith(b"+OK")
    assert "reason=max_connections_per_addr" in d.log()


def test_total_cap(pop3d_factory):
    d = pop3d_factory(max_connections=3)
    held = [d.raw(f"127.0.0.{60 + i}") for i in range(3)]
    fourth = socket.create_connection(("127.0.0.1", d.port), 5,
                                      source_address=("127.0.0.64", 0))
    assert fourth.recv(200).startswith(b"-ERR [SYS/TEMP] Server busy")
    assert len(held) == 3


# ---- failed logins -------------------------------------------------------------------

def test_failed_login_is_delayed_success_is_not(pop3d_factory):
    d = pop3d_factory(auth_fail_delay_ms=600)
    p = d.client()
    p.user("alice")
    t0 = time.monotonic()
    with pytest.raises(poplib.error_proto):
        p.pass_("wrong")
    slow = time.monotonic() - t0
    p.user("alice")
    t0 = time.monotonic()
    p.pass_("secret")
    fast = time.monotonic() - t0
    p.quit()
    assert slow >= 0.6 and fast < 0.5


def test_three_failed_logins_close_the_connection(pop3d):
    r = pop3d.raw()
    r.send(b"USER alice\r\nPASS a\r\nUSER alice\r\nPASS b\r\n")
    assert r.line() == b"+OK"
    assert r.line() == b"-ERR [AUTH] Authentication failed."
    assert r.line() == b"+OK"
    assert r.line() == b"-ERR [AUTH] Authentication failed."
    r.send(b"USER alice\r\nPASS c\r\n")
    assert r.line() == b"+OK"
    assert r.line().startswith(b"-ERR [AUTH] Authentication failed; too many")
    assert r.closed()


# ---- plaintext policy ----------------------------------------------------------------

def test_tls_or_trusted_refuses_plaintext_from_untrusted(pop3d_factory):
    d = pop3d_factory(plaintext_auth="tls-or-trusted",
                      trusted_networks="127.0.0.99/32")
    r = d.raw("127.0.0.70")
    r.send(b"CAPA\r\n")
    assert r.line().startswith(b"+OK")
    caps = r.multiline()
    assert b"USER" not in caps and b"STLS" in caps
    r.send(b"USER alice\r\n")
    assert r.line() == (b"-ERR [AUTH] Plaintext passwords need TLS here: use "
                        b"STLS or POP3S (port 995).")
    r.send(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
    assert r.line().startswith(b"-ERR [AUTH] Plaintext passwords need TLS")
    # Over STLS the same client may.
    p = d.client("127.0.0.70")
    p.stls(context=unverified_context())
    p.user("alice")
    assert p.pass_("secret").startswith(b"+OK")
    p.quit()
    # And a trusted address may without TLS.
    p = d.client("127.0.0.99")
    p.user("alice")
    assert p.pass_("secret").startswith(b"+OK")
    p.quit()


def test_never_refuses_plaintext_even_over_tls_but_allows_apop(pop3d_factory):
    d = pop3d_factory(plaintext_auth="never")
    p = d.tls_client()
    with pytest.raises(poplib.error_proto, match="disabled"):
        p.user("alice")
    p.close()
    p = d.client()
    stamp = re.search(rb"<[^>]+>", p.getwelcome()).group(0)
    assert p._shortcmd("APOP alice " + hashlib.md5(stamp + b"secret")
                       .hexdigest()).startswith(b"+OK")
    p.quit()


def test_slowloris_before_login_is_cut_off_at_the_login_timeout(pop3d_factory):
    d = pop3d_factory(login_timeout=2)
    r = d.raw()
    t0 = time.monotonic()
    closed = False
    for ch in b"USER alice\r\nPASS secre":   # a byte every 0.25 s: never idle
        try:
            r.send(bytes([ch]))
        except OSError:
            closed = True
            break
        time.sleep(0.25)
        if time.monotonic() - t0 > 6:
            break
    assert closed or r.closed(timeout=1)
    assert time.monotonic() - t0 < 4
    assert b"-ERR Login took too long, closing connection." in r.buf or closed
    assert "event=login_too_slow" in d.log()


def test_login_deadline_does_not_touch_logged_in_sessions(pop3d_factory):
    d = pop3d_factory(login_timeout=1, idle_timeout=30)
    r = logged_in_raw(d)
    time.sleep(1.5)
    r.send(b"NOOP\r\n")
    assert r.line() == b"+OK"
