"""Courier's POP3 server (Debian 12's courier-pop) behind `authbridge
postlogin`, the README's wrapper between courierpop3login and
courierpop3d. courier-pop cannot be installed beside Dovecot (both
provide pop3-server), so its .debs are downloaded once into build/debs/,
unpacked into build/courier-root/, and run in a mount namespace where
that root is laid over /usr and /etc (with a private passwd/shadow
holding the test user) and /run is private: authdaemond's socket path is
compiled in. A PID namespace ends every process with the test."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, base_sections, free_port, port_open, program, \
    wait_until, write_config
from dovecot_harness import MAIL_UID, recipe
from pop3_harness import Client as Pop3Client

DEBS = ["courier-pop", "courier-base", "courier-authlib",
        "courier-authdaemon", "libcourier-unicode4", "libltdl7", "libidn12",
        "libgamin0"]
DEB_DIR = REPO / "build" / "debs"
ROOT = REPO / "build" / "courier-root"
GRANT = "authbridge:grant:"


def fetch_debs():
    """Download what is missing (a second run downloads nothing)."""
    DEB_DIR.mkdir(parents=True, exist_ok=True)
    missing = [p for p in DEBS if not list(DEB_DIR.glob(f"{p}_*.deb"))]
    if not missing:
        return
    for attempt in range(2):
        out = subprocess.run(["apt-get", "download", *missing], cwd=DEB_DIR,
                             capture_output=True, text=True, timeout=300)
        if out.returncode == 0:
            return
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True,
                       timeout=300)
    pytest.fail(f"apt-get download {' '.join(missing)} failed:\n{out.stderr}")


@pytest.fixture(scope="module")
def courier_root():
    fetch_debs()
    marker = ROOT / ".unpacked"
    debs = sorted(str(p) for p in DEB_DIR.glob("*.deb")
                  if p.name.split("_")[0] in DEBS)
    if not marker.exists() or marker.read_text() != "\n".join(debs):
        shutil.rmtree(ROOT, ignore_errors=True)
        ROOT.mkdir(parents=True)
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", deb, str(ROOT)], check=True)
        marker.write_text("\n".join(debs))
    return ROOT


NAMESPACE_SCRIPT = """set -e
mount -t overlay overlay -o lowerdir={root}/usr:/usr /usr
mount -t overlay overlay -o lowerdir={priv}/etc:{root}/etc:/etc /etc
mount -t tmpfs tmpfs /run
mkdir -p /run/courier/authdaemon
/usr/lib/courier/courier-authlib/authdaemond >{priv}/authdaemond.log 2>&1 &
while [ ! -S /run/courier/authdaemon/socket ]; do sleep 0.05; done
exec /usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup \
    -stderr={priv}/couriertcpd.log {port} \
    /usr/lib/courier/courier/courierpop3login {wrapper} Maildir
"""


@pytest.fixture
def courier(tmp_path, courier_root, redis_server):
    priv = Path(tempfile.mkdtemp(prefix="ab-courier-"))
    priv.chmod(0o755)               # the mail user runs the wrapper
    (priv / "etc" / "courier").mkdir(parents=True)
    home = priv / "home" / "alice"
    for sub in ("cur", "new", "tmp"):
        (home / "Maildir" / sub).mkdir(parents=True)
    (home / "Maildir" / "new" / "1.msg").write_text(
        "Subject: hi\n\nhello\n")
    subprocess.run(["chown", "-R", f"{MAIL_UID}:{MAIL_UID}", str(home)],
                   check=True)
    pwhash = subprocess.run(["openssl", "passwd", "-6", "secret"],
                            capture_output=True, text=True,
                            check=True).stdout.strip()
    (priv / "etc" / "passwd").write_text(
        Path("/etc/passwd").read_text() +
        f"alice:x:{MAIL_UID}:{MAIL_UID}::{home}:/bin/sh\n")
    shadow = priv / "etc" / "shadow"
    shadow.write_text(Path("/etc/shadow").read_text() +
                      f"alice:{pwhash}:19000:0:99999:7:::\n")
    shadow.chmod(0o640)
    rc = (courier_root / "etc/courier/authdaemonrc").read_text()
    (priv / "etc/courier/authdaemonrc").write_text(
        rc.replace("daemons=5", "daemons=1"))
    conf = priv / "authbridge.conf"
    sections = base_sections(redis_server)
    write_config(conf, sections)
    conf.chmod(0o644)
    wrapper = priv / "courierpop3d-authbridge"
    wrapper.write_text(recipe("postlogin-courier")
                       .replace("/usr/local/bin/authbridge",
                                str(program("authbridge/authbridge")))
                       .replace("/etc/authbridge/authbridge.conf", str(conf)))
    wrapper.chmod(0o755)
    port = free_port()
    script = NAMESPACE_SCRIPT.format(root=courier_root, priv=priv, port=port,
                                     wrapper=wrapper)
    proc = subprocess.Popen(["unshare", "--mount", "--pid", "--fork",
                             "--kill-child", "sh", "-c", script],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "namespace.log", "w"))

    def up():
        if proc.poll() is not None:
            pytest.fail("courier exited:\n" +
                        (tmp_path / "namespace.log").read_text())
        return port_open(port)
    wait_until(up, 10, what="couriertcpd to listen")
    proc.port, proc.priv = port, priv
    yield proc
    # couriertcpd is PID 1 of its namespace, deaf to SIGTERM: killing
    # unshare kills it (--kill-child), and with it the whole namespace.
    proc.kill()
    proc.wait(timeout=10)
    for log in ("authdaemond.log", "couriertcpd.log"):
        if (priv / log).exists():
            shutil.copy(priv / log, tmp_path / log)
    shutil.rmtree(priv, ignore_errors=True)


def login(port, source, password="secret"):
    p = Pop3Client(port, source)
    p.user("alice")
    try:
        reply = p.pass_(password)
    except Exception as e:
        p.close()
        return str(e).encode(), None
    count = p.stat()[0]
    p.quit()
    return reply, count


def test_courier_login_is_a_grant_before_courierpop3d_says_ok(courier, rdb):
    reply, count = login(courier.port, "127.0.13.1")
    assert reply.startswith(b"+OK")
    g = rdb.hgetall(GRANT + "127.0.13.1")     # before any sleep
    assert g["user"] == "alice" and g["method"] == "POSTLOGIN"
    assert count == 1                          # courierpop3d itself served


def test_courier_wrong_password_is_no_grant(courier, rdb):
    reply, _ = login(courier.port, "127.0.13.2", "wrong")
    assert b"-ERR" in reply
    assert rdb.keys(GRANT + "*") == []


def test_courier_logins_go_on_without_redis(courier, redis_server, rdb):
    redis_server.stop()
    reply, count = login(courier.port, "127.0.13.3")
    assert reply.startswith(b"+OK") and count == 1
    wait_until(lambda: "no grant for 127.0.13.3 user alice" in
               (courier.priv / "couriertcpd.log").read_text(), 5,
               what="the reason in couriertcpd's log")
