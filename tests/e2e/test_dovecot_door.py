"""The Dovecot door's HTTP/1.1 on its own (no Dovecot): keep-alive and
pipelining, every cap on both sides, the answers to what is not a
request, callers outside trusted_networks, and the renewal rate."""

import json
import socket
import time

import pytest

from conftest import LineSocket, free_port, wait_until
from smtp_harness import gate_factory, sink  # noqa: F401

KEY = "test-key-0123456789abcdef"
GRANT = "authbridge:grant:"
BODY_MAX, HEAD_MAX = 16 * 1024, 8192


@pytest.fixture
def door(gate_factory):
    port = free_port()
    g = gate_factory(dovecot_listen=f"127.0.0.1:{port}", dovecot_api_key=KEY,
                     trusted_networks=["127.0.0.1/32", "127.0.8.0/24"])
    g.door_port = port
    return g


def login(remote="127.0.9.1", user="alice", protocol="pop3", **extra):
    return json.dumps({"login": user, "mech": "PLAIN", "node": "dc1",
                       "protocol": protocol, "remote": remote, "user": user,
                       "verified": "yes", **extra, "tls": False})


def request(body, target="/?command=allow", headers=None, method="POST",
            version="HTTP/1.1"):
    body = body.encode() if isinstance(body, str) else body
    hdrs = {"Host": "127.0.0.1", "Content-Type": "application/json",
            "Content-Length": str(len(body)), "X-API-Key": KEY}
    hdrs.update(headers or {})
    head = f"{method} {target} {version}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None)
    return head.encode() + b"\r\n" + body


class Http(LineSocket):
    def response(self):
        """(status, headers dict, body) of one answer, or None at EOF."""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        hdrs = dict(l.split(": ", 1) for l in lines[1:])
        n = int(hdrs["Content-Length"])
        while len(rest) < n:
            rest += self.sock.recv(65536)
        self.buf = rest[n:]
        return int(lines[0].split()[1]), hdrs, rest[:n]


def test_keep_alive_many_logins_and_pipelined_ones_in_order(door, rdb):
    c = Http(door.door_port)
    for i in range(5):
        c.send(request(login(f"127.0.9.{i}")))
        assert c.response() == (200, {"Content-Type": "application/json",
                                      "Content-Length": "12"},
                                b'{"status":0}')
    c.send(b"".join(request(login(f"127.0.9.{i}", f"u{i}"))
                    for i in range(10, 14)))
    assert [c.response()[0] for _ in range(4)] == [200] * 4
    for i in range(10, 14):
        g = rdb.hgetall(f"{GRANT}127.0.9.{i}")
        assert g["user"] == f"u{i}" and g["node"] == "dc1"
        assert g["method"] == "POP3-PLAIN"
    c.close()


def test_report_and_other_protocols_write_nothing(door, rdb):
    c = Http(door.door_port)
    c.send(request(login("127.0.9.20"), "/?command=report"))
    assert c.response()[2] == b'{"status":0}'
    c.send(request(login("127.0.9.21", protocol="submission")))
    assert c.response()[2] == b'{"status":0}'
    c.send(request(login("127.0.9.22", verified="")))
    assert c.response()[2] == b'{"status":0}'
    c.send(request(json.dumps({"protocol": "imap", "verified": "yes",
                               "user": "alice", "remote": ""})))
    assert c.response()[2] == b'{"status":0}'
    assert rdb.keys(GRANT + "*") == []
    door.wait_log(r"rip=127\.0\.9\.21 result=other_protocol")
    door.wait_log(r"rip=127\.0\.9\.22 result=not_verified")
    door.wait_log(r"rip=\"\" result=no_address")


def test_nested_attributes_are_read(door, rdb):
    # auth_policy_request_attributes "a/b=x" nest as Dovecot sends them.
    body = ('{"a":{"b":"x","c":"y"},"login":"alice","protocol":"imap",'
            '"remote":"127.0.9.23","user":"alice","verified":"yes",'
            '"z":{"q":[1,{"r":2}]},"tls":true}')
    c = Http(door.door_port)
    c.send(request(body))
    assert c.response()[0] == 200
    g = rdb.hgetall(GRANT + "127.0.9.23")
    assert g["tls"] == "1" and g["method"] == "IMAP" and g["node"] == \
        "127.0.0.1"


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"a":1}x', b'{"a":"\x01"}',
                                  b'{"a":1,"a":2}', b'{"a":"\\ud800"}',
                                  b"{" * 20 + b"}" * 20, b"\x00"])
def test_a_body_that_is_not_json_is_a_400_and_the_connection_lives(door, rdb,
                                                                   body):
    c = Http(door.door_port)
    c.send(request(body))
    assert c.response()[0] == 400
    c.send(request(login("127.0.9.24")))
    assert c.response()[0] == 200
    assert rdb.exists(GRANT + "127.0.9.24")


