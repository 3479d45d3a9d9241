"""smtpgate as a process: -t, start-up errors, SIGTERM (graceful), SIGHUP."""

import signal
import ssl
import subprocess
import time

from conftest import (ClientThreads, base_sections, program, wait_until,
                      write_config)
from pop3_harness import make_tls
from smtp_harness import gate, gate_factory, sink  # noqa: F401


def run(config, *args):
    return subprocess.run([str(program("smtpgate/smtpgate")), "-c",
                           str(config), *args], capture_output=True,
                          text=True, timeout=10)


def test_config_check(tmp_path, redis_server, sink):
    good = write_config(tmp_path / "good.conf", {
        **base_sections(redis_server),
        "smtpgate": {"listen": "127.0.0.1:2525", "downstream": sink.address,
                     "local_domains": ["example.net"]}})
    out = run(good, "-t")
    assert out.returncode == 0 and "configuration OK" in out.stdout
    bad = write_config(tmp_path / "bad.conf", {
        **base_sections(redis_server),
        "smtpgate": {"listen": "127.0.0.1:2525", "sender_map": "missing"}})
    out = run(bad, "-t")
    assert out.returncode == 1
    assert "[smtpgate] listen needs downstream" in out.stderr
    mapfile = tmp_path / "senders"
    mapfile.write_text("not an address\n")
    broken_map = write_config(tmp_path / "map.conf", {
        **base_sections(redis_server),
        "smtpgate": {"listen": "", "policy_listen": "127.0.0.1:2526",
                     "sender_map": str(mapfile)}})
    out = run(broken_map, "-t")
    assert out.returncode == 1
    assert f"{mapfile}:1: 'not' is not an address or @domain" in out.stderr


def test_sigterm_lets_a_message_finish_and_closes_idle_sessions(gate, sink):
    idle = gate.raw("127.0.0.5")
    idle.cmd("EHLO c.example")
    busy = gate.raw("127.0.0.5")
    busy.cmd("EHLO c.example")
    busy.cmd("MAIL FROM:<a@example.net>")
    busy.cmd("RCPT TO:<b@remote.example>")
    assert busy.cmd("DATA")[0] == 354
    busy.send(b"first half\r\n")
    gate.signal(signal.SIGTERM)
    code, text = idle.reply()
    assert code == 421 and text.startswith("4.3.2 ")
    busy.send(b"second half\r\n")
    assert busy.cmd(b".")[0] == 250               # the message made it
    assert busy.reply()[0] == 421                 # then the session ends
    assert gate.stop() == 0
    assert sink.messages()[0]["data"] == b"first half\r\nsecond half\r\n"


def test_sighup_reloads_the_sender_map(gate_factory, rdb, tmp_path):
    senders = tmp_path / "senders"
    senders.write_text("sales@example.org alice\n")
    g = gate_factory(sender_binding=True, sender_map=str(senders))
    g.grant(rdb, "127.0.0.21", "alice")

    def rcpt(sender):
        with g.smtp("127.0.0.21") as s:
            s.ehlo("c.example")
            s.mail(sender)
            return s.rcpt("x@remote.example")[0]
    assert rcpt("sales@example.org") == 250
    assert rcpt("info@example.org") == 553
    senders.write_text("info@example.org alice\n")
    g.signal(signal.SIGHUP)
    g.wait_log(r"event=reloaded")
    assert rcpt("info@example.org") == 250
    assert rcpt("sales@example.org") == 553
    # A broken file keeps the previous one.
    senders.write_text("broken\n")
    g.signal(signal.SIGHUP)
    g.wait_log(r"event=reload_failed keeping=previous")
    assert rcpt("info@example.org") == 250


class Senders(ClientThreads):
    """Threads sending one message per session, alternately over SMTP and
    implicit TLS; count what was accepted, keep every failure."""

    def __init__(self, gate, threads=4):
        super().__init__(threads)
        self.gate, self.sent, self.errors = gate, 0, []

    def run(self, i):
        smtp = self.gate.smtps if i % 2 else self.gate.smtp
        while not self.stop.is_set():
            try:
                with smtp("127.0.0.5") as s:
                    s.sendmail("a@example.net", ["b@remote.example"],
                               b"Subject: load %d\r\n\r\nbody\r\n" % i)
                with self.lock:
                    self.sent += 1
            except Exception as e:        # noqa: BLE001 - every failure counts
                with self.lock:
                    self.errors.append(repr(e))


def test_sighup_under_load_drops_nothing_and_swaps_the_certificate(
        gate, sink, tmp_path):
    """Messages keep flowing, over plain SMTP and implicit TLS, through five
    reloads; the last one brings a new certificate, which new TLS sessions
    get, while nothing in flight fails."""
    before = ssl.get_server_certificate(("127.0.0.1", gate.tls_port))
    with Senders(gate) as load:
        for i in range(5):
            time.sleep(0.3)
            if i == 4:
                cert, key = make_tls(tmp_path / "newtls")
                gate.rewrite_config(tls_cert=str(cert), tls_key=str(key))
            gate.signal(signal.SIGHUP)
        wait_until(lambda: gate.log().count("event=reloaded") == 5, 5,
                   what="five reloads")
        time.sleep(0.3)
    assert load.errors == [] and load.sent > 20
    assert len(sink.messages()) == load.sent
    assert ssl.get_server_certificate(("127.0.0.1", gate.tls_port)) != before
