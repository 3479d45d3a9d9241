"""The clean Debian 12 root the packages are installed into.

Made with mmdebstrap (minbase, plus the packages' dependencies, so that
installing them needs no network) from the Debian entries of the
machine's own apt sources; kept as a tarball under build/deb-root/,
named after what it holds, so later runs download nothing. Each run
unpacks a fresh copy, adds a policy-rc.d that forbids maintainer scripts
to start services, and runs in_namespace.py inside private mount,
network and pid namespaces.
"""

import hashlib
import json
import os
import subprocess
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
CACHE = REPO / "build" / "deb-root"
SUITE = "bookworm"
OURS = ("authbridge-common", "authbridge-pop3d", "authbridge-smtpgate")


def built_debs():
    debs = sorted(DIST.glob("authbridge-*.deb"))
    names = {p.name.split("_")[0] for p in debs}
    if names != set(OURS):
        pytest.fail(f"dist/ holds {sorted(names)}: run `make deb` first")
    return debs


def dependencies(debs):
    """(names, key): the packages ours depend on, without versions
    (alternatives: the first), ours left out; and their Depends fields,
    versions included, to name the cached root by (newer libraries on
    the build machine make a new root)."""
    deps, items = set(), set()
    for deb in debs:
        out = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"],
                             capture_output=True, text=True, check=True)
        for item in out.stdout.split(","):
            name = item.split("|")[0].split("(")[0].strip()
            if name and name not in OURS:
                deps.add(name)
                items.add(item.strip())
    return sorted(deps), "\n".join(sorted(items))


def _debian_entries():
    out = subprocess.run(
        ["apt-get", "indextargets", "--format",
         "$(ORIGIN)|$(REPO_URI)|$(RELEASE)|$(COMPONENT)"],
        capture_output=True, text=True)
    lines = set()
    for row in out.stdout.splitlines():
        origin, uri, release, comp = (row.split("|") + ["", "", "", ""])[:4]
        if origin == "Debian" and release.split("-")[0] == SUITE and comp:
            lines.add(f"deb {uri} {release} {comp}")
    return sorted(lines)


def mirrors():
    """`deb URI SUITE COMPONENT` for the machine's Debian sources of the
    suite (bookworm, -updates, -security), as apt knows them: apt names
    them only once it has their lists, so a machine without lists gets
    them first (as mk/deps.sh does)."""
    lines = _debian_entries()
    if not lines:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        lines = _debian_entries()
    if not lines:
        pytest.fail("no Debian bookworm entry in the apt sources")
    return lines


def base_tarball(deps, depends):
    key = hashlib.sha256(depends.encode()).hexdigest()[:12]
    tar = CACHE / f"{SUITE}-minbase-{key}.tar"
    if tar.exists():
        return tar
    CACHE.mkdir(parents=True, exist_ok=True)
    part = tar.with_suffix(".part")
    out = subprocess.run(
        ["mmdebstrap", "--variant=minbase", "--format=tar",
         "--include=" + ",".join(deps),
         SUITE, str(part), *mirrors()],
        capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        part.unlink(missing_ok=True)
        pytest.fail(f"mmdebstrap failed:\n{out.stderr[-3000:]}")
    part.rename(tar)
    return tar


HOST_PATHS = ("/etc/authbridge", "/usr/sbin/authbridge-pop3d",
              "/usr/sbin/authbridge-smtpgate", "/usr/bin/authbridge",
              "/lib/systemd/system/authbridge-pop3d.service",
              "/etc/systemd/system/multi-user.target.wants/"
              "authbridge-pop3d.service")


def host_state():
    """What an install on the machine itself would have changed."""
    passwd = Path("/etc/passwd").read_text()
    return {"paths": {p: os.path.lexists(p) for p in HOST_PATHS},
            "passwd": hashlib.sha256(passwd.encode()).hexdigest(),
            "dpkg": subprocess.run(["dpkg-query", "-W", "authbridge-*"],
                                   capture_output=True, text=True).stdout}


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """The facts in_namespace.py saw, plus the machine's state around it."""
    if os.geteuid() != 0:
        pytest.fail("the install test needs root (chroot, namespaces)")
    debs = built_debs()
    tar = base_tarball(*dependencies(debs))
    top = tmp_path_factory.mktemp("debroot")
    root = top / "root"
    root.mkdir()
    subprocess.run(["tar", "--numeric-owner", "-xpf", str(tar), "-C",
                    str(root)], check=True)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# Maintainer scripts start nothing here.\n"
                      "exit 101\n")
    policy.chmod(0o755)
    (root / "tmp/debs").mkdir(parents=True)
    for deb in debs:
        (root / "tmp/debs" / deb.name).write_bytes(deb.read_bytes())
    before = host_state()
    out_json = top / "facts.json"
    run = subprocess.run(
        ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
         "/usr/bin/python3", str(Path(__file__).with_name("in_namespace.py")),
         str(root), str(out_json)],
        capture_output=True, text=True, timeout=600)
    shutil.rmtree(root)               # 170 MB: nothing left to look at
    if not out_json.exists():
        pytest.fail(f"in_namespace.py wrote nothing:\n{run.stderr[-3000:]}")
    facts = json.loads(out_json.read_text())
    facts["driver"] = {"rc": run.returncode, "err": run.stderr[-3000:]}
    facts["host_before"], facts["host_after"] = before, host_state()
    return facts
