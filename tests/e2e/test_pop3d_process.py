"""pop3d as a process: -t, -d, SIGHUP reloads, SIGTERM stops gracefully."""

import os
import re
import signal
import ssl
import subprocess
import time
import poplib

import pytest

from conftest import program, wait_listening, wait_until
from pop3_harness import Pop3d, make_tls, pop3d, pop3d_factory  # noqa: F401


def run_t(config):
    return subprocess.run([str(program("pop3d/pop3d")), "-c", str(config), "-t"],
                          capture_output=True, text=True, timeout=10)


def test_check_mode_accepts_a_good_config(tmp_path, redis_server):
    d = Pop3d(tmp_path, redis_server)
    out = run_t(d.config)
    assert out.returncode == 0 and "configuration OK" in out.stdout


def test_check_mode_reports_every_problem(tmp_path, redis_server):
    d = Pop3d(tmp_path, redis_server, idle_timeout="soon", bogus_key=1,
              plaintext_auth="maybe")
    out = run_t(d.config)
    assert out.returncode == 1
    errs = out.stderr.strip().splitlines()
    assert len(errs) == 3, out.stderr
    assert all(re.match(rf"{re.escape(str(d.config))}:\d+: ", e) for e in errs)


def test_check_mode_refuses_readable_secrets_and_bad_users(tmp_path,
                                                           redis_server):
    d = Pop3d(tmp_path, redis_server)
    d.users.chmod(0o644)
    out = run_t(d.config)
    assert out.returncode == 1 and "readable by everyone" in out.stderr
    d.users.chmod(0o600)
    d.users.write_text("alice:{SSHA}xyz::::/x::\nbroken line\n")
    out = run_t(d.config)
    assert out.returncode == 1
    assert f"{d.users}:1: unsupported password scheme" in out.stderr
    assert f"{d.users}:2: expected user:password" in out.stderr


def test_check_mode_refuses_a_key_that_does_not_match(tmp_path, redis_server):
    d = Pop3d(tmp_path, redis_server)
    _, other_key = make_tls(tmp_path / "other")
    d.rewrite_config(tls_key=str(other_key))
    out = run_t(d.config)
    assert out.returncode == 1 and "does not match" in out.stderr


def cert_fingerprint(port):
    der = ssl.get_server_certificate(("127.0.0.1", port))
    return der


def test_sighup_reloads_config_and_certificate(pop3d, tmp_path):
    before = cert_fingerprint(pop3d.tls_port)
    held = pop3d.client()
    held.user("alice")
    held.pass_("secret")
    new_cert, new_key = make_tls(tmp_path / "newtls")
    pop3d.rewrite_config(plaintext_auth="never", tls_cert=str(new_cert),
                         tls_key=str(new_key))
    pop3d.signal(signal.SIGHUP)
    wait_until(lambda: "event=reloaded" in pop3d.log(), 5, what="reload")
    assert cert_fingerprint(pop3d.tls_port) != before
    p = pop3d.client()
    with pytest.raises(poplib.error_proto, match="disabled"):
        p.user("alice")
    p.quit()
    assert held.noop() == b"+OK"      # the running session is untouched
    held.quit()


def test_sighup_with_a_broken_config_keeps_the_old_one(pop3d):
    pop3d.rewrite_config(idle_timeout="never")
    pop3d.signal(signal.SIGHUP)
    wait_until(lambda: "event=reload_failed" in pop3d.log(), 5, what="reload")
    assert re.search(r"event=config_error msg=.*idle_timeout", pop3d.log())
    p = pop3d.client()
    p.user("alice")
    assert p.pass_("secret").startswith(b"+OK")
    p.quit()


def test_user_file_changes_are_picked_up_without_a_signal(pop3d):
    time.sleep(0.05)
    with open(pop3d.users, "a") as f:
        f.write(f"erin:{{PLAIN}}erin-pw::::{pop3d.home / 'erin'}::\n")
    time.sleep(1.1)               # checked at most once a second
    p = pop3d.client()
    p.user("erin")
    assert p.pass_("erin-pw").startswith(b"+OK")
    p.quit()
    assert "event=users_reloaded" in pop3d.log()


def test_sigterm_closes_sessions_without_deleting(pop3d):
    pop3d.deliver("alice", b"keep me\n")
    p = pop3d.client()
    p.user("alice")
    p.pass_("secret")
    p.dele(1)
    idle = pop3d.raw("127.0.0.9")
    pop3d.signal(signal.SIGTERM)
    assert pop3d.proc.wait(timeout=10) == 0
    with pytest.raises(poplib.error_proto, match="shutting down"):
        p.noop()
    assert idle.line().startswith(b"-ERR [SYS/TEMP] Server shutting down")
    assert len(pop3d.files("alice")) == 1
    log = pop3d.log()
    assert "event=stopping" in log and "event=stopped" in log


def daemons_using(config):
    pids = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and str(config).encode() in \
                    open(f"/proc/{p}/cmdline", "rb").read():
                pids.append(int(p))
        except OSError:
            pass
    return pids


def test_detach_runs_in_the_background(tmp_path, redis_server):
    d = Pop3d(tmp_path, redis_server)
    try:
        out = subprocess.run([str(program("pop3d/pop3d")), "-c", str(d.config),
                              "-d"], capture_output=True, timeout=10)
        assert out.returncode == 0
        wait_listening(d.port, 5, what="the detached daemon")
        pids = daemons_using(d.config)
        assert len(pids) == 1
        assert os.getsid(pids[0]) != os.getsid(0), "not in its own session"
        os.kill(pids[0], signal.SIGTERM)
        wait_until(lambda: not daemons_using(d.config), 10,
                   what="the detached daemon to stop")
    finally:
        for pid in daemons_using(d.config):
            os.kill(pid, signal.SIGKILL)


def test_root_without_user_warns_loudly(pop3d):
    assert re.search(r"warning: event=running_as_root msg=\"no 'user' set",
                     pop3d.log())


def test_world_readable_key_refuses_to_start(tmp_path, redis_server):
    d = Pop3d(tmp_path, redis_server)
    d.key.chmod(0o644)
    out = subprocess.run([str(program("pop3d/pop3d")), "-c", str(d.config)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 1
    assert f"tls_key: {d.key} is readable by everyone" in out.stderr


def crypt_login(d, pw="hunter2"):
    p = d.client()
    p.user("bob")
    try:
        return p.pass_(pw)
    except poplib.error_proto as e:
        return e.args[0]
    finally:
        p.quit()


def test_credential_cache_remembers_only_successes(pop3d_factory):
    d = pop3d_factory(auth_cache_ttl=60)
    assert crypt_login(d).startswith(b"+OK")
    assert crypt_login(d).startswith(b"+OK")
    logins = re.findall(r"event=login .*user=bob .*auth=(\w+)", d.log())
    assert logins == ["check", "cache"]
    assert crypt_login(d, "wrong").startswith(b"-ERR [AUTH]")
    # Any change of the user file empties the cache.
    time.sleep(0.05)
    d.users.write_text(d.users.read_text())
    os.utime(d.users)
    time.sleep(1.1)
    assert crypt_login(d).startswith(b"+OK")
    assert re.findall(r"event=login .*user=bob .*auth=(\w+)", d.log())[-1] \
        == "check"


def test_credential_cache_is_off_by_default(pop3d):
    for _ in range(2):
        assert crypt_login(pop3d).startswith(b"+OK")
    assert re.findall(r"event=login .*user=bob .*auth=(\w+)", pop3d.log()) \
        == ["check", "check"]
