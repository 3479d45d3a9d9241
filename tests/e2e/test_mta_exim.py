"""A real Exim 4.96 (Debian's exim4-daemon-heavy, unpacked privately:
mta_harness.py) asking smtpgate's WHOSON port with ${readsocket}, in both
documented wirings, each daemon started once for the module:

  exim.conf   conf/exim.conf.sample's ACL statements in a hand-written
              configuration
  debian      Debian's stock exim4.conf.template, made into a
              configuration by Debian's own update-exim4.conf, with
              conf/exim4/'s localmacros line and authbridge_rcpt.acl in
              its /etc/exim4 (an overlay: the real /etc has none)

Grant -> 250, no grant -> Exim's own 550, Redis or smtpgate down -> 451
(never a silent 550), local mail always accepted. ${readsocket} half-
closes the connection right after its query: every 250 here is also the
proof that smtpgate answers such a request before closing.
"""

import subprocess

import pytest

from conftest import program
from mta_harness import (CUSTOMER, LOCAL, NEIGHBOUR, REMOTE, REPO, Exim,
                         check_mail, rcpt_reply, recipe, swaks)
from pop3_harness import pop3d_factory  # noqa: F401
from smtp_harness import gate_factory, sink  # noqa: F401

DENIED = "550 relay not permitted"
DEFERRED = ("451 4.3.0 Relay permission cannot be checked right now, "
            "try again later")

# The hand-written configuration around the recipe: our domain, loopback
# as the relay host, nothing delivered, no DNS.
HANDWRITTEN = """primary_hostname = exim.test
domainlist local_domains = example.net
domainlist relay_to_domains =
hostlist relay_from_hosts = 127.0.0.1
local_interfaces = 127.0.0.1
spool_directory = @SPOOL@
log_file_path = @LOG@/%slog
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
queue_only = true
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  accept  hosts = :
  accept  domains = +local_domains : +relay_to_domains
  accept  hosts = +relay_from_hosts
  accept  authenticated = *
@RECIPE@
  deny    message = relay not permitted

begin routers

local:
  driver = redirect
  domains = +local_domains
  data = :blackhole:

remote:
  driver = manualroute
  route_list = * 127.0.0.1
  transport = remote_smtp

begin transports

remote_smtp:
  driver = smtp
"""

# What update-exim4.conf reads (debconf's answers for an internet site).
UPDATE_CONF = """dc_eximconfig_configtype='internet'
dc_other_hostnames='example.net'
dc_local_interfaces='127.0.0.1'
dc_readhost=''
dc_relay_domains=''
dc_minimaldns='false'
dc_relay_nets=''
dc_smarthost=''
CFILEMODE='644'
dc_use_split_config='false'
dc_hide_mailname=''
dc_mailname_in_oh='true'
dc_localdelivery='mail_spool'
"""

# Test-only lines before the recipe's in exim4.conf.localmacros: our
# spool and log, no reverse DNS (none here), nothing delivered.
TEST_MACROS = """SPOOLDIR = @SPOOL@
MAIN_HOST_LOOKUP = !*
log_file_path = @LOG@/%slog
queue_only = true
"""


def fill(exim, text):
    return text.replace("@SPOOL@", str(exim.spool)).replace(
        "@LOG@", str(exim.logdir))


def handwritten(exim):
    conf = fill(exim, HANDWRITTEN).replace(
        "@RECIPE@\n", exim.on_our_port(recipe("exim.conf.sample")))
    exim.config = exim.folder / "exim.conf"
    exim.config.write_text(conf)


