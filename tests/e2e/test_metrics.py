"""Both daemons' /metrics, scraped by Debian's own Prometheus (run
privately, once for the module) with the README's scrape configuration:
its HTTP API returns the counts of a known number of logins (real pop3d,
poplib) and relay attempts (real smtpgate, smtplib); promtool accepts the
output; and what Prometheus 2.42 and promtool do not check (the exact
Content-Type, a histogram's +Inf bucket) is checked here.

Tests that need no Prometheus use a fresh daemon of their own.
"""

import re
import signal
import socket
import subprocess

import pytest

from conftest import RedisServer, free_port, wait_until, write_config
from metrics_harness import (CONTENT_TYPE, Prometheus, families, fetch,
                             metrics_text, samples, value)
from pop3_harness import Pop3d, pop3d_factory  # noqa: F401
from smtp_harness import Gate, PySink

GOOD, BAD, STRANGER = "127.0.7.1", "127.0.7.2", "127.0.7.3"


class Stack:
    """Redis, pop3d and smtpgate with metrics_listen, and Prometheus
    scraping both: started once for the module."""

    def __init__(self, tmp):
        self.redis = RedisServer(tmp / "redis").start()
        self.sink = PySink()
        self.pop_metrics, self.gate_metrics = free_port(), free_port()
        self.pop = Pop3d(tmp / "p", self.redis,
                         metrics_listen=f"127.0.0.1:{self.pop_metrics}")
        self.gate = Gate(tmp / "g", self.redis, self.sink.address,
                         metrics_listen=f"127.0.0.1:{self.gate_metrics}")
        self.prom = Prometheus(tmp / "prometheus",
                               {"pop3d": self.pop_metrics,
                                "smtpgate": self.gate_metrics})

    def start(self):
        self.pop.start()
        self.gate.start()
        self.prom.start()
        return self

    def stop(self):
        for part in (self.prom.stop, self.gate.stop, self.pop.stop,
                     self.sink.stop, self.redis.stop):
            part()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("metrics"))
    try:
        yield s.start()
    finally:
        s.stop()


def login(pop, source, password="secret"):
    p = pop.client(source)
    try:
        p.user("alice")
        p.pass_(password)
        p.quit()
        return True
    except Exception:
        p.close()
        return False


def rcpt(gate, source, to):
    with gate.smtp(source) as s:
        s.ehlo("client.example")
        s.mail("alice@example.net")
        code = s.rcpt(to)[0]
        s.rset()
        return code


def policy_request(gate, client):
    with socket.create_connection(("127.0.0.1", gate.policy_port), 5) as s:
        s.sendall(f"request=smtpd_access_policy\nprotocol_state=RCPT\n"
                  f"client_address={client}\nsender=alice@example.net\n"
                  f"recipient=friend@remote.example\n\n".encode())
        return s.recv(4096).decode()


# ---- with Prometheus ------------------------------------------------------------

