"""Sender anti-spoofing through the gate to a real downstream (the PySink):
sender_binding = no | grant | all on every relay path (trusted network,
SMTP AUTH, POP3 grant), header_from_check on the From:/Sender: forms mail
clients write, the refusals' texts, logs and stream entries, and the MTA
never receiving a refused message.
"""

import re
import subprocess

import pytest

from conftest import program, wait_until
from smtp_harness import gate, gate_factory, sink  # noqa: F401

TRUSTED = "127.0.1.9"           # in the harness's trusted_networks
AUTH_CLIENT = "127.0.2.21"      # logs in as alice over implicit TLS
GRANTED = "127.0.3.7"           # holds a POP3 grant for alice
STRANGER = "127.0.4.4"          # none of those
FOREIGN = "terri@contoso.com"   # the support article's example
DECISIONS = "authbridge:decisions"

MODES = {
    "no": {"sender_binding": "no"},
    "grant": {"sender_binding": "grant"},
    "all": {"sender_binding": "all"},
    "header": {"header_from_check": True},
}
# Which paths each mode binds.
BINDS = {
    "no": set(),
    "grant": {"grant"},
    "all": {"trusted", "auth", "grant"},
    "header": {"trusted", "auth", "grant"},
}
# An address each path may use: from a trusted network any address of a
# local domain, for a user that user's own.
OWN = {"trusted": "news@example.org", "auth": "alice@example.net",
       "grant": "alice@example.net"}
# What the refusals tell the user to use instead.
USE = {"trusted": "an address @example.net", "auth": "alice@example.net",
       "grant": "alice@example.net"}


def message(header, body=b"Hello.\r\n"):
    return header + b"Subject: test\r\n\r\n" + body


def client(g, rdb, path):
    """A greeted smtplib client on the given relay path."""
    if path == "trusted":
        s = g.smtp(TRUSTED)
    elif path == "auth":
        s = g.smtps(AUTH_CLIENT)
    else:
        g.grant(rdb, GRANTED, "alice")
        s = g.smtp(GRANTED)
    s.ehlo("client.example")
    if path == "auth":
        assert s.login("alice", "secret")[0] == 235
    return s


def transact(s, sender, rcpts, data):
    """MAIL, RCPTs and, if one was accepted, DATA: the last answer."""
    code, text = s.mail(sender)
    assert code == 250, text
    answers = [s.rcpt(r) for r in rcpts]
    if not any(code == 250 for code, _ in answers):
        s.rset()
        return answers[-1]
    code, text = s.docmd("DATA")
    assert code == 354, text
    s.send(data + b"\r\n.\r\n")
    return s.getreply()


def sink_got_nothing(sink):
    """Nothing was delivered; every MTA connection that entered DATA was
    closed before the final dot (so the MTA discarded the message)."""
    assert sink.messages() == []
    sink.wait_closed()
    for sess in sink.sessions:
        if any(line.upper() == b"DATA" for line in sess.lines):
            assert sess.aborted_data is not None
            assert b"\r\n.\r\n" not in b"\r\n" + sess.aborted_data


def stream(rdb, event):
    return [f for _, f in rdb.xrange(DECISIONS) if f.get("event") == event]


# ---- every path in every mode ------------------------------------------------

