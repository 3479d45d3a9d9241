"""pop3d speaks RFC 1939/2449/2595/5034 POP3 to real clients (poplib)."""

import base64
import hashlib
import re
import socket
import subprocess
import ssl
import poplib

import pytest

from pop3_harness import (CRYPT_USER, pop3d, pop3d_factory,  # noqa: F401
                          unverified_context)

MSG = b"From: a@example.org\nTo: alice@example.net\nSubject: hello\n\n" \
      b"line one\n.starts with a dot\n..two dots\n.\nlast line\n"


def login(p, user="alice", pw="secret"):
    assert p.user(user) == b"+OK"
    resp = p.pass_(pw)
    assert resp.startswith(b"+OK Logged in"), resp
    return resp


def wire_body(lines):
    """What the client reads back: lines joined with CRLF (+ final CRLF)."""
    return b"".join(l + b"\r\n" for l in lines)


def test_greeting_carries_an_apop_timestamp(pop3d):
    p = pop3d.client()
    assert re.fullmatch(rb"\+OK .* <\d+\.[0-9a-f]+\.\d+@[^>]+>", p.getwelcome())
    p.quit()


def test_capa_lists_rfc2449_capabilities(pop3d):
    p = pop3d.client()
    caps = p.capa()
    for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
                "USER", "STLS", "IMPLEMENTATION"):
        assert cap in caps, cap
    assert caps["SASL"] == ["PLAIN"]
    login(p)
    after = p.capa()
    assert "STLS" not in after and "USER" not in after and "TOP" in after
    p.quit()


def test_retr_sends_crlf_dot_stuffed_message_matching_list_size(pop3d):
    pop3d.deliver("alice", MSG)
    p = pop3d.client()
    login(p)
    count, total = p.stat()
    _, listing, _ = p.list()
    size = int(listing[0].split()[1])
    resp, lines, octets = p.retr(1)
    assert count == 1 and total == size
    assert wire_body(lines) == MSG.replace(b"\n", b"\r\n")
    assert octets == size, "LIST size must equal the octets RETR sends"
    assert resp == f"+OK {size} octets".encode()
    p.quit()


def test_retr_on_the_wire_is_dot_stuffed_and_terminated(pop3d):
    pop3d.deliver("alice", b"a\n.b\n.\nc")
    r = pop3d.raw()
    r.send(b"USER alice\r\nPASS secret\r\nRETR 1\r\n")
    assert r.line() == b"+OK" and r.line().startswith(b"+OK Logged in")
    # "a\r\n.b\r\n.\r\nc\r\n" un-stuffed: 13 octets.
    assert r.line() == b"+OK 13 octets"
    raw, r.buf = r.buf, b""
    while not raw.endswith(b"\r\n.\r\n"):
        raw += r.sock.recv(4096)
    # ".b" and "." are stuffed; the unterminated "c" gets its CRLF.
    assert raw == b"a\r\n..b\r\n..\r\nc\r\n.\r\n"


def test_crlf_messages_are_sent_unchanged(pop3d):
    body = b"Subject: x\r\n\r\nbody\r\n"
    pop3d.deliver("alice", body)
    p = pop3d.client()
    login(p)
    _, lines, octets = p.retr(1)
    assert wire_body(lines) == body and octets == len(body)
    p.quit()


def test_top_sends_headers_blank_line_and_n_body_lines(pop3d):
    pop3d.deliver("alice", MSG)
    p = pop3d.client()
    login(p)
    _, lines, _ = p.top(1, 2)
    assert lines == [b"From: a@example.org", b"To: alice@example.net",
                     b"Subject: hello", b"", b"line one", b".starts with a dot"]
    _, lines, _ = p.top(1, 0)
    assert lines[-1] == b"" and len(lines) == 4
    p.quit()


def test_list_and_uidl_of_one_message_and_all(pop3d):
    pop3d.deliver("alice", b"one\n", name="1700000001.A.host")
    pop3d.deliver("alice", b"two two\n", name="1700000002.B.host")
    p = pop3d.client()
    login(p)
    assert p.list(2) == b"+OK 2 9"
    assert p.uidl(1) == b"+OK 1 1700000001.A.host"
    _, uidls, _ = p.uidl()
    assert uidls == [b"1 1700000001.A.host", b"2 1700000002.B.host"]
    p.quit()


