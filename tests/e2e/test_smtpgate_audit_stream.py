"""Anonymous clients cannot evict the audit trail: grants and revocations
have their own stream (<prefix>log), relay decisions theirs
(<prefix>decisions), and refusals reach the latter at most once a minute
per address, each entry then counting those it stands for."""

import re
import subprocess

from conftest import program, wait_until, write_config
from smtp_harness import gate, gate_factory, sink  # noqa: F401

LOG, DECISIONS = "authbridge:log", "authbridge:decisions"


def refuse(gate, source, n):
    r = gate.raw(source)
    assert r.cmd("EHLO flood.example")[0] == 250
    assert r.cmd("MAIL FROM:<x@flood.example>")[0] == 250
    for i in range(n):
        r.send(f"RCPT TO:<v{i}@remote.example>\r\n")
    assert [r.reply()[0] for _ in range(n)] == [550] * n
    r.close()


def test_a_flood_of_refusals_keeps_the_grant_history(gate_factory, rdb):
    g = gate_factory(start=False)
    g.sections["redis"].update(log_maxlen=100, decisions_maxlen=100)
    write_config(g.config, g.sections)
    g.start()
    g.grant(rdb, "192.0.2.50", "alice")
    sources = [f"127.0.3.{i}" for i in range(1, 6)]
    for _ in range(40):                      # 40 x 5 x 19 = 3,800 refusals
        for src in sources:
            refuse(g, src, 19)
    assert [e["event"] for _, e in rdb.xrange(LOG)] == ["grant"]
    # One entry per address so far: the rest is only counted.
    entries = [e for _, e in rdb.xrange(DECISIONS)]
    assert sorted(e["client"] for e in entries) == sources
    assert all("count" not in e for e in entries)
    g.stop()                                 # writes what was counted
    entries = [e for _, e in rdb.xrange(DECISIONS)]
    assert len(entries) == 2 * len(sources)
    total = sum(int(e.get("count", 1)) for e in entries)
    assert total == 40 * 5 * 19
    stats = subprocess.run([str(program("authbridge/authbridge")), "-c",
                            str(g.config), "stats"], capture_output=True,
                           text=True, timeout=10)
    assert re.search(r"relays denied\s+3800\b", stats.stdout), stats.stdout
    assert re.search(r"grants\s+1\b", stats.stdout), stats.stdout


def test_allowed_relays_are_all_in_the_decisions_stream(gate, rdb):
    gate.grant(rdb, "127.0.3.9", "alice")
    for i in range(3):
        with gate.smtp("127.0.3.9") as s:
            s.ehlo("c.example")
            s.mail("alice@example.net")
            assert s.rcpt(f"r{i}@remote.example")[0] == 250
    wait_until(lambda: len([e for _, e in rdb.xrange(DECISIONS)
                            if e["event"] == "relay-allowed"]) == 3, 5,
               what="three relay-allowed entries")
    assert [e["event"] for _, e in rdb.xrange(LOG)] == ["grant"]
