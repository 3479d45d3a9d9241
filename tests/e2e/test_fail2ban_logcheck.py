"""The log files admins feed to their tools, checked with the tools and
real log lines: the daemons run, real clients fail and succeed at logging
in, and

  - fail2ban-regex with conf/fail2ban/filter.d/authbridge.conf finds
    exactly the addresses that failed (POP3 logins, SMTP AUTH), in every
    form a line reaches a log: the journal (the daemons under systemd:
    JOURNAL_STREAM set, "<N>" priorities), syslog (traditional and RFC
    3339 time stamps), stderr into a file;
  - the logcheck rules (conf/logcheck/authbridge, egrep -v as logcheck
    runs them) remove the routine lines and keep the failures.

The syslog and journal lines are the daemons' own messages with the
prefix rsyslog or `journalctl -o short` puts in front (the message is
what syslog(3) sends: the same text the journal gets).
"""

import os
import poplib
import re
import signal
import smtplib
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, RedisServer, unverified_context, wait_until
from pop3_harness import Client, Pop3d
from smtp_harness import Gate, PySink

FILTER = REPO / "conf/fail2ban/filter.d/authbridge.conf"
JAIL = REPO / "conf/fail2ban/jail.d/authbridge.conf"
LOGCHECK = REPO / "conf/logcheck/authbridge"
HOST = "mx1"

POP_FAILS = ["127.0.0.21", "127.0.0.22", "127.0.0.24"]
POP_OK = "127.0.0.23"
GATE_FAILS = ["127.0.0.31", "127.0.0.33"]
GATE_OK = "127.0.0.32"


def journal_env(log_path):
    """What systemd sets when stderr is the journal: its device:inode."""
    log_path.touch()
    st = os.stat(log_path)
    return {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


# A user name that tries to plant another address in the log line (no
# spaces: both daemons refuse those outright).
INJECT = 'x"rip=192.0.2.1'


def pop3_traffic(d):
    # A wrong password, an unknown user, the planted address.
    for source, user in zip(POP_FAILS, ["alice", "nosuchuser", INJECT]):
        c = Client(d.port, source)
        c.user(user)
        with pytest.raises(poplib.error_proto):
            c.pass_("wrong")
        c.quit()
    c = Client(d.port, POP_OK)
    c.user("alice")
    c.pass_("secret")
    c.quit()
    return rf"event=logout .*rip={POP_OK}"


def smtp_auth(g, source, user, password):
    """One AUTH PLAIN after STARTTLS, then a relay if it worked."""
    s = g.smtp(source)
    s.ehlo("client.example")
    s.starttls(context=unverified_context())
    s.ehlo("client.example")
    s.user, s.password = user, password
    try:
        s.auth("PLAIN", s.auth_plain)
    except smtplib.SMTPAuthenticationError:
        s.quit()
        return
    s.mail("alice@example.net")
    s.rcpt("friend@remote.example")
    s.data(b"Subject: hi\r\n\r\nhello\r\n")
    s.quit()


def gate_traffic(g):
    for source, user in zip(GATE_FAILS, ["alice", INJECT]):
        smtp_auth(g, source, user, "wrong")
    smtp_auth(g, GATE_OK, "alice", "secret")
    # A refused relay and a local delivery: routine lines.
    s = g.smtp("127.0.0.34")
    s.ehlo("client.example")
    s.mail("someone@remote.example")
    s.rcpt("friend@remote.example")
    s.rcpt("alice@example.net")
    s.quit()
    return r"event=disconnect .*client=127\.0\.0\.34"


def run(daemon, traffic, env, redis):
    """Start, serve traffic, reload, survive a Redis outage, stop: the
    log lines, debug lines left out (a daemon without -v has none)."""
    daemon.env = env
    daemon.start()
    try:
        daemon.wait_log(traffic(daemon))
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"event=reloaded")
        redis.stop()                  # a failure that logcheck must keep
        daemon.wait_log(r"event=redis_down")
        redis.start()
        wait_until(lambda: daemon.log().count("event=redis_up") >= 2, 10,
                   what="Redis up again")
    except BaseException:
        daemon.kill()                 # no daemon outlives a failed set-up
        raise
    daemon.stop()
    return [x for x in daemon.log().splitlines()
            if not re.match(r"^(<7>|\S+ \w+\[\d+\]: debug: )", x)]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """{"journal"|"stderr": {"pop3d"|"smtpgate": [lines]}} as the daemons
    wrote them, plus the pids."""
    tmp = tmp_path_factory.mktemp("logs")
    redis = RedisServer(tmp / "redis").start()
    sink = PySink()
    out = {}
    try:
        for mode in ("journal", "stderr"):
            p = Pop3d(tmp / f"p-{mode}", redis)
            g = Gate(tmp / f"g-{mode}", redis, sink.address)
            out[mode] = {}
            for name, d, traffic in (("pop3d", p, pop3_traffic),
                                     ("smtpgate", g, gate_traffic)):
                env = journal_env(d.log_path) if mode == "journal" else None
                out[mode][name] = run(d, traffic, env, redis)
    finally:
        sink.stop()
        redis.stop()
    return out


# ---- the forms a line takes in a log -------------------------------------------

STDERR_LINE = re.compile(r"^\S+Z (\w+)\[(\d+)\]: \w+: (event=.*)$")


def journal_short(lines, name):
    """`journalctl -o short`: time, host, the unit's program[pid], message."""
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^<(\d)>(event=.*)$", line)
        assert m, f"not a journal line: {line!r}"
        out.append(f"Dec 01 10:{i // 60 % 60:02d}:{i % 60:02d} {HOST} "
                   f"authbridge-{name}[4242]: {m.group(2)}")
    return out


