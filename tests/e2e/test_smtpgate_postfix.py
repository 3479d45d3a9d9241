"""A real Postfix asks smtpgate's policy service (check_policy_service),
placed as conf/postfix-main.cf.sample shows: relaying through Postfix is
refused without a grant and accepted right after one, from that address.

The private instance: its own config folder and queue under tmp, listed
in alternate_config_directories of /etc/postfix/main.cf for the test's
duration, smtpd on a free port, logging to a file (no syslog here).
"""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import free_port, program, wait_listening, wait_until
from smtp_harness import gate, gate_factory, sink  # noqa: F401

CLIENT = "127.0.0.21"


def postconf(*args):
    return subprocess.run(["postconf", *args], capture_output=True, text=True,
                          check=True).stdout


def alternate_dirs():
    value = postconf("-h", "alternate_config_directories").strip()
    return [d for d in value.replace(",", " ").split() if d]


def set_alternate_dirs(dirs):
    postconf("-e", "alternate_config_directories = " + " ".join(dirs))


def master_cf(smtpd_port):
    """The stock master.cf, smtpd on our port, nothing chrooted."""
    out = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        f = line.split()
        if line[:1] not in ("", "#", " ", "\t") and len(f) >= 8:
            if f[0] == "smtp" and f[1] == "inet":
                f[0] = f"127.0.0.1:{smtpd_port}"
            f[4] = "n"
            line = " ".join(f)
        out.append(line)
    return "\n".join(out) + "\n"


def main_cf(folder, policy_port, map_port, sample):
    sample = (Path(__file__).resolve().parents[2] / "conf" /
              sample).read_text()
    # The restrictions exactly as the sample gives them, on our ports.
    lines = [l for l in sample.splitlines()
             if l.startswith(("smtpd_recipient_restrictions",
                              "smtpd_relay_restrictions", " ", "\t"))
             and not l.lstrip().startswith("#")]
    restrictions = "\n".join(lines).replace(
        "127.0.0.1:10031", f"127.0.0.1:{policy_port}").replace(
        "127.0.0.1:10032", f"127.0.0.1:{map_port}")
    assert "check_policy_service" in restrictions or \
        "check_client_access socketmap:" in restrictions
    return f"""compatibility_level = 3.6
queue_directory = {folder}/spool
data_directory = {folder}/data
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.test
mydestination = example.net
mynetworks = 127.0.0.1/32
alias_maps =
alias_database =
local_recipient_maps =
local_transport = discard
default_transport = discard
smtpd_policy_service_timeout = 10s
smtpd_authorized_xclient_hosts = 127.0.0.1
{restrictions}
"""


class Postfix:
    """sample: the conf/ file whose restrictions this instance runs."""

    def __init__(self, sample="postfix-main.cf.sample"):
        # Not under pytest's tmp folders: those are 0700 and the postfix
        # user must reach its data_directory.
        self.folder = Path(tempfile.mkdtemp(prefix="ab-postfix-"))
        self.folder.chmod(0o755)
        (self.folder / "spool").mkdir()
        (self.folder / "data").mkdir()
        shutil.chown(self.folder / "data", "postfix")
        self.port = free_port()
        self.policy_port = free_port()
        self.map_port = free_port()
        self.log = self.folder / "maillog"
        (self.folder / "master.cf").write_text(master_cf(self.port))
        (self.folder / "main.cf").write_text(main_cf(
            self.folder, self.policy_port, self.map_port, sample))

    def start(self):
        set_alternate_dirs(alternate_dirs() + [str(self.folder)])
        started = subprocess.run(["postfix", "-c", str(self.folder), "start"],
                                 capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, (started.stderr, self.log.read_text()
                                         if self.log.exists() else "")

        wait_listening(self.port, 20, what="Postfix smtpd to listen")

    def stop(self):
        subprocess.run(["postfix", "-c", str(self.folder), "stop"],
                       capture_output=True, timeout=60)
        set_alternate_dirs([d for d in alternate_dirs()
                            if d != str(self.folder)])
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postfix():
    pf = Postfix()
    try:
        pf.start()
        yield pf
    finally:
        pf.stop()


@pytest.fixture
def policy_gate(postfix, gate_factory):
    """A gate whose policy service is where this Postfix asks."""
    return gate_factory(policy_listen=f"127.0.0.1:{postfix.policy_port}")


def swaks(port, source=CLIENT, *extra):
    return subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{port}", "--local-interface", source,
         "--from", "alice@example.net", "--to", "bob@remote.example",
         "--helo", "client.example", "--timeout", "20", *extra],
        capture_output=True, text=True, timeout=60).stdout


