"""`authbridge checkrelay` as qmail and Courier use it, under ucspi-tcp's
real tcpserver, in front of a stand-in for qmail-smtpd (qmail is not in
Debian 12) that says whether RELAYCLIENT reached it, started with the
README's tcpserver line (recipe checkrelay-qmail).

Granted -> RELAYCLIENT="", not granted or Redis down -> none (and why, on
tcpserver's log), preset by the tcprules database -> passed through
without asking Redis. Also through Redis Sentinel, and within
redis.timeout_ms however many sentinels hang.
"""

import os
import shlex
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (REDIS_SERVER, RedisServer, free_port, program,
                      terminate, wait_listening, wait_until, write_config)
from dovecot_harness import recipe
from mta_harness import CUSTOMER, NEIGHBOUR
from pop3_harness import sanitized

TRUSTED = "127.0.6.9"          # tcprules gives it RELAYCLIENT
STANDIN = """#!/bin/sh
# qmail-smtpd's stand-in: what qmail-smtpd would act on, then goodbye.
if [ "${RELAYCLIENT+set}" = set ]; then
    echo "220 stand-in RELAYCLIENT=[$RELAYCLIENT] TCPREMOTEIP=$TCPREMOTEIP"
else
    echo "220 stand-in no RELAYCLIENT TCPREMOTEIP=$TCPREMOTEIP"
fi
"""


def checkrelay_chain(port, cdb, conf, standin):
    """The README's tcpserver line, with this test's port, files and
    programs: its log pipe and the qmail accounts (-u, -g) left out, the
    tests' tcpserver writing its log to a file as root."""
    line = recipe("checkrelay-qmail").replace("\\\n", " ")
    words = shlex.split(line.split(" 2>&1 |")[0])
    for flag in ("-u", "-g"):
        i = words.index(flag)
        del words[i:i + 2]
    subst = {"smtp": str(port),
             "/etc/tcp.smtp.cdb": str(cdb),
             "/usr/bin/authbridge": str(program("authbridge/authbridge")),
             "/etc/authbridge/authbridge.conf": str(conf),
             "/var/qmail/bin/qmail-smtpd": str(standin)}
    # The host is the word before the port ("-l 0" names the local host).
    at = words.index("smtp") - 1
    words[at] = "127.0.0.1"
    return [subst.get(w, w) for w in words]


class TcpServer:
    """tcpserver running `authbridge -c CONF checkrelay STANDIN`, its log
    (tcpserver's -v lines and the programs' stderr) in a file."""

    def __init__(self, folder, config):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.standin = self.folder / "qmail-smtpd"
        self.standin.write_text(STANDIN)
        self.standin.chmod(0o755)
        rules = self.folder / "tcp.smtp"
        rules.write_text(f'{TRUSTED}:allow,RELAYCLIENT=""\n:allow\n')
        self.cdb = self.folder / "tcp.smtp.cdb"
        subprocess.run(["tcprules", str(self.cdb), str(self.cdb) + ".tmp"],
                       stdin=rules.open(), check=True, timeout=10)
        self.log_path = self.folder / "tcpserver.log"
        self.proc = subprocess.Popen(
            checkrelay_chain(self.port, self.cdb, config, self.standin),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "wb"))
        wait_listening(self.port, 10, what="tcpserver")

    def greeting(self, source):
        """The stand-in's line, for a connection from source."""
        with socket.create_connection(("127.0.0.1", self.port), 10,
                                      source_address=(source, 0)) as s:
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.decode().strip()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def checkrelay_line(self, source):
        return wait_until(lambda: next(
            (l for l in self.log().splitlines()
             if "authbridge checkrelay:" in l and f"client={source} " in l),
            None), 5, what=f"checkrelay's line for {source}")

    def stop(self):
        terminate(self.proc, 10)


@pytest.fixture
def tcpserver(tmp_path, ab_config):
    t = TcpServer(tmp_path / "tcpserver", ab_config())
    yield t
    t.stop()


