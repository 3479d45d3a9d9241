#!/usr/bin/python3
"""make bench, "hooks": the login hooks of issue 11, each measured two ways.

  OK -> grant   when the grant was written in Redis (MONITOR's stamp of
                its HSET, Redis's wall clock), relative to the moment the
                client had read the server's OK (same clock; negative: the
                grant came first). "latest" is the single login of all
                whose grant came closest to its OK.
  cost          the median login (PASS to OK, LOGIN to OK) with the hook
                minus the same without it, on the same server, runs
                interleaved.

Hooks: Dovecot's auth policy (POP3, IMAP) through smtpgate's Dovecot door,
Dovecot's post-login script (POP3) and `authbridge postlogin` on its own
(exec of /bin/true with and without it). Everything private on loopback:
a Redis, smtpgate, Dovecot, set up with the test harness
(tests/e2e/dovecot_harness.py, the README's recipes).

Environment: AB_OUT (the built programs), BENCH_LOGINS (logins per run,
default 200), BENCH_RUNS (runs, median of medians; default 5).
"""

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
os.environ.setdefault("AB_OUT", str(REPO))

from conftest import (RedisServer, base_sections, free_port,  # noqa: E402
                      program, write_config)
from dovecot_harness import Dovecot, Imap, wipe_base_dir  # noqa: E402
from pop3_harness import Client as Pop3Client  # noqa: E402
from smtp_harness import Gate  # noqa: E402

