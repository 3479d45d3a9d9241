"""smtpgate under test: a running gate, downstream MTAs to point it at, and
SMTP clients bound to chosen 127.x.y.z addresses.

  Gate(tmp_path, redis_server, downstream, **smtpgate_keys)
      writes a config and starts the real smtpgate; stop() checks it exited
      cleanly and that no sanitizer complained.
  PySink     a small threaded SMTP server that records exactly what arrived
             (EHLO, XCLIENT/XFORWARD, MAIL/RCPT lines, the DATA octets) and
             can be told to refuse, to die mid-DATA, or to accept the
             lenient line ends of smuggling-vulnerable MTAs.
  SmtpSink   Postfix's smtp-sink, for speed.
  Smtp       a raw client: send bytes, read (multi-line) replies.
  smtp(...)  smtplib.SMTP from a source address.
"""

import re
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (LOOPS, Daemon, LineSocket, base_sections, free_port,
                      program, unverified_context, wait_listening,
                      wait_until, write_config)
from pop3_harness import make_tls

LOCAL_DOMAINS = ["example.net", "example.org"]
DENY_HINT = "Relaying denied. Check your mail (POP3) first, or use SMTP AUTH."
USERS = {"alice": "secret", "bob": "b0b pass"}


# ---- downstream MTAs ------------------------------------------------------------

class SinkSession:
    """What one connection to the sink carried."""

    def __init__(self):
        self.lines = []          # every command line, as bytes
        self.helo = []
        self.xclient = []
        self.xforward = []
        self.messages = []       # dicts: mail, rcpts, data (bytes)
        self.aborted_data = None  # bytes received in a DATA that never ended
        self.data_so_far = b""    # the DATA being received, as it arrives
        self.closed = False
        self.sock = None


