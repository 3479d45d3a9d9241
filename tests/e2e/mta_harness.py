"""The MTAs providers run, private and receive-only, for the wiring tests.

Sendmail and Exim cannot be installed next to Postfix (all three provide
mail-transport-agent): their Debian packages are fetched as .debs
(`apt-get download`, plus the libraries `apt-get -s install` says are
missing), cached in build/debs/ (a second run downloads nothing and asks
apt nothing), and unpacked with `dpkg-deb -x` into a private root. Nothing
on the system changes.

Each runs in its own mount and UTS namespace (`unshare --mount --uts`):
a fully qualified host name (Sendmail sleeps a minute at start without
one), and an overlay over /etc whose upper layer (a folder of ours) adds
or replaces files there: the hosts file that names the test clients (a
refusal otherwise gains "IP name lookup failed"), Exim's Debian-exim user,
Debian's /etc/exim4. The real /etc is not touched.

  private_root(name, packages)      the unpacked root (cached)
  Namespace(folder, hostname, etc)  argv prefix running a command inside
  check_mail(pop, source)           a real POP3 login from that address
  swaks(port, source, to, ...)      one SMTP transaction, swaks' transcript
  recipe(sample, marker)            the lines of a conf/ sample the README shows
  Exim(prefix)                      Debian's Exim, private, receive-only
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import free_port, terminate, wait_listening

REPO = Path(__file__).resolve().parents[2]
DEBS = REPO / "build" / "debs"

# Distinct loopback clients, named in every namespace's hosts file.
CUSTOMER, NEIGHBOUR, OTHER = "127.0.6.1", "127.0.6.2", "127.0.6.3"
CLIENT_NAMES = {CUSTOMER: "customer.test", NEIGHBOUR: "neighbour.test",
                OTHER: "other.test"}
REMOTE = "bob@remote.example"          # a relay
LOCAL = "nobody@example.net"           # inbound mail for a local domain
SENDER = "alice@example.net"


# ---- packages ------------------------------------------------------------------

def _apt(*args, cwd=None):
    return subprocess.run(["apt-get", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def _needed(packages):
    """The packages and the libraries they need that are not installed:
    what `apt-get -s install` would install (it would also remove Postfix;
    we only unpack)."""
    sim = _apt("-s", "install", "--no-install-recommends", *packages)
    if sim.returncode != 0:               # a fresh machine: no package lists
        _apt("update", "-qq")
        sim = _apt("-s", "install", "--no-install-recommends", *packages)
    if sim.returncode != 0:
        pytest.fail(f"apt-get -s install {' '.join(packages)}:\n{sim.stderr}")
    return sorted({line.split()[1] for line in sim.stdout.splitlines()
                   if line.startswith("Inst ")})


def _download(names):
    DEBS.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if not list(DEBS.glob(f"{n}_*.deb"))]
    if missing:
        got = _apt("download", *missing, cwd=DEBS)
        if got.returncode != 0:
            _apt("update", "-qq")
            got = _apt("download", *missing, cwd=DEBS)
        if got.returncode != 0:
            pytest.fail(f"apt-get download {' '.join(missing)}:\n{got.stderr}")
    return [sorted(DEBS.glob(f"{n}_*.deb"))[-1] for n in names]


def private_root(name, packages):
    """build/debs/<name>-root holding the unpacked packages. Unpacked once:
    the stamp lists the packages asked for and the .debs unpacked."""
    root = DEBS / f"{name}-root"
    stamp = root / ".authbridge-unpacked"
    want = " ".join(packages)
    if stamp.exists() and stamp.read_text().splitlines()[0] == want:
        return root
    debs = _download(_needed(packages))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True,
                       capture_output=True, timeout=120)
    stamp.write_text("\n".join([want] + [d.name for d in debs]) + "\n")
    return root


def library_path(root):
    """LD_LIBRARY_PATH for the libraries unpacked under root."""
    dirs = {str(p.parent) for p in root.rglob("*.so.*")
            if p.is_file() and "/usr/lib" in str(p)}
    return ":".join(sorted(dirs))


# ---- namespaces ------------------------------------------------------------------

def hosts_file(hostname):
    lines = [f"127.0.0.1\tlocalhost {hostname} {hostname.split('.')[0]}",
             "::1\tlocalhost ip6-localhost"]
    lines += [f"{addr}\t{name}" for addr, name in CLIENT_NAMES.items()]
    return "\n".join(lines) + "\n"


class Namespace:
    """`argv()` runs a command with its own host name and an overlay over
    /etc (files from etc, {relative path: text}). Each argv() gets fresh
    overlay folders: an overlay's work folder serves one mount at a time."""

    def __init__(self, folder, hostname, etc=None):
        self.folder = Path(folder)
        self.hostname = hostname
        self.etc = {"hosts": hosts_file(hostname), **(etc or {})}
        self.count = 0

    def argv(self, env=None):
        self.count += 1
        top = self.folder / f"etc-overlay-{self.count}"
        upper, work = top / "upper", top / "work"
        work.mkdir(parents=True)
        for rel, text in self.etc.items():
            path = upper / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        exports = "".join(f"export {k}='{v}'; " for k, v in (env or {}).items())
        script = (f"hostname {self.hostname} && "
                  f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},"
                  f"workdir={work} /etc && {exports}exec \"$@\"")
        return ["unshare", "--mount", "--uts", "sh", "-c", script, "ns"]


