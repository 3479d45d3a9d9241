"""One client never costs more than a bounded amount: every front door of
the gate stops reading a client whose answers pile up unread, and caps the
connections one address may hold."""

import socket
import time

from conftest import flood_unread, rss_kb
from smtp_harness import gate, gate_factory, sink  # noqa: F401

MB = 1024 * 1024
FLOOD = 40 * MB            # pipelined requests, never a reply read
BOUND_KB = 64 * 1024       # what the gate may grow by meanwhile


def assert_bounded_flood(gate, port, request, source):
    before = rss_kb(gate.proc.pid)
    sock, sent = flood_unread(port, request, FLOOD, source)
    try:
        grown = rss_kb(gate.proc.pid) - before
        assert grown < BOUND_KB, (
            f"smtpgate grew {grown} KiB after {sent} octets of unread "
            f"requests")
        # It stopped reading: most of the flood never left our side.
        assert sent < FLOOD, f"all {sent} octets were read"
        return sock
    except BaseException:
        sock.close()
        raise


def test_smtp_client_that_never_reads_is_bounded(gate):
    sock = assert_bounded_flood(gate, gate.port, b"NOOP\r\n", "127.0.0.61")
    try:
        # Everyone else is still served meanwhile.
        c = gate.raw("127.0.0.62")
        assert c.cmd("EHLO other.example")[0] == 250
        c.close()
    finally:
        sock.close()


def test_smtp_client_reading_again_gets_every_reply_in_order(gate):
    """Back-pressure loses nothing: a client that pipelined 20,000 commands
    before reading gets 20,000 replies, in order."""
    c = gate.raw("127.0.0.63")
    assert c.cmd("EHLO pipeliner.example")[0] == 250
    n = 20000
    c.sock.sendall(b"NOOP\r\n" * n + b"HELP\r\n")
    for _ in range(n):
        assert c.reply()[0] == 250
    assert c.reply()[0] == 214
    c.close()


def test_policy_client_that_never_reads_is_bounded(gate):
    sock = assert_bounded_flood(gate, gate.policy_port, b"request=x\n\n",
                                "127.0.0.64")
    sock.close()


def test_whoson_client_that_never_reads_is_bounded(gate):
    """3-byte bad requests: closed after WHOSON_BAD_MAX of them."""
    sock = assert_bounded_flood(gate, gate.whoson_port, b"X\n\n",
                                "127.0.0.65")
    try:
        other = socket.create_connection(("127.0.0.1", gate.whoson_port), 5,
                                         source_address=("127.0.0.66", 0))
        other.sendall(b"QUERY 192.0.2.1\r\n\r\n")
        assert other.recv(100).startswith(b"-Not logged in")
        other.close()
    finally:
        sock.close()


def test_whoson_request_then_end_of_input_is_still_answered(gate):
    """Exim's ${readsocket} half-closes right after its query."""
    s = socket.create_connection(("127.0.0.1", gate.whoson_port), 5,
                                 source_address=("127.0.0.67", 0))
    s.sendall(b"QUERY 192.0.2.9\n\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data == b"-Not logged in\r\n\r\n"


def hold_connections(port, source, n):
    socks = []
    for _ in range(n):
        socks.append(socket.create_connection(("127.0.0.1", port), 5,
                                              source_address=(source, 0)))
    return socks


def closed_at_once(port, source):
    s = socket.create_connection(("127.0.0.1", port), 5,
                                 source_address=(source, 0))
    s.settimeout(5)
    try:
        return s.recv(10) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


def test_whoson_connections_per_address_are_capped(gate):
    held = hold_connections(gate.whoson_port, "127.0.0.68", 256)
    try:
        assert closed_at_once(gate.whoson_port, "127.0.0.68")
        gate.wait_log(r"event=connection_refused door=whoson "
                      r"client=127.0.0.68 reason=max_connections_per_addr")
        # Another address is not affected.
        s = socket.create_connection(("127.0.0.1", gate.whoson_port), 5,
                                     source_address=("127.0.0.69", 0))
        s.sendall(b"QUERY 192.0.2.1\n\n")
        assert s.recv(100).startswith(b"-Not logged in")
        s.close()
    finally:
        for s in held:
            s.close()


def test_policy_connections_per_address_are_capped(gate):
    held = hold_connections(gate.policy_port, "127.0.0.70", 1024)
    try:
        assert closed_at_once(gate.policy_port, "127.0.0.70")
        gate.wait_log(r"event=connection_refused door=policy "
                      r"client=127.0.0.70 reason=max_connections_per_addr")
        s = socket.create_connection(("127.0.0.1", gate.policy_port), 5,
                                     source_address=("127.0.0.71", 0))
        s.sendall(b"request=x\n\n")
        assert s.recv(100) == b"action=DUNNO\n\n"
        s.close()
    finally:
        for s in held:
            s.close()


def test_whoson_connection_closes_after_ten_bad_requests(gate):
    s = socket.create_connection(("127.0.0.1", gate.whoson_port), 5,
                                 source_address=("127.0.0.72", 0))
    s.sendall(b"X\n\n" * 12)
    data = b""
    s.settimeout(5)
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.count(b"*Bad request") == 9      # the tenth closes


def test_refused_connections_are_logged_at_most_ten_a_second(gate_factory):
    g = gate_factory(max_connections_per_addr=2)
    held = hold_connections(g.port, "127.0.0.73", 2)
    try:
        t0 = time.monotonic()
        for _ in range(200):
            closed_at_once(g.port, "127.0.0.73")
        took = time.monotonic() - t0
        lines = [line for line in g.log().splitlines()
                 if "event=connection_refused" in line]
        assert len(lines) <= 10 * (int(took) + 2), (len(lines), took)
        time.sleep(1.1)
        closed_at_once(g.port, "127.0.0.73")
        last = g.wait_log(r"event=connection_refused .*suppressed=[1-9]")
        assert "client=127.0.0.73" in last
    finally:
        for s in held:
            s.close()
