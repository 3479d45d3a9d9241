"""Several event loops in one daemon ([pop3d] loops, [smtpgate] loops).

Each loop has its own listening sockets on the same ports (SO_REUSEPORT:
the kernel spreads new connections by a hash of the address pair), its
own Redis connections and its own sessions. What must hold whatever loop
a connection lands on: the per-address caps and the mailbox lock, a
reload and a stop that reach every loop, and a second daemon that cannot
silently share our port.

The rest of the suite runs the daemons with one loop (conftest.LOOPS)
so that its logs come in request order; the daemons' default (one loop
per CPU) is also what test_make_run.py and the package test start.
"""
import poplib
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, program, wait_until, write_config
from metrics_harness import metrics_text, value
from pop3_harness import PLAIN_USERS, Client, pop3d_factory  # noqa: F401
from smtp_harness import gate_factory, sink  # noqa: F401

LOOPS = 2
SOURCES = [f"127.0.4.{i}" for i in range(1, 41)]


def listening_sockets(port):
    """How many sockets listen on 127.0.0.1:port (one per loop)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return len([line for line in out.splitlines() if line.strip()])


def loops_used(log):
    return {int(m) for m in re.findall(r"event=connect .*loop=(\d+)", log)}


def greeting_or_refusal(port, source):
    s = socket.create_connection(("127.0.0.1", port), 5,
                                 source_address=(source, 0))
    s.settimeout(5)
    return s, s.recv(200)


# ---- pop3d ---------------------------------------------------------------------

def test_pop3d_loops_each_listen_and_share_the_connections(pop3d_factory,
                                                           rdb):
    d = pop3d_factory(loops=LOOPS)
    assert listening_sockets(d.port) == LOOPS
    for src in SOURCES:
        p = Client(d.port, src)
        p.user("alice")
        p.pass_(PLAIN_USERS["alice"])
        p.quit()
    # The kernel's hash spread 40 connections over both loops, and every
    # login, whichever loop served it, wrote its grant first.
    assert loops_used(d.log()) == set(range(LOOPS))
    for src in SOURCES:
        assert rdb.hget(f"authbridge:grant:{src}", "user") == "alice", src
    assert f"loops={LOOPS}" in d.wait_log(r"event=started")


def test_pop3d_per_address_cap_is_exact_across_loops(pop3d_factory):
    d = pop3d_factory(loops=LOOPS, max_connections_per_addr=4)
    held = [greeting_or_refusal(d.port, "127.0.4.100") for _ in range(12)]
    greeted = [s for s, g in held if g.startswith(b"+OK")]
    refused = [g for _, g in held if not g.startswith(b"+OK")]
    assert len(greeted) == 4
    assert all(g.startswith(b"-ERR [SYS/TEMP] Too many connections")
               for g in refused), refused
    assert len(loops_used(d.log())) == LOOPS, "all on one loop: inconclusive"
    for s, _ in held:
        s.close()


def test_pop3d_mailbox_lock_holds_across_loops(pop3d_factory):
    d = pop3d_factory(loops=LOOPS)
    clients = [Client(d.port, src) for src in SOURCES[:8]]
    answers = []
    lock = threading.Lock()

    def login(p):
        p.user("carol")
        try:
            answer = p.pass_(PLAIN_USERS["carol"])
        except Exception as e:            # poplib.error_proto
            answer = str(e).encode()
        with lock:
            answers.append(answer)
    threads = [threading.Thread(target=login, args=(p,)) for p in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(loops_used(d.log())) == LOOPS
    ok = [a for a in answers if a.startswith(b"+OK")]
    in_use = [a for a in answers if b"[IN-USE]" in a]
    assert len(ok) == 1 and len(in_use) == 7, answers
    for p in clients:
        p.close()


def test_pop3d_sigterm_ends_the_sessions_of_every_loop(pop3d_factory):
    d = pop3d_factory(loops=LOOPS)
    held = [d.raw(src) for src in SOURCES[:10]]
    assert len(loops_used(d.log())) == LOOPS
    assert d.stop() == 0
    for r in held:
        assert r.closed(), "a session of some loop outlived the stop"


def test_pop3d_reload_reaches_every_loop_and_keeps_sessions(pop3d_factory):
    d = pop3d_factory(loops=LOOPS)
    held = []
    for i, src in enumerate(SOURCES[:8]):
        user = ("alice", "carol", "dave")[i % 3] if i < 3 else None
        p = Client(d.port, src)
        if user:
            p.user(user)
            p.pass_(PLAIN_USERS[user])
        held.append((p, user))
    assert len(loops_used(d.log())) == LOOPS
    d.rewrite_config(plaintext_auth="never")
    d.signal(signal.SIGHUP)
    d.wait_log(r"event=reloaded .*loops=2")
    # Every loop took it: USER is refused on new connections, wherever
    # the kernel puts them, and on those already open but not logged in.
    for src in SOURCES[10:30]:
        p = Client(d.port, src)
        with pytest.raises(poplib.error_proto, match="disabled"):
            p.user("alice")
        p.close()
    for p, user in held:
        if user:                  # logged in before: the session goes on
            assert p.stat()[0] >= 0
            p.quit()
        else:
            with pytest.raises(poplib.error_proto, match="disabled"):
                p.user("alice")
            p.close()


def test_a_second_pop3d_cannot_share_the_port(pop3d_factory, tmp_path):
    """SO_REUSEPORT would let a second process of the same user bind the
    port and take half the connections: the first bind is a probe
    without it."""
    d = pop3d_factory(loops=LOOPS)
    sections = {k: dict(v) for k, v in d.sections.items()}
    sections["pop3d"]["listen_tls"] = None
    sections["pop3d"]["tls_cert"] = sections["pop3d"]["tls_key"] = None
    conf = write_config(tmp_path / "second.conf", sections)
    out = subprocess.run([str(program("pop3d/pop3d")), "-c", str(conf)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    assert "event=startup_failed" in out.stderr
    assert "Address already in use" in out.stderr, out.stderr
    assert listening_sockets(d.port) == LOOPS


# ---- smtpgate ------------------------------------------------------------------

def denied_text(g, source):
    with g.smtp(source) as s:
        s.ehlo("client.example")
        s.mail("someone@elsewhere.example")
        code, text = s.rcpt("bob@remote.example")
    assert code == 550, (code, text)
    return text.decode()


def test_smtpgate_reload_reaches_every_loop_and_keeps_sessions(gate_factory):
    g = gate_factory(loops=LOOPS)
    assert listening_sockets(g.port) == LOOPS
    held = [g.raw(src) for src in SOURCES[:10]]
    for r in held:
        assert r.cmd("EHLO client.example")[0] == 250
    assert len(loops_used(g.log())) == LOOPS
    g.rewrite_config(deny_message="Check mail first, said the reload.")
    g.signal(signal.SIGHUP)
    g.wait_log(r"event=reloaded .*loops=2")
    # Every loop took the new configuration: sessions already open (on
    # both loops) and new ones (spread again) answer with the new text.
    wait_until(lambda: all("said the reload" in denied_text(g, src)
                           for src in SOURCES[10:30]), 5,
               what="every loop to answer with the new deny_message")
    for r in held:
        assert r.cmd("MAIL FROM:<someone@elsewhere.example>")[0] == 250
        code, text = r.cmd("RCPT TO:<bob@remote.example>")
        assert code == 550 and "said the reload" in text, text
    for r in held:
        r.close()


def test_smtpgate_sigterm_says_421_on_every_loop(gate_factory):
    g = gate_factory(loops=LOOPS)
    held = [g.raw(src) for src in SOURCES[:10]]
    assert len(loops_used(g.log())) == LOOPS
    g.signal(signal.SIGTERM)
    for r in held:
        code, _ = r.reply()
        assert code == 421
    assert g.stop() == 0


def test_smtpgate_every_loop_reconnects_to_redis(gate_factory, redis_server,
                                                 rdb):
    g = gate_factory(loops=LOOPS)
    wait_until(lambda: g.log().count("event=redis_up") >= LOOPS, 5,
               what="every loop to reach Redis")
    redis_server.stop()
    redis_server.start()
    wait_until(lambda: g.log().count("event=redis_up") >= 2 * LOOPS, 10,
               what="every loop to reconnect")
    # SMTP sessions land on both loops: each answers from Redis again.
    for src in SOURCES[:20]:
        g.grant(rdb, src, "alice")
    for src in SOURCES[:20]:
        with g.smtp(src) as s:
            s.ehlo("client.example")
            s.mail("alice@example.net")
            assert s.rcpt("bob@remote.example")[0] == 250, src
    assert loops_used(g.log()) == set(range(LOOPS))


def test_smtpgate_a_deleted_grant_leaves_every_loops_cache(gate_factory,
                                                           rdb):
    """Each loop keeps its own grant cache, kept exact by its own
    invalidation connection: a grant deleted in Redis must stop being
    honoured on every loop, never linger as a stale allow on one."""
    g = gate_factory(loops=LOOPS)
    wait_until(lambda: g.log().count("event=redis_tracking state=on") >=
               LOOPS, 5, what="every loop's lookups to be tracked")
    sources = SOURCES[:20]
    for src in sources:
        g.grant(rdb, src, "alice")

    def rcpt_code(src):
        with g.smtp(src) as s:
            s.ehlo("client.example")
            s.mail("alice@example.net")
            return s.rcpt("bob@remote.example")[0]
    assert [rcpt_code(src) for src in sources] == [250] * 20
    assert loops_used(g.log()) == set(range(LOOPS))
    # Asked three times more, from whichever loop the kernel picks: each
    # address misses at most once per loop, so Redis sees at most 40 of
    # the 80 lookups (without the caches, every one).
    for _ in range(3):
        for src in sources:
            assert rcpt_code(src) == 250
    hgets = rdb.info("commandstats")["cmdstat_hget"]["calls"]
    assert hgets <= LOOPS * len(sources), hgets
    rdb.delete(*[f"authbridge:grant:{src}" for src in sources])
    time.sleep(0.2)           # invalidations take under a millisecond
    # Twice over, so each address is likely asked on both loops.
    for _ in range(2):
        assert [rcpt_code(src) for src in sources] == [550] * 20


def test_redis_up_counts_every_loops_connection(pop3d_factory, redis_server):
    """authbridge_redis_up is 1 only while every loop's connection is up;
    it must still come back to 1 once they all are (no connection that
    never connects may be counted)."""
    port = free_port()
    d = pop3d_factory(loops=LOOPS, metrics_listen=f"127.0.0.1:{port}")
    wait_until(lambda: d.log().count("event=redis_up") >= LOOPS, 5,
               what="every loop to reach Redis")
    up = lambda: value(metrics_text(port), "authbridge_redis_up")  # noqa: E731
    wait_until(lambda: up() == 1, 5, what="redis_up to be 1")
    redis_server.stop()
    wait_until(lambda: up() == 0, 5, what="redis_up to drop to 0")
    redis_server.start()
    wait_until(lambda: d.log().count("event=redis_up") >= 2 * LOOPS, 10,
               what="every loop to reconnect")
    wait_until(lambda: up() == 1, 5, what="redis_up to come back")
