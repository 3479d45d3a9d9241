"""`-t` says "configuration OK" only to a configuration that can start:
listeners that cannot all be bound, a `user` account that does not exist
and an empty item in a list are refused, each at its line."""

import re
import subprocess

import pytest

from conftest import free_port, program
from pop3_harness import Pop3d
from smtp_harness import Gate, sink  # noqa: F401


def check(daemon):
    return subprocess.run([str(program(daemon.binary)), "-c",
                           str(daemon.config), "-t"], capture_output=True,
                          text=True, timeout=10)


def starts(daemon):
    """What actually happens when it starts: exit status (None: running)."""
    try:
        daemon.start()
        return None
    except BaseException:
        return daemon.proc.returncode if daemon.proc else 1
    finally:
        if daemon.proc is not None:
            daemon.stop(check=False)


@pytest.fixture(params=["pop3d", "smtpgate"])
def make(request, tmp_path, redis_server, sink):  # noqa: F811
    def build(**keys):
        if request.param == "pop3d":
            return Pop3d(tmp_path / "p", redis_server, **keys)
        return Gate(tmp_path / "g", redis_server, sink.address, **keys)
    return build


def test_the_same_listen_address_twice_is_refused(make):
    port = free_port()
    d = make(listen=f"127.0.0.1:{port}, 127.0.0.1:{port}")
    out = check(d)
    assert out.returncode == 1
    assert re.search(rf"{re.escape(str(d.config))}:\d+: listen: "
                     rf"127.0.0.1:{port} and 127.0.0.1:{port} cannot both be "
                     rf"bound", out.stderr), out.stderr


def test_a_wildcard_and_an_address_on_one_port_are_refused(make):
    port = free_port()
    d = make(listen=f"127.0.0.1:{port}", listen_tls=f"[::]:{port}")
    out = check(d)
    assert out.returncode == 1
    assert (f"listen_tls: [::]:{port} cannot be bound: 127.0.0.1:{port} is "
            f"in listen") in out.stderr, out.stderr


def test_metrics_listen_on_a_front_doors_port_is_refused(make):
    d = make()
    port = d.port                   # the plain listener's
    d.rewrite_config(metrics_listen=f"0.0.0.0:{port}")
    out = check(d)
    assert out.returncode == 1
    assert re.search(rf":\d+: metrics_listen: 0.0.0.0:{port} cannot be "
                     rf"bound: 127.0.0.1:{port} is in listen", out.stderr), \
        out.stderr


def test_a_user_account_that_does_not_exist_is_refused(make):
    d = make(user="no-such-account-here")
    out = check(d)
    assert out.returncode == 1
    assert re.search(r":\d+: user: no account named 'no-such-account-here'",
                     out.stderr), out.stderr


def test_an_empty_item_in_a_list_is_refused(make):
    d = make(trusted_networks="127.0.0.5/32,,127.0.1.0/24")
    out = check(d)
    assert out.returncode == 1
    assert re.search(r":\d+: trusted_networks: empty item in the list",
                     out.stderr), out.stderr


def test_what_check_mode_accepts_starts(make):
    """The converse: a configuration -t passes does start (and the ones it
    refuses above would not have)."""
    d = make()
    assert check(d).returncode == 0
    assert starts(d) is None
    port = free_port()
    clash = make(listen=f"127.0.0.1:{port}, 0.0.0.0:{port}")
    assert starts(clash) is not None
