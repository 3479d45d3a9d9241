"""The man pages: mandoc finds nothing to warn about, and authbridge.conf(5)
documents exactly the keys of authbridge/conf.c's key table, section by
section, in the order of README.md's tables, each with the default and
range the table gives it. Other work adds keys: this keeps the page (and
the README) honest after every merge."""

import re
import subprocess

import pytest

from conftest import REPO

MAN = REPO / "man"
PAGES = sorted(p.name for p in MAN.glob("*.[0-9]"))


@pytest.mark.parametrize("page", PAGES)
def test_man_page_is_mandoc_lint_clean(page):
    out = subprocess.run(["mandoc", "-T", "lint", "-W", "warning",
                          str(MAN / page)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout + out.stderr == "", \
        out.stdout + out.stderr


def test_every_program_has_its_page():
    assert set(PAGES) == {"authbridge.8", "authbridge-pop3d.8",
                          "authbridge-smtpgate.8", "authbridge.conf.5"}


# ---- the key table of authbridge/conf.c ------------------------------------

_STR = r'(?:"(?:[^"\\]|\\.)*"\s*)+'
_ENTRY = re.compile(
    r'\{\s*(sec|"\w+"),\s*"(\w+)",\s*(K_\w+),\s*OFF\([^)]*\),\s*(\w+),\s*'
    r'(\w+),\s*(\w+),\s*(' + _STR + r'|\w+)\s*\}', re.S)


def _c_string(text):
    """The value of adjacent C string literals ("a" "b")."""
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', text))


def conf_keys():
    """{section: {name: (type, min, max, default)}} in table order."""
    src = (REPO / "authbridge/conf.c").read_text()
    macro = src[src.index("#define DAEMON_KEYS"):
                src.index("static const struct key_def keys[]")]
    macro = macro.replace("\\\n", "\n")
    table = src[src.index("static const struct key_def keys[]"):]
    table = table[:table.index("\n};")]
    daemon = [m.groups() for m in _ENTRY.finditer(macro)]
    assert daemon, "DAEMON_KEYS not understood"
    keys = {}
    call = re.compile(r'DAEMON_KEYS\("(\w+)",\s*\w+,\s*(' + _STR + r'),\s*(' +
                      _STR + r')\)')
    pos = 0
    while pos < len(table):
        m_entry, m_call = _ENTRY.search(table, pos), call.search(table, pos)
        first = min((m for m in (m_entry, m_call) if m),
                    key=lambda m: m.start(), default=None)
        if first is None:
            break
        if first is m_call:
            sec, port, tlsport = first.group(1), first.group(2), first.group(3)
            for _, name, kind, lo, hi, _, dflt in daemon:
                dflt = {"port": port, "tlsport": tlsport}.get(dflt, dflt)
                keys.setdefault(sec, {})[name] = (kind, lo, hi, _c_string(dflt))
        else:
            sec, name, kind, lo, hi, _, dflt = first.groups()
            keys.setdefault(sec.strip('"'), {})[name] = (kind, lo, hi,
                                                         _c_string(dflt))
        pos = first.end()
    return keys


# ---- the README's tables and the page ----------------------------------------

def readme_order():
    """{section: [keys in table order]}, sections in README order."""
    order, sec = {}, None
    for line in (REPO / "README.md").read_text().splitlines():
        m = re.match(r"### `\[(\w+)\]`", line)
        if m:
            sec = m.group(1)
            order[sec] = []
            continue
        if line.startswith("#"):
            sec = None
        elif sec and line.startswith("| `"):
            order[sec] += re.findall(r"`(\w+)`", line.split("|")[1])
    return order


def man_entries():
    """{section: [(key, entry text joined on one line)]} in page order."""
    entries, sec, cur = {}, None, None
    for line in (MAN / "authbridge.conf.5").read_text().splitlines():
        m = re.match(r"\.Ss \[(\w+)\]", line)
        if m:
            sec, cur = m.group(1), None
            entries[sec] = []
            continue
        if line.startswith((".Ss", ".Sh")):
            sec = cur = None
            continue
        if sec is None:
            continue
        m = re.match(r"\.It Ic (\w+)", line)
        if m:
            cur = [m.group(1), line]
            entries[sec].append(cur)
        elif line == ".El":
            cur = None
        elif cur is not None:
            cur[1] += " " + line
    return {s: [(k, t) for k, t in v] for s, v in entries.items()}


def test_every_key_of_conf_c_is_in_the_page_and_no_other():
    keys, man = conf_keys(), man_entries()
    assert keys, "no keys parsed from authbridge/conf.c"
    for sec, names in keys.items():
        assert sec in man, f"authbridge.conf.5 has no .Ss [{sec}]"
        documented = {k for k, _ in man[sec]}
        assert set(names) - documented == set(), \
            f"[{sec}] keys missing from authbridge.conf.5"
        assert documented - set(names) == set(), \
            f"[{sec}] keys in authbridge.conf.5 that conf.c does not know"
    assert set(man) == set(keys)


def test_page_follows_the_readme_tables_order():
    readme, man = readme_order(), man_entries()
    assert list(man) == list(readme), "sections in another order"
    for sec in readme:
        assert [k for k, _ in man[sec]] == readme[sec], f"[{sec}]"


def test_page_gives_each_key_its_default_and_range():
    keys, man = conf_keys(), man_entries()
    for sec, entries in man.items():
        for name, text in entries:
            where = f"[{sec}] {name}"
            assert name in keys.get(sec, {}), f"{where}: not in conf.c"
            kind, lo, hi, dflt = keys[sec][name]
            assert re.search(r"default|Required", text), where
            if kind == "K_UINT":
                assert f"The default is {dflt}; from {lo} to {hi}." in text, \
                    where
            elif dflt:
                assert dflt in text, f"{where}: default {dflt!r} not given"
