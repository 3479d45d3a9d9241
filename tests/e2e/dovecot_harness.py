"""A private Dovecot 2.3 (Debian's dovecot-pop3d and dovecot-imapd) set up
with the README's recipes, read from README.md itself, so the tests run
exactly what the README tells administrators to write.

  recipe(name)      the code block after "<!-- recipe: NAME -->" in README.md
  Dovecot(folder, users, policy_port, key, ...)
                    writes dovecot.conf (a small base: ports, passwd-file,
                    Maildirs, then the recipes with our ports and key),
                    start() runs `dovecot -F -c FILE`, stop() ends it
  pop3(port, source) / Imap(port, source)
                    poplib / imaplib clients from a chosen 127.x.y.z
"""

import imaplib
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, free_port, port_open, terminate, wait_until
from pop3_harness import Client as Pop3Client

# The README's example values, replaced by each test's own.
README_URL_PORT = "127.0.0.1:10033"
README_KEY = "CHANGE-ME-long-random-key"
MAIL_UID = 65534                 # Dovecot refuses uid 0 mail users
DOVECOT = "/usr/sbin/dovecot"


def recipe(name):
    text = (REPO / "README.md").read_text()
    m = re.search(rf"<!-- recipe: {re.escape(name)} -->\n```\n(.*?)```\n",
                  text, re.S)
    assert m, f"README.md has no recipe '{name}'"
    return m.group(1)


def pop3(port, source):
    return Pop3Client(port, source)


class Imap(imaplib.IMAP4):
    """imaplib from a chosen local address."""

    def __init__(self, port, source, timeout=10):
        self._source = source
        super().__init__("127.0.0.1", port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


class Dovecot:
    def __init__(self, folder, users, policy_port, key, events=False,
                 policy=True, postlogin=None, extra=""):
        # Dovecot's own users (dovecot, the mail uid) must reach its files,
        # and its sockets' names fit in sun_path's 108 bytes: a short,
        # world-searchable folder, not pytest's (0700). Its log is copied
        # to `folder` at stop().
        self.keep = Path(folder)
        self.keep.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="ab-dovecot-"))
        self.dir.chmod(0o755)
        self.pop3_port, self.imap_port = free_port(), free_port()
        self.base_dir = self.dir / "run"
        self.log_path = self.dir / "dovecot.log"
        self.users_file = self.dir / "users"
        self.users_file.write_text("".join(
            f"{u}:{{PLAIN}}{p}:{MAIL_UID}:{MAIL_UID}::{self.dir}/home/{u}::\n"
            for u, p in users.items()))
        for u in users:
            for sub in ("cur", "new", "tmp"):
                (self.dir / "home" / u / "Maildir" / sub).mkdir(
                    parents=True, exist_ok=True)
        subprocess.run(["chown", "-R", f"{MAIL_UID}:{MAIL_UID}",
                        str(self.dir / "home")], check=True)
        self.config = self.dir / "dovecot.conf"
        self.config.write_text(self._config(policy_port, key, events, policy,
                                            postlogin, extra))
        self.proc = None

    def _recipe(self, name, port, key):
        return (recipe(name).replace(README_URL_PORT, f"127.0.0.1:{port}")
                .replace(README_KEY, key))

    def _config(self, port, key, events, policy, postlogin, extra):
        passdb = self._recipe("dovecot-passdb", port, key) if policy else ""
        text = f"""# written by tests/e2e/dovecot_harness.py
protocols = pop3 imap
listen = 127.0.0.1
base_dir = {self.base_dir}
state_dir = {self.dir}/state
log_path = {self.log_path}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
# ASan builds of authbridge (make asan) reserve terabytes of address
# space: Dovecot's 256 MB default would kill the post-login script.
default_vsz_limit = 0
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.users_file}
{passdb}}}
userdb {{
  driver = passwd-file
  args = {self.users_file}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        if policy:
            text += self._recipe("dovecot-policy", port, key)
        if events:
            text += self._recipe("dovecot-events", port, key)
        if postlogin:
            text += recipe("postlogin-dovecot").replace(
                "/usr/local/bin/authbridge", str(postlogin[0])).replace(
                "/etc/authbridge/authbridge.conf", str(postlogin[1]))
        return text + extra

    def start(self, timeout=10):
        (self.dir / "state").mkdir(exist_ok=True)
        self.logf = open(self.dir / "dovecot.stderr", "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf)

        def up():
            if self.proc.poll() is not None:
                pytest.fail(f"dovecot exited {self.proc.returncode}:\n"
                            f"{self.stderr()}\n{self.log()}")
            return port_open(self.pop3_port) and port_open(self.imap_port)
        wait_until(up, timeout, what="dovecot to listen")
        return self

    def stop(self):
        if self.proc is None:
            return
        terminate(self.proc, 15)
        self.proc = None
        self.logf.close()
        for name in ("dovecot.log", "dovecot.stderr"):
            if (self.dir / name).exists():
                shutil.copy(self.dir / name, self.keep / name)

    def log(self):
        return self.log_path.read_text(errors="replace") \
            if self.log_path.exists() else ""

    def stderr(self):
        p = self.dir / "dovecot.stderr"
        return p.read_text(errors="replace") if p.exists() else ""

    def wait_log(self, pattern, timeout=5):
        rx = re.compile(pattern)
        return wait_until(lambda: next((l for l in self.log().splitlines()
                                        if rx.search(l)), None),
                          timeout, what=f"dovecot log /{pattern}/")

    def pop3(self, source):
        return pop3(self.pop3_port, source)

    def imap(self, source):
        return Imap(self.imap_port, source)


def pop3_login(dc, source, user, password):
    """A POP3 login; returns (reply to PASS, seconds from PASS to it)."""
    p = dc.pop3(source)
    p.user(user)
    t0 = time.monotonic()
    try:
        reply = p.pass_(password)
    except Exception as e:       # poplib raises error_proto for -ERR
        reply = str(e).encode()
    took = time.monotonic() - t0
    try:
        p.quit()
    except Exception:
        p.close()
    return reply, took


def wipe_base_dir(dc):
    """Remove the private folder (after stop())."""
    shutil.rmtree(dc.dir, ignore_errors=True)


def mail_uid_can_read(path):
    """True when the mail user can read path (post-login hooks run as it)."""
    return subprocess.run(["setpriv", f"--reuid={MAIL_UID}",
                           f"--regid={MAIL_UID}", "--clear-groups",
                           "test", "-r", str(path)]).returncode == 0

