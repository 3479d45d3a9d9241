"""`authbridge postlogin PROG [ARG...]`: the grant is written before PROG
runs, and PROG always runs, with what it was given. As a checkpassword
link under the real tcpserver (qmail's chain, the README's recipe, with
stand-ins for qmail's own programs) and as a real Dovecot post-login
script."""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (free_port, port_open, program, terminate, wait_until,
                      write_config, base_sections)
from dovecot_harness import (Dovecot, mail_uid_can_read, pop3_login, recipe,
                             wipe_base_dir)
from pop3_harness import Client as Pop3Client

STANDINS = Path(__file__).with_name("qmail_standins.py")
GRANT = "authbridge:grant:"
TIMEOUT_MS = 500


@pytest.fixture
def conf(tmp_path, redis_server):
    sections = base_sections(redis_server)
    sections["redis"]["timeout_ms"] = TIMEOUT_MS
    return write_config(tmp_path / "authbridge.conf", sections)


def postlogin(conf, prog, env, **kw):
    return subprocess.run([str(program("authbridge/authbridge")), "-c",
                           str(conf), "postlogin", *prog], env=env,
                          capture_output=True, text=True, timeout=20, **kw)


PRINT_ARGS_ENV = [sys.executable, "-c",
                  "import json, os, sys; print(json.dumps({'argv': sys.argv, "
                  "'env': dict(os.environ)}))"]


def test_prog_gets_its_arguments_and_environment_untouched(conf, rdb):
    env = {"TCPREMOTEIP": "127.0.11.1", "USER": "alice", "PATH": "/usr/bin:/bin",
           "WEIRD": "a b\tc=d", "EMPTY": "",
           "LC_ALL": "C.UTF-8"}      # else Python adds LC_CTYPE (PEP 538)
    args = ["a b", "", "-c", "--", "$HOME", "ünïcode"]
    out = postlogin(conf, PRINT_ARGS_ENV + args, env)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["argv"][1:] == args and seen["env"] == env
    assert out.stderr == ""               # a good login is silent
    assert rdb.hget(GRANT + "127.0.11.1", "user") == "alice"
    assert rdb.hget(GRANT + "127.0.11.1", "method") == "POSTLOGIN"


# Ignored signals and open descriptors. (Not the blocked mask: Python's
# subprocess itself sometimes hands one child a fully blocked mask.)
SHOW_PROCESS = ["/bin/sh", "-c", "grep -E '^SigIgn' /proc/$$/status; "
                "ls /proc/$$/fd"]


def test_prog_gets_descriptors_and_signals_as_they_came(conf, tmp_path):
    # What PROG sees is what it sees when run directly: the same open
    # descriptors (one more that we pass, none of ours) and signals.
    extra = open(tmp_path / "extra", "w")
    env = {"IP": "127.0.11.2", "USER": "alice", "PATH": "/usr/bin:/bin"}
    direct = subprocess.run(SHOW_PROCESS, env=env, capture_output=True,
                            text=True, pass_fds=(extra.fileno(),))
    via = postlogin(conf, SHOW_PROCESS, env, pass_fds=(extra.fileno(),))
    fd = extra.fileno()
    extra.close()
    assert via.returncode == 0 and via.stdout == direct.stdout
    assert str(fd) in via.stdout.split()


@pytest.mark.parametrize("env,why", [
    ({}, "no grant: no client address (TCPREMOTEIP, TCP6REMOTEIP or IP)"),
    ({"TCPREMOTEIP": "127.0.11.3"},
     "no grant for 127.0.11.3: no user (USER or AUTHENTICATED)"),
    ({"TCPREMOTEIP": "not-an-ip", "USER": "alice"},
     "no grant: the client address is not an IP address"),
    ({"TCP6REMOTEIP": "::1", "USER": "bad user"},
     "no grant for ::1: not a valid user name"),
])
def test_prog_runs_when_the_environment_is_incomplete(conf, rdb, env, why):
    out = postlogin(conf, ["/bin/echo", "ran"], {"PATH": "/bin", **env})
    assert out.returncode == 0 and out.stdout == "ran\n"
    assert out.stderr == f"authbridge postlogin: {why}\n"
    assert rdb.keys(GRANT + "*") == []


def test_courier_and_tcpserver6_variables_are_read(conf, rdb):
    # Courier's AUTHENTICATED wins over a USER left from the shell that
    # started the server.
    out = postlogin(conf, ["/bin/true"], {"TCP6REMOTEIP": "2001:db8::7",
                                         "AUTHENTICATED": "carol",
                                         "USER": "root"})
    assert out.returncode == 0, out.stderr
    assert rdb.hget(GRANT + "2001:db8::7", "user") == "carol"


def test_prog_runs_when_the_configuration_cannot_be_read(tmp_path):
    missing = tmp_path / "nope.conf"
    out = postlogin(missing, ["/bin/echo", "ran"],
                    {"IP": "127.0.11.4", "USER": "alice"})
    assert out.returncode == 0 and out.stdout == "ran\n"
    assert "the configuration cannot be used" in out.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text("[redis]\nnonsense = 1\n")
    out = postlogin(bad, ["/bin/echo", "ran"],
                    {"IP": "127.0.11.4", "USER": "alice"})
    assert out.returncode == 0 and out.stdout == "ran\n"


def test_prog_runs_when_redis_is_down_or_hung(conf, redis_server, rdb):
    env = {"IP": "127.0.11.5", "USER": "alice"}
    redis_server.pause()
    try:
        t0 = time.monotonic()
        out = postlogin(conf, ["/bin/echo", "ran"], env)
        took = time.monotonic() - t0
    finally:
        redis_server.resume()
    assert out.returncode == 0 and out.stdout == "ran\n"
    assert took < TIMEOUT_MS / 1000 + 1.5
    assert out.stderr == ("authbridge postlogin: no grant for 127.0.11.5 "
                          f"user alice: no answer from Redis within "
                          f"{TIMEOUT_MS} ms\n")
    redis_server.stop()
    out = postlogin(conf, ["/bin/echo", "ran"], env)
    assert out.returncode == 0 and out.stdout == "ran\n"
    assert "cannot connect to Redis" in out.stderr