def test_postfix_relays_only_after_a_grant(postfix, policy_gate, rdb):
    gate, port = policy_gate, postfix.port
    refused = swaks(port)
    assert "<** 554 5.7.1 <bob@remote.example>: Relay access denied" in \
        refused, refused
    gate.grant(rdb, CLIENT, "alice")
    accepted = swaks(port)
    assert "<-  250 2.1.5 Ok" in accepted, accepted
    assert "<-  250 2.0.0 Ok: queued as" in accepted, accepted
    # Another address is still refused.
    assert "Relay access denied" in swaks(port, "127.0.0.22")
    line = gate.wait_log(r"event=rcpt via=policy .*path=grant")
    assert f"client={CLIENT}" in line and "user=alice" in line
    # Local mail is Postfix's own business: accepted without the policy
    # having to say OK.
    local = swaks(port, "127.0.0.22", "--to", "carol@example.net")
    assert "<-  250 2.0.0 Ok: queued as" in local, local


def test_postfix_defers_relays_while_redis_is_down(postfix, policy_gate, rdb,
                                                   redis_server):
    gate, port = policy_gate, postfix.port
    gate.grant(rdb, CLIENT, "alice")
    redis_server.stop()
    deferred = swaks(port, CLIENT, "--quit-after", "RCPT")
    # DEFER_IF_REJECT: a relay Postfix would reject becomes a 450-class
    # temporary failure, so the client retries instead of bouncing.
    assert "<** 450 4.3.0 <bob@remote.example>:" in deferred, deferred


def test_the_gate_in_front_of_postfix_passes_the_client_by_xclient(
        postfix, gate_factory, rdb):
    """smtpgate proxying into the real Postfix: XCLIENT makes Postfix see
    (and log, and judge) the real client, not the gate."""
    g = gate_factory(downstream=f"127.0.0.1:{postfix.port}",
                     policy_listen=f"127.0.0.1:{postfix.policy_port}")
    g.grant(rdb, CLIENT, "alice")
    out = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{g.port}", "--local-interface",
         CLIENT, "--from", "alice@example.net", "--to", "bob@remote.example",
         "--helo", "client.example", "--timeout", "20"],
        capture_output=True, text=True, timeout=60).stdout
    assert "<-  250 2.0.0 Ok: queued as" in out, out
    wait_until(lambda: f"client=unknown[{CLIENT}]" in postfix.log.read_text(),
               10, what="Postfix to log the real client")
    assert "helo=<client.example>" in postfix.log.read_text()


def test_stats_counts_a_relay_through_the_gate_and_postfix_once(
        postfix, gate_factory, rdb):
    """The gate decides each recipient, and the Postfix behind it asks
    the policy service about the same recipient again: two relay-allowed
    entries for one relay, which `authbridge stats` counts once (the
    client's port, passed by XCLIENT, ties them together). A relay
    straight through Postfix is still counted."""
    g = gate_factory(downstream=f"127.0.0.1:{postfix.port}",
                     policy_listen=f"127.0.0.1:{postfix.policy_port}")
    g.grant(rdb, CLIENT, "alice")
    out = swaks(g.port, CLIENT, "--to", "bob@remote.example,eve@remote.example")
    assert "<-  250 2.0.0 Ok: queued as" in out, out
    direct = swaks(postfix.port, CLIENT)
    assert "<-  250 2.0.0 Ok: queued as" in direct, direct

    def allowed():
        return [f for _, f in rdb.xrange("authbridge:decisions")
                if f["event"] == "relay-allowed"]
    # One session's decisions of one door share an entry: the first at
    # once, the rest counted and written when the gate stops.
    wait_until(lambda: len(allowed()) == 3, 10,
               what="one gate and two policy entries in the stream")
    g.stop()
    assert len(allowed()) == 5
    gate_side = {(f["client"], f["port"]) for f in allowed()
                 if f["via"] == "smtp"}
    policy_side = [(f["client"], f.get("port")) for f in allowed()
                   if f["via"] == "policy"]
    assert len(gate_side) == 1
    # Postfix saw the real client's port: the gate's echoes carry it.
    assert sum(p in gate_side for p in policy_side) == 2, (gate_side,
                                                          policy_side)
    out = subprocess.run([str(program("authbridge/authbridge")), "-c",
                          str(g.config), "stats"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^  relays allowed +3$", out.stdout, re.M), out.stdout
    assert "(2 more decisions: the MTA asking the policy service" in \
        out.stdout
