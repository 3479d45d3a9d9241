"""Faults and floods: pop3d keeps serving everyone else."""

import os
import re
import resource
import signal
import socket
import subprocess
import time
import poplib


from conftest import ClientThreads, program, wait_until
from pop3_harness import Pop3d, pop3d, pop3d_factory, sanitized  # noqa: F401


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Storm(ClientThreads):
    """Threads logging in and out as fast as they can; counts answers."""

    def __init__(self, d, threads=6):
        super().__init__(threads)
        self.d, self.ok, self.errors = d, 0, []
        self.users = [("alice", "secret"), ("carol", "c4r0l pass"),
                      ("dave", "dave-pw")]

    def run(self, i):
        user, pw = self.users[i % len(self.users)]
        src = f"127.0.4.{i + 1}"
        while not self.stop.is_set():
            try:
                p = self.d.client(src)
                p.user(user)
                answer = p.pass_(pw)
                p.quit()
                with self.lock:
                    if answer.startswith(b"+OK"):
                        self.ok += 1
                    else:
                        self.errors.append(answer)
            except poplib.error_proto as e:
                if b"IN-USE" in e.args[0]:
                    continue          # two threads, one mailbox: expected
                with self.lock:
                    self.errors.append(e.args[0])
            except OSError as e:
                with self.lock:
                    self.errors.append(repr(e))


def test_redis_killed_during_a_login_storm(pop3d, redis_server):
    pid = pop3d.proc.pid
    with Storm(pop3d) as storm:
        time.sleep(1)
        fds_before, rss_before = fd_count(pid), rss_kib(pid)
        ok_before = storm.ok
        redis_server.stop()
        time.sleep(2)
        ok_during = storm.ok - ok_before
        redis_server.start()
        client = redis_server.client()
        t0 = time.monotonic()
        wait_until(lambda: client.exists("authbridge:grant:127.0.4.1"), 5,
                   what="grants after Redis returned")
        recovered = time.monotonic() - t0
        time.sleep(1)
    assert storm.errors == [], storm.errors[:5]
    assert ok_during > 20, "logins must go on while Redis is down"
    assert recovered < 2.0, f"recovered after {recovered:.2f}s"
    assert "grant=failed" in pop3d.log() and "event=redis_up" in pop3d.log()
    wait_until(lambda: fd_count(pid) <= fds_before + 2, 5,
               what="descriptors back to normal")
    if not sanitized():
        assert rss_kib(pid) < rss_before + 20 * 1024
    print(f"\nlogins during a 2 s Redis outage: {ok_during}; "
          f"grants flowing again {recovered:.2f}s after Redis returned")


def test_sighup_under_load_drops_nothing(pop3d):
    with Storm(pop3d) as storm:
        for _ in range(5):
            time.sleep(0.3)
            pop3d.signal(signal.SIGHUP)
        time.sleep(0.5)
    assert storm.errors == [] and storm.ok > 20
    assert pop3d.log().count("event=reloaded") == 5


def test_slow_reader_costs_bounded_memory_and_times_out(pop3d_factory):
    d = pop3d_factory(idle_timeout=3)
    line = b"x" * 75 + b"\n"
    d.deliver("alice", line * (20 * 1024 * 1024 // len(line)))   # 20 MB
    p = d.client()
    p.user("alice")
    p.pass_("secret")
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rss_before = rss_kib(d.proc.pid)
    p.sock.sendall(b"RETR 1\r\n")   # and never read
    time.sleep(1.5)
    grown = rss_kib(d.proc.pid) - rss_before
    if not sanitized():
        assert grown < 2 * 1024, f"pop3d grew {grown} KiB for one slow reader"
    other = d.client("127.0.0.8")   # others are served meanwhile
    other.user("dave")
    assert other.pass_("dave-pw").startswith(b"+OK")
    other.quit()
    wait_until(lambda: re.search(r"event=logout .*user=alice .*reason=timeout",
                                 d.log()), 10, what="the slow reader's timeout")


def test_out_of_descriptors_pauses_accept_and_recovers(tmp_path, redis_server):
    d = Pop3d(tmp_path, redis_server, max_connections=1000,
              max_connections_per_addr=1000, login_timeout=30)
    d.logf = open(d.log_path, "ab")
    d.proc = subprocess.Popen(
        ["prlimit", "--nofile=64", "--", str(program("pop3d/pop3d")),
         "-c", str(d.config), "-v"],
        stdout=d.logf, stderr=d.logf, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: "event=started" in d.log(), 10, what="pop3d")
        held = [socket.create_connection(("127.0.0.1", d.port), 5)
                for _ in range(80)]
        wait_until(lambda: "event=accept_failed" in d.log(), 10,
                   what="the descriptor shortage to be noticed")
        time.sleep(0.5)
        assert d.log().count("event=accept_failed") == 1, "log once per episode"
        assert d.proc.poll() is None
        for s in held[:40]:
            s.close()
        late = held[-1]             # was waiting in the backlog
        late.settimeout(5)
        assert late.recv(100).startswith(b"+OK")
        for s in held[40:]:
            s.close()
    finally:
        d.stop()


def test_ten_thousand_idle_connections_and_a_new_client_is_served(
        pop3d_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = pop3d_factory(max_connections=12000, max_connections_per_addr=12000,
                      login_timeout=300)
    held = []
    try:
        for i in range(10000):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", d.port))
            held.append(s)
        wait_until(lambda: fd_count(d.proc.pid) > 10000, 60, interval=0.2,
                   what="10,000 connections accepted")
        t0 = time.monotonic()
        p = d.client("127.0.0.77")
        p.user("alice")
        assert p.pass_("secret").startswith(b"+OK")
        took = time.monotonic() - t0
        p.quit()
        assert took < 1.0, f"a new client waited {took:.2f}s"
        print(f"\nwith 10,000 idle connections a new login took {took*1000:.0f} ms")
    finally:
        for s in held:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