def test_bodies_and_headers_at_their_caps(door):
    c = Http(door.door_port)
    pad = "x" * (BODY_MAX - len(login()) - len(',"pad":""'))
    body = login()[:-1] + f',"pad":"{pad}"}}'
    assert len(body) == BODY_MAX
    c.send(request(body))
    assert c.response()[0] == 200          # the cap itself is accepted
    c.send(request(body + " "))
    status, hdrs, _ = c.response()          # one over: before it is sent
    assert status == 413 and hdrs["Connection"] == "close"
    assert c.closed()
    c = Http(door.door_port)
    c.send(request(login(), headers={"X-Pad": "y" * 1000}))
    assert c.response()[0] == 200
    c.send(request(login(), headers={f"X-Pad{i}": "y" * 1000
                                     for i in range(9)}))
    assert c.response()[0] == 431 and c.closed()


@pytest.mark.parametrize("raw,status", [
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
     400),
    (b"POST / HTTP/1.1\nContent-Length: 0\n\n", 400),
    (b"POST / HTTP/2.0\r\nContent-Length: 0\r\n\r\n", 505),
    (b"POST / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
    (b"GARBAGE\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
])
def test_what_is_not_a_request_is_answered_then_closed(door, raw, status):
    c = Http(door.door_port)
    c.send(raw)
    assert c.response()[0] == status and c.closed()
    door.wait_log(rf"event=dovecot_bad_request .*status=\"?{status}")


def test_get_is_405_and_http10_closes(door):
    c = Http(door.door_port)
    c.send(request(b"", method="GET"))
    assert c.response()[0] == 405
    c.send(request(login(), version="HTTP/1.0"))
    status, hdrs, _ = c.response()
    assert status == 200 and hdrs["Connection"] == "close" and c.closed()
    c = Http(door.door_port)
    c.send(request(login(), headers={"Connection": "close"}))
    assert c.response()[0] == 200 and c.closed()


def test_callers_outside_trusted_networks_are_not_read(door, rdb):
    c = Http(door.door_port, source="127.0.10.1")
    try:
        c.send(request(login("127.0.9.30")))
    except OSError:
        pass
    assert c.closed() and c.buf == b""
    door.wait_log(r"event=connection_refused door=dovecot client=127\.0\.10\.1"
                  r" reason=untrusted")
    assert not rdb.exists(GRANT + "127.0.9.30")


def test_connections_per_address_are_capped(door):
    conns = [Http(door.door_port, source="127.0.8.1") for _ in range(512)]
    extra = Http(door.door_port, source="127.0.8.1")
    assert extra.closed()
    door.wait_log(r"event=connection_refused door=dovecot client=127\.0\.8\.1"
                  r" reason=max_connections_per_addr")
    other = Http(door.door_port, source="127.0.8.2")
    other.send(request(login()))
    assert other.response()[0] == 200
    for c in conns + [extra, other]:
        c.close()


def test_a_peer_that_never_reads_does_not_grow_our_output(door):
    # Pipelined requests, answers never read: reading stops at the output
    # high-water mark, so what we hold for it stays small.
    c = Http(door.door_port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    one = request(login(), "/?command=report")
    sent = 0
    c.sock.settimeout(2)
    try:
        while sent < 20 * 1024 * 1024:
            c.sock.sendall(one * 100)
            sent += len(one) * 100
    except socket.timeout:
        pass
    assert sent < 20 * 1024 * 1024          # we stopped reading it
    c.close()


def event(user="alice", ip="127.0.9.40", name="imap_command_finished"):
    return json.dumps({"event": name, "hostname": "dc1",
                       "start_time": 1796118844.408901,
                       "categories": ["imap", "service:imap"],
                       "fields": {"user": user, "remote_ip": ip,
                                  "cmd_name": "NOOP", "bytes_out": 47,
                                  "reason_code": ["imap:cmd_noop"]}})


BASIC = "Basic " + __import__("base64").b64encode(
    f"dovecot:{KEY}".encode()).decode()


def test_events_renew_once_per_interval(door, rdb):
    c = Http(door.door_port)
    hdr = {"X-API-Key": None, "Authorization": BASIC}
    for _ in range(20):
        c.send(request(event(), "/events", hdr))
        assert c.response()[:1] == (200,)
    wait_until(lambda: rdb.exists(GRANT + "127.0.9.40"), 5, what="renewal")
    time.sleep(0.3)
    g = rdb.hgetall(GRANT + "127.0.9.40")
    assert g["method"] == "IMAP-SESSION" and g["node"] == "dc1"
    assert g["logins"] == "1"               # 20 events, one write
    c.send(request(event(name="imap_command_started"), "/events", hdr))
    assert c.response()[0] == 200
    c.send(request(event(), "/events", {"X-API-Key": None,
                                        "Authorization": "Basic eDp5"}))
    assert c.response()[0] == 403


def test_no_redis_the_login_is_answered_within_the_timeout(door,
                                                           redis_server):
    redis_server.pause()
    try:
        c = Http(door.door_port)
        t0 = time.monotonic()
        c.send(request(login("127.0.9.50")))
        assert c.response()[2] == b'{"status":0}'
        assert time.monotonic() - t0 < 0.5 + 1.5   # redis.timeout_ms 500
    finally:
        redis_server.resume()
    door.wait_log(r"event=dovecot_login .*rip=127\.0\.9\.50 .*grant=failed")
