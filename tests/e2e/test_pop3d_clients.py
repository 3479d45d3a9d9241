"""Real mail clients against pop3d: curl and fetchmail, unchanged."""

import os
import subprocess


from pop3_harness import pop3d, pop3d_factory  # noqa: F401

MSG1 = b"From: x@example.org\nSubject: first\n\nbody one\n.dot\n"
MSG2 = b"From: y@example.org\nSubject: second\n\nbody two\n"


def curl(*args):
    out = subprocess.run(["curl", "-sS", "--max-time", "20", *args],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_curl_lists_and_retrieves(pop3d):
    pop3d.deliver("alice", MSG1)
    pop3d.deliver("alice", MSG2)
    url = f"pop3://alice:secret@127.0.0.1:{pop3d.port}/"
    listing = curl(url).splitlines()
    assert [int(l.split()[0]) for l in listing] == [1, 2]
    assert curl(url + "1") == MSG1.replace(b"\n", b"\r\n")
    assert curl(url + "2") == MSG2.replace(b"\n", b"\r\n")


def test_curl_pop3s_and_stls(pop3d):
    pop3d.deliver("alice", MSG1)
    body = curl("-k", f"pop3s://alice:secret@127.0.0.1:{pop3d.tls_port}/1")
    assert body == MSG1.replace(b"\n", b"\r\n")
    body = curl("-k", "--ssl-reqd",
                f"pop3://alice:secret@127.0.0.1:{pop3d.port}/1")
    assert body == MSG1.replace(b"\n", b"\r\n")


def test_curl_wrong_password_fails(pop3d):
    out = subprocess.run(["curl", "-sS", "--max-time", "20",
                          f"pop3://alice:bad@127.0.0.1:{pop3d.port}/"],
                         capture_output=True)
    assert out.returncode == 67     # CURLE_LOGIN_DENIED


def fetchmail(d, tmp_path, keep, mbox):
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f'poll 127.0.0.1 service {d.port} protocol pop3 uidl\n'
        f'  user "alice" there with password "secret" is "alice" here\n'
        f'  {"keep" if keep else "nokeep fetchall"}\n'
        f'  sslproto "" no sslcertck\n'
        f'  mda "/bin/sh -c \'cat >> {mbox}\'"\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path))
    return subprocess.run(
        ["fetchmail", "-f", str(rc), "--idfile", str(tmp_path / "ids"),
         "--nosyslog", "-v", "--pidfile", str(tmp_path / "fm.pid")],
        capture_output=True, text=True, env=env, timeout=60)


def test_fetchmail_retrieves_and_deletes(pop3d, tmp_path):
    pop3d.deliver("alice", MSG1)
    pop3d.deliver("alice", MSG2)
    mbox = tmp_path / "mbox"
    out = fetchmail(pop3d, tmp_path, keep=False, mbox=mbox)
    assert out.returncode == 0, out.stdout + out.stderr
    got = mbox.read_bytes()
    assert b"Subject: first" in got and b"Subject: second" in got
    assert b"\n.dot\n" in got               # un-stuffed by the client
    assert pop3d.files("alice") == []


def test_fetchmail_keep_mode_uses_uidl(pop3d, tmp_path):
    pop3d.deliver("alice", MSG1)
    mbox = tmp_path / "mbox"
    out = fetchmail(pop3d, tmp_path, keep=True, mbox=mbox)
    assert out.returncode == 0, out.stdout + out.stderr
    assert mbox.read_bytes().count(b"Subject: first") == 1
    out = fetchmail(pop3d, tmp_path, keep=True, mbox=mbox)
    assert out.returncode == 1, out.stdout    # 1: no new mail
    pop3d.deliver("alice", MSG2)
    out = fetchmail(pop3d, tmp_path, keep=True, mbox=mbox)
    assert out.returncode == 0, out.stdout + out.stderr
    got = mbox.read_bytes()
    assert got.count(b"Subject: first") == 1 and got.count(b"Subject: second") == 1
    assert len(pop3d.files("alice")) == 2     # kept on the server