def with_user(etc_text, line):
    """/etc/passwd or /etc/group text with one more entry."""
    return etc_text.rstrip("\n") + "\n" + line + "\n"


def free_id(start=64990):
    """A uid and gid that /etc/passwd and /etc/group do not use."""
    used = set()
    for f in ("/etc/passwd", "/etc/group"):
        for line in Path(f).read_text().splitlines():
            parts = line.split(":")
            if len(parts) > 2 and parts[2].isdigit():
                used.add(int(parts[2]))
    n = start
    while n in used:
        n -= 1
    return n


# ---- clients -----------------------------------------------------------------------

def check_mail(pop, source, user="alice", password="secret"):
    """A real POP3 login from source: pop3d writes the grant."""
    p = pop.client(source)
    p.user(user)
    assert p.pass_(password).startswith(b"+OK")
    p.quit()


def swaks(port, source, to, *extra, sender=SENDER):
    """One transaction from source; swaks' transcript (stdout)."""
    return subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{port}", "--local-interface", source,
         "--from", sender, "--to", to, "--helo", "client.example",
         "--timeout", "30", *extra],
        capture_output=True, text=True, timeout=90).stdout


def rcpt_reply(port, source, to, sender=SENDER):
    """The server's reply to RCPT TO (swaks stops there), "250 2.1.5 ..." """
    out = swaks(port, source, to, "--quit-after", "RCPT", sender=sender)
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith((" -> RCPT TO:", "~> RCPT TO:")):
            for reply in lines[i + 1:]:
                if reply.startswith(("<-  ", "<** ")):
                    return reply[4:]
    pytest.fail(f"no answer to RCPT TO:\n{out}")


def recipe(sample, marker="#"):
    """The lines of conf/<sample> between the markers: the text the README
    shows and the tests run."""
    text = (REPO / "conf" / sample).read_text()
    begin, end = f"{marker} --- recipe", f"{marker} --- end"
    start = text.index(begin)
    start = text.index("\n", start) + 1
    return text[start:text.index(end, start)]


# ---- Exim -------------------------------------------------------------------------

EXIM_PACKAGES = ["exim4-daemon-heavy", "exim4-base", "exim4-config"]


class Exim:
    """Debian's Exim 4.96 (heavy), receive-only: a daemon on a free port
    (`-bdf -oX`), its spool and log in a folder of ours, run as a
    Debian-exim user that exists only in its namespace's /etc. It would
    re-execute /usr/sbin/exim4 to deliver, so configurations say
    queue_only and no queue runner is started."""

    def __init__(self, prefix):
        self.root = private_root("exim", EXIM_PACKAGES)
        self.binary = self.root / "usr/sbin/exim4"
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        self.folder.chmod(0o755)
        self.port, self.whoson_port = free_port(), free_port()
        self.uid = free_id()
        self.spool, self.logdir = self.folder / "spool", self.folder / "log"
        for d in (self.spool, self.logdir):
            d.mkdir()
            os.chown(d, self.uid, self.uid)
        self.etc = {
            "passwd": with_user(Path("/etc/passwd").read_text(),
                                f"Debian-exim:x:{self.uid}:{self.uid}::"
                                f"{self.spool}:/usr/sbin/nologin"),
            "group": with_user(Path("/etc/group").read_text(),
                               f"Debian-exim:x:{self.uid}:"),
            "mailname": "exim.test\n",
        }
        self.ns = Namespace(self.folder, "exim.test", self.etc)
        self.env = {**os.environ, "LD_LIBRARY_PATH": library_path(self.root)}
        self.config = None
        self.proc = None

    def on_our_port(self, text):
        assert "inet:127.0.0.1:9876" in text
        return text.replace("inet:127.0.0.1:9876",
                            f"inet:127.0.0.1:{self.whoson_port}")

    @property
    def mainlog(self):
        path = self.logdir / "mainlog"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self):
        self.proc = subprocess.Popen(
            self.ns.argv() + [str(self.binary), "-C", str(self.config), "-bdf",
                              "-oX", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=self.env)
        try:
            wait_listening(self.port, 30, what="Exim to listen")
        except BaseException:
            self.proc.kill()
            raise AssertionError(self.proc.communicate()[1].decode() +
                                 self.mainlog)

    def stop(self):
        if self.proc is not None:
            terminate(self.proc)
        shutil.rmtree(self.folder, ignore_errors=True)
