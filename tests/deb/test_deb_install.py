"""The Debian packages installed on a clean Debian 12 root (see conftest.py):
dpkg installs them, the files, the system user, the conffile and the
units are where Debian puts them, both daemons start from the installed
configuration (check mode, then for real, as systemd would start them)
and serve, and purging takes the configuration away. The machine's own
/usr, /etc and services stay as they were."""

import re

from debroot import installed  # noqa: F401  (the fixture)

DAEMONS = ("authbridge-pop3d", "authbridge-smtpgate")


def ok(result):
    return result["rc"] == 0


def test_packages_install_with_dpkg(installed):
    assert ok(installed["install"]), installed["install"]
    status = dict(line.split() for line in installed["status"].splitlines())
    assert status == {"authbridge-common": "ii", "authbridge-pop3d": "ii",
                      "authbridge-smtpgate": "ii"}, installed["status"]


def test_maintainer_scripts_start_nothing_under_policy_rc_d(installed):
    # policy-rc.d says 101: deb-systemd-invoke and invoke-rc.d start nothing.
    assert installed["running_after_install"] == {}


def test_files_are_where_debian_puts_them(installed):
    files = installed["files"]
    common, pop3d, gate = (set(files[p]) for p in
                           ("authbridge-common", *DAEMONS))
    assert {"/usr/bin/authbridge", "/etc/authbridge/authbridge.conf",
            "/usr/share/man/man8/authbridge.8.gz",
            "/usr/share/man/man5/authbridge.conf.5.gz",
            "/etc/fail2ban/filter.d/authbridge.conf",
            "/etc/fail2ban/jail.d/authbridge.conf",
            "/etc/logcheck/ignore.d.server/authbridge-common",
            "/usr/share/doc/authbridge-common/copyright"} <= common
    assert {"/usr/sbin/authbridge-pop3d",
            "/lib/systemd/system/authbridge-pop3d.service",
            "/usr/share/man/man8/authbridge-pop3d.8.gz"} <= pop3d
    assert {"/usr/sbin/authbridge-smtpgate",
            "/lib/systemd/system/authbridge-smtpgate.service",
            "/usr/share/man/man8/authbridge-smtpgate.8.gz"} <= gate
    everything = common | pop3d | gate
    assert not [f for f in everything if f.startswith("/usr/local")]
    assert installed["usr_local"] == []


def test_a_system_user_and_group_are_created(installed):
    name, _, uid, gid, _, home, shell = installed["passwd"].split(":")
    assert name == "authbridge"
    assert 100 <= int(uid) < 1000          # a system account
    assert home == "/nonexistent" and shell in ("/usr/sbin/nologin",
                                                "/bin/false")
    assert installed["group"].split(":")[2] == gid


def test_configuration_is_a_conffile_as_shipped(installed):
    conffiles = dict(line.split()[:2] for line in
                     installed["conffiles"].strip().splitlines())
    assert conffiles.get("/etc/authbridge/authbridge.conf") == \
        installed["conf_md5"]
    assert "/etc/fail2ban/jail.d/authbridge.conf" in conffiles


def test_user_file_is_private_to_root_and_the_daemons(installed):
    gid = int(installed["group"].split(":")[2])
    assert installed["users_file"] == {"mode": 0o640, "uid": 0, "gid": gid}


def test_units_are_enabled_for_multi_user(installed):
    assert set(installed["wants"]) >= {"authbridge-pop3d.service",
                                       "authbridge-smtpgate.service"}


def test_every_program_accepts_the_installed_configuration(installed):
    for prog, result in installed["check"].items():
        assert ok(result), (prog, result)
        assert "/etc/authbridge/authbridge.conf: configuration OK" in \
            result["out"]


def test_daemons_start_and_tell_systemd_they_are_ready(installed):
    for d in DAEMONS:
        lines = "\n".join(installed["notify"][d]).split("\n")
        assert "READY=1" in lines, (d, installed["notify"][d],
                                    installed.get("logs", {}).get(d))
        assert any(x.startswith("STATUS=") and "Redis up" in x
                   for x in lines), installed["notify"][d]


def test_daemons_drop_to_the_authbridge_user(installed):
    uid = int(installed["passwd"].split(":")[2])
    for d in DAEMONS:
        assert installed["uids"][d] == [uid] * 4, (d, installed["uids"])


def test_pop3_login_on_loopback_writes_a_grant(installed):
    pop = installed["pop3"]
    assert pop.get("apop", "").startswith("+OK"), pop
    assert pop["stat"][0] == 1 and "from the archive" in pop["retr"]
    grant = installed["grant"]
    fields = dict(zip(grant[::2], grant[1::2]))
    assert fields.get("user") == "alice" and fields.get("method") == "APOP"
    # The installed admin command reads the same Redis.
    assert ok(installed["show"]) and "alice" in installed["show"]["out"]


def test_policy_service_answers_from_the_grant(installed):
    assert installed["policy"]["granted"] == "action=OK\n\n"
    assert installed["policy"]["other"] == "action=DUNNO\n\n"


def test_daemons_stop_cleanly_and_say_so(installed):
    for d in DAEMONS:
        assert installed["exit"][d] == 0, installed["logs"][d]
        assert any("STOPPING=1" in m for m in installed["notify"][d])
        log = installed["logs"][d]
        assert re.search(r"event=privileges_dropped user=authbridge", log)
        assert "event=stopped" in log


def test_purge_removes_configuration_and_units(installed):
    assert ok(installed["purge"]), installed["purge"]
    after = installed["after_purge"]
    assert after["etc_authbridge"] is False
    assert not [w for w in after["wants"] if w.startswith("authbridge")]


def test_the_machine_itself_is_untouched(installed):
    assert installed["host_before"] == installed["host_after"]
