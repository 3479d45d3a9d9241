"""`make install` and the systemd units: the programs under their installed
names, the man pages, the units (which `systemd-analyze verify` accepts
without a word), the packaged default configuration (which both daemons
accept with -t, and which is never written over an admin's file)."""

import os
import pwd
import re
import subprocess

import pytest

from conftest import AB_OUT, REPO

UNITS = ("authbridge-pop3d.service", "authbridge-smtpgate.service")


def make_install(dest, **dirs):
    """The real `make install` with the programs already built in AB_OUT
    (-o all: not rebuilt, whatever build they come from)."""
    args = ["make", "-s", "-o", "all", "install", f"OUT={AB_OUT}"]
    args += [f"{k}={v}" for k, v in dirs.items()]
    if dest is not None:
        args.append(f"DESTDIR={dest}")
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """Installed under a private prefix, the configuration in prefix/etc:
    the units then name the installed programs, which verify checks."""
    root = tmp_path_factory.mktemp("prefix")
    make_install(None, PREFIX=root, SYSCONFDIR=root / "etc")
    return root


def test_install_puts_each_file_where_debian_expects_it(tmp_path):
    make_install(tmp_path, PREFIX="/usr", UNITDIR="/lib/systemd/system")
    files = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
             if p.is_file()}
    for f in ("usr/bin/authbridge", "usr/sbin/authbridge-pop3d",
              "usr/sbin/authbridge-smtpgate",
              "usr/share/man/man8/authbridge.8",
              "usr/share/man/man8/authbridge-pop3d.8",
              "usr/share/man/man8/authbridge-smtpgate.8",
              "usr/share/man/man5/authbridge.conf.5",
              "lib/systemd/system/authbridge-pop3d.service",
              "lib/systemd/system/authbridge-smtpgate.service",
              "etc/authbridge/authbridge.conf",
              "etc/fail2ban/filter.d/authbridge.conf",
              "etc/fail2ban/jail.d/authbridge.conf"):
        assert f in files
    assert not any(f.startswith("usr/local") for f in files)
    for f in ("usr/sbin/authbridge-pop3d", "usr/bin/authbridge"):
        assert os.stat(tmp_path / f).st_mode & 0o777 == 0o755
    unit = (tmp_path / "lib/systemd/system/authbridge-pop3d.service").read_text()
    assert "ExecStart=/usr/sbin/authbridge-pop3d -c " \
           "/etc/authbridge/authbridge.conf\n" in unit


def test_install_never_writes_over_an_existing_configuration(tmp_path):
    conf = tmp_path / "etc/authbridge/authbridge.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("# the admin's\n")
    make_install(tmp_path, PREFIX="/usr")
    assert conf.read_text() == "# the admin's\n"


@pytest.mark.parametrize("unit", UNITS)
def test_unit_passes_systemd_analyze_verify(prefix, unit):
    # verify also runs `man` for each Documentation= page: the installed
    # pages must be found.
    out = subprocess.run(
        ["systemd-analyze", "verify", str(prefix / "lib/systemd/system" / unit)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "MANPATH": str(prefix / "share/man")})
    # verify exits 0 even for unknown keys and bad values: silence is the
    # pass.
    assert out.returncode == 0 and out.stdout + out.stderr == "", \
        out.stdout + out.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_notify_checked_and_confined(unit):
    text = (REPO / "conf/systemd" / unit).read_text()
    prog = "/usr/sbin/" + unit.replace(".service", "")
    conf = "/etc/authbridge/authbridge.conf"
    lines = set(text.splitlines())
    for line in ("Type=notify", f"ExecStartPre={prog} -t -c {conf}",
                 f"ExecStart={prog} -c {conf}",
                 f"ExecReload={prog} -t -c {conf}",
                 "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                 "NoNewPrivileges=yes", "PrivateTmp=yes",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID "
                 "CAP_SETGID",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"):
        assert line in lines, line
    # The check comes before the signal.
    assert text.index(f"ExecReload={prog} -t") < text.index("ExecReload=/bin/kill")


@pytest.mark.parametrize("unit", UNITS)
def test_unit_descriptor_limit_covers_max_connections(unit):
    text = (REPO / "conf/systemd" / unit).read_text()
    limit = int(re.search(r"^LimitNOFILE=(\d+)$", text, re.M).group(1))
    src = (REPO / "authbridge/conf.c").read_text()
    default = int(re.search(r'"max_connections", K_UINT, [^"]*"(\d+)"', src,
                            re.S).group(1))
    # Two descriptors per session (client + Maildir file or MTA), and
    # room for listeners, Redis, the policy and WHOSON doors.
    assert limit >= 2 * default + 1024


def has_account(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_packaged_configuration_starts_both_daemons_check_mode(prefix):
    conf = prefix / "etc/authbridge/authbridge.conf"
    text = conf.read_text()
    # Loopback only, and no standard port taken from the MTA or a POP3
    # server already there.
    listens = re.findall(r"^(?:listen|listen_tls|policy_listen|whoson_listen)"
                         r"[ \t]*=[ \t]*(.*)$", text, re.M)
    for value in filter(None, (v.strip() for v in listens)):
        for addr in value.split(","):
            host, port = addr.strip().rsplit(":", 1)
            assert host in ("127.0.0.1", "[::1]"), addr
            assert int(port) not in (25, 110, 465, 587, 995), addr
    users = conf.parent / "users"
    users.write_text("")
    users.chmod(0o640)
    # The packages create the "authbridge" account; make install does not,
    # and -t says so (that account is all that is missing here).
    packaged_user = re.compile(r"^user[ \t]*=[ \t]*authbridge[ \t]*$", re.M)
    if packaged_user.search(text) and not has_account("authbridge"):
        for prog in ("sbin/authbridge-pop3d", "sbin/authbridge-smtpgate"):
            out = subprocess.run([str(prefix / prog), "-c", str(conf), "-t"],
                                 capture_output=True, text=True, timeout=10)
            assert out.returncode == 1
            assert [line.split(": ", 1)[1] for line in
                    out.stderr.splitlines()] == [
                "user: no account named 'authbridge'"], out.stderr
        conf.write_text(packaged_user.sub("user = nobody", text))
    for prog in ("sbin/authbridge-pop3d", "sbin/authbridge-smtpgate",
                 "bin/authbridge"):
        out = subprocess.run([str(prefix / prog), "-c", str(conf), "-t"],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, f"{prog}: {out.stderr}"
        assert "configuration OK" in out.stdout