def test_a_prog_that_cannot_run_is_a_temporary_failure(conf):
    out = postlogin(conf, ["/nonexistent/pop3d"], {"IP": "127.0.11.6",
                                                  "USER": "alice"})
    assert out.returncode == 111
    assert "cannot run /nonexistent/pop3d" in out.stderr


# ---- qmail's chain under tcpserver --------------------------------------------

def qmail_chain(port, conf):
    """The README's tcpserver line, with this test's port and programs."""
    line = recipe("postlogin-qmail").replace("\\\n", " ")
    words = shlex.split(line)
    me = [sys.executable, str(STANDINS)]
    subst = {"0": ["127.0.0.1"], "110": [str(port)],
             "qmail-popup": me + ["popup"], "/bin/checkpassword":
             me + ["checkpassword"], "qmail-pop3d": me + ["pop3d"],
             "authbridge": [str(program("authbridge/authbridge"))],
             "/etc/authbridge/authbridge.conf": [str(conf)]}
    return [w2 for w in words for w2 in subst.get(w, [w])]


@pytest.fixture
def tcpserver(tmp_path, conf, redis_server):
    port = free_port()
    records = tmp_path / "records"
    records.mkdir()
    log = open(tmp_path / "tcpserver.log", "w")
    env = {"PATH": os.environ["PATH"], "AB_PASSWORDS": "alice:secret",
           "AB_RECORD_DIR": str(records), "AB_MARK": "passed through",
           "AB_REDIS_PORT": str(redis_server.port)}
    proc = subprocess.Popen(qmail_chain(port, conf), env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    wait_until(lambda: port_open(port), 5, what="tcpserver")
    proc.port, proc.records, proc.log_path = port, records, tmp_path / \
        "tcpserver.log"
    yield proc
    terminate(proc)
    log.close()


def qmail_login(port, source, password="secret"):
    p = Pop3Client(port, source)
    p.user("alice")
    try:
        reply = p.pass_(password)
    except Exception as e:
        reply = str(e).encode()
    try:
        p.quit()
    except Exception:
        p.close()
    return reply


def test_qmail_chain_the_grant_is_there_before_pop3d_runs(tcpserver, rdb):
    assert qmail_login(tcpserver.port, "127.0.12.1").startswith(b"+OK")
    assert rdb.hget(GRANT + "127.0.12.1", "user") == "alice"   # no sleep
    note = json.loads((tcpserver.records / "127.0.12.1.json").read_text())
    assert note["grant_user_at_start"] == "alice"
    assert note["argv"][1:] == ["pop3d", "Maildir"]
    env = note["env"]
    assert env["TCPREMOTEIP"] == "127.0.12.1" and env["USER"] == "alice"
    assert env["AB_MARK"] == "passed through" and env["PROTO"] == "TCP"


def test_qmail_chain_a_wrong_password_never_reaches_postlogin(tcpserver, rdb):
    assert b"-ERR" in qmail_login(tcpserver.port, "127.0.12.2", "wrong")
    assert rdb.keys(GRANT + "*") == []


def test_qmail_chain_logins_go_on_without_redis(tcpserver, redis_server,
                                                rdb):
    redis_server.stop()
    assert qmail_login(tcpserver.port, "127.0.12.3").startswith(b"+OK")
    note = json.loads((tcpserver.records / "127.0.12.3.json").read_text())
    assert note["grant_user_at_start"] is None
    wait_until(lambda: "no grant for 127.0.12.3 user alice: cannot connect"
               in tcpserver.log_path.read_text(), 5, what="the reason logged")


# ---- a Dovecot post-login script ------------------------------------------------

@pytest.fixture
def dovecot_postlogin(tmp_path, redis_server):
    # The script runs as the mail user: the configuration must be readable
    # by it, so it lives in Dovecot's (world-readable) folder.
    dc = Dovecot(tmp_path / "dovecot", {"alice": "secret"}, 0, "", policy=False,
                 postlogin=(program("authbridge/authbridge"), "CONF"))
    conf = dc.dir / "authbridge.conf"
    sections = base_sections(redis_server)
    sections["redis"]["timeout_ms"] = TIMEOUT_MS
    write_config(conf, sections)
    conf.chmod(0o644)
    dc.config.write_text(dc.config.read_text().replace("CONF", str(conf)))
    assert mail_uid_can_read(conf) and mail_uid_can_read(
        program("authbridge/authbridge"))
    dc.start()
    yield dc
    dc.stop()
    wipe_base_dir(dc)


def test_dovecot_postlogin_script_grants_before_ok(dovecot_postlogin, rdb):
    reply, _ = pop3_login(dovecot_postlogin, "127.0.12.10", "alice", "secret")
    assert reply.startswith(b"+OK")
    g = rdb.hgetall(GRANT + "127.0.12.10")          # before any sleep
    assert g["user"] == "alice" and g["method"] == "POSTLOGIN"


def test_dovecot_postlogin_script_without_redis_still_logs_in(
        dovecot_postlogin, redis_server, rdb):
    redis_server.stop()
    reply, _ = pop3_login(dovecot_postlogin, "127.0.12.11", "alice", "secret")
    assert reply.startswith(b"+OK")
    dovecot_postlogin.wait_log(r"postlogin: no grant for 127\.0\.12\.11 user "
                               r"alice: cannot connect to Redis")