class PySink:
    """A threaded SMTP server that records everything.

    Options (attributes, may be changed while running):
      xclient / xforward   attribute lists to advertise (None: not offered)
      pipelining, size     advertise PIPELINING / SIZE
      rcpt_replies         {address: reply line} for RCPT
      mail_reply, data_reply, final_reply   reply lines
      die_in_data          close after this many DATA octets
      lenient_dot          also end DATA at "\\n.\\n", "\\r.\\r" ... (as MTAs
                           vulnerable to SMTP smuggling do)
      final_delay          seconds to wait before the final reply
      hangup_after         after this many messages on a connection, the
                           next command closes it unanswered (once)
    """

    def __init__(self):
        self.port = free_port()
        self.sessions = []
        self.xclient = None
        self.xforward = None
        self.pipelining = True
        self.size = True
        self.enhanced = True
        self.rcpt_replies = {}
        self.mail_reply = b"250 2.1.0 Ok"
        self.data_reply = b"354 End data with <CR><LF>.<CR><LF>"
        self.final_reply = b"250 2.0.0 Ok: queued"
        self.die_in_data = None
        self.lenient_dot = False
        self.final_delay = 0
        self.slow_read = 0           # seconds to sleep between DATA reads
        self.early_reply = None      # (octets, reply): answer mid-DATA, close
        self.hangup_after = None     # messages on a connection, then the
                                     # next command closes it unanswered
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", self.port))
        self.srv.listen(64)
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        while self.running:
            try:
                sock, _ = self.srv.accept()
            except OSError:
                return
            sess = SinkSession()
            sess.sock = sock
            with self.lock:
                self.sessions.append(sess)
            threading.Thread(target=self._serve, args=(sock, sess),
                             daemon=True).start()

    def stop(self):
        self.running = False
        try:
            self.srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.srv.close()

    # -- the protocol --

    def _ehlo(self, sock, arg):
        lines = [b"sink.test"]
        if self.pipelining:
            lines.append(b"PIPELINING")
        if self.size:
            lines.append(b"SIZE 100000000")
        lines.append(b"8BITMIME")
        if self.enhanced:
            lines.append(b"ENHANCEDSTATUSCODES")
        if self.xclient is not None:
            lines.append(b"XCLIENT " + " ".join(self.xclient).encode())
        if self.xforward is not None:
            lines.append(b"XFORWARD " + " ".join(self.xforward).encode())
        out = b"".join(b"250" + (b" " if i == len(lines) - 1 else b"-") + l +
                       b"\r\n" for i, l in enumerate(lines))
        sock.sendall(out)

    def _end_of_data(self, buf):
        """(message, rest) once buf holds the end of DATA, else None."""
        text = b"\r\n" + buf          # DATA's own CRLF starts the first line
        if self.lenient_dot:
            m = re.search(rb"(\r\n|\n|\r)\.(\r\n|\n|\r)", text)
            if m is None:
                return None
            return text[2:max(m.end(1), 2)], text[m.end():]
        i = text.find(b"\r\n.\r\n")
        if i < 0:
            return None
        return text[2:i + 2], text[i + 5:]

    def _data(self, sock, rfile, sess, msg):
        sock.sendall(self.data_reply + b"\r\n")
        buf = rfile.pending
        while True:
            if self.die_in_data is not None and len(buf) >= self.die_in_data:
                sess.aborted_data = buf
                return False
            if self.early_reply and len(buf) >= self.early_reply[0]:
                # Answer, stop sending, and read on until the gate closes
                # (closing with input unread would send an RST that can
                # destroy the answer in flight).
                sess.aborted_data = buf
                sock.sendall(self.early_reply[1] + b"\r\n")
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(10)
                while sock.recv(65536):
                    pass
                return False
            end = self._end_of_data(buf)
            if end is not None:
                msg["data"], rfile.pending = end
                break
            if self.slow_read:
                time.sleep(self.slow_read)
            chunk = sock.recv(65536)
            if not chunk:
                sess.aborted_data = buf
                return False
            buf += chunk
            sess.data_so_far = buf
        sess.messages.append(msg)
        if self.final_delay:
            time.sleep(self.final_delay)
        sock.sendall(self.final_reply + b"\r\n")
        return True

    def _serve(self, sock, sess):
        rfile = _LineReader(sock)
        msg = None
        try:
            sock.sendall(b"220 sink.test ESMTP\r\n")
            while True:
                line = rfile.line()
                if line is None:
                    break
                sess.lines.append(line)
                if self.hangup_after is not None and \
                        len(sess.messages) >= self.hangup_after:
                    self.hangup_after = None
                    break
                verb = line[:4].upper()
                if verb == b"EHLO":
                    sess.helo.append(line[5:])
                    self._ehlo(sock, line[5:])
                elif verb == b"HELO":
                    sess.helo.append(line[5:])
                    sock.sendall(b"250 sink.test\r\n")
                elif line.upper().startswith(b"XCLIENT"):
                    sess.xclient.append(line)
                    sock.sendall(b"220 sink.test ESMTP\r\n")
                elif line.upper().startswith(b"XFORWARD"):
                    sess.xforward.append(line)
                    sock.sendall(b"250 2.0.0 Ok\r\n")
                elif verb == b"MAIL":
                    msg = {"mail": line, "rcpts": []}
                    sock.sendall(self.mail_reply + b"\r\n")
                elif verb == b"RCPT":
                    addr = line[line.index(b"<") + 1:line.rindex(b">")].decode()
                    reply = self.rcpt_replies.get(addr, b"250 2.1.5 Ok")
                    if reply.startswith(b"2") and msg is not None:
                        msg["rcpts"].append(addr)
                    sock.sendall(reply + b"\r\n")
                elif verb == b"DATA":
                    if not self._data(sock, rfile, sess, msg):
                        break
                    msg = None
                elif verb == b"RSET":
                    msg = None
                    sock.sendall(b"250 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    sock.sendall(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    sock.sendall(b"250 2.0.0 Ok\r\n")
        except OSError:
            pass
        finally:
            sess.closed = True
            sock.close()

    # -- what arrived --

    def messages(self):
        with self.lock:
            return [m for s in self.sessions for m in s.messages]

    def all_lines(self):
        with self.lock:
            return [l for s in self.sessions for l in s.lines]

    def drop_all(self):
        """Close every open connection, as an MTA that restarts does."""
        with self.lock:
            for sess in self.sessions:
                if not sess.closed:
                    try:
                        sess.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def wait_messages(self, n, timeout=5):
        wait_until(lambda: len(self.messages()) >= n, timeout,
                   what=f"{n} messages at the sink")
        return self.messages()

    def wait_closed(self, timeout=5):
        wait_until(lambda: all(s.closed for s in self.sessions), timeout,
                   what="the gate to close its MTA connections")


class _LineReader:
    def __init__(self, sock):
        self.sock = sock
        self.pending = b""

    def line(self):
        while b"\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.rstrip(b"\r")


class SmtpSink:
    """Postfix's smtp-sink (as root it needs -u nobody)."""

    def __init__(self, backlog=256):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["/usr/sbin/smtp-sink", "-u", "nobody", "-c",
             f"127.0.0.1:{self.port}", str(backlog)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

        wait_listening(self.port, 5, what="smtp-sink to listen")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait()


# ---- the gate ----------------------------------------------------------------------

class Gate(Daemon):
    name, binary = "smtpgate", "smtpgate/smtpgate"
    stop_timeout = 40               # SIGTERM lets a message in flight finish

    def __init__(self, tmp_path, redis_server, downstream, **keys):
        self.dir = Path(tmp_path) / "gate"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.redis = redis_server
        self._pick_ports()
        self.cert, self.key = make_tls(self.dir / "tls")
        self.users = self.dir / "users"
        self.users.write_text("".join(f"{u}:{{PLAIN}}{p}::::/nonexistent::\n"
                                      for u, p in USERS.items()))
        self.users.chmod(0o600)
        self.log_path = self.dir / "smtpgate.log"
        settings = {
            **self._listen_keys(),
            "tls_cert": str(self.cert), "tls_key": str(self.key),
            "users": str(self.users),
            "downstream": downstream,
            "local_domains": LOCAL_DOMAINS,
            "trusted_networks": ["127.0.0.5/32", "127.0.1.0/24"],
            "hostname": "gate.test",
            "node": "gate-node",
            "auth_fail_delay_ms": 50,
            "loops": LOOPS,
        }
        settings.update(keys)
        self.fixed = {k for k in keys if k in self._listen_keys()}
        self.sections = base_sections(redis_server)
        self.sections["smtpgate"] = settings
        self.config = write_config(self.dir / "authbridge.conf", self.sections)

    def _pick_ports(self):
        self.port = free_port()
        self.tls_port = free_port()
        self.policy_port = free_port()
        self.whoson_port = free_port()
        self.socketmap_port = free_port()

    def _listen_keys(self):
        return {
            "listen": f"127.0.0.1:{self.port}",
            "listen_tls": f"127.0.0.1:{self.tls_port}",
            "policy_listen": f"127.0.0.1:{self.policy_port}",
            "whoson_listen": f"127.0.0.1:{self.whoson_port}",
            "socketmap_listen": f"127.0.0.1:{self.socketmap_port}",
        }

    def rewrite_config(self, **keys):
        self.sections["smtpgate"].update(keys)
        write_config(self.config, self.sections)

    def repick_ports(self):
        self._pick_ports()
        self.rewrite_config(**{k: v for k, v in self._listen_keys().items()
                               if k not in self.fixed})

    # -- clients --

    def smtp(self, source="127.0.0.1", timeout=10):
        return smtplib.SMTP("127.0.0.1", self.port, timeout=timeout,
                            source_address=(source, 0))

    def smtps(self, source="127.0.0.1", timeout=10):
        return smtplib.SMTP_SSL("127.0.0.1", self.tls_port, timeout=timeout,
                                source_address=(source, 0),
                                context=unverified_context())

    def raw(self, source="127.0.0.1", greet=True):
        r = Smtp(self.port, source)
        if greet:
            code, text = r.reply()
            assert code == 220, text
        return r

    def grant(self, cli_or_rdb, addr, user="alice", ttl=None):
        """A grant exactly as pop3d writes it, by the admin command."""
        args = [str(program("authbridge/authbridge")), "-c", str(self.config),
                "grant", addr, user]
        if ttl is not None:
            args += ["--ttl", str(ttl)]
        out = subprocess.run(args, capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr


class Smtp(LineSocket):
    """A bare SMTP client: bytes out, (code, text) replies in."""

    def __init__(self, port, source="127.0.0.1", timeout=10):
        super().__init__(port, source, timeout)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        """(code, text) of one reply, lines joined by "\\n"; (None, "")
        when the connection closed."""
        texts = []
        while True:
            line = self._line()
            if line is None:
                return None, "\n".join(texts)
            texts.append(line[4:].decode(errors="replace"))
            if len(line) < 4 or line[3:4] == b" ":
                return int(line[:3]), "\n".join(texts)

    def cmd(self, line):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()


# ---- fixtures --------------------------------------------------------------------

@pytest.fixture
def sink():
    s = PySink()
    yield s
    s.stop()


@pytest.fixture
def gate_factory(tmp_path, redis_server, sink):
    started = []

    def make(start=True, downstream=None, **keys):
        g = Gate(tmp_path / f"g{len(started)}", redis_server,
                 downstream or sink.address, **keys)
        started.append(g)
        return g.start() if start else g
    yield make
    errors = []
    for g in started:
        try:
            g.stop()
        except BaseException as e:
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def gate(gate_factory):
    return gate_factory()
