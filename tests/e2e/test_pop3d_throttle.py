"""Brute force: failed logins counted in Redis per address and per user,
shared by every pop3d, with growing delays and then [LOGIN-DELAY]."""

import time
import poplib


from conftest import write_config
from pop3_harness import pop3d_factory  # noqa: F401

THROTTLE = {"window": 60, "delay_after": 2, "delay_ms": 300,
            "max_delay_ms": 600, "block_after": 5, "user_block_after": 8}


def throttled(factory, **throttle):
    d = factory(start=False, auth_fail_delay_ms=0)
    d.sections["throttle"] = dict(THROTTLE, **throttle)
    write_config(d.config, d.sections)
    return d.start()


def attempt(d, source, user="alice", pw="wrong"):
    """(answer, seconds) of one USER/PASS on a new connection."""
    p = d.client(source)
    p.user(user)
    t0 = time.monotonic()
    try:
        answer = p.pass_(pw)
    except poplib.error_proto as e:
        answer = e.args[0]
    took = time.monotonic() - t0
    try:
        p.quit()
    except (poplib.error_proto, OSError):
        pass
    return answer, took


def test_failures_are_counted_in_redis_with_a_ttl(pop3d_factory, rdb):
    d = throttled(pop3d_factory)
    for _ in range(2):
        assert attempt(d, "127.0.1.1")[0] == b"-ERR [AUTH] Authentication failed."
    assert rdb.get("authbridge:fail:127.0.1.1") == "2"
    assert rdb.get("authbridge:failuser:alice") == "2"
    assert 0 < rdb.ttl("authbridge:fail:127.0.1.1") <= 60


def test_delay_grows_after_delay_after(pop3d_factory):
    d = throttled(pop3d_factory)
    times = [attempt(d, "127.0.1.2")[1] for _ in range(4)]
    assert times[0] < 0.25 and times[1] < 0.25      # 0 and 1 failures before
    assert 0.3 <= times[2] < 0.6                     # 2 failures: 300 ms
    assert times[3] >= 0.6                           # 3 failures: 600 ms (cap)


def test_block_after_refuses_even_the_right_password(pop3d_factory, rdb):
    d = throttled(pop3d_factory, delay_ms=0)
    for _ in range(5):
        attempt(d, "127.0.1.3")
    answer, _ = attempt(d, "127.0.1.3", pw="secret")
    assert answer == b"-ERR [LOGIN-DELAY] Too many failed logins; try again later."
    assert rdb.hgetall("authbridge:grant:127.0.1.3") == {}
    assert "event=login_blocked" in d.log() and "reason=address" in d.log()
    # Other addresses are not affected.
    assert attempt(d, "127.0.1.4", pw="secret")[0].startswith(b"+OK")


def test_counters_are_shared_between_pop3d_hosts(pop3d_factory):
    a = throttled(pop3d_factory, delay_ms=0)
    b = throttled(pop3d_factory, delay_ms=0)
    for _ in range(3):
        attempt(a, "127.0.1.5")
    for _ in range(2):
        attempt(b, "127.0.1.5")
    assert attempt(a, "127.0.1.5", pw="secret")[0].startswith(b"-ERR [LOGIN-DELAY]")


def test_distributed_guessing_blocks_the_user(pop3d_factory):
    d = throttled(pop3d_factory, delay_ms=0)
    for i in range(8):
        attempt(d, f"127.0.2.{i + 1}", user="dave")
    answer, _ = attempt(d, "127.0.2.100", user="dave", pw="dave-pw")
    assert answer.startswith(b"-ERR [LOGIN-DELAY]")
    assert "reason=user" in d.log()
    assert attempt(d, "127.0.2.100", user="alice", pw="secret")[0] \
        .startswith(b"+OK")


def test_success_forgives_failures_against_that_user_from_that_address(
        pop3d_factory, rdb):
    d = throttled(pop3d_factory, delay_ms=0)
    for _ in range(3):
        attempt(d, "127.0.1.6")
    assert attempt(d, "127.0.1.6", pw="secret")[0].startswith(b"+OK")
    assert rdb.get("authbridge:fail:127.0.1.6") is None
    assert rdb.get("authbridge:failuser:alice") is None
    assert rdb.get("authbridge:failpair:127.0.1.6:alice") is None


def test_an_attackers_own_account_never_resets_its_guesses(pop3d_factory,
                                                           rdb):
    """Wrong passwords against other users, then the attacker's own right
    one, again and again: the guesses still add up to the block."""
    d = throttled(pop3d_factory, delay_ms=0, block_after=20,
                  user_block_after=1000, delay_after=1000)
    checked = 0
    for _ in range(3):
        for _ in range(15):
            if attempt(d, "127.1.1.1", user="bob")[0].startswith(b"-ERR [AUTH]"):
                checked += 1
        attempt(d, "127.1.1.1", user="alice", pw="secret")
    assert checked == 20, checked
    assert attempt(d, "127.1.1.1", user="alice", pw="secret")[0] \
        .startswith(b"-ERR [LOGIN-DELAY]")
    assert int(rdb.get("authbridge:fail:127.1.1.1")) >= 20


def test_parallel_guesses_cannot_overshoot_the_limit(pop3d_factory, rdb):
    """30 guesses at once from one address with 12 already counted and a
    limit of 20: exactly 8 passwords are checked, the rest are blocked."""
    d = throttled(pop3d_factory, delay_ms=0, block_after=20,
                  user_block_after=1000, delay_after=1000)
    rdb.set("authbridge:fail:127.1.1.2", 12, ex=60)
    clients = []
    for _ in range(30):
        r = d.raw("127.1.1.2")
        r.send("USER carol\r\n")
        assert r.line().startswith(b"+OK")
        clients.append(r)
    for r in clients:                      # every PASS before any answer
        r.send("PASS wrong\r\n")
    answers = []
    for r in clients:
        answers.append(r.line())
        r.close()
    checked = sum(a.startswith(b"-ERR [AUTH]") for a in answers)
    blocked = sum(a.startswith(b"-ERR [LOGIN-DELAY]") for a in answers)
    assert (checked, blocked) == (8, 22), answers


def test_without_redis_logins_still_work(pop3d_factory, redis_server):
    d = throttled(pop3d_factory)
    redis_server.stop()
    for _ in range(6):
        assert attempt(d, "127.0.1.7")[0].startswith(b"-ERR [AUTH]")
    assert attempt(d, "127.0.1.7", pw="secret")[0].startswith(b"+OK")


def test_throttle_survives_a_flushed_script_cache(pop3d_factory, rdb):
    """The counting script is sent by its SHA-1; a Redis that lost its
    scripts (restart, failover, SCRIPT FLUSH) gets it again."""
    d = throttled(pop3d_factory, delay_ms=0)
    attempt(d, "127.1.1.3")
    rdb.script_flush()
    attempt(d, "127.1.1.3")
    assert rdb.get("authbridge:fail:127.1.1.3") == "2"
    assert "event=redis_error" not in d.log()
