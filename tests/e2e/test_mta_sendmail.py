"""A real Sendmail 8.17 (Debian's, unpacked privately: mta_harness.py) with
conf/sendmail.mc.sample's recipe, asking smtpgate's socketmap: Sendmail's
own 550 before a POP3 login, relaying after it, 451 for relays while Redis
or smtpgate cannot answer, local mail always accepted.

The daemon is started once for the module; each test has its own Redis,
gate (on the port the recipe names) and pop3d. The traps the sample warns
about are shown with `sendmail -bt` (the rulesets, no daemon) on .cf files
built from the other wirings.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import free_port, program, terminate, wait_listening
from mta_harness import (CUSTOMER, LOCAL, NEIGHBOUR, REMOTE, Namespace,
                         check_mail, private_root, rcpt_reply, recipe, swaks)
from pop3_harness import pop3d_factory  # noqa: F401
from smtp_harness import gate_factory, sink  # noqa: F401

PACKAGES = ["sendmail-bin", "sendmail-base", "sendmail-cf"]
DENIED = f"550 5.7.1 <{REMOTE}>... Relaying denied"
DEFERRED = "451 4.3.0 Relay permission cannot be checked right now, try again later"

# What a test instance needs besides the recipe: its own files, a port,
# inbound mail for example.net, nothing delivered (DeliveryMode queue: the
# message stays in the private queue), no DNS (none here).
BASE_MC = """divert(-1)
divert(0)dnl
VERSIONID(`authbridge e2e')dnl
OSTYPE(`linux')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`QUEUE_DIR', `@D@/mqueue')dnl
define(`ALIAS_FILE', `@D@/aliases')dnl
define(`STATUS_FILE', `@D@/sendmail.st')dnl
define(`HELP_FILE', `@D@/helpfile')dnl
define(`confPID_FILE', `@D@/sendmail.pid')dnl
define(`confHOST_STATUS_DIRECTORY', `')dnl
define(`confSERVICE_SWITCH_FILE', `@D@/service.switch')dnl
define(`confTO_IDENT', `0')dnl
define(`confDELIVERY_MODE', `queue')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
LOCAL_DOMAIN(`example.net')dnl
DAEMON_OPTIONS(`Port=@PORT@, Addr=127.0.0.1, Name=MTA')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""


class Sendmail:
    def __init__(self):
        self.root = private_root("sendmail", PACKAGES)
        self.binary = self.root / "usr/libexec/sendmail/sendmail"
        self.cfdir = self.root / "usr/share/sendmail/cf"
        self.folder = Path(tempfile.mkdtemp(prefix="ab-sendmail-"))
        self.port, self.map_port = free_port(), free_port()
        self.trace = self.folder / "smtp-trace.log"
        self.ns = Namespace(self.folder, "sendmail.test")
        (self.folder / "mqueue").mkdir(mode=0o700)
        for name in ("aliases", "sendmail.st", "helpfile"):
            (self.folder / name).touch()
        (self.folder / "service.switch").write_text("hosts files\n"
                                                    "aliases files\n")
        self.cf = self.build("sendmail", self.wiring())
        self.proc = None

    def wiring(self):
        """The README's recipe, on this instance's socketmap port."""
        text = recipe("sendmail.mc.sample", marker="dnl")
        assert "inet:10032@127.0.0.1" in text
        return text.replace("inet:10032@", f"inet:{self.map_port}@")

    def build(self, name, extra):
        mc = self.folder / f"{name}.mc"
        mc.write_text(BASE_MC.replace("@D@", str(self.folder))
                      .replace("@PORT@", str(self.port)) + extra)
        cf = self.folder / f"{name}.cf"
        out = subprocess.run(["m4", f"-D_CF_DIR_={self.cfdir}/",
                              str(self.cfdir / "m4/cf.m4"), str(mc)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout, out.stderr
        cf.write_text(out.stdout)
        return cf

    def start(self):
        self.proc = subprocess.Popen(
            self.ns.argv() + [str(self.binary), "-C", str(self.cf), "-bD",
                              "-X", str(self.trace)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        try:
            wait_listening(self.port, 30, what="Sendmail to listen")
        except BaseException:
            self.proc.kill()
            raise AssertionError(self.proc.communicate()[1])

    def rules(self, cf, lines):
        """`sendmail -bt` on cf: the rulesets' trace for the test lines."""
        out = subprocess.run(self.ns.argv() + [str(self.binary), "-C", str(cf),
                                               "-bt"],
                             input="\n".join(lines) + "\n", capture_output=True,
                             text=True, timeout=60)
        return out.stdout + out.stderr

    def stop(self):
        if self.proc is not None:
            terminate(self.proc)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def sendmail():
    sm = Sendmail()
    try:
        sm.start()
        yield sm
    finally:
        sm.stop()


@pytest.fixture
def map_gate(sendmail, gate_factory):
    """A gate whose socketmap is where the recipe points."""
    return gate_factory(socketmap_listen=f"127.0.0.1:{sendmail.map_port}")


def reply(sendmail, source, to=REMOTE):
    return rcpt_reply(sendmail.port, source, to)


# ---- the recipe, against the daemon ---------------------------------------------

def test_sendmail_refuses_a_relay_without_a_grant_in_its_own_words(
        sendmail, map_gate):
    assert reply(sendmail, NEIGHBOUR) == DENIED
    # It asked (and only about the client's address).
    map_gate.wait_log(rf"event=rcpt via=socketmap .*client={NEIGHBOUR} "
                      r"map=relay path=none answer=NOTFOUND")


def test_sendmail_relays_after_a_pop3_login(sendmail, map_gate,
                                            pop3d_factory):
    pop = pop3d_factory()
    assert reply(sendmail, CUSTOMER) == DENIED
    check_mail(pop, CUSTOMER)
    out = swaks(sendmail.port, CUSTOMER, REMOTE)
    assert f"<-  250 2.1.5 <{REMOTE}>... Recipient ok" in out, out
    assert "Message accepted for delivery" in out, out
    line = map_gate.wait_log(rf"event=rcpt via=socketmap .*client={CUSTOMER} "
                             r".*path=grant")
    assert "user=alice" in line
    # The neighbour has not checked mail.
    assert reply(sendmail, NEIGHBOUR) == DENIED


def test_sendmail_refuses_again_once_the_grant_is_revoked(sendmail, map_gate,
                                                          rdb):
    map_gate.grant(rdb, CUSTOMER, "alice")
    assert reply(sendmail, CUSTOMER).startswith("250 2.1.5")
    revoked = subprocess.run([str(program("authbridge/authbridge")), "-c",
                              str(map_gate.config), "revoke", CUSTOMER],
                             capture_output=True, text=True, timeout=10)
    assert revoked.returncode == 0, revoked.stderr
    assert reply(sendmail, CUSTOMER) == DENIED


def test_sendmail_defers_relays_while_redis_is_down_and_takes_local_mail(
        sendmail, map_gate, rdb, redis_server):
    map_gate.grant(rdb, CUSTOMER, "alice")
    redis_server.stop()
    assert reply(sendmail, CUSTOMER) == DEFERRED
    assert reply(sendmail, NEIGHBOUR) == DEFERRED
    local = swaks(sendmail.port, NEIGHBOUR, LOCAL)
    assert "Message accepted for delivery" in local, local
    map_gate.wait_log(rf"event=rcpt via=socketmap .*client={CUSTOMER} "
                      r".*path=tempfail")


def test_sendmail_defers_relays_while_smtpgate_is_down(sendmail, map_gate,
                                                       rdb):
    map_gate.grant(rdb, CUSTOMER, "alice")
    map_gate.stop()
    assert reply(sendmail, CUSTOMER) == DEFERRED
    local = swaks(sendmail.port, CUSTOMER, LOCAL)
    assert "Message accepted for delivery" in local, local


def test_local_mail_never_asks_smtpgate(sendmail, map_gate):
    local = swaks(sendmail.port, NEIGHBOUR, LOCAL)
    assert "Message accepted for delivery" in local, local
    assert "via=socketmap" not in map_gate.log()


# ---- the traps, in Sendmail's rulesets ---------------------------------------------

def bt_lines(client, *tests):
    return [f".D{{client_addr}}{client}"] + list(tests)


def variant(sendmail, name, feature):
    """A .cf with another wiring in place of the recipe."""
    spec = f"inet:{sendmail.map_port}@127.0.0.1"
    return sendmail.build(name, feature.replace("@MAP@", spec) + "\n")


def test_the_recipe_in_an_outage_defers_relays_only(sendmail, map_gate,
                                                    redis_server):
    redis_server.stop()
    out = sendmail.rules(sendmail.cf, bt_lines(
        NEIGHBOUR, f"check_rcpt <{REMOTE}>", f"check_rcpt <{LOCAL}>"))
    assert 'check_rcpt       returns: $# error $@ 4 . 3 . 0 $: "451 Relay ' \
        in out, out
    assert "check_rcpt       returns: RELAY" in out, out


def test_trap_drac_with_tmpf_relays_for_everyone_in_an_outage(
        sendmail, map_gate, redis_server):
    cf = variant(sendmail, "drac-tmpf",
                 "FEATURE(`drac', `socket -T<TMPF> @MAP@')dnl")
    healthy = sendmail.rules(cf, bt_lines(NEIGHBOUR, f"check_rcpt <{REMOTE}>"))
    assert '$# error $@ 5 . 7 . 1 $: "550 Relaying denied"' in healthy, healthy
    redis_server.stop()
    out = sendmail.rules(cf, bt_lines(NEIGHBOUR, f"check_rcpt <{REMOTE}>"))
    assert "check_rcpt       returns: RELAY" in out, out


def test_trap_plain_drac_bounces_granted_clients_in_an_outage(
        sendmail, map_gate, rdb, redis_server):
    cf = variant(sendmail, "drac-plain",
                 "FEATURE(`drac', `socket @MAP@')dnl")
    map_gate.grant(rdb, CUSTOMER, "alice")
    granted = sendmail.rules(cf, bt_lines(CUSTOMER, f"check_rcpt <{REMOTE}>"))
    assert "check_rcpt       returns: RELAY" in granted, granted
    redis_server.stop()
    out = sendmail.rules(cf, bt_lines(CUSTOMER, f"check_rcpt <{REMOTE}>"))
    assert '$# error $@ 5 . 7 . 1 $: "550 Relaying denied"' in out, out


def test_trap_an_access_map_defers_every_message_in_an_outage(sendmail,
                                                              map_gate):
    cf = variant(sendmail, "access",
                 "FEATURE(`access_db', `socket -T<TMPF> @MAP@')dnl")
    map_gate.stop()
    out = sendmail.rules(cf, bt_lines(NEIGHBOUR, f"check_mail <{LOCAL}>"))
    # The sender check, before any recipient: local mail is deferred too.
    assert "check_mail       returns: $# error $@ 4 . 3 . 0" in out, out
