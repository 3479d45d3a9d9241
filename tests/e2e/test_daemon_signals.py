"""A signal at any moment does what the README says: SIGHUP reloads,
SIGTERM stops cleanly, also when it comes the instant the port opens
(the handlers are in place before the daemons bind)."""

import signal
import socket
import subprocess
import time

import pytest

from conftest import program
from pop3_harness import pop3d_factory  # noqa: F401
from smtp_harness import gate_factory, sink  # noqa: F401

TRIES = 10


def start_and_signal_at_once(daemon, sig):
    """Start the daemon and send sig the moment its port accepts."""
    logf = open(daemon.log_path, "ab")
    proc = subprocess.Popen([str(program(daemon.binary)), "-c",
                             str(daemon.config), "-v"],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", daemon.port), 1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                logf.close()
                pytest.fail(f"{daemon.name} did not listen:\n{daemon.log()}")
            time.sleep(0.0005)
    proc.send_signal(sig)
    return proc, logf


@pytest.fixture(params=["pop3d", "smtpgate"])
def daemon(request, pop3d_factory, gate_factory):  # noqa: F811
    if request.param == "pop3d":
        return pop3d_factory(start=False)
    return gate_factory(start=False)


def test_sighup_the_instant_the_port_opens_reloads(daemon):
    for _ in range(TRIES):
        proc, logf = start_and_signal_at_once(daemon, signal.SIGHUP)
        try:
            deadline = time.monotonic() + 5
            while daemon.log().count("event=reloaded") < _ + 1:
                assert proc.poll() is None, (
                    f"{daemon.name} died of SIGHUP (status {proc.returncode})"
                    f":\n{daemon.log()[-2000:]}")
                assert time.monotonic() < deadline, "no event=reloaded"
                time.sleep(0.01)
            assert proc.poll() is None
        finally:
            proc.terminate()
            assert proc.wait(15) == 0
            logf.close()


def test_sigterm_the_instant_the_port_opens_stops_cleanly(daemon):
    for _ in range(TRIES):
        proc, logf = start_and_signal_at_once(daemon, signal.SIGTERM)
        try:
            assert proc.wait(15) == 0, daemon.log()[-2000:]
        finally:
            logf.close()
    assert daemon.log().count("event=stopped") == TRIES
