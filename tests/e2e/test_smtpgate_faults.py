"""Redis killed during a relay storm: relays that need a grant get 451,
never 250 or 5xx; local mail keeps flowing; the gate recovers by itself
within 2 s of Redis returning, without leaking descriptors."""

import os
import smtplib
import time

from conftest import ClientThreads, wait_until
from smtp_harness import gate_factory, sink  # noqa: F401

GRANTED = "127.0.6.1"


class RelayStorm(ClientThreads):
    """Threads each keeping one SMTP session and probing RCPTs in a loop."""

    def __init__(self, gate, threads=4):
        super().__init__(threads)
        self.gate, self.answers = gate, []

    def run(self, i):
        while not self.stop.is_set():
            try:
                with self.gate.smtp(GRANTED) as s:
                    s.ehlo("storm.example")
                    s.mail("alice@example.net")
                    for _ in range(20):
                        if self.stop.is_set():
                            break
                        code, _ = s.rcpt("far@remote.example")
                        local, _ = s.rcpt("bob@example.net")
                        with self.lock:
                            self.answers.append((time.monotonic(), code, local))
                    s.rset()
            except (smtplib.SMTPException, OSError) as e:
                with self.lock:
                    self.answers.append((time.monotonic(), repr(e), None))


def test_redis_killed_during_a_relay_storm(gate_factory, redis_server):
    gate = gate_factory()
    gate.grant(None, GRANTED, "alice")
    fds = lambda: len(os.listdir(f"/proc/{gate.proc.pid}/fd"))  # noqa: E731
    with RelayStorm(gate) as storm:
        time.sleep(1)
        fds_before = fds()
        redis_server.stop()
        down_at = time.monotonic()
        time.sleep(2)
        redis_server.start()
        up_at = time.monotonic()
        gate.grant(None, GRANTED, "alice")       # the data went with Redis
        time.sleep(2.5)
    answers = storm.answers
    errors = [a for a in answers if isinstance(a[1], str)]
    assert errors == [], errors[:3]
    assert all(code in (250, 451) for _, code, _ in answers), \
        {code for _, code, _ in answers}
    assert all(local == 250 for _, _, local in answers), \
        "local mail must not depend on Redis"
    during = [code for t, code, _ in answers if down_at + 0.6 < t < up_at]
    assert during and set(during) == {451}, "relays during the outage"
    recovered = [t for t, code, _ in answers if t > up_at and code == 250]
    assert recovered and recovered[0] - up_at < 2.0, "recovery within 2 s"
    assert "event=redis_up" in gate.log()
    wait_until(lambda: fds() <= fds_before + 2, 5, what="descriptors to settle")
    print(f"\n{len(answers)} RCPT pairs; 451 during the outage "
          f"({len(during)}); 250 again {recovered[0] - up_at:.2f}s after "
          f"Redis returned")
