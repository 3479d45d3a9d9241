"""smtpgate keeps its grant lookups in memory, exact through Redis's
client-side caching: a grant revoked, deleted or expired stops being
honoured within milliseconds, a new grant is honoured at once, and a
Redis restart never leaves a stale allow."""

import signal
import socket
import subprocess
import time

from conftest import program, wait_until
from smtp_harness import gate, gate_factory, sink  # noqa: F401
from test_smtpgate_policy import LineClient, policy_request

BOUND_MS = 10          # an invalidation reaches the gate well within this


def hget_calls(rdb):
    return rdb.info("commandstats").get("cmdstat_hget", {}).get("calls", 0)


def tracking(gate, rdb):
    """Wait until the gate's lookups are tracked (its log says so)."""
    gate.wait_log(r"event=redis_tracking state=on")


def ask(c, addr):
    return c.request(policy_request(addr))


def ms_until(c, addr, answer, limit_s=2.0):
    """Poll the policy service until it answers `answer`: milliseconds."""
    t0 = time.monotonic()
    while True:
        if ask(c, addr) == answer:
            return (time.monotonic() - t0) * 1000
        assert time.monotonic() - t0 < limit_s, f"never {answer}"


def test_repeated_lookups_are_answered_from_memory(gate, rdb):
    tracking(gate, rdb)
    gate.grant(rdb, "192.0.2.60", "alice")
    c = LineClient(gate.policy_port)
    assert ask(c, "192.0.2.60") == "action=OK"
    assert ask(c, "192.0.2.61") == "action=DUNNO"
    before = hget_calls(rdb)
    for _ in range(50):
        assert ask(c, "192.0.2.60") == "action=OK"
        assert ask(c, "192.0.2.61") == "action=DUNNO"
    assert hget_calls(rdb) == before, "hits and misses went to Redis"
    c.close()


def test_every_front_door_uses_the_cache(gate, rdb):
    tracking(gate, rdb)
    gate.grant(rdb, "127.0.4.1", "alice")
    w = socket.create_connection(("127.0.0.1", gate.whoson_port), 5)
    w.sendall(b"QUERY 127.0.4.1\n\n")
    assert w.recv(100).startswith(b"+alice")
    before = hget_calls(rdb)
    for _ in range(5):
        w.sendall(b"QUERY 127.0.4.1\n\n")
        assert w.recv(100).startswith(b"+alice")
        with gate.smtp("127.0.4.1") as s:
            s.ehlo("c.example")
            s.mail("alice@example.net")
            assert s.rcpt("x@remote.example")[0] == 250
    assert hget_calls(rdb) == before
    w.close()


def revoke_and_measure(gate, rdb, how):
    tracking(gate, rdb)
    gate.grant(rdb, "192.0.2.62", "alice")
    c = LineClient(gate.policy_port)
    assert ask(c, "192.0.2.62") == "action=OK"
    assert ask(c, "192.0.2.62") == "action=OK"       # now a hit
    how()
    ms = ms_until(c, "192.0.2.62", "action=DUNNO")
    c.close()
    print(f"stale for {ms:.2f} ms")
    assert ms < BOUND_MS, ms


def test_a_revoked_grant_stops_being_honoured_within_10_ms(gate, rdb):
    def revoke():
        out = subprocess.run([str(program("authbridge/authbridge")), "-c",
                              str(gate.config), "revoke", "192.0.2.62"],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
    revoke_and_measure(gate, rdb, revoke)


def test_a_deleted_grant_stops_being_honoured_within_10_ms(gate, rdb):
    revoke_and_measure(gate, rdb,
                       lambda: rdb.delete("authbridge:grant:192.0.2.62"))


def test_an_expired_grant_stops_being_honoured_within_10_ms(gate, rdb):
    tracking(gate, rdb)
    gate.grant(rdb, "192.0.2.63", "alice", ttl=1)
    c = LineClient(gate.policy_port)
    assert ask(c, "192.0.2.63") == "action=OK"
    pttl = rdb.pttl("authbridge:grant:192.0.2.63")
    expires = time.monotonic() + pttl / 1000
    assert ask(c, "192.0.2.63") == "action=OK"       # a hit
    while ask(c, "192.0.2.63") == "action=OK":
        pass
    late_ms = (time.monotonic() - expires) * 1000
    c.close()
    print(f"honoured {late_ms:.2f} ms past its expiry")
    assert late_ms < BOUND_MS, late_ms


def test_a_new_grant_is_honoured_at_once_after_a_cached_miss(gate, rdb):
    tracking(gate, rdb)
    c = LineClient(gate.policy_port)
    assert ask(c, "192.0.2.64") == "action=DUNNO"
    assert ask(c, "192.0.2.64") == "action=DUNNO"    # a cached miss
    gate.grant(rdb, "192.0.2.64", "alice")
    assert ask(c, "192.0.2.64") == "action=OK"       # no wait at all
    c.close()


def test_a_redis_restart_never_leaves_a_stale_allow(gate, rdb, redis_server):
    tracking(gate, rdb)
    gate.grant(rdb, "192.0.2.65", "alice")
    c = LineClient(gate.policy_port)
    assert ask(c, "192.0.2.65") == "action=OK"
    assert ask(c, "192.0.2.65") == "action=OK"
    redis_server.stop()
    # Down: a deferral, never the kept OK.
    assert ask(c, "192.0.2.65").startswith("action=DEFER_IF_REJECT")
    redis_server.start()                   # empty: the grant is gone
    wait_until(lambda: ask(c, "192.0.2.65") == "action=DUNNO", 5,
               what="DUNNO from the restarted Redis")
    for _ in range(20):
        assert ask(c, "192.0.2.65") == "action=DUNNO"
    c.close()


def test_a_reload_empties_the_cache(gate, rdb):
    tracking(gate, rdb)
    gate.grant(rdb, "192.0.2.66", "alice")
    c = LineClient(gate.policy_port)
    assert ask(c, "192.0.2.66") == "action=OK"
    before = hget_calls(rdb)
    gate.signal(signal.SIGHUP)
    gate.wait_log(r"event=reloaded")
    assert ask(c, "192.0.2.66") == "action=OK"
    assert hget_calls(rdb) == before + 1
    c.close()


def test_without_tracking_lookups_go_to_redis(gate, rdb):
    """A connection without tracking (here: the invalidation connection
    killed) means no cache, not stale answers."""
    tracking(gate, rdb)
    gate.grant(rdb, "192.0.2.67", "alice")
    c = LineClient(gate.policy_port)
    assert ask(c, "192.0.2.67") == "action=OK"
    for client in rdb.client_list():
        if "subscribe" in client.get("cmd", ""):
            rdb.client_kill_filter(_id=client["id"])
    gate.wait_log(r"event=redis_tracking state=off")
    rdb.delete("authbridge:grant:192.0.2.67")
    assert ask(c, "192.0.2.67") == "action=DUNNO"
    c.close()
