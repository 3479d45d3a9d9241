"""make bench, mta: every MTA wiring of the README against its real MTA
(the end-to-end tests' private instances: tests/e2e), two figures each.

  answers   RCPT TO a remote domain with no grant, after a grant, with
            Redis stopped, and RCPT TO a local domain with Redis stopped:
            the MTA's own words
  latency   what one relay decision adds: RCPT TO a remote domain from a
            granted client (one lookup) next to the same RCPT from a
            trusted client (127.0.0.1, accepted before any lookup), on
            two sessions kept open, interleaved, medians of N each

    /usr/bin/python3 bench/mta.py WORK-FOLDER   (AB_OUT: the built programs)

BENCH_MTA_SAMPLES sets N (default 200). One smtpgate serves every wiring
(policy, socketmap and WHOSON ports as each MTA's configuration names
them), with one Redis.
"""

import os
import smtplib
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
os.environ.setdefault("AB_OUT", str(REPO))

from conftest import RedisServer  # noqa: E402
from mta_harness import CUSTOMER, LOCAL, NEIGHBOUR, REMOTE, SENDER, Exim, rcpt_reply  # noqa: E402
from smtp_harness import Gate, PySink  # noqa: E402
from test_mta_exim import debian, handwritten  # noqa: E402
from test_mta_sendmail import Sendmail  # noqa: E402
from test_smtpgate_postfix import Postfix  # noqa: E402

SAMPLES = int(os.environ.get("BENCH_MTA_SAMPLES", "200"))
TRUSTED = "127.0.0.1"


def say(*a):
    print(*a, flush=True)


class Wiring:
    def __init__(self, name, mta, port, gate_keys):
        self.name, self.mta, self.port, self.gate_keys = name, mta, port, gate_keys


def start_all(wirings):
    """Every MTA, each as its test module runs it (into wirings before it
    starts, so a failure still stops it and those already running)."""
    pf = Postfix()
    wirings.append(Wiring("Postfix 3.7, check_policy_service", pf, pf.port,
                          {"policy_listen": f"127.0.0.1:{pf.policy_port}"}))
    pf.start()
    pfs = Postfix(sample="postfix-socketmap.cf.sample")
    wirings.append(Wiring("Postfix 3.7, check_client_access socketmap", pfs,
                          pfs.port,
                          {"socketmap_listen": f"127.0.0.1:{pfs.map_port}"}))
    pfs.start()
    sm = Sendmail()
    wirings.append(Wiring("Sendmail 8.17, socket map ruleset", sm, sm.port,
                          {"socketmap_listen": f"127.0.0.1:{sm.map_port}"}))
    sm.start()
    for name, build in (("exim.conf", handwritten), ("Debian template", debian)):
        ex = Exim(prefix="ab-bench-exim-")
        wirings.append(Wiring(f"Exim 4.96 ({name}), readsocket WHOSON", ex,
                              ex.port,
                              {"whoson_listen": f"127.0.0.1:{ex.whoson_port}"}))
        build(ex)
        ex.start()


def one_gate(work, redis, sink, wirings):
    keys = {}
    for w in wirings:
        for k, v in w.gate_keys.items():
            keys.setdefault(k, []).append(v)
    g = Gate(work / "gate", redis, sink.address, **keys)
    return g.start()


def session(port, source):
    """One transaction kept open: RCPT after RCPT (RSETs would count as
    junk commands at Postfix, which disconnects after enough of them)."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0))
    s.ehlo("client.example")
    s.mail(SENDER)
    return s


def rcpt_ms(s, i):
    t0 = time.perf_counter()
    code, text = s.rcpt(REMOTE.replace("@", f"{i}@"))
    ms = (time.perf_counter() - t0) * 1000
    assert code == 250, (code, text)
    return ms


def latency(w):
    granted, trusted = session(w.port, CUSTOMER), session(w.port, TRUSTED)
    g, t = [], []
    try:
        for i in range(10):                    # warm up both paths
            rcpt_ms(granted, i), rcpt_ms(trusted, i)
        for i in range(10, 10 + SAMPLES):
            g.append(rcpt_ms(granted, i))
            t.append(rcpt_ms(trusted, i))
    finally:
        for s in (granted, trusted):
            s.close()
    mg, mt = statistics.median(g), statistics.median(t)
    return mg, mt, mg - mt


def main():
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(work / "redis").start()
    sink = PySink()
    wirings, gate = [], None
    try:
        start_all(wirings)
        gate = one_gate(work, redis, sink, wirings)
        say("   answers: no grant | after a grant | Redis down | local mail, Redis down")
        for w in wirings:
            before = rcpt_reply(w.port, NEIGHBOUR, REMOTE)
            gate.grant(None, CUSTOMER, "alice")
            after = rcpt_reply(w.port, CUSTOMER, REMOTE)
            redis.stop()
            down = rcpt_reply(w.port, CUSTOMER, REMOTE)
            local = rcpt_reply(w.port, NEIGHBOUR, LOCAL)
            redis.start()
            time.sleep(1.2)                    # the gate reconnects
            say(f"   {w.name}:")
            for label, text in (("no grant", before), ("granted", after),
                                ("Redis down", down), ("local", local)):
                say(f"       {label:11s} {text}")
        gate.grant(None, CUSTOMER, "alice")
        say("")
        say(f"   latency of RCPT TO <{REMOTE}>, medians of {SAMPLES} each:")
        for w in wirings:
            mg, mt, added = latency(w)
            say(f"   {w.name:46s} granted {mg:6.2f} ms, trusted {mt:6.2f} ms: "
                f"added {added:5.2f} ms")
    finally:
        if gate is not None:
            gate.stop(check=False)
        for w in wirings:
            w.mta.stop()
        sink.stop()
        redis.stop()


if __name__ == "__main__":
    main()