def test_prometheus_counts_a_known_number_of_logins_and_relay_attempts(stack):
    pop_before = metrics_text(stack.pop_metrics)
    gate_before = metrics_text(stack.gate_metrics)

    def before(text, name, **labels):
        return value(text, name, **labels) or 0

    for _ in range(3):
        assert login(stack.pop, GOOD)
    for _ in range(2):
        assert not login(stack.pop, BAD, "wrong")
    assert rcpt(stack.gate, BAD, "friend@remote.example") == 550
    assert rcpt(stack.gate, BAD, "other@remote.example") == 550
    assert rcpt(stack.gate, GOOD, "friend@remote.example") == 250
    assert rcpt(stack.gate, STRANGER, "bob@example.net") == 250
    assert "action=OK" in policy_request(stack.gate, GOOD)
    assert "action=DUNNO" in policy_request(stack.gate, STRANGER)

    prom = stack.prom
    # (job, metric, labels, how many more than before)
    want = [
        ("pop3d", "authbridge_logins_total",
         {"method": "user", "result": "ok"}, 3),
        ("pop3d", "authbridge_logins_total",
         {"method": "user", "result": "failed"}, 2),
        ("pop3d", "authbridge_grants_total", {"result": "written"}, 3),
        ("pop3d", "authbridge_connections_total", {"listener": "pop3"}, 5),
        ("smtpgate", "authbridge_relay_decisions_total",
         {"via": "smtp", "path": "denied"}, 2),
        ("smtpgate", "authbridge_relay_decisions_total",
         {"via": "smtp", "path": "grant"}, 1),
        ("smtpgate", "authbridge_relay_decisions_total",
         {"via": "smtp", "path": "local"}, 1),
        ("smtpgate", "authbridge_relay_decisions_total",
         {"via": "policy", "path": "grant"}, 1),
        ("smtpgate", "authbridge_relay_decisions_total",
         {"via": "policy", "path": "none"}, 1),
        ("smtpgate", "authbridge_connections_total", {"listener": "smtp"}, 4),
        ("smtpgate", "authbridge_connections_total", {"listener": "policy"},
         2),
    ]
    for job, name, labels, delta in want:
        base = pop_before if job == "pop3d" else gate_before
        sel = ",".join([f'job="{job}"'] +
                       [f'{k}="{v}"' for k, v in labels.items()])
        prom.wait_value(f"{name}{{{sel}}}", before(base, name, **labels) + delta)
    prom.wait_value('up{job="pop3d"}', 1)
    prom.wait_value('up{job="smtpgate"}', 1)
    prom.wait_value('authbridge_redis_up{job="smtpgate"}', 1)
    # Every login asked Redis (throttle, grant): the histogram saw it.
    count = prom.query('authbridge_redis_request_duration_seconds_count'
                       '{job="pop3d"}')[0][1]
    assert count >= before(pop_before,
                           "authbridge_redis_request_duration_seconds_count") + 5