@pytest.mark.parametrize("path", ["trusted", "auth", "grant"])
@pytest.mark.parametrize("mode", list(MODES))
def test_own_address_accepted_foreign_refused_as_the_mode_says(
        gate_factory, rdb, sink, mode, path):
    g = gate_factory(**MODES[mode])
    with client(g, rdb, path) as s:
        own = OWN[path]
        code, text = transact(s, own, ["bob@remote.example"],
                              message(b"From: <%s>\r\n" % own.encode()))
        assert code == 250, text
        assert len(sink.wait_messages(1)) == 1

        code, text = transact(s, FOREIGN, ["bob@remote.example"],
                              message(b"From: %s\r\n" % FOREIGN.encode()))
    delivered = len(sink.messages())
    if path not in BINDS[mode]:
        assert code == 250, text
        assert delivered == 2
        return
    assert delivered == 1
    if mode == "header":
        assert code == 550
        assert text.decode() == (
            f"5.7.1 From: header must be your own address (you may not "
            f"send as {FOREIGN}; use {USE[path]})")
        check = "header"
    else:
        assert code == 553
        assert text.decode() == (
            f"5.7.1 <{FOREIGN}>: Sender address must be your own address "
            f"(you may not send as {FOREIGN}; use {USE[path]})")
        check = "envelope"
    g.wait_log(rf"event=rcpt via=smtp .*sender={FOREIGN} .*"
               rf"path=sender_mismatch .*check={check}")
    wait_until(lambda: [e for e in stream(rdb, "relay-denied")
                        if e.get("path") == "sender_mismatch" and
                        e.get("check") == check], 5,
               what="the refusal in the Redis log stream")


def test_a_trusted_network_may_use_addresses_the_sender_map_lists(
        gate_factory, rdb, sink, tmp_path):
    senders = tmp_path / "senders"
    senders.write_text("@partner.example  carol\nnoreply@svc.example  web\n")
    g = gate_factory(sender_binding="all", header_from_check=True,
                     sender_map=str(senders))
    with g.smtp(TRUSTED) as s:
        s.ehlo("client.example")
        for addr in ("anyone@partner.example", "noreply@svc.example"):
            code, text = transact(s, addr, ["x@remote.example"],
                                  message(b"From: %s\r\n" % addr.encode()))
            assert code == 250, text
        assert transact(s, "other@svc.example", ["x@remote.example"],
                        message(b"From: x@example.net\r\n"))[0] == 553
        # Bounces of the provider's own hosts still go out.
        code, text = transact(s, "", ["x@remote.example"],
                              message(b"From: MAILER-DAEMON@example.net\r\n"))
        assert code == 250, text
    assert len(sink.messages()) == 3


def test_inbound_mail_is_never_bound(gate_factory, rdb, sink):
    g = gate_factory(sender_binding="all", header_from_check=True)
    with g.smtp(STRANGER) as s:
        s.ehlo("client.example")
        code, text = transact(s, FOREIGN, ["bob@example.net"],
                              message(b"From: Terri <terri@contoso.com>\r\n"))
        assert code == 250, text
    assert len(sink.wait_messages(1)) == 1


def test_one_relayed_recipient_makes_the_message_checked(gate_factory, rdb,
                                                         sink):
    g = gate_factory(header_from_check=True)
    with client(g, rdb, "grant") as s:
        code, text = transact(s, "alice@example.net",
                              ["bob@example.net", "x@remote.example"],
                              message(b"From: terri@contoso.com\r\n"))
    assert code == 550 and text.startswith(b"5.7.1 From: header")
    sink_got_nothing(sink)


# ---- the From: forms -------------------------------------------------------------

REFUSED_FROM = (b"5.7.1 From: header must be your own address (you may not "
                b"send as terri@contoso.com; use alice@example.net)")

