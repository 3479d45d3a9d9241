"""pop3d under test: users, Maildirs, TLS material, a running daemon.

Pop3d(tmp_path, redis_server, **pop3d_keys) writes a user file, a config
and Maildirs, starts the real pop3d and checks at stop() that it exited
cleanly and that no sanitizer complained.
"""

import itertools
import os
import poplib
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import (Daemon, LineSocket, base_sections, free_port, program,
                      unverified_context, write_config)

PLAIN_USERS = {"alice": "secret", "carol": "c4r0l pass", "dave": "dave-pw"}
CRYPT_USER = ("bob", "hunter2")     # stored as {SHA512-CRYPT}
_names = itertools.count(1)


def sanitized():
    """True when the daemons under test are an ASan build: its allocator
    keeps freed memory in quarantine, so RSS says nothing about leaks or
    bounds there (LeakSanitizer checks those at exit instead)."""
    with open(program("pop3d/pop3d"), "rb") as f:
        return b"__asan_init" in f.read()


def make_tls(folder):
    """A self-signed certificate and key (mode 0600) in folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", "/CN=localhost"],
            check=True, capture_output=True)
        key.chmod(0o600)
    return cert, key


def sha512_crypt(password):
    out = subprocess.run(["openssl", "passwd", "-6", password], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


class Client(poplib.POP3):
    """poplib.POP3 from a chosen local address (a distinct client)."""

    def __init__(self, port, source="127.0.0.1", timeout=10):
        self._source = source
        super().__init__("127.0.0.1", port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


class TlsClient(poplib.POP3_SSL):
    """POP3S (implicit TLS) from a chosen local address."""

    def __init__(self, port, source="127.0.0.1", timeout=10):
        self._source = source
        super().__init__("127.0.0.1", port, timeout=timeout,
                         context=unverified_context())

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))
        return self.context.wrap_socket(sock, server_hostname=self.host)


class Raw(LineSocket):
    """A bare socket for protocol edge cases: bytes in, lines out."""

    def line(self):
        """One reply line without CRLF; b"" when the server closed."""
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                rest, self.buf = self.buf, b""
                return rest
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def multiline(self):
        """The lines of a multi-line answer after its status line."""
        lines = []
        while True:
            line = self.line()
            if line == b".":
                return lines
            assert line != b"" or self.buf, "connection closed mid-answer"
            lines.append(line[1:] if line.startswith(b"..") else line)


class Pop3d(Daemon):
    name, binary = "pop3d", "pop3d/pop3d"

    def __init__(self, tmp_path, redis_server, **pop3d_keys):
        self.dir = Path(tmp_path) / "pop3d"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.redis = redis_server
        self.port = free_port()
        self.tls_port = free_port()
        self.cert, self.key = make_tls(self.dir / "tls")
        self.users = self.dir / "users"
        self.home = self.dir / "home"
        self.log_path = self.dir / "pop3d.log"
        self._write_users()
        keys = {
            "listen": f"127.0.0.1:{self.port}",
            "listen_tls": f"127.0.0.1:{self.tls_port}",
            "tls_cert": str(self.cert), "tls_key": str(self.key),
            "users": str(self.users), "auth_fail_delay_ms": 50,
            "plaintext_auth": "always",
        }
        keys.update(pop3d_keys)
        self.sections = base_sections(redis_server)
        self.sections["pop3d"].update(keys)
        self.config = write_config(self.dir / "authbridge.conf", self.sections)

    def _write_users(self):
        # user:password:uid:gid:gecos:home:shell:extra
        lines = [f"{user}:{{PLAIN}}{pw}::::{self.home / user}::"
                 for user, pw in PLAIN_USERS.items()]
        name, pw = CRYPT_USER
        lines.append(f"{name}:{{SHA512-CRYPT}}{sha512_crypt(pw)}::::"
                     f"{self.home / name}::")
        self.users.write_text("\n".join(lines) + "\n")
        self.users.chmod(0o600)
        for user in list(PLAIN_USERS) + [CRYPT_USER[0]]:
            for sub in ("cur", "new", "tmp"):
                (self.home / user / "Maildir" / sub).mkdir(parents=True,
                                                           exist_ok=True)

    def rewrite_config(self, **pop3d_keys):
        self.sections["pop3d"].update(pop3d_keys)
        write_config(self.config, self.sections)

    def maildir(self, user):
        return self.home / user / "Maildir"

    def deliver(self, user, body, name=None, sub="new"):
        """A message file as an MTA writes it (LF line ends)."""
        if isinstance(body, str):
            body = body.encode()
        n = next(_names)
        name = name or f"{1700000000 + n}.V1I{n}M{os.getpid()}.test"
        path = self.maildir(user) / sub / name
        path.write_bytes(body)
        return path

    def files(self, user):
        md = self.maildir(user)
        return sorted(p.name for sub in ("cur", "new") for p in (md / sub).iterdir())

    # ---- process ----------------------------------------------------------

    def repick_ports(self):
        # New ports, also in a test's own listen lines ("[::]:PORT").
        old = (str(self.port), str(self.tls_port))
        self.port, self.tls_port = free_port(), free_port()
        keys = self.sections["pop3d"]
        self.rewrite_config(
            listen=keys["listen"].replace(old[0], str(self.port)),
            listen_tls=keys["listen_tls"].replace(old[1], str(self.tls_port)))

    # ---- clients ------------------------------------------------------------

    def client(self, source="127.0.0.1"):
        return Client(self.port, source)

    def tls_client(self, source="127.0.0.1"):
        return TlsClient(self.tls_port, source)

    def raw(self, source="127.0.0.1"):
        r = Raw(self.port, source)
        greeting = r.line()
        assert greeting.startswith(b"+OK"), greeting
        r.greeting = greeting
        return r


@pytest.fixture
def pop3d_factory(tmp_path, redis_server):
    started = []

    def make(start=True, **keys):
        d = Pop3d(tmp_path / f"p{len(started)}", redis_server, **keys)
        started.append(d)
        return d.start() if start else d
    yield make
    errors = []
    for d in started:
        try:
            d.stop()
        except BaseException as e:   # report every daemon, not the first
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def pop3d(pop3d_factory):
    return pop3d_factory()