def test_promtool_accepts_both_daemons_output(stack):
    for port in (stack.pop_metrics, stack.gate_metrics):
        text = metrics_text(port)
        out = subprocess.run([str(stack.prom.promtool), "check", "metrics"],
                             input=text, capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout + out.stderr == ""


# ---- what Prometheus 2.42 and promtool let pass -----------------------------------

def test_the_content_type_is_exactly_the_0_0_4_text_format(stack):
    for port in (stack.pop_metrics, stack.gate_metrics):
        status, headers, _ = fetch(port)
        assert status == 200
        assert headers["Content-Type"] == CONTENT_TYPE


def test_every_histogram_has_cumulative_buckets_ending_in_inf(stack):
    for port in (stack.pop_metrics, stack.gate_metrics):
        text = metrics_text(port)
        s = samples(text)
        hists = [n for n, t in families(text).items() if t == "histogram"]
        assert hists, "no histogram at all"
        for h in hists:
            buckets = sorted(
                ((float(dict(labels)["le"]), v) for (n, labels), v in s.items()
                 if n == h + "_bucket"), key=lambda b: b[0])
            assert buckets[-1][0] == float("inf"), f"{h}: no +Inf bucket"
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{h}: buckets not cumulative"
            assert s[(h + "_count", frozenset())] == buckets[-1][1]
            assert (h + "_sum", frozenset()) in s


def test_other_paths_are_404_and_other_methods_refused(stack):
    assert fetch(stack.pop_metrics, "/")[0] == 404
    assert fetch(stack.gate_metrics, "/metrics/../x")[0] == 404
    assert fetch(stack.pop_metrics, method="POST")[0] >= 400
    status, headers, body = fetch(stack.pop_metrics, method="HEAD")
    assert status == 200 and body == ""


def test_no_label_value_names_a_user_or_an_address(stack):
    assert login(stack.pop, GOOD)            # "alice" from GOOD was seen
    for port in (stack.pop_metrics, stack.gate_metrics):
        for (_, labels), _ in samples(metrics_text(port)).items():
            for k, v in labels:
                assert v != "alice", (k, v)
                assert not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", v), (k, v)
                assert ":" not in v, (k, v)


# ---- a fresh daemon ---------------------------------------------------------------------

@pytest.fixture
def fresh(pop3d_factory):
    port = free_port()
    pop = pop3d_factory(metrics_listen=f"127.0.0.1:{port}")
    pop.metrics_port = port
    return pop


def test_every_label_combination_is_there_from_the_start(fresh):
    s = samples(metrics_text(fresh.metrics_port))
    logins = {labels: v for (n, labels), v in s.items()
              if n == "authbridge_logins_total"}
    assert len(logins) == 3 * 4 and set(logins.values()) == {0}
    info = [(dict(labels), v) for (n, labels), v in s.items()
            if n == "authbridge_build_info"]
    assert len(info) == 1 and info[0][1] == 1
    assert info[0][0]["program"] == "pop3d" and info[0][0]["version"]


def test_the_endpoint_caps_connections_in_all_and_per_address(fresh):
    port, held = fresh.metrics_port, []

    def idle(source):
        s = socket.create_connection(("127.0.0.1", port), 5,
                                     source_address=(source, 0))
        held.append(s)
        return s

    def closed_at_once(s):
        s.settimeout(3)
        try:
            return s.recv(100) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    try:
        for _ in range(4):                   # METRICS_CONNS_PER_ADDR_MAX
            idle("127.0.9.1")
        assert closed_at_once(idle("127.0.9.1"))
        assert fetch(port, source="127.0.9.2")[0] == 200
        for a in range(2, 5):                # 4 + 12 = METRICS_CONNS_MAX
            for _ in range(4):
                idle(f"127.0.9.{a}")
        assert closed_at_once(idle("127.0.9.5"))
    finally:
        for s in held:
            s.close()
    # Closed connections give their places back.
    wait_until(lambda: fetch(port, source="127.0.9.1")[0] == 200, 5,
               what="the cap to be released")


def test_an_over_long_request_is_refused_with_400(fresh):
    status, _, _ = fetch(fresh.metrics_port, headers={"X-Pad": "a" * 9000})
    assert status == 400
    assert fetch(fresh.metrics_port)[0] == 200


def test_a_failed_reload_shows_until_one_works(fresh):
    port = fresh.metrics_port
    first = value(metrics_text(port),
                  "authbridge_config_last_reload_success_timestamp_seconds")
    assert first > 0
    assert value(metrics_text(port), "authbridge_config_last_reload_successful") == 1
    good = fresh.config.read_text()
    fresh.config.write_text(good + "\n[pop3d]\nno_such_key = 1\n")
    fresh.signal(signal.SIGHUP)
    fresh.wait_log(r"event=reload_failed")
    text = metrics_text(port)
    assert value(text, "authbridge_config_last_reload_successful") == 0
    assert value(text, "authbridge_config_last_reload_success_timestamp_seconds") == first
    fresh.config.write_text(good)
    fresh.signal(signal.SIGHUP)
    fresh.wait_log(r"event=reloaded")
    assert value(metrics_text(port), "authbridge_config_last_reload_successful") == 1


def test_the_throttle_blocks_are_counted(pop3d_factory, redis_server):
    port = free_port()
    pop = pop3d_factory(start=False, metrics_listen=f"127.0.0.1:{port}")
    pop.sections["throttle"] = {"block_after": 2, "delay_after": 100}
    write_config(pop.config, pop.sections)
    pop.start()
    for _ in range(3):
        assert not login(pop, BAD, "wrong")
    text = metrics_text(port)
    assert value(text, "authbridge_throttle_blocks_total", scope="address") == 1
    assert value(text, "authbridge_logins_total", method="user",
                 result="blocked") == 1
    assert value(text, "authbridge_logins_total", method="user",
                 result="failed") == 2


def test_a_redis_outage_shows_as_down_with_errors_and_failed_grants(
        fresh, redis_server):
    port = fresh.metrics_port
    assert value(metrics_text(port), "authbridge_redis_up") == 1
    redis_server.stop()
    wait_until(lambda: value(metrics_text(port), "authbridge_redis_up") == 0,
               5, what="redis_up to drop to 0")
    assert login(fresh, GOOD)                # mail access goes on
    text = metrics_text(port)
    assert value(text, "authbridge_grants_total", result="failed") >= 1
    assert value(text, "authbridge_redis_errors_total", kind="unavailable") >= 1
    redis_server.start()
    wait_until(lambda: value(metrics_text(port), "authbridge_redis_up") == 1,
               5, what="redis_up to come back")