FORMS = [
    ("display-name", b'From: "Terri" <terri@contoso.com>\r\n', 550, REFUSED_FROM),
    ("display-name-own", b'From: "Alice" <alice@example.net>\r\n', 250, None),
    ("comment", b"From: terri@contoso.com (Terri)\r\n", 550, REFUSED_FROM),
    ("comment-own", b"From: alice@example.net (Alice)\r\n", 250, None),
    ("folded", b'From: "Alice\r\n Smith"\r\n\t<alice@example.net>\r\n', 250, None),
    ("folded-foreign", b"From: Terri\r\n <terri@contoso.com>\r\n", 550,
     REFUSED_FROM),
    ("encoded-word", b"From: =?UTF-8?B?QWxpY2UgU23DrXRo?= <alice@example.net>\r\n",
     250, None),
    ("encoded-word-foreign", b"From: =?UTF-8?B?QWxpY2U=?= <terri@contoso.com>\r\n",
     550, REFUSED_FROM),
    ("group", b"From: Me: Alice <alice@example.net>;\r\n", 250, None),
    ("group-foreign", b"From: Us: alice@example.net, terri@contoso.com;\r\n",
     550, REFUSED_FROM),
    ("two-one-foreign", b"From: alice@example.net, terri@contoso.com\r\n"
     b"Sender: alice@example.net\r\n", 550, REFUSED_FROM),
    ("sender-foreign", b"From: alice@example.net\r\nSender: terri@contoso.com\r\n",
     550, b"5.7.1 Sender: header must be your own address (you may not send "
     b"as terri@contoso.com; use alice@example.net)"),
    ("no-from", b"To: bob@remote.example\r\n", 550,
     b"5.6.0 Message has no From: header naming its author (RFC 5322 3.6.2); "
     b"it must be your own address (alice@example.net)"),
    ("unparsable", b"From: Alice <alice@example.net\r\n", 550,
     b"5.6.0 From: header is not a valid address list (RFC 5322 3.4); it "
     b"must be your own address (alice@example.net)"),
    ("specials-in-encoded-word",
     b"From: =?UTF-8?Q?<terri@contoso.com>?= <alice@example.net>\r\n", 550,
     b"5.6.0 From: header is not a valid address list (RFC 5322 3.4); it "
     b"must be your own address (alice@example.net)"),
    ("two-from", b"From: alice@example.net\r\nFrom: terri@contoso.com\r\n", 550,
     b"5.6.0 Message has more than one From: header (RFC 5322 3.6)"),
]


@pytest.mark.parametrize("header,code,text", [f[1:] for f in FORMS],
                         ids=[f[0] for f in FORMS])
def test_header_from_forms(gate_factory, rdb, sink, header, code, text):
    g = gate_factory(header_from_check=True)
    data = message(header)
    with client(g, rdb, "grant") as s:
        got = transact(s, "alice@example.net", ["bob@remote.example"], data)
    assert got == (code, text) if text else got[0] == code, got
    if code == 250:
        assert sink.wait_messages(1)[0]["data"] == data + b"\r\n"
        return
    sink_got_nothing(sink)
    g.wait_log(r"event=rcpt via=smtp .*rcpt=bob@remote.example "
               r"path=sender_mismatch user=alice .*check=header")
    g.wait_log(r"event=message .*result=sender_mismatch code=550")


def test_the_header_streams_to_the_mta_before_the_decision(gate_factory, rdb,
                                                           sink):
    """Nothing is held back but the final dot: the MTA has the header as
    it arrives, then loses the connection (and so the message) when the
    From: is refused."""
    g = gate_factory(header_from_check=True)
    first = b"X-First: 1\r\n"
    with client(g, rdb, "grant") as s:
        assert s.mail("alice@example.net")[0] == 250
        assert s.rcpt("bob@remote.example")[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send(first)
        wait_until(lambda: any(sess.data_so_far == first
                               for sess in sink.sessions), 5,
                   what="the first header line at the MTA")
        s.send(message(b"From: terri@contoso.com\r\n") + b"\r\n.\r\n")
        assert s.getreply()[0] == 550
        # The session goes on: the next message is judged afresh.
        code, text = transact(s, "alice@example.net", ["bob@remote.example"],
                              message(b"From: alice@example.net\r\n"))
        assert code == 250, text
    assert len(sink.wait_messages(1)) == 1
    wait_until(lambda: any(sess.aborted_data is not None
                           for sess in sink.sessions), 5,
               what="the refused message's MTA connection to close")
    aborted = [sess.aborted_data for sess in sink.sessions
               if sess.aborted_data is not None]
    assert aborted == [first]


def header_block(size):
    """A valid header block of exactly size octets (the empty line that
    ends it included), with a From: alice and "X:ppp..." padding lines."""
    head = b"From: alice@example.net\r\n"
    left = size - len(head) - 2
    pad = []
    while left > 1004:
        pad.append(b"X:" + b"p" * 996 + b"\r\n")
        left -= 1000
    pad.append(b"X:" + b"p" * (left - 4) + b"\r\n")
    block = head + b"".join(pad) + b"\r\n"
    assert len(block) == size
    return block


def test_header_block_up_to_the_limit_passes_one_octet_more_is_refused(
        gate_factory, rdb, sink):
    limit = 128 * 1024              # SMTP_HEADER_BLOCK_MAX
    g = gate_factory(header_from_check=True)
    with client(g, rdb, "grant") as s:
        code, text = transact(s, "alice@example.net", ["bob@remote.example"],
                              header_block(limit) + b"body\r\n")
        assert code == 250, text
        assert len(sink.wait_messages(1)) == 1
        code, text = transact(s, "alice@example.net", ["bob@remote.example"],
                              header_block(limit + 1) + b"body\r\n")
    assert (code, text) == (550, b"5.6.0 Message header longer than 131072 "
                                 b"octets; its From: cannot be checked")
    assert len(sink.messages()) == 1
    g.wait_log(r"path=sender_mismatch .*why=too_big check=header")


def vm_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key}")


