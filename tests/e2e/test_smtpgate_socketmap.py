"""The socketmap front door (Postfix socketmap_table(5), Sendmail's socket
map class) spoken by hand: every reply kind, pipelining, broken
netstrings, the size limit on both sides, a client that never reads, and
the per-address cap. The real MTAs using it are in test_mta_*.py."""

import os
import re
import socket
import subprocess
import time

import pytest

from conftest import flood_unread, LineSocket, free_port, program, wait_until
from metrics_harness import metrics_text, value
from pop3_harness import sanitized
from smtp_harness import gate, gate_factory, sink  # noqa: F401

DECISIONS = "authbridge:decisions"
REQUEST_MAX = 1024          # SOCKETMAP_REQUEST_MAX in smtpgate/limits.h
REFUSAL = b"37:PERM malformed or over-long netstring,"


def netstring(payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return b"%d:%s," % (len(payload), payload)


class MapClient(LineSocket):
    """Netstring requests out, netstring answers in."""

    def ask(self, name, key):
        self.send(netstring(f"{name} {key}"))
        return self.answer()

    def answer(self):
        while True:
            colon = self.buf.find(b":")
            if colon > 0:
                n = int(self.buf[:colon])
                end = colon + 1 + n
                if len(self.buf) > end:
                    assert self.buf[end:end + 1] == b",", self.buf
                    payload, self.buf = self.buf[colon + 1:end], \
                        self.buf[end + 1:]
                    return payload.decode()
            chunk = self.sock.recv(4096)
            if not chunk:
                return None
            self.buf += chunk


def client(g, source="127.0.0.1"):
    return MapClient(g.socketmap_port, source)


def stream(rdb, event):
    return [f for _, f in rdb.xrange(DECISIONS) if f["event"] == event]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---- the maps ----------------------------------------------------------------

def test_relay_map_ok_with_a_grant_notfound_without(gate, rdb):
    gate.grant(rdb, "192.0.2.7", "alice")
    gate.grant(rdb, "2001:db8::7", "bob")
    c = client(gate)
    assert c.ask("relay", "192.0.2.7") == "OK OK"
    assert c.ask("relay", "192.0.2.8") == "NOTFOUND "
    # drac is the name Sendmail's FEATURE(drac) gives its map.
    assert c.ask("drac", "192.0.2.7") == "OK OK"
    assert c.ask("drac", "192.0.2.8") == "NOTFOUND "
    c.close()
    # The second OK for the client within a minute is counted, and written
    # when the minute ends or the gate stops.
    gate.stop()
    allowed = stream(rdb, "relay-allowed")
    assert len(allowed) == 2
    assert all(f["via"] == "socketmap" and f["user"] == "alice" and
               f["client"] == "192.0.2.7" and f["path"] == "grant"
               for f in allowed)
    # Every answer is a line of the text log.
    gate.wait_log(r"event=rcpt via=socketmap .*client=192\.0\.2\.7 .*"
                  r"path=grant user=alice")
    gate.wait_log(r"event=rcpt via=socketmap .*client=192\.0\.2\.8 map=drac "
                  r"path=none answer=NOTFOUND")


@pytest.mark.parametrize("key", [
    "2001:db8::7", "2001:DB8:0:0:0:0:0:7", "IPv6:2001:db8::7",
    "ipv6:2001:db8::7", "[2001:db8::7]",
], ids=["ipv6", "ipv6-full-upper", "sendmail-prefix", "prefix-lower",
        "brackets"])
def test_relay_map_takes_every_form_of_an_ipv6_address(gate, rdb, key):
    gate.grant(rdb, "2001:db8::7", "bob")
    c = client(gate)
    assert c.ask("relay", key) == "OK OK"
    assert c.ask("relay", key.replace("7", "8")) == "NOTFOUND "
    c.close()


@pytest.mark.parametrize("key", [
    "::ffff:192.0.2.7", "IPv6:::ffff:192.0.2.7", "::FFFF:192.0.2.7",
])
def test_relay_map_folds_mapped_addresses_to_ipv4(gate, rdb, key):
    gate.grant(rdb, "192.0.2.7", "alice")
    c = client(gate)
    assert c.ask("relay", key) == "OK OK"
    c.close()


def test_relay_map_honours_ipv6_prefix_grants(gate_factory, rdb):
    g = gate_factory()
    g.sections["grant"]["ipv6_prefix"] = 64
    g.stop()
    g.rewrite_config()
    g.start()
    g.grant(rdb, "2001:db8:1:2::99", "carol")
    c = client(g)
    assert c.ask("relay", "IPv6:2001:db8:1:2:aaaa::1") == "OK OK"
    assert c.ask("relay", "2001:db8:1:3::1") == "NOTFOUND "
    c.close()


def test_user_map_gives_the_grants_user(gate, rdb):
    gate.grant(rdb, "192.0.2.7", "alice")
    c = client(gate)
    assert c.ask("user", "192.0.2.7") == "OK alice"
    assert c.ask("user", "IPv6:::ffff:192.0.2.7") == "OK alice"
    assert c.ask("user", "192.0.2.8") == "NOTFOUND "
    assert c.ask("user", "unknown") == "NOTFOUND "
    c.close()
    gate.wait_log(r"event=socketmap .*map=user client=192\.0\.2\.7 answer=OK "
                  r"user=alice")
    # A user lookup is not a relay decision: no stream entry.
    assert stream(rdb, "relay-allowed") == []


@pytest.mark.parametrize("key", [
    "unknown", "127.0.0", "127.0", "127", "mail.example.com", ".example.com",
    "2001:db8:0:0:0:0:0", "192.0.2.07", "fe80::1%eth0", "IPv6:", "x" * 1000,
])
def test_keys_that_are_not_addresses_are_notfound_never_perm(gate, rdb, key):
    """Postfix's check_client_access also looks up the host name (unknown
    when there is none) and shortened addresses: PERM there would be 451
    4.3.5 for every client."""
    gate.grant(rdb, "127.0.0.1", "alice")
    c = client(gate)
    assert c.ask("relay", key) == "NOTFOUND "
    assert c.ask("relay", "127.0.0.1") == "OK OK"
    c.close()
    gate.wait_log(r"event=socketmap .*map=relay .*answer=NOTFOUND "
                  r"why=not_an_address")


@pytest.mark.parametrize("payload, reason", [
    (b"virtual 192.0.2.7", "no such map"),
    (b"RELAY 192.0.2.7", "no such map"),
    (b"relay", "request is not"),
    (b" 192.0.2.7", "request is not"),
    (b"relay ", "key is empty"),
    (b"relay 192.0.2.7 extra", "holds spaces"),
    (b"relay 192.0.2.7\r", "control characters"),
    (b"relay 192.0.\x01.7", "control characters"),
    (b"relay \x7f", "control characters"),
], ids=["other-map", "map-case", "no-key", "no-map", "empty-key",
        "space-in-key", "cr-in-key", "control-byte", "del"])
def test_protocol_errors_are_perm_and_the_connection_goes_on(gate, rdb,
                                                             payload, reason):
    gate.grant(rdb, "192.0.2.7", "alice")
    c = client(gate)
    c.send(netstring(payload))
    answer = c.answer()
    assert answer.startswith("PERM ") and reason in answer, answer
    assert c.ask("relay", "192.0.2.7") == "OK OK"
    c.close()
    gate.wait_log(r"event=socketmap_bad_request .*answer=PERM")


def test_ten_protocol_errors_close_the_connection(gate):
    """Each PERM is a log line: a client sending nothing else is cut off
    (SOCKETMAP_BAD_MAX), as at WHOSON."""
    c = client(gate)
    for _ in range(9):
        assert c.ask("nosuch", "x").startswith("PERM ")
    c.send(netstring("nosuch x"))
    assert c.closed()
    assert c.buf == b""
    c.close()


def test_temp_while_redis_is_down_then_answers_again(gate, redis_server, rdb):
    gate.grant(rdb, "192.0.2.7", "alice")
    c = client(gate)
    assert c.ask("relay", "192.0.2.7") == "OK OK"
    redis_server.stop()
    answer = c.ask("relay", "192.0.2.7")
    assert answer.startswith("TEMP "), answer
    assert c.ask("drac", "192.0.2.8").startswith("TEMP ")
    assert c.ask("user", "192.0.2.7").startswith("TEMP ")
    # A key that is no address needs no Redis.
    assert c.ask("relay", "unknown") == "NOTFOUND "
    gate.wait_log(r"event=rcpt via=socketmap .*client=192\.0\.2\.7 .*"
                  r"path=tempfail")
    redis_server.start()
    wait_until(lambda: gate.log().count("event=redis_up") >= 2, 5,
               what="the gate to reconnect")
    assert c.ask("relay", "192.0.2.8") == "NOTFOUND "
    c.close()


def test_sender_binding_never_lets_a_socketmap_grant_through(gate_factory, rdb):
    """A socketmap lookup carries no sender, so sender_binding cannot be
    checked: no grant becomes OK, and the gate says so at start."""
    g = gate_factory(sender_binding=True)
    g.grant(rdb, "192.0.2.7", "alice")
    c = client(g)
    assert c.ask("relay", "192.0.2.7") == "NOTFOUND "
    assert c.ask("user", "192.0.2.7") == "OK alice"
    c.close()
    g.wait_log(r"event=rcpt via=socketmap .*path=sender_mismatch")
    assert "event=socketmap_without_sender_binding" in g.log()


def test_answers_are_counted_in_stats_and_summed_at_stop(gate, rdb):
    gate.grant(rdb, "192.0.2.7", "alice")
    c = client(gate)
    for _ in range(3):
        assert c.ask("relay", "192.0.2.7") == "OK OK"
    assert c.ask("relay", "192.0.2.8") == "NOTFOUND "
    assert c.ask("nosuch", "192.0.2.8").startswith("PERM ")
    c.close()
    wait_until(lambda: len(stream(rdb, "relay-allowed")) == 1, 5,
               what="the first relay-allowed entry")
    gate.stop()                  # writes the entry for the other two
    allowed = stream(rdb, "relay-allowed")
    assert [f.get("count", "1") for f in allowed] == ["1", "2"]
    out = subprocess.run([str(program("authbridge/authbridge")), "-c",
                          str(gate.config), "stats"], capture_output=True,
                         text=True, timeout=10).stdout
    assert re.search(r"relays allowed +3\n", out), out
    assert "event=socketmap_summary ok=3 notfound=1 temp=0 perm=1" in \
        gate.log()


# ---- the connection -------------------------------------------------------------

def test_pipelined_requests_are_answered_in_order(gate, rdb):
    for i in range(0, 20, 2):
        gate.grant(rdb, f"198.51.100.{i}", f"user{i}")
    c = client(gate)
    c.send(b"".join(netstring(f"relay 198.51.100.{i}") for i in range(20)) +
           netstring("user 198.51.100.4") + netstring("nosuch x") +
           netstring("relay unknown"))
    answers = [c.answer() for _ in range(23)]
    assert answers[:20] == ["OK OK", "NOTFOUND "] * 10
    assert answers[20] == "OK user4"
    assert answers[21].startswith("PERM ")
    assert answers[22] == "NOTFOUND "
    # One request split over many writes is one request.
    for b in netstring("relay 198.51.100.2"):
        c.send(bytes([b]))
        time.sleep(0.002)
    assert c.answer() == "OK OK"
    c.close()


def test_a_request_followed_by_end_of_input_is_answered(gate, rdb):
    """What Exim's ${readsocket} and one-shot scripts do: write, shut the
    sending side, read the answer."""
    gate.grant(rdb, "192.0.2.7", "alice")
    c = client(gate)
    c.send(netstring("relay 192.0.2.7") + netstring("user 192.0.2.7"))
    c.sock.shutdown(socket.SHUT_WR)
    assert c.closed()
    assert c.buf == b"5:OK OK,8:OK alice,"
    c.close()


@pytest.mark.parametrize("garbage", [
    b"relay 192.0.2.7\n", b"5:relay 192.0.2.7,", b"15:relay 192.0.2.7;",
    b"015:relay 192.0.2.7,", b":relay,", b"-1:x,", b"1x:x,",
    b"15:relay 192.0.\x00.7,", b"9" * 30,
], ids=["plain-line", "short-length", "no-comma", "leading-zero",
        "no-length", "negative", "letter-in-length", "nul", "endless-length"])
def test_broken_netstrings_get_perm_then_close(gate, garbage):
    c = client(gate)
    c.send(garbage)
    assert c.closed()
    assert c.buf == REFUSAL
    c.close()
    gate.wait_log(r"event=request_refused door=socketmap")
    # Everyone else is still served.
    ok = client(gate)
    assert ok.ask("relay", "192.0.2.9") == "NOTFOUND "
    ok.close()


def test_a_request_of_the_maximum_size_passes_one_more_octet_does_not(gate):
    c = client(gate)
    key = "k" * (REQUEST_MAX - len("relay "))
    assert len(netstring("relay " + key)) == REQUEST_MAX + 6
    assert c.ask("relay", key) == "NOTFOUND "
    c.send(netstring("relay " + key + "k"))
    assert c.closed()
    assert c.buf == REFUSAL
    c.close()


def test_an_over_long_length_is_refused_before_its_payload(gate):
    c = client(gate)
    c.send(b"%d:" % (REQUEST_MAX + 1))
    assert c.closed(timeout=5)
    assert c.buf == REFUSAL
    c.close()


def test_a_client_that_never_reads_costs_bounded_memory(gate, rdb):
    gate.grant(rdb, "192.0.2.7", "alice")
    pid = gate.proc.pid
    before = rss_kib(pid)
    # A small receive buffer: the kernel holds few answers before the
    # gate sees that nobody reads them.
    hog, sent = flood_unread(gate.socketmap_port, netstring("relay 192.0.2.7"),
                             200 * 1024 * 1024, "127.0.0.31", stall=1.5)
    # The gate stopped reading: the kernel's buffers hold the rest (and
    # its answers, several MB of them, before it stopped).
    assert sent < 64 * 1024 * 1024, sent
    grown = rss_kib(pid) - before
    if not sanitized():     # ASan's quarantine holds freed memory
        assert grown < 8 * 1024, f"smtpgate grew {grown} KiB"
    # Others are served meanwhile.
    ok = client(gate)
    assert ok.ask("relay", "192.0.2.7") == "OK OK"
    ok.close()
    hog.close()


def test_connections_per_address_are_capped(gate):
    cap = 1024                  # SOCKETMAP_CONNS_PER_ADDR_MAX
    held = [client(gate, "127.0.0.41") for _ in range(cap)]
    # The last of them is served...
    assert held[-1].ask("relay", "192.0.2.9") == "NOTFOUND "
    # ...one more from that address is not, one from another address is.
    extra = client(gate, "127.0.0.41")
    assert extra.closed()
    assert extra.buf == b""
    extra.close()
    gate.wait_log(r"event=connection_refused door=socketmap "
                  r"client=127\.0\.0\.41 reason=max_connections_per_addr")
    other = client(gate, "127.0.0.42")
    assert other.ask("relay", "192.0.2.9") == "NOTFOUND "
    other.close()
    for c in held:
        c.close()


def test_ipv6_and_unix_socket_listeners(gate_factory, rdb):
    path = f"/tmp/ab-socketmap-{os.getpid()}-{free_port()}.sock"
    port = free_port()
    g = gate_factory(socketmap_listen=[f"[::1]:{port}", f"unix:{path}"])
    try:
        g.grant(rdb, "192.0.2.7", "alice")
        with socket.create_connection(("::1", port), 5) as s:
            s.sendall(netstring("relay 192.0.2.7"))
            assert s.recv(100) == b"5:OK OK,"
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(netstring("user 192.0.2.7"))
            assert s.recv(100) == b"8:OK alice,"
    finally:
        g.stop()
        if os.path.exists(path):
            os.unlink(path)


def test_a_socketmap_port_another_door_has_is_refused_by_the_check(
        gate_factory):
    g = gate_factory(start=False)
    g.rewrite_config(socketmap_listen=f"127.0.0.1:{g.policy_port}")
    out = subprocess.run([str(program("smtpgate/smtpgate")), "-c",
                          str(g.config), "-t"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 1
    assert f"socketmap_listen: 127.0.0.1:{g.policy_port} cannot be bound: " \
           f"127.0.0.1:{g.policy_port} is in policy_listen" in out.stderr, \
        out.stderr


def test_answers_are_counted_in_the_metrics(gate_factory, rdb):
    port = free_port()
    g = gate_factory(metrics_listen=f"127.0.0.1:{port}")
    g.grant(rdb, "192.0.2.7", "alice")
    c = client(g)
    assert c.ask("relay", "192.0.2.7") == "OK OK"
    assert c.ask("drac", "192.0.2.8") == "NOTFOUND "
    assert c.ask("relay", "unknown") == "NOTFOUND "     # no decision
    c.close()
    text = metrics_text(port)
    assert value(text, "authbridge_relay_decisions_total", via="socketmap",
                 path="grant") == 1, text
    assert value(text, "authbridge_relay_decisions_total", via="socketmap",
                 path="none") == 1, text
    assert value(text, "authbridge_connections_total",
                 listener="socketmap") == 1, text