LOGINS = int(os.environ.get("BENCH_LOGINS", "200"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
KEY = "bench-key-0123456789abcdef"
USERS = {f"u{i}": f"pw{i}" for i in range(16)}


class GrantClock:
    """When each grant was written, by Redis's own clock: MONITOR stamps
    every command when Redis runs it (the same wall clock as the client's
    time.time()), so a late reader thread does not skew the figure."""

    def __init__(self, redis_server):
        self.seen = {}
        self.r = redis_server.client(socket_timeout=None)  # idle a while
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        time.sleep(0.2)

    def _run(self):
        with self.r.monitor() as m:
            for cmd in m.listen():
                if self.stop:
                    return
                words = cmd["command"].split(" ")
                if words[0] == "HSET" and \
                        words[1].startswith("authbridge:grant:"):
                    self.seen.setdefault(words[1].split(":", 2)[2],
                                         cmd["time"])

    def wait(self, key, timeout=2.0):
        end = time.monotonic() + timeout
        while key not in self.seen and time.monotonic() < end:
            time.sleep(0.001)
        return self.seen.get(key)

    def close(self):
        self.stop = True
        self.r.ping()                    # one more line wakes the reader
        self.t.join(2)


def pop3_once(port, source, user):
    p = Pop3Client(port, source)
    p.user(user)
    t0 = time.time()
    assert p.pass_(USERS[user]).startswith(b"+OK")
    t1 = time.time()
    p.quit()
    return t0, t1


def imap_once(port, source, user):
    i = Imap(port, source)
    t0 = time.time()
    assert i.login(user, USERS[user])[0] == "OK"
    t1 = time.time()
    i.logout()
    return t0, t1


def source_of(n):
    return f"127.{20 + n // 65536 % 200}.{n // 256 % 256}.{n % 256 or 1}"


class Counter:
    n = 0

    def next(self):
        self.n += 1
        return self.n


def run_logins(once, port, clock, rdb, counter, grants):
    """LOGINS logins, each from a new address; (latencies, OK->grant)."""
    lat, delta = [], []
    for k in range(LOGINS):
        src = source_of(counter.next())
        user = f"u{k % len(USERS)}"
        t0, t1 = once(port, src, user)
        lat.append((t1 - t0) * 1000)
        if grants:
            seen = clock.wait(src)
            assert seen is not None, f"no grant for {src}"
            # The whole MULTI..EXEC arrives in one write: HSET's stamp is
            # within microseconds of the grant being written.
            delta.append((seen - t1) * 1000)
    rdb.flushdb()
    clock.seen.clear()
    return lat, delta


STARTED = []


def start_dc(*args, **kw):
    dc = Dovecot(*args, **kw)
    STARTED.append(dc)
    return dc


def fmt(x):
    return "—" if x is None else f"{x:+.2f} ms"


def bench_dovecot(work, redis_server, clock, rdb, counter):
    port = free_port()
    gate = Gate(work / "gate", redis_server, "127.0.0.1:9",
                dovecot_listen=f"127.0.0.1:{port}", dovecot_api_key=KEY,
                trusted_networks=["127.0.0.1/32"], listen="",
                listen_tls="", policy_listen="", whoson_listen="")
    gate.port = port                     # what start() probes
    gate.start()
    with_hook = start_dc(work / "dc-policy", USERS, port, KEY).start()
    plain = start_dc(work / "dc-plain", USERS, port, KEY, policy=False).start()
    results = {}
    try:
        for name, once, pport_h, pport_p in (
                ("Dovecot POP3, auth policy", pop3_once, with_hook.pop3_port,
                 plain.pop3_port),
                ("Dovecot IMAP, auth policy", imap_once, with_hook.imap_port,
                 plain.imap_port)):
            hooked, base, deltas, latest = [], [], [], []
            for _ in range(RUNS):
                b, _ = run_logins(once, pport_p, clock, rdb, counter, False)
                h, d = run_logins(once, pport_h, clock, rdb, counter, True)
                base.append(statistics.median(b))
                hooked.append(statistics.median(h))
                deltas.append(statistics.median(d))
                latest.append(max(d))
            results[name] = (statistics.median(deltas), max(latest),
                             statistics.median(hooked), statistics.median(base))
    finally:
        gate.stop()
    # The post-login script: a Dovecot of its own, no policy.
    pl = start_dc(work / "dc-postlogin", USERS, 0, "", policy=False,
                  postlogin=(program("authbridge/authbridge"), "CONF"))
    pl_conf = pl.dir / "authbridge.conf"
    sections = base_sections(redis_server)
    write_config(pl_conf, sections)
    pl_conf.chmod(0o644)
    pl.config.write_text(pl.config.read_text().replace("CONF", str(pl_conf)))
    pl.start()
    hooked, base, deltas, latest = [], [], [], []
    for _ in range(RUNS):
        b, _ = run_logins(pop3_once, plain.pop3_port, clock, rdb, counter,
                          False)
        h, d = run_logins(pop3_once, pl.pop3_port, clock, rdb, counter, True)
        base.append(statistics.median(b))
        hooked.append(statistics.median(h))
        deltas.append(statistics.median(d))
        latest.append(max(d))
    results["Dovecot POP3, post-login script (authbridge postlogin)"] = (
        statistics.median(deltas), max(latest),
        statistics.median(hooked), statistics.median(base))
    return results


def bench_postlogin_exec(work, redis_server, clock, rdb, counter):
    """authbridge postlogin /bin/true against /bin/true: the hook's own
    cost (there is no OK here; the grant is checked to be written)."""
    conf = write_config(work / "postlogin.conf", base_sections(redis_server))
    ab = str(program("authbridge/authbridge"))
    hooked, base = [], []
    for _ in range(RUNS):
        b, h = [], []
        for _ in range(LOGINS):
            src = source_of(counter.next())
            env = {"TCPREMOTEIP": src, "USER": "u1", "PATH": "/usr/bin:/bin"}
            t0 = time.monotonic()
            subprocess.run(["/bin/true"], env=env, check=True)
            t1 = time.monotonic()
            subprocess.run([ab, "-c", str(conf), "postlogin", "/bin/true"],
                           env=env, check=True)
            t2 = time.monotonic()
            b.append((t1 - t0) * 1000)
            h.append((t2 - t1) * 1000)
            assert clock.wait(src) is not None
        rdb.flushdb()
        clock.seen.clear()
        base.append(statistics.median(b))
        hooked.append(statistics.median(h))
    return {"authbridge postlogin /bin/true (exec alone)": (
        None, None, statistics.median(hooked), statistics.median(base))}


def main():
    work = Path(tempfile.mkdtemp(prefix="authbridge-bench-hooks."))
    redis_server = RedisServer(work / "redis").start()
    rdb = redis_server.client()
    clock = GrantClock(redis_server)
    counter = Counter()
    try:
        results = bench_dovecot(work, redis_server, clock, rdb, counter)
        results.update(bench_postlogin_exec(work, redis_server, clock, rdb,
                                            counter))
    finally:
        for dc in STARTED:
            dc.stop()
            wipe_base_dir(dc)
        clock.close()
        redis_server.stop()
    print(f"{RUNS} runs of {LOGINS} sequential logins, each from its own "
          f"address; medians. 'latest': the one login of all whose grant "
          f"came closest to (or after) its OK")
    print("| hook | OK -> grant visible | latest | login with hook | "
          "without | cost per login |")
    print("|---|---|---|---|---|---|")
    for name, (delta, worst, hooked, base) in results.items():
        print(f"| {name} | {fmt(delta)} | {fmt(worst)} | "
              f"{hooked:.2f} ms | {base:.2f} ms | {hooked - base:+.2f} ms |")
    subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