def test_a_10_mb_message_with_a_good_from_streams_in_bounded_memory(
        gate_factory, rdb, sink, monkeypatch):
    # ASan builds: no quarantine, so freed buffers are reused and RSS
    # means what it means in a normal build.
    monkeypatch.setenv("ASAN_OPTIONS", "quarantine_size_mb=0")
    g = gate_factory(header_from_check=True)
    line = b"x" * 78 + b"\r\n"
    data = message(b"From: Alice <alice@example.net>\r\n",
                   line * (10 * 1024 * 1024 // len(line)))
    assert len(data) > 10_000_000
    with client(g, rdb, "grant") as s:
        # a first message warms the buffers and the MTA connection up
        assert transact(s, "alice@example.net", ["bob@remote.example"],
                        message(b"From: alice@example.net\r\n"))[0] == 250
        before = vm_kib(g.proc.pid, "VmRSS")
        code, text = transact(s, "alice@example.net", ["bob@remote.example"],
                              data)
        assert code == 250, text
        peak = vm_kib(g.proc.pid, "VmHWM")
    got = sink.wait_messages(2)
    assert got[1]["data"] == data + b"\r\n"
    # The gate holds at most its back-pressure marks (256 KB to the MTA)
    # and a few input chains, never the message: well under its size.
    grown = peak - before
    print(f"gate RSS before {before} KiB, peak {peak} KiB, grown {grown} KiB")
    assert grown < 4 * 1024, f"RSS grew by {grown} KiB for a 10 MB message"


# ---- counting --------------------------------------------------------------------

def test_refusals_are_counted_in_stats_by_check(gate_factory, rdb, sink):
    g = gate_factory(sender_binding="all", header_from_check=True)
    with client(g, rdb, "grant") as s:
        assert transact(s, FOREIGN, ["x@remote.example"],
                        message(b"From: alice@example.net\r\n"))[0] == 553
        assert transact(s, "alice@example.net", ["x@remote.example"],
                        message(b"From: terri@contoso.com\r\n"))[0] == 550
        assert transact(s, "alice@example.net", ["x@remote.example"],
                        message(b"Subject: no from\r\n"))[0] == 550
    # Refusals from one address are sampled: the first in the stream at
    # once, the others counted and written when the gate stops.
    wait_until(lambda: len([e for e in stream(rdb, "relay-denied")
                            if e.get("path") == "sender_mismatch"]) == 1, 5,
               what="the first refusal in the stream")
    g.stop()
    refused = [e for e in stream(rdb, "relay-denied")
               if e.get("path") == "sender_mismatch"]
    assert [e.get("check") for e in refused] == ["envelope", "header"]
    assert refused[1].get("count") == "2"       # stands for both header ones
    assert refused[1].get("from") is None       # the last: no From: at all
    out = subprocess.run([str(program("authbridge/authbridge")), "-c",
                          str(g.config), "stats"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    figures = dict(re.findall(r"^\s*(.+?)\s{2,}(\d+)$", out.stdout, re.M))
    assert figures["relays denied"] == "3"
    assert figures["sender not own (envelope)"] == "1"
    assert figures["sender not own (header)"] == "2"
