"""The end-to-end harness: throw-away Redis servers, config files, programs.

Run with Debian's interpreter (it has python3-pytest and python3-redis):

    AB_OUT=build/asan /usr/bin/python3 -m pytest tests/e2e

AB_OUT is the folder that holds authbridge/authbridge (and later
pop3d/pop3d, smtpgate/smtpgate); it defaults to the repository root, where
a plain `make` puts them.

What daemon tests can reuse:
  free_port()               a TCP port nobody listens on right now
  RedisServer / redis_server   a private redis-server; stop(), start() again
                            on the same port, pause()/resume() (SIGSTOP)
  write_config(path, sections) / ab_config   an INI file from a dict
  program(name)             path of a built program (fails if missing)
  cli                       run `authbridge -c CONFIG ...`
  read_line(proc, timeout)  one line from a child's stdout, or None
  port_open(port) / wait_listening(port, timeout, what)
  unverified_context()      TLS client context for our self-signed certs
  LineSocket                a bare client socket: send(), closed(), close()
  rss_kb(pid)               a process's resident memory, KiB
  flood_unread(...)         pipeline requests without reading the answers
  ClientThreads             threads running run(i) until the block ends
"""

import os
import re
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
AB_OUT = Path(os.environ.get("AB_OUT") or REPO).resolve()
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

# Sanitizer builds: a UBSan report comes with the stack that caused it.
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")


def program(rel):
    """Path of a built program under AB_OUT, e.g. "authbridge/authbridge"."""
    path = AB_OUT / rel
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built (make OUT={AB_OUT} all)")
    return path


