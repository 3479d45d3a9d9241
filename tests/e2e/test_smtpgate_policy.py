"""The Postfix policy service (SMTPD_POLICY_README) and WHOSON front doors."""


import pytest

from conftest import LineSocket, wait_until
from smtp_harness import gate, gate_factory, sink  # noqa: F401

DECISIONS = "authbridge:decisions"


class LineClient(LineSocket):
    """Policy and WHOSON: requests out, answers up to the empty line in."""

    def request(self, data):
        """Send a request; the answer's lines up to the empty line."""
        self.sock.sendall(data)
        return self.answer()

    def answer(self):
        while b"\n\n" not in self.buf.replace(b"\r\n", b"\n"):
            chunk = self.sock.recv(4096)
            if not chunk:
                return None
            self.buf += chunk
        text = self.buf.replace(b"\r\n", b"\n")
        answer, rest = text.split(b"\n\n", 1)
        self.buf = rest
        return answer.decode()


def policy_request(client, sender="alice@example.net",
                   recipient="bob@remote.example", **extra):
    attrs = {
        "request": "smtpd_access_policy", "protocol_state": "RCPT",
        "protocol_name": "ESMTP", "client_address": client,
        "client_name": "unknown", "helo_name": "client.example",
        "sender": sender, "recipient": recipient, "recipient_count": "0",
        "queue_id": "", "instance": "123.456.7", "size": "0",
        "sasl_method": "", "sasl_username": "", "ccert_subject": "",
    }
    attrs.update(extra)
    return b"".join(f"{k}={v}\n".encode() for k, v in attrs.items()) + b"\n"


# ---- policy ----------------------------------------------------------------------

def test_policy_ok_with_a_grant_dunno_without(gate, rdb):
    gate.grant(rdb, "192.0.2.7", "alice")
    c = LineClient(gate.policy_port)
    assert c.request(policy_request("192.0.2.7")) == "action=OK"
    assert c.request(policy_request("192.0.2.8")) == "action=DUNNO"
    assert c.request(policy_request("::ffff:192.0.2.7")) == "action=OK"
    c.close()
    # The stream entry is fire-and-forget: it may land just after the answer.
    wait_until(lambda: [f for _, f in rdb.xrange(DECISIONS)
                        if f["event"] == "relay-allowed"], 5,
               what="the first relay-allowed entry")
    # The second OK for that client within a minute is counted, and
    # written when the minute ends or the gate stops.
    gate.stop()
    allowed = [f for _, f in rdb.xrange(DECISIONS)
               if f["event"] == "relay-allowed"]
    assert len(allowed) == 2 and allowed[0]["via"] == "policy"
    assert allowed[0]["user"] == "alice" and allowed[0]["path"] == "grant"
    # Every answer is one line of the text log, at the default level.
    gate.wait_log(r"event=rcpt via=policy .*client=192\.0\.2\.8 "
                  r"helo=client\.example sender=alice@example\.net "
                  r"rcpt=bob@remote\.example path=none action=DUNNO")
    oks = [line for line in gate.log().splitlines()
           if "event=rcpt via=policy" in line and "path=grant" in line]
    assert len(oks) == 2 and all(" info: " in o and "user=alice" in o
                                 for o in oks)


def test_policy_persistent_connection_many_requests(gate, rdb):
    for i in range(0, 10, 2):
        gate.grant(rdb, f"198.51.100.{i}", f"user{i}")
    c = LineClient(gate.policy_port)
    answers = [c.request(policy_request(f"198.51.100.{i}")) for i in range(10)]
    assert answers == ["action=OK", "action=DUNNO"] * 5
    # Several requests in one write are answered in order.
    both = policy_request("198.51.100.0") + policy_request("198.51.100.1")
    assert c.request(both) == "action=OK"
    assert c.answer() == "action=DUNNO"
    c.close()


def test_policy_many_concurrent_connections(gate, rdb):
    gate.grant(rdb, "192.0.2.7", "alice")
    clients = [LineClient(gate.policy_port) for _ in range(40)]
    for c in clients:
        c.sock.sendall(policy_request("192.0.2.7"))
    assert [c.answer() for c in clients] == ["action=OK"] * 40
    for c in clients:
        c.close()


def test_policy_defers_when_redis_is_down(gate, redis_server, rdb):
    gate.grant(rdb, "192.0.2.7", "alice")
    c = LineClient(gate.policy_port)
    redis_server.stop()
    answer = c.request(policy_request("192.0.2.7"))
    assert answer.startswith("action=DEFER_IF_REJECT 4.3.0 "), answer
    assert c.request(policy_request("192.0.2.8")).startswith(
        "action=DEFER_IF_REJECT")
    redis_server.start()
    wait_until(lambda: gate.log().count("event=redis_up") >= 2, 5,
               what="the gate to reconnect")
    assert c.request(policy_request("192.0.2.8")) == "action=DUNNO"
    c.close()