def test_uidl_is_stable_across_sessions_and_the_move_to_cur(pop3d):
    pop3d.deliver("alice", b"x\n", name="1700000003.C.host")
    p = pop3d.client()
    login(p)
    first = p.uidl()[1]
    p.quit()
    assert pop3d.files("alice")[0].startswith("1700000003.C.host,S=2,W=3:2,")
    p = pop3d.client()
    login(p)
    assert p.uidl()[1] == first == [b"1 1700000003.C.host"]
    p.quit()


def test_dele_marks_and_quit_deletes(pop3d):
    pop3d.deliver("alice", b"keep\n")
    pop3d.deliver("alice", b"drop\n")
    p = pop3d.client()
    login(p)
    assert p.dele(2).startswith(b"+OK")
    assert len(pop3d.files("alice")) == 2, "DELE must not touch the disk"
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.retr(2)
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.dele(2)
    assert p.stat() == (1, 6)
    assert p.quit() == b"+OK Bye, 1 message deleted."
    files = pop3d.files("alice")
    assert len(files) == 1
    assert (pop3d.maildir("alice") / "cur" / files[0]).read_bytes() == b"keep\n"


def test_rset_unmarks(pop3d):
    pop3d.deliver("alice", b"m\n")
    p = pop3d.client()
    login(p)
    p.dele(1)
    assert p.rset().startswith(b"+OK 1 message")
    p.quit()
    assert len(pop3d.files("alice")) == 1


def test_noop_and_quit_before_login(pop3d):
    p = pop3d.client()
    login(p)
    assert p.noop() == b"+OK"
    p.quit()
    r = pop3d.raw()
    r.send(b"QUIT\r\n")
    assert r.line() == b"+OK Bye."
    assert r.closed()


def test_new_mail_during_a_session_waits_for_the_next(pop3d):
    pop3d.deliver("alice", b"first\n")
    p = pop3d.client()
    login(p)
    pop3d.deliver("alice", b"second\n")
    assert p.stat()[0] == 1
    p.quit()
    p = pop3d.client()
    login(p)
    assert p.stat()[0] == 2
    p.quit()


def test_pipelined_commands_answer_in_order(pop3d):
    for i in range(3):
        pop3d.deliver("alice", f"message {i}\n".encode())
    r = pop3d.raw()
    r.send(b"CAPA\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\n"
           b"TOP 2 0\r\nLIST\r\nDELE 3\r\nNOOP\r\nQUIT\r\n")
    assert r.line() == b"+OK Capability list follows"
    assert b"PIPELINING" in r.multiline()
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Logged in, 3 messages")
    assert r.line() == b"+OK 3 33"
    assert r.line() == b"+OK 11 octets" and r.multiline() == [b"message 0"]
    assert r.line().startswith(b"+OK") and r.multiline() == [b"message 1"]
    assert r.line().startswith(b"+OK 3 messages")
    assert r.multiline() == [b"1 11", b"2 11", b"3 11"]
    assert r.line() == b"+OK Message 3 deleted."
    assert r.line() == b"+OK"
    assert r.line() == b"+OK Bye, 1 message deleted."


def test_pass_with_spaces(pop3d):
    p = pop3d.client()
    login(p, "carol", "c4r0l pass")
    p.quit()


def test_sha512_crypt_user(pop3d):
    p = pop3d.client()
    login(p, *CRYPT_USER)
    p.quit()


def test_wrong_password_and_unknown_user_get_the_same_answer(pop3d):
    answers = []
    for user, pw in (("alice", "nope"), ("nosuchuser", "nope"),
                     ("bob", "nope")):
        p = pop3d.client()
        p.user(user)
        with pytest.raises(poplib.error_proto) as e:
            p.pass_(pw)
        answers.append(e.value.args[0])
        p.quit()
    assert answers == [b"-ERR [AUTH] Authentication failed."] * 3


def test_apop_login(pop3d):
    p = pop3d.client()
    stamp = re.search(rb"<[^>]+>", p.getwelcome()).group(0)
    digest = hashlib.md5(stamp + b"secret").hexdigest()
    assert p._shortcmd(f"APOP alice {digest}").startswith(b"+OK Logged in")
    p.quit()


def test_apop_wrong_digest_and_crypt_user_fail(pop3d):
    p = pop3d.client()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.apop("alice", "wrong")
    p.quit()
    p = pop3d.client()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.apop("bob", "hunter2")      # crypt hashes cannot do APOP
    p.quit()


