"""`make run`'s demo does what the README's quick tour says, with the same
commands: relay refused, check mail over POP3, grant visible in Redis and
to the admin command, relay accepted, local mail delivered by Postfix into
a Maildir and read back over POP3; and stopping it stops everything."""

import os
import re
import signal
import subprocess
import time

import pytest
import redis

from conftest import AB_OUT, REPO, port_open, read_line

PORTS = (16379, 1110, 1995, 2525, 2465, 10031, 9876, 10032, 10025)
CUSTOMER = "127.0.0.2"


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def listening(port):
    return port_open(port, timeout=0.5)


@pytest.fixture
def demo():
    busy = [p for p in PORTS if listening(p)]
    assert not busy, f"the demo's ports are in use (make run elsewhere?): {busy}"
    proc = subprocess.Popen(["sh", "mk/run.sh"], cwd=REPO,
                            env=dict(os.environ, AB_OUT=str(AB_OUT)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    out = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = read_line(proc, 5)
            if line:
                out.append(line)
            if line and "Following the daemons' logs" in line:
                break
            assert proc.poll() is None, "".join(out)
        else:
            pytest.fail("make run did not come up:\n" + "".join(out))
        yield "".join(out)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        time.sleep(1)
        still = [p for p in PORTS if listening(p)]
        assert not still, f"still listening after make run stopped: {still}"


def test_the_quick_tour(demo):
    readme = (REPO / "README.md").read_text()
    swaks = ("swaks --server 127.0.0.1:2525 --local-interface 127.0.0.2 "
             "--from alice@example.net --to friend@example.com")
    curl = "curl --interface 127.0.0.2 pop3://alice:alice-pw@127.0.0.1:1110/1"
    for cmd in (swaks, curl, "redis-cli -p 16379 HGETALL authbridge:grant:127.0.0.2"):
        # The README and the printed tour show the very commands run here.
        assert " ".join(cmd.split()) in " ".join(readme.replace("\\\n", " ").split())
        assert " ".join(cmd.split()) in " ".join(demo.replace("\\\n", " ").split())

    out = sh(swaks).stdout
    assert "<** 550 5.7.1 <friend@example.com>: Relaying denied." in out, out
    out = sh(curl)
    assert out.returncode == 0 and "Subject: Welcome to the authbridge demo" in out.stdout
    grant = redis.Redis(port=16379, decode_responses=True).hgetall(
        "authbridge:grant:127.0.0.2")
    assert grant["user"] == "alice" and grant["method"] == "SASL-PLAIN"
    out = sh(f"{AB_OUT}/authbridge/authbridge -c conf/authbridge.conf list").stdout
    assert re.search(r"^127\.0\.0\.2 +alice ", out, re.M), out
    out = sh(swaks).stdout
    assert re.search(r"<-  250 2\.0\.0 Ok: queued as", out), out

    out = sh("swaks --server 127.0.0.1:2525 --local-interface 127.0.0.3 "
             "--from someone@example.com --to bob@example.net "
             "--header 'Subject: tour mail'").stdout
    assert "queued as" in out, out
    deadline = time.monotonic() + 20
    while True:
        listing = sh("curl pop3://bob:bob-pw@127.0.0.1:1110/").stdout.split()
        last = listing[-2] if listing else "1"      # earlier runs' mail too
        got = sh(f"curl pop3://bob:bob-pw@127.0.0.1:1110/{last}").stdout
        if "Subject: tour mail" in got:
            break
        assert time.monotonic() < deadline, "Postfix never delivered to bob"
        time.sleep(0.5)
