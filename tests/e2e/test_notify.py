"""The service manager's notification protocol, with a datagram socket
standing in for systemd: READY=1 once listening and the Redis state is
known, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 at SIGTERM,
STATUS= with live figures. Both daemons, path and abstract sockets.

Like systemd (NotifyAccess=main), the stand-in takes the sender's pid
from the kernel (SO_PASSCRED) and checks it is the daemon's.
"""

import itertools
import os
import queue
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import port_open
from pop3_harness import pop3d_factory  # noqa: F401
from smtp_harness import gate_factory, sink  # noqa: F401

_serial = itertools.count()


class NotifySocket:
    """A bound AF_UNIX datagram socket; every message it gets, parsed into
    {key: value} with the sender's pid, lands in a queue."""

    def __init__(self, abstract):
        name = f"ab-notify-{os.getpid()}-{next(_serial)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if abstract:
            self.sock.bind("\0" + name)
            self.env_value, self.path = "@" + name, None
        else:
            self.path = f"/tmp/{name}.sock"   # sun_path holds 108 bytes
            self.sock.bind(self.path)
            self.env_value = self.path
        self.messages = queue.Queue()
        self.seen = []
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        creds = struct.calcsize("3i")
        while not self.stop.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(4096,
                                                    socket.CMSG_SPACE(creds))
            except socket.timeout:
                continue
            pid = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:creds])[0]
            fields = dict(line.split("=", 1) for line in
                          data.decode().split("\n") if "=" in line)
            fields["_pid"] = pid
            fields["_at"] = time.monotonic()
            self.messages.put(fields)

    def env(self):
        return {**os.environ, "NOTIFY_SOCKET": self.env_value}

    def wait(self, key, value=None, timeout=10, status=None):
        """The next message with key (=value, and STATUS holding status):
        earlier ones are kept in self.seen."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {key}={value or '*'} (status {status!r}) "
                            f"within {timeout}s; got {self.seen}")
            try:
                m = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(m)
            if key in m and (value is None or m[key] == value) and \
                    (status is None or status in m.get("STATUS", "")):
                return m

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)


@pytest.fixture
def notify(request):
    """A path socket, or an abstract one with parametrize("notify",
    ["abstract"], indirect=True)."""
    n = NotifySocket(abstract=getattr(request, "param", "path") == "abstract")
    yield n
    n.close()


@pytest.fixture
def daemon(request, notify, pop3d_factory, gate_factory):  # noqa: F811
    """An unstarted pop3d or smtpgate whose NOTIFY_SOCKET is `notify`."""
    d = (pop3d_factory if request.param == "pop3d" else gate_factory)(
        start=False)
    d.env = notify.env()
    return d


both = pytest.mark.parametrize("daemon", ["pop3d", "smtpgate"], indirect=True)


@pytest.mark.parametrize("notify", ["path", "abstract"], indirect=True)
@both
def test_ready_once_listening_and_redis_up(daemon, notify):
    daemon.start()
    m = notify.wait("READY", "1")
    assert m["_pid"] == daemon.proc.pid
    assert port_open(daemon.port)
    assert "Redis up" in m["STATUS"]
    daemon.wait_log("event=redis_up")


@both
def test_ready_when_redis_is_down_too(daemon, notify, redis_server):
    redis_server.stop()
    daemon.start()
    m = notify.wait("READY", "1")
    assert "Redis down" in m["STATUS"]
    daemon.wait_log("event=redis_down")     # stderr is flushed per loop turn
    # Redis comes back: the status says so without a restart.
    redis_server.start()
    notify.wait("STATUS", status="Redis up", timeout=10)


@both
def test_reload_sends_reloading_then_ready(daemon, notify):
    daemon.start()
    notify.wait("READY", "1")
    daemon.signal(signal.SIGHUP)
    r = notify.wait("RELOADING", "1")
    assert int(r["MONOTONIC_USEC"]) > 0
    m = notify.wait("READY", "1")
    assert "FAILED" not in m["STATUS"]
    daemon.wait_log("event=reloaded")


@both
def test_failed_reload_is_ready_again_and_says_so(daemon, notify):
    daemon.start()
    notify.wait("READY", "1")
    daemon.rewrite_config(max_connections="many")
    daemon.signal(signal.SIGHUP)
    notify.wait("RELOADING", "1")
    m = notify.wait("READY", "1")
    assert "last reload FAILED" in m["STATUS"]
    daemon.wait_log("event=reload_failed")
    # A good file again: the warning goes away with the next reload.
    daemon.rewrite_config(max_connections=100)
    daemon.signal(signal.SIGHUP)
    m = notify.wait("READY", "1")
    assert "FAILED" not in m["STATUS"]


@pytest.mark.parametrize("notify", ["path", "abstract"], indirect=True)
@both
def test_stopping_at_sigterm(daemon, notify):
    daemon.start()
    notify.wait("READY", "1")
    daemon.signal(signal.SIGTERM)
    m = notify.wait("STOPPING", "1")
    assert m["_pid"] == daemon.proc.pid
    assert "stopping" in m["STATUS"]
    daemon.proc.wait(15)


@pytest.mark.parametrize("daemon", ["pop3d"], indirect=True)
def test_pop3d_status_counts_sessions(daemon, notify):
    daemon.start()
    # The harness's own probe of the port may still be counted at READY.
    ready = notify.wait("READY", "1")
    if "0 sessions" not in ready["STATUS"]:
        notify.wait("STATUS", status="0 sessions", timeout=10)
    client = daemon.client()
    notify.wait("STATUS", status="1 session;", timeout=10)
    client.quit()
    notify.wait("STATUS", status="0 sessions", timeout=10)


@pytest.mark.parametrize("daemon", ["smtpgate"], indirect=True)
def test_smtpgate_status_counts_sessions_and_connections(daemon, notify):
    daemon.start()
    ready = notify.wait("READY", "1")
    if "0 SMTP sessions, 0 policy" not in ready["STATUS"]:
        notify.wait("STATUS", status="0 SMTP sessions, 0 policy", timeout=10)
    smtp = daemon.smtp()
    policy = socket.create_connection(("127.0.0.1", daemon.policy_port), 5)
    notify.wait("STATUS", status="1 SMTP session, 1 policy", timeout=10)
    smtp.quit()
    policy.close()
    notify.wait("STATUS", status="0 SMTP sessions, 0 policy", timeout=10)


@both
def test_unusable_notify_socket_is_logged_and_ignored(daemon, notify):
    daemon.env = {**os.environ, "NOTIFY_SOCKET": "relative/name"}
    daemon.start()
    daemon.wait_log("event=notify_unusable")
    assert port_open(daemon.port)
    assert notify.messages.empty()