def messages(lines):
    """The messages of stderr lines (what syslog(3) would have sent)."""
    out = []
    for line in lines:
        m = STDERR_LINE.match(line)
        assert m, f"not a stderr line: {line!r}"
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


def syslog_traditional(lines):
    return [f"Dec  1 10:00:{i % 60:02d} {HOST} {prog}[{pid}]: {msg}"
            for i, (prog, pid, msg) in enumerate(messages(lines))]


def syslog_rfc3339(lines):
    return [f"2026-12-01T10:00:{i % 60:02d}.123456+00:00 {HOST} "
            f"{prog}[{pid}]: {msg}"
            for i, (prog, pid, msg) in enumerate(messages(lines))]


def all_forms(logs):
    """{form: lines of both daemons}."""
    j, s = logs["journal"], logs["stderr"]
    both = lambda f, mode: [x for n in ("pop3d", "smtpgate")   # noqa: E731
                            for x in f(mode[n])]
    return {
        "journal": [x for n in ("pop3d", "smtpgate")
                    for x in journal_short(j[n], n)],
        "syslog": both(syslog_traditional, s),
        "syslog-rfc3339": both(syslog_rfc3339, s),
        "stderr": both(lambda x: x, s),
    }


def test_journal_mode_writes_priorities_instead_of_time_and_name(logs):
    lines = logs["journal"]["pop3d"]
    assert any(line.startswith("<6>event=started ") for line in lines)
    assert any(line.startswith("<4>event=redis_down ") for line in lines)
    assert not any(re.match(r"^\d{4}-", line) for line in lines)
    # Without JOURNAL_STREAM, the stamped form as before.
    assert all(STDERR_LINE.match(line) for line in logs["stderr"]["pop3d"])


# ---- fail2ban ------------------------------------------------------------------

def fail2ban_ips(tmp_path, lines):
    """The addresses fail2ban-regex's filter finds in lines, in order."""
    conf = tmp_path / "fail2ban"
    (conf / "filter.d").mkdir(parents=True)
    for f in ("common.conf",):
        (conf / "filter.d" / f).write_text(
            Path("/etc/fail2ban/filter.d", f).read_text())
    (conf / "filter.d/authbridge.conf").write_text(FILTER.read_text())
    log = tmp_path / "lines.log"
    log.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["fail2ban-regex", "-o", "ip", str(log),
                          str(conf / "filter.d/authbridge.conf")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize("form", ["journal", "syslog", "syslog-rfc3339",
                                  "stderr"])
def test_fail2ban_filter_finds_exactly_the_failed_addresses(tmp_path, logs,
                                                            form):
    lines = all_forms(logs)[form]
    ips = fail2ban_ips(tmp_path, lines)
    # Every failure once (the injected user name changes nothing), and no
    # address that logged in, relayed or was merely refused a relay.
    assert sorted(ips) == sorted(POP_FAILS + GATE_FAILS), "\n".join(lines)


def test_fail2ban_filter_counts_throttled_attempts(tmp_path):
    lines = [
        "Dec 01 10:00:00 mx1 authbridge-pop3d[7]: event=login_blocked "
        "sid=1 user=alice rip=198.51.100.7 reason=address",
        "Dec 01 10:00:01 mx1 authbridge-smtpgate[8]: event=auth_blocked "
        "sid=2 client=2001:db8::7 user=\"a b\" reason=user",
    ]
    assert fail2ban_ips(tmp_path, lines) == ["198.51.100.7", "2001:db8::7"]


def test_example_jail_uses_the_filter_and_starts_disabled():
    text = JAIL.read_text()
    assert re.search(r"^\[authbridge\]$", text, re.M)
    assert re.search(r"^enabled\s*=\s*false$", text, re.M)
    assert re.search(r"^filter\s*=\s*authbridge$", text, re.M)


# ---- logcheck ------------------------------------------------------------------

ROUTINE = ("started", "stopping", "stopped", "reloaded", "users_reloaded",
           "redis_up", "login", "logout", "disconnect", "rcpt", "message")
FAILURES = ("auth_failed", "redis_down")


def event_of(line):
    return re.search(r"event=(\w+)", line).group(1)


@pytest.mark.parametrize("form", ["journal", "syslog", "syslog-rfc3339"])
def test_logcheck_rules_drop_routine_lines_and_keep_failures(tmp_path, logs,
                                                            form):
    lines = all_forms(logs)[form]
    src = tmp_path / "lines.log"
    src.write_text("\n".join(lines) + "\n")
    # As logcheck applies ignore.d.server files.
    out = subprocess.run(["grep", "-E", "-v", "-f", str(LOGCHECK), str(src)],
                         capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    left = out.stdout.splitlines()
    kept = {event_of(x) for x in left}
    seen = {event_of(x) for x in lines}
    assert set(ROUTINE) <= seen, "the scenario lacks routine lines"
    # Left: the failures, and the warning about running as root (the
    # test's daemons have no `user`).
    assert kept <= set(FAILURES) | {"auth", "running_as_root",
                                    "redis_tracking"}, "\n".join(left)
    # The grant cache: "on" is routine, "off" (lost with Redis) is not.
    tracking = [x for x in left if event_of(x) == "redis_tracking"]
    assert tracking and all("state=off" in x for x in tracking), tracking
    for event in FAILURES:
        assert sum(event_of(x) == event for x in left) == \
            sum(event_of(x) == event for x in lines), event
    failed_auth = [x for x in lines if " result=failed" in x]
    assert failed_auth and set(failed_auth) <= set(left)
    # A successful SMTP AUTH is routine; a failed one is not.
    assert not any(event_of(x) == "auth" and "result=ok" in x for x in left)
