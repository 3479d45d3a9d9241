"""The open-relay probe table of tests/unit/test_rcpt.c, end to end: every
probe sent to the running gate from an address without a grant must be
refused (5xx), and none may reach the MTA as a recipient.
"""

import ast
import re

from conftest import REPO
from smtp_harness import gate, gate_factory, sink  # noqa: F401

ENTRY = re.compile(r'^\s*\{ ("(?:[^"\\]|\\.)*"), (LOCAL|REMOTE|BAD), '
                   r'"([^"]*)" \},\s*$')


def probes():
    text = (REPO / "tests/unit/test_rcpt.c").read_text()
    table = text.split("/* PROBES BEGIN */")[1].split("/* PROBES END */")[0]
    out = []
    for line in table.splitlines():
        m = ENTRY.match(line)
        if m:
            # C and Python agree on these escapes (\" \\ \t \xHH).
            out.append((ast.literal_eval("b" + m.group(1)), m.group(2),
                        m.group(3)))
    return out


def test_the_probe_table_is_read_whole():
    table = probes()
    assert len(table) >= 40
    assert sum(1 for _, kind, _ in table if kind == "REMOTE") >= 20


def test_every_probe_is_refused_without_a_grant(gate, sink):
    table = probes()
    for i in range(0, len(table), 5):
        # A fresh session every few probes: syntax errors count against
        # the client (SMTP_BAD_CMDS_MAX), and that is not what is tested.
        r = gate.raw("127.0.0.31")
        assert r.cmd("EHLO probe.example")[0] == 250
        assert r.cmd("MAIL FROM:<probe@elsewhere.example>")[0] == 250
        for args, kind, detail in table[i:i + 5]:
            code, text = r.cmd(b"RCPT " + args)
            assert code is not None and 500 <= code < 600, (args, code, text)
            if kind == "REMOTE":
                assert (code, text[:6]) == (550, "5.7.1 "), (args, text)
            else:
                assert str(code) == detail, (args, code, text)
        r.cmd("QUIT")
        r.close()
    assert not [l for l in sink.all_lines() if l.startswith(b"RCPT")]
    assert gate.log().count("path=denied") == \
        sum(1 for _, kind, _ in table if kind == "REMOTE")
