"""An unknown user costs at least what the costliest known user costs,
also in a user file that mixes {PLAIN} users with hashes: the answer's
timing tells nobody whether a user exists (nor who is {PLAIN})."""

import statistics
import time
import warnings

from conftest import write_config
from pop3_harness import pop3d_factory  # noqa: F401

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt
    SLOW_HASH = crypt.crypt("right", "$6$rounds=200000$saltsalt$")


def wrong_password_seconds(d, user, source):
    """Median time to a wrong-password answer (no failure delay)."""
    times = []
    for i in range(7):
        r = d.raw(f"{source}{i + 1}")
        r.send(f"USER {user}\r\n")
        assert r.line().startswith(b"+OK")
        t0 = time.monotonic()
        r.send("PASS wrong\r\n")
        assert r.line().startswith(b"-ERR [AUTH]")
        times.append(time.monotonic() - t0)
        r.close()
    return statistics.median(times)


def mixed_users(d, with_slow=True):
    # Mostly {PLAIN} (what used to pick the dummy), one slow hash.
    lines = [f"p{i}:{{PLAIN}}pw{i}::::{d.home / 'p'}::" for i in range(5)]
    if with_slow:
        lines.append(f"slow:{{SHA512-CRYPT}}{SLOW_HASH}::::{d.home / 's'}::")
    d.users.write_text("\n".join(lines) + "\n")


def untimed_pop3d(factory):
    d = factory(start=False, auth_fail_delay_ms=0)
    d.sections["throttle"] = {"delay_after": 1000}
    write_config(d.config, d.sections)
    return d


def test_unknown_and_plain_users_cost_what_the_costliest_hash_costs(
        pop3d_factory):
    d = untimed_pop3d(pop3d_factory)
    mixed_users(d)
    d.start()
    slow = wrong_password_seconds(d, "slow", "127.2.0.")
    unknown = wrong_password_seconds(d, "nobody-here", "127.2.1.")
    plain = wrong_password_seconds(d, "p1", "127.2.2.")
    assert slow > 0.02, slow                # the hash is what takes time
    assert unknown >= 0.5 * slow, (unknown, slow)
    assert plain >= 0.5 * slow, (plain, slow)


def test_a_new_hash_class_in_a_reloaded_file_raises_the_dummy_cost(
        pop3d_factory):
    """The class is measured on a worker, then the new file takes effect."""
    d = untimed_pop3d(pop3d_factory)
    mixed_users(d, with_slow=False)
    d.start()
    fast = wrong_password_seconds(d, "nobody-here", "127.2.3.")
    time.sleep(1.1)                   # a new mtime, and the 1 s check
    mixed_users(d)
    wrong_password_seconds(d, "p1", "127.2.6.")   # a check notices it
    d.wait_log(r"event=users_reloaded .*users=6", timeout=10)
    slow = wrong_password_seconds(d, "slow", "127.2.4.")
    unknown = wrong_password_seconds(d, "nobody-here", "127.2.5.")
    assert slow > 0.02 and fast < 0.5 * slow, (slow, fast)
    assert unknown >= 0.5 * slow, (unknown, slow)