def test_policy_sender_binding(gate_factory, rdb):
    g = gate_factory(sender_binding=True)
    g.grant(rdb, "192.0.2.7", "alice")
    c = LineClient(g.policy_port)
    assert c.request(policy_request("192.0.2.7", sender="alice@example.org")) \
        == "action=OK"
    assert c.request(policy_request("192.0.2.7", sender="bob@example.org")) \
        == "action=DUNNO"
    assert c.request(policy_request("192.0.2.7", sender="")) == "action=DUNNO"
    g.wait_log(r"event=rcpt via=policy .*path=sender_mismatch")
    c.close()


def test_policy_unusable_requests_get_dunno(gate):
    c = LineClient(gate.policy_port)
    assert c.request(policy_request("not-an-address")) == "action=DUNNO"
    assert c.request(policy_request("192.0.2.7", request="other")) == \
        "action=DUNNO"
    assert c.request(b"client_address=192.0.2.7\n\n") == "action=DUNNO"
    c.close()


@pytest.mark.parametrize("garbage", [
    b"this is not name=value\nno equals here\n\n",
    b"=value\n\n",
    b"x" * 3000 + b"\n\n",
    b"".join(b"a%d=1\n" % i for i in range(70)) + b"\n",
    b"a=\x00\n\n",
], ids=["no-equals", "empty-name", "long-line", "too-many-attrs", "nul"])
def test_policy_garbage_closes_the_connection(gate, garbage):
    c = LineClient(gate.policy_port)
    c.sock.sendall(garbage)
    assert c.closed()
    # The service is fine for everyone else.
    ok = LineClient(gate.policy_port)
    assert ok.request(policy_request("192.0.2.9")) == "action=DUNNO"
    ok.close()


def test_policy_request_size_cap(gate):
    c = LineClient(gate.policy_port)
    big = b"".join(b"a%02d=%s\n" % (i, b"v" * 300) for i in range(60)) + b"\n"
    assert len(big) > 16 * 1024
    c.sock.sendall(big)
    assert c.closed()


# ---- WHOSON ------------------------------------------------------------------------

def test_whoson_query(gate, rdb):
    gate.grant(rdb, "192.0.2.7", "alice")
    c = LineClient(gate.whoson_port, "127.0.0.66")
    assert c.request(b"QUERY 192.0.2.7\r\n\r\n") == "+alice"
    assert c.request(b"QUERY 192.0.2.8\r\n\r\n") == "-Not logged in"
    assert c.request(b"query ::ffff:192.0.2.7\n\n") == "+alice"
    c.close()


def test_whoson_login_and_logout_from_trusted(gate, rdb):
    c = LineClient(gate.whoson_port, "127.0.0.5")
    assert c.request(b"LOGIN 127.0.0.77 carol\r\n\r\n") == "+LOGIN ok"
    grant = rdb.hgetall("authbridge:grant:127.0.0.77")
    assert grant["user"] == "carol" and grant["method"] == "WHOSON"
    assert grant["node"] == "gate-node"
    assert 1790 < rdb.ttl("authbridge:grant:127.0.0.77") <= 1800
    assert c.request(b"QUERY 127.0.0.77\r\n\r\n") == "+carol"
    # The SMTP gate honours it right away...
    with gate.smtp("127.0.0.77") as s:
        s.ehlo("c.example")
        s.mail("carol@example.net")
        assert s.rcpt("x@remote.example")[0] == 250
    # ...and no longer after LOGOUT.
    assert c.request(b"LOGOUT 127.0.0.77\r\n\r\n") == "+LOGOUT ok"
    assert not rdb.exists("authbridge:grant:127.0.0.77")
    assert c.request(b"QUERY 127.0.0.77\r\n\r\n") == "-Not logged in"
    with gate.smtp("127.0.0.77") as s:
        s.ehlo("c.example")
        s.mail("carol@example.net")
        assert s.rcpt("x@remote.example")[0] == 550
    c.close()


def test_whoson_login_refused_from_untrusted(gate, rdb):
    c = LineClient(gate.whoson_port, "127.0.0.66")
    answer = c.request(b"LOGIN 203.0.113.9 mallory\r\n\r\n")
    assert answer.startswith("*")
    assert c.request(b"LOGOUT 192.0.2.7\r\n\r\n").startswith("*")
    assert not rdb.exists("authbridge:grant:203.0.113.9")
    gate.wait_log(r"event=whoson_refused .*peer=127.0.0.66 verb=LOGIN")
    c.close()


@pytest.mark.parametrize("garbage", [
    b"HELLO\r\n\r\n", b"QUERY\r\n\r\n", b"QUERY not-an-ip\r\n\r\n",
    b"QUERY 192.0.2.7 extra\r\n\r\n", b"QUERY 192.0.2.7\r\nmore\r\n\r\n",
    b"\r\n",
])
def test_whoson_garbage_gets_a_star(gate, garbage):
    c = LineClient(gate.whoson_port, "127.0.0.66")
    assert c.request(garbage).startswith("*")
    assert c.request(b"QUERY 192.0.2.7\r\n\r\n") == "-Not logged in"
    c.close()


def test_whoson_redis_down_is_an_error_not_a_no(gate, redis_server):
    c = LineClient(gate.whoson_port)
    redis_server.stop()
    assert c.request(b"QUERY 192.0.2.7\r\n\r\n").startswith("*")
    c.close()