def test_auth_plain_with_initial_response(pop3d):
    p = pop3d.client()
    ir = base64.b64encode(b"\0alice\0secret").decode()
    assert p._shortcmd(f"AUTH PLAIN {ir}").startswith(b"+OK Logged in")
    p.quit()


def test_auth_plain_with_continuation_and_authzid(pop3d):
    r = pop3d.raw()
    r.send(b"AUTH PLAIN\r\n")
    assert r.line() == b"+ "
    r.send(base64.b64encode(b"alice\0alice\0secret") + b"\r\n")
    assert r.line().startswith(b"+OK Logged in")


def test_auth_plain_refuses_other_authzid_bad_base64_and_cancel(pop3d):
    r = pop3d.raw()
    r.send(b"AUTH PLAIN " + base64.b64encode(b"bob\0alice\0secret") + b"\r\n")
    assert r.line() == b"-ERR [AUTH] Malformed PLAIN response."
    r.send(b"AUTH PLAIN\r\n*\r\n")
    assert r.line() == b"+ "
    assert r.line() == b"-ERR [AUTH] Authentication cancelled."
    r.send(b"AUTH PLAIN !!notbase64\r\n")
    assert r.line() == b"-ERR [AUTH] Invalid base64 data."


def test_auth_lists_mechanisms_and_refuses_unknown(pop3d):
    r = pop3d.raw()
    r.send(b"AUTH\r\n")
    assert r.line() == b"+OK"
    assert r.multiline() == [b"PLAIN"]
    r.send(b"AUTH CRAM-MD5\r\n")
    assert r.line() == b"-ERR [AUTH] Unsupported SASL mechanism."


def test_stls_then_login(pop3d):
    p = pop3d.client()
    assert p.stls(context=unverified_context()).startswith(b"+OK")
    assert "STLS" not in p.capa()
    login(p)
    p.quit()


def test_stls_discards_pipelined_plaintext(pop3d):
    """CVE-2011-0411: a command injected after STLS must never run."""
    pop3d.deliver("alice", b"x\n")
    r = pop3d.raw()
    r.send(b"STLS\r\nUSER alice\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n")
    assert r.line() == b"+OK Begin TLS negotiation now."
    tls = unverified_context().wrap_socket(r.sock, server_hostname="localhost")
    tls.sendall(b"STAT\r\n")
    answer = tls.recv(4096)
    assert answer.startswith(b"-ERR [AUTH]"), answer   # not logged in
    tls.close()
    assert len(pop3d.files("alice")) == 1


def test_stls_twice_and_after_login(pop3d):
    p = pop3d.client()
    p.stls(context=unverified_context())
    with pytest.raises(poplib.error_proto, match="already"):
        p._shortcmd("STLS")
    login(p)
    with pytest.raises(poplib.error_proto, match="Not allowed after login"):
        p._shortcmd("STLS")
    p.quit()


def test_pop3s_implicit_tls(pop3d):
    pop3d.deliver("alice", MSG)
    p = pop3d.tls_client()
    assert "STLS" not in p.capa()
    login(p)
    _, lines, _ = p.retr(1)
    assert wire_body(lines) == MSG.replace(b"\n", b"\r\n")
    p.quit()
    assert re.search(r"event=login .* tls=TLSv1\.[23]/", pop3d.log())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused(pop3d):
    ctx = unverified_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    sock = socket.create_connection(("127.0.0.1", pop3d.tls_port), 5)
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        ctx.wrap_socket(sock, server_hostname="localhost").recv(100)
    sock.close()
    p = pop3d.tls_client()        # and the server still serves others
    login(p)
    p.quit()


def test_tls_garbage_does_not_hurt_the_server(pop3d):
    for junk in (b"\x16\x03\x01\x00\x05hello", b"GET / HTTP/1.0\r\n\r\n",
                 bytes(range(256)) * 4):
        s = socket.create_connection(("127.0.0.1", pop3d.tls_port), 5)
        s.sendall(junk)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()
    p = pop3d.tls_client()
    login(p)
    p.quit()


def test_client_renegotiation_is_refused(pop3d):
    script = "sleep 1; echo R; sleep 1"
    out = subprocess.run(
        f"({script}) | timeout 10 openssl s_client -connect "
        f"127.0.0.1:{pop3d.tls_port} -tls1_2", shell=True,
        capture_output=True, text=True)
    assert "RENEGOTIATING" in out.stdout + out.stderr
    assert "no renegotiation" in out.stdout + out.stderr
    p = pop3d.tls_client()
    login(p)
    p.quit()