def debian(exim):
    """Debian's way: /etc/exim4 (in the overlay) holds the stock template,
    debconf's answers, the localmacros and the ACL file; Debian's own
    update-exim4.conf writes the configuration."""
    stock = exim.root / "etc/exim4/exim4.conf.template"
    acl = (REPO / "conf/exim4/authbridge_rcpt.acl").read_text()
    exim.ns.etc.update({
        "exim4/exim4.conf.template": stock.read_text(),
        "exim4/update-exim4.conf.conf": UPDATE_CONF,
        "exim4/exim4.conf.localmacros":
            fill(exim, TEST_MACROS) + recipe("exim4/exim4.conf.localmacros"),
        "exim4/authbridge_rcpt.acl": exim.on_our_port(acl),
    })
    exim.config = exim.folder / "exim4.conf.generated"
    made = subprocess.run(
        exim.ns.argv() + ["sh", str(exim.root / "usr/sbin/update-exim4.conf"),
                          "-o", str(exim.config)],
        capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "MAIN_ACL_CHECK_RCPT = /etc/exim4/authbridge_rcpt.acl" in \
        exim.config.read_text()


@pytest.fixture(scope="module", params=["exim.conf", "debian"])
def exim(request):
    e = Exim(prefix=f"ab-exim-{request.param.replace('.', '-')}-")
    try:
        (handwritten if request.param == "exim.conf" else debian)(e)
        e.start()
        yield e
    finally:
        e.stop()


@pytest.fixture
def whoson_gate(exim, gate_factory):
    """A gate whose WHOSON port is where the recipe points."""
    return gate_factory(whoson_listen=f"127.0.0.1:{exim.whoson_port}")


def reply(exim, source, to=REMOTE):
    return rcpt_reply(exim.port, source, to)


def test_exim_refuses_a_relay_without_a_grant(exim, whoson_gate):
    assert reply(exim, NEIGHBOUR) == DENIED
    whoson_gate.wait_log(rf"event=whoson .*verb=QUERY addr={NEIGHBOUR} "
                         r"result=no")


def test_exim_relays_after_a_pop3_login(exim, whoson_gate, pop3d_factory):
    pop = pop3d_factory()
    assert reply(exim, CUSTOMER) == DENIED
    check_mail(pop, CUSTOMER)
    out = swaks(exim.port, CUSTOMER, REMOTE)
    assert "<-  250 Accepted" in out, out
    assert "<-  250 OK id=" in out, out
    whoson_gate.wait_log(rf"event=whoson .*verb=QUERY addr={CUSTOMER} "
                         r"result=yes user=alice")
    assert reply(exim, NEIGHBOUR) == DENIED


def test_exim_refuses_again_once_the_grant_is_revoked(exim, whoson_gate, rdb):
    whoson_gate.grant(rdb, CUSTOMER, "alice")
    assert reply(exim, CUSTOMER) == "250 Accepted"
    revoked = subprocess.run([str(program("authbridge/authbridge")), "-c",
                              str(whoson_gate.config), "revoke", CUSTOMER],
                             capture_output=True, text=True, timeout=10)
    assert revoked.returncode == 0, revoked.stderr
    assert reply(exim, CUSTOMER) == DENIED


def test_exim_defers_relays_while_redis_is_down_and_takes_local_mail(
        exim, whoson_gate, rdb, redis_server):
    whoson_gate.grant(rdb, CUSTOMER, "alice")
    redis_server.stop()
    assert reply(exim, CUSTOMER) == DEFERRED
    assert reply(exim, NEIGHBOUR) == DEFERRED
    local = swaks(exim.port, NEIGHBOUR, LOCAL)
    assert "<-  250 OK id=" in local, local


def test_exim_defers_relays_while_smtpgate_is_down(exim, whoson_gate, rdb):
    whoson_gate.grant(rdb, CUSTOMER, "alice")
    whoson_gate.stop()
    assert reply(exim, CUSTOMER) == DEFERRED
    local = swaks(exim.port, CUSTOMER, LOCAL)
    assert "<-  250 OK id=" in local, local


def test_local_mail_never_asks_smtpgate(exim, whoson_gate):
    local = swaks(exim.port, NEIGHBOUR, LOCAL)
    assert "<-  250 OK id=" in local, local
    assert "event=whoson" not in whoson_gate.log()