def free_port():
    """A TCP port that was free a moment ago on every address.

    Asked of the wildcard (dual-stack where there is IPv6), so that tests
    listening on [::] or 0.0.0.0 do not get a port some client socket of
    an earlier test still holds on a loopback address.
    """
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", 0))
            return s.getsockname()[1]
    except OSError:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("0.0.0.0", 0))
            return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.01, what="condition"):
    """Poll predicate until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port, host="127.0.0.1", timeout=0.2):
    """True when something accepts connections on host:port."""
    try:
        socket.create_connection((host, port), timeout).close()
        return True
    except OSError:
        return False


def wait_listening(port, timeout, what):
    wait_until(lambda: port_open(port), timeout, what=what)


def unverified_context():
    """TLS for the tests' self-signed certificates."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class LineSocket:
    """A bare client socket from a chosen loopback source address; what
    arrives collects in buf."""

    def __init__(self, port, source="127.0.0.1", timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout,
                                             source_address=(source, 0))
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def closed(self, timeout=5):
        """True once the server closed the connection (what it sent
        before that is in buf)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True               # closed with our input unread: RST

    def close(self):
        self.sock.close()


def terminate(proc, timeout=20):
    """SIGTERM, and SIGKILL if it has not ended within timeout seconds:
    the stop of every helper server the tests run. Its exit status."""
    proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def rss_kb(pid):
    """Resident set size of a process, in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def flood_unread(port, request, total, source="127.0.0.1", stall=1.0):
    """Send `request` over and over, up to `total` octets, never reading an
    answer; stop early once the server has stopped reading for `stall`
    seconds (its and our socket buffers full) or closed the connection.
    Returns (socket, octets sent): the caller closes the socket."""
    sock = socket.create_connection(("127.0.0.1", port), 5,
                                    source_address=(source, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    chunk = request * max(1, 65536 // len(request))
    sent = 0
    sock.settimeout(stall)
    try:
        while sent < total:
            sent += sock.send(chunk)
    except (socket.timeout, BlockingIOError, ConnectionError):
        pass
    return sock, sent


class ClientThreads:
    """`with Sub(...) as load:` runs self.run(i) in `threads` threads until
    the block ends; run(i) loops while not self.stop.is_set(). Subclasses
    count what they see under self.lock."""

    def __init__(self, threads):
        self.stop, self.lock = threading.Event(), threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,))
                        for i in range(threads)]

    def run(self, i):
        raise NotImplementedError

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def read_line(proc, timeout):
    """One line from proc.stdout (text mode): "" at its end, None on timeout.

    A thread reads the pipe: select() on a buffered file says nothing about
    lines already in the buffer.
    """
    lines = getattr(proc, "_ab_lines", None)
    if lines is None:
        lines = proc._ab_lines = queue.Queue()

        def pump():
            for line in proc.stdout:
                lines.put(line)
            lines.put("")
        threading.Thread(target=pump, daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


class RedisServer:
    """A private redis-server on 127.0.0.1:port, data in folder, nothing saved.

    stop() and start() again keep the port, for outage tests; pause() and
    resume() freeze the process (SIGSTOP), so connections are accepted by
    the kernel but never answered: a hung server rather than a dead one.
    """

    def __init__(self, folder, port=None, unixsocket=False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc = None
        self.paused = False
        # sun_path holds 108 bytes: pytest's tmp_path can be longer
        self.unixsocket = (f"/tmp/ab-redis-{self.port}.sock" if unixsocket
                           else None)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def client(self, **kw):
        kw.setdefault("decode_responses", True)
        kw.setdefault("socket_timeout", 5)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def start(self, timeout=5.0):
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.folder),
             "--logfile", str(self.folder / "redis.log"),
             "--daemonize", "no",
             *(["--unixsocket", self.unixsocket, "--unixsocketperm", "700"]
               if self.unixsocket else [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        client = self.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")
                self.proc = None
                raise RuntimeError(f"redis-server on port {self.port} "
                                   f"exited:\n{log[-2000:]}")
            try:
                if client.ping():
                    return self
            except redis.exceptions.RedisError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} "
                                   f"did not answer PING within {timeout}s")
            time.sleep(0.01)

    def stop(self):
        """Kill the server (SIGKILL: an outage, not a goodbye) and wait."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        self.proc.kill()
        self.proc.wait(timeout=5)
        self.proc = None
        if self.unixsocket and os.path.exists(self.unixsocket):
            os.unlink(self.unixsocket)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    @property
    def running(self):
        return self.proc is not None


@pytest.fixture
def redis_server(tmp_path):
    """A running private Redis, killed at teardown whatever happened."""
    server = None
    for _ in range(3):            # a port taken between free_port() and bind
        server = RedisServer(tmp_path / "redis")
        try:
            server.start()
            break
        except RuntimeError:
            server = None
    if server is None:
        pytest.fail("could not start redis-server")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rdb(redis_server):
    """A redis-py client of the private Redis (strings decoded)."""
    client = redis_server.client()
    yield client
    client.close()


def write_config(path, sections):
    """Write an authbridge INI file from {section: {key: value}}.

    Values may be str, int, bool (yes/no) or a list (comma separated);
    None leaves the key out. Returns the path.
    """
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        for key, value in keys.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "yes" if value else "no"
            elif isinstance(value, (list, tuple)):
                value = ", ".join(str(v) for v in value)
            lines.append(f"{key} = {value}")
        lines.append("")
    path = Path(path)
    path.write_text("\n".join(lines))
    return path


NODE = "e2e-node"

# One event loop per daemon unless a test asks for more: the order of
# accepts, log lines and samples is then the order of the test's own
# requests. The daemons' default (one loop per CPU) is what
# test_loops.py, test_make_run.py and the package test run.
# AB_TEST_LOOPS=2 runs the whole suite with two (some tests then see
# their requests served out of order: a check of the daemons, not a gate).
LOOPS = int(os.environ.get("AB_TEST_LOOPS", "1"))


def base_sections(redis_server):
    """The sections every test starts from; daemon tests add their own."""
    return {
        "redis": {"address": redis_server.address, "prefix": "authbridge:",
                  "timeout_ms": 500},
        "grant": {"ttl": 1800, "ipv6_prefix": 128},
        "pop3d": {"node": NODE, "loops": LOOPS},
    }


@pytest.fixture
def ab_config(tmp_path, redis_server):
    """make(**{section: {key: value}}) -> path of a config for this Redis.

    The given sections are merged over base_sections(); called without
    arguments it gives the plain configuration.
    """
    def make(name="authbridge.conf", **overrides):
        sections = base_sections(redis_server)
        for section, keys in overrides.items():
            sections.setdefault(section, {}).update(keys)
        return write_config(tmp_path / name, sections)
    return make


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:",
                   "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer")


class Daemon:
    """A pop3d or smtpgate under test: start it (picking new ports if one
    was taken meanwhile), read its log, stop it and check it ended clean.

    Subclasses set name (also the config section), binary, config, log_path,
    redis, port (the one probed for "up") and stop_timeout, and implement
    repick_ports() to choose new ports and rewrite the config.
    """

    stop_timeout = 15
    proc = None
    env = None                    # the environment to start with (None: ours)

    def repick_ports(self):
        raise NotImplementedError

    def start(self, timeout=10, address="127.0.0.1"):
        # A port picked free may be taken by someone else's connection
        # before the daemon binds it: then pick again, a few times.
        for _ in range(3):
            if self._start(timeout, address):
                return self
            self.repick_ports()
        busy = self.log_path.with_suffix(".busy").read_text(errors="replace")
        pytest.fail(f"{self.name} could not bind its ports:\n{busy}")

    def _start(self, timeout, address):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(program(self.binary)), "-c", str(self.config), "-v"],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
            env=self.env)

        def up():
            if self.proc.poll() is not None:
                # Two ports picked free may be the same one (nothing holds
                # them): the configuration check refuses such a pair.
                if ("Address already in use" in self.log() or
                        "cannot be bound" in self.log()):
                    return "busy"
                pytest.fail(f"{self.name} exited {self.proc.returncode}:\n"
                            f"{self.log()}")
            # "started" comes once every listener is bound: the probed
            # port alone may be up while a later one fails to bind.
            return port_open(self.port, address) and \
                "event=started" in self.log()
        if wait_until(up, timeout, what=f"{self.name} to listen") == "busy":
            self.logf.close()
            self.proc = None
            self.log_path.rename(self.log_path.with_suffix(".busy"))
            return False
        wait_until(lambda: "event=redis_up" in self.log() or
                   not self.redis.running, 5, what=f"{self.name} to reach Redis")
        return True

    def log(self):
        return self.log_path.read_text(errors="replace") \
            if self.log_path.exists() else ""

    def wait_log(self, pattern, timeout=5):
        """The first log line matching the regular expression."""
        rx = re.compile(pattern)

        def found():
            for line in self.log().splitlines():
                if rx.search(line):
                    return line
            return None
        return wait_until(found, timeout, what=f"log line /{pattern}/")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, check=True):
        """SIGTERM, wait, and check the exit was clean (status 0, no
        sanitizer report in the log)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"{self.name} did not stop within "
                            f"{self.stop_timeout} s of SIGTERM")
        rc = self.proc.returncode
        self.proc = None
        self.logf.close()
        if check:
            log = self.log()
            for mark in SANITIZER_MARKS:
                assert mark not in log, f"sanitizer report in {self.name} log:\n{log}"
            assert rc == 0, f"{self.name} exited {rc}:\n{log[-3000:]}"
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.logf.close()


class Cli:
    """Runs the authbridge command; cli(*args) -> CompletedProcess (text)."""

    def __init__(self, config):
        self.binary = program("authbridge/authbridge")
        self.config = config

    def __call__(self, *args, config=None, timeout=15):
        cmd = [str(self.binary), "-c", str(config or self.config), *args]
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def popen(self, *args, config=None):
        cmd = [str(self.binary), "-c", str(config or self.config), *args]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)


@pytest.fixture
def cli(ab_config):
    """The authbridge command on the plain configuration of this test."""
    return Cli(ab_config())