def grant(config, addr, user="alice"):
    out = subprocess.run([str(program("authbridge/authbridge")), "-c",
                          str(config), "grant", addr, user],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr


def test_a_granted_client_gets_relayclient(tcpserver, ab_config):
    grant(ab_config(), CUSTOMER)
    assert tcpserver.greeting(CUSTOMER) == \
        f"220 stand-in RELAYCLIENT=[] TCPREMOTEIP={CUSTOMER}"
    line = tcpserver.checkrelay_line(CUSTOMER)
    assert "relay=yes user=alice" in line, line


def test_a_client_without_a_grant_does_not(tcpserver):
    assert tcpserver.greeting(NEIGHBOUR) == \
        f"220 stand-in no RELAYCLIENT TCPREMOTEIP={NEIGHBOUR}"
    line = tcpserver.checkrelay_line(NEIGHBOUR)
    assert 'relay=no why="no live grant"' in line, line


def test_redis_down_runs_the_mta_without_relayclient_and_says_why(
        tcpserver, ab_config, redis_server):
    grant(ab_config(), CUSTOMER)
    redis_server.stop()
    assert tcpserver.greeting(CUSTOMER) == \
        f"220 stand-in no RELAYCLIENT TCPREMOTEIP={CUSTOMER}"
    line = tcpserver.checkrelay_line(CUSTOMER)
    assert "relay=tempfail why=" in line and "Redis" in line, line


def test_relayclient_from_tcprules_passes_without_asking(tcpserver,
                                                        redis_server):
    redis_server.stop()            # not needed: it is not asked
    assert tcpserver.greeting(TRUSTED) == \
        f"220 stand-in RELAYCLIENT=[] TCPREMOTEIP={TRUSTED}"
    tcpserver.greeting(NEIGHBOUR)  # a line we can wait for
    tcpserver.checkrelay_line(NEIGHBOUR)
    assert f"client={TRUSTED}" not in tcpserver.log()


def test_a_revoked_grant_stops_relaying_at_the_next_connection(tcpserver,
                                                               ab_config):
    grant(ab_config(), CUSTOMER)
    assert "RELAYCLIENT=[]" in tcpserver.greeting(CUSTOMER)
    out = subprocess.run([str(program("authbridge/authbridge")), "-c",
                          str(ab_config()), "revoke", CUSTOMER],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert "no RELAYCLIENT" in tcpserver.greeting(CUSTOMER)


def test_a_broken_configuration_still_runs_the_mta(tmp_path):
    bad = tmp_path / "broken.conf"
    bad.write_text("[redis]\ntimeout_ms = soon\n")
    t = TcpServer(tmp_path / "t", bad)
    try:
        assert "no RELAYCLIENT" in t.greeting(CUSTOMER)
        line = t.checkrelay_line(CUSTOMER)
        assert "configuration unusable" in line, line
        assert "timeout_ms" in t.log()       # the file's own error, logged
    finally:
        t.stop()


def run_checkrelay(config, source, timeout=30):
    """checkrelay as tcpserver runs it (its environment), without a socket."""
    env = {**os.environ, "PROTO": "TCP", "TCPREMOTEIP": source}
    env.pop("RELAYCLIENT", None)
    return subprocess.run(
        [str(program("authbridge/authbridge")), "-c", str(config),
         "checkrelay", "sh", "-c", 'echo "${RELAYCLIENT-unset}"'],
        env=env, capture_output=True, text=True, timeout=timeout)


def start_sentinel(folder, master_port):
    port = free_port()
    conf = Path(folder) / f"sentinel-{port}.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n")
    proc = subprocess.Popen([REDIS_SERVER, str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, 10, what="the sentinel")
    return port, proc


def test_through_sentinel_even_when_the_first_one_hangs(tmp_path, redis_server,
                                                        ab_config):
    grant(ab_config(), CUSTOMER)
    hung = RedisServer(tmp_path / "hung").start()
    hung.pause()
    port, sentinel = start_sentinel(tmp_path, redis_server.port)
    try:
        config = write_config(tmp_path / "sentinel.conf", {
            "redis": {"sentinels": [hung.address, f"127.0.0.1:{port}"],
                      "master_name": "mymaster", "timeout_ms": 1000}})
        out = run_checkrelay(config, CUSTOMER)
        assert out.stdout == "\n", out.stderr           # RELAYCLIENT=""
        assert "relay=yes user=alice" in out.stderr
        assert run_checkrelay(config, NEIGHBOUR).stdout == "unset\n"
    finally:
        sentinel.kill()
        sentinel.wait()
        hung.stop()


def test_hung_sentinels_cost_one_timeout_not_one_each(tmp_path):
    hung = [RedisServer(tmp_path / f"hung{i}").start() for i in range(8)]
    for h in hung:
        h.pause()
    try:
        config = write_config(tmp_path / "sentinels.conf", {
            "redis": {"sentinels": [h.address for h in hung],
                      "master_name": "mymaster", "timeout_ms": 500}})
        started = time.monotonic()
        out = run_checkrelay(config, CUSTOMER)
        took = time.monotonic() - started
        assert out.stdout == "unset\n" and "relay=tempfail" in out.stderr, \
            out.stderr
        # One deadline for all: eight sentinels at 500 ms each would be 4 s.
        assert took < 2.5, took
    finally:
        for h in hung:
            h.stop()


def test_the_command_loads_no_libcrypto():
    """checkrelay is an exec per SMTP connection, and loading libcrypto
    (its relocations) costs about 3 ms of it on a slow host: the admin
    command links only what its verbs need (make bench measures the rest)."""
    binary = str(program("authbridge/authbridge"))
    # No function of OpenSSL's is called (true of every build) ...
    undefined = subprocess.run(["nm", "-D", "--undefined-only", binary],
                               capture_output=True, text=True,
                               timeout=10).stdout.split()
    crypto = [sym for sym in undefined
              if sym.startswith(("EVP_", "SSL_", "OPENSSL_", "CRYPTO_",
                                 "HMAC", "SHA1", "SHA256", "RAND_",
                                 "ERR_"))]
    assert crypto == [], crypto
    out = subprocess.run(["ldd", binary], capture_output=True, text=True,
                         timeout=10).stdout
    assert "libhiredis" in out, out
    # ... and the build that ships does not even load the library (a
    # sanitizer build links every library: gcc turns --as-needed off
    # around libasan).
    if not sanitized():
        assert "libcrypto" not in out and "libssl" not in out, out
