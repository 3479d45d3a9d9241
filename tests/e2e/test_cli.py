"""The authbridge admin command against a real, private Redis.

The Redis schema is a public interface (README "Redis schema"), so these
tests read Redis directly with redis-py and compare.
"""

import json
import re
import time

import pytest

from conftest import (NODE, Cli, RedisServer, free_port, read_line,
                      wait_until, write_config)

KEY = "authbridge:grant:"
LOG = "authbridge:log"
GRANT_FIELDS = {"user", "since", "renewed", "node", "method", "tls", "logins"}


def ok(result):
    """The command succeeded, said nothing on stderr; returns stdout."""
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def one_line_error(result, code):
    """A failure: exit code, exactly one line on stderr, nothing else."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("authbridge: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def log_entries(rdb, event=None):
    entries = [fields for _, fields in rdb.xrange(LOG)]
    return [e for e in entries if event is None or e["event"] == event]


# ---- grant ---------------------------------------------------------------------

def test_grant_writes_exactly_the_documented_hash_fields(cli, rdb):
    before = int(time.time())
    out = ok(cli("grant", "203.0.113.7", "alice"))
    after = int(time.time())

    assert out == "granted 203.0.113.7 to alice for 1800s\n"
    h = rdb.hgetall(KEY + "203.0.113.7")
    assert set(h) == GRANT_FIELDS
    assert h["user"] == "alice"
    assert h["node"] == NODE
    assert h["method"] == "ADMIN"
    assert h["tls"] == "0"
    assert h["logins"] == "1"
    assert before <= int(h["since"]) <= after
    assert h["renewed"] == h["since"]
    assert rdb.keys("*") and set(rdb.keys("*")) == {KEY + "203.0.113.7", LOG}


def test_grant_sets_the_configured_ttl(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice"))
    assert 1795 <= rdb.ttl(KEY + "203.0.113.7") <= 1800


def test_grant_ttl_option_overrides_the_configured_ttl(cli, rdb):
    out = ok(cli("grant", "203.0.113.7", "alice", "--ttl", "600"))
    assert out == "granted 203.0.113.7 to alice for 600s\n"
    assert 595 <= rdb.ttl(KEY + "203.0.113.7") <= 600


def test_renewal_increments_logins_and_keeps_since(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice"))
    key = KEY + "203.0.113.7"
    rdb.hset(key, mapping={"since": "1000", "renewed": "1000"})   # long ago
    rdb.expire(key, 5)

    ok(cli("grant", "203.0.113.7", "bob"))
    h = rdb.hgetall(key)
    assert h["since"] == "1000"
    assert int(h["renewed"]) >= int(time.time()) - 2
    assert h["logins"] == "2"
    assert h["user"] == "bob"
    assert rdb.ttl(key) > 1000          # the renewal restarted the TTL


def test_grant_appends_a_log_entry_with_the_grant_fields(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice", "--ttl", "90"))
    ok(cli("grant", "203.0.113.7", "alice", "--ttl", "90"))

    entries = log_entries(rdb)
    assert len(entries) == 2
    assert entries[0] == {"event": "grant", "addr": "203.0.113.7",
                          "user": "alice", "method": "ADMIN", "tls": "0",
                          "node": NODE, "ttl": "90"}
    assert entries[1] == entries[0]


def test_grant_uses_the_configured_prefix(ab_config, rdb):
    cli = Cli(ab_config(redis={"prefix": "tenant7:"}))
    ok(cli("grant", "203.0.113.7", "alice"))
    assert set(rdb.keys("*")) == {"tenant7:grant:203.0.113.7", "tenant7:log"}
    assert "203.0.113.7" in ok(cli("list"))


def test_grant_writes_to_the_configured_database(ab_config, redis_server):
    cli = Cli(ab_config(redis={"database": 5}))
    ok(cli("grant", "203.0.113.7", "alice"))
    assert redis_server.client(db=5).hget(KEY + "203.0.113.7", "user") == "alice"
    assert redis_server.client(db=0).dbsize() == 0
    assert "alice" in ok(cli("show", "203.0.113.7"))


# ---- canonical keys -------------------------------------------------------------

def test_ipv4_mapped_address_is_granted_under_the_ipv4_key(cli, rdb):
    out = ok(cli("grant", "::ffff:192.0.2.44", "alice"))
    assert out.startswith("granted 192.0.2.44 to alice")
    assert rdb.keys(KEY + "*") == [KEY + "192.0.2.44"]
    assert log_entries(rdb)[0]["addr"] == "192.0.2.44"
    assert "user:    alice" in ok(cli("show", "192.0.2.44"))
    assert "user:    alice" in ok(cli("show", "::FFFF:192.0.2.44"))


def test_ipv6_address_is_granted_under_its_rfc5952_text(cli, rdb):
    out = ok(cli("grant", "2001:DB8:0:0::1", "alice"))
    assert out.startswith("granted 2001:db8::1 to alice")
    assert rdb.keys(KEY + "*") == [KEY + "2001:db8::1"]
    assert "address: 2001:db8::1\n" in ok(cli("show", "2001:0db8::0001"))


def test_ipv6_prefix_grant_is_stored_under_the_network(ab_config, rdb):
    cli = Cli(ab_config(grant={"ipv6_prefix": 64}))
    out = ok(cli("grant", "2001:DB8:0:0::1", "alice"))
    assert out.startswith("granted 2001:db8::/64 to alice")
    assert rdb.keys(KEY + "*") == [KEY + "2001:db8::/64"]
    assert log_entries(rdb)[0]["addr"] == "2001:db8::/64"
    # any address of the network, or the network itself, names the grant
    assert "address: 2001:db8::/64\n" in ok(cli("show", "2001:db8::ffff:1"))
    assert "address: 2001:db8::/64\n" in ok(cli("show", "2001:db8::/64"))
    one_line_error(cli("show", "2001:db8:0:1::1"), 1)
    assert ok(cli("revoke", "2001:db8::/64")) == "revoked 1 grant\n"
    assert rdb.keys(KEY + "*") == []


def test_ipv6_prefix_leaves_ipv4_grants_alone(ab_config, rdb):
    cli = Cli(ab_config(grant={"ipv6_prefix": 48}))
    ok(cli("grant", "198.51.100.1", "alice"))
    assert rdb.keys(KEY + "*") == [KEY + "198.51.100.1"]


# ---- list and show --------------------------------------------------------------

def test_list_json_agrees_with_redis(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice"))
    ok(cli("grant", "2001:db8::1", "bob", "--ttl", "60"))
    ok(cli("grant", "198.51.100.1", "carol"))
    ok(cli("grant", "198.51.100.1", "carol"))

    rows = json.loads(ok(cli("list", "--json")))
    assert [r["addr"] for r in rows] == ["198.51.100.1", "2001:db8::1",
                                         "203.0.113.7"]
    for row in rows:
        h = rdb.hgetall(KEY + row["addr"])
        assert row["user"] == h["user"]
        assert row["since"] == int(h["since"])
        assert row["renewed"] == int(h["renewed"])
        assert row["node"] == h["node"]
        assert row["method"] == h["method"]
        assert row["tls"] is (h["tls"] == "1")
        assert row["logins"] == int(h["logins"])
        assert abs(row["ttl"] - rdb.ttl(KEY + row["addr"])) <= 1
    assert rows[0]["logins"] == 2
    assert 55 <= rows[1]["ttl"] <= 60


def test_list_table_shows_address_user_since_and_expiry(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice"))
    ok(cli("grant", "198.51.100.1", "bob", "--ttl", "90"))
    since = time.strftime("%Y-%m-%d %H:%M",
                          time.gmtime(int(rdb.hget(KEY + "203.0.113.7", "since"))))

    lines = ok(cli("list")).splitlines()
    assert lines[0].split() == ["ADDRESS", "USER", "SINCE", "EXPIRES", "IN"]
    assert len(lines) == 3
    assert re.fullmatch(r"198\.51\.100\.1 +bob +\S+ \S+Z +1m[23]\ds", lines[1])
    assert re.fullmatch(r"203\.0\.113\.7 +alice +" + re.escape(since) +
                        r":\d\dZ +(29m[5]\ds|30m00s)", lines[2])


def test_list_of_no_grants_is_empty(cli):
    assert ok(cli("list", "--json")) == "[]\n"
    assert len(ok(cli("list")).splitlines()) == 1


def test_list_skips_keys_that_are_not_grants(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice"))
    rdb.set("authbridge:fail:203.0.113.9", 3)
    rdb.set("other:grant:1.2.3.4", "x")
    rows = json.loads(ok(cli("list", "--json")))
    assert [r["addr"] for r in rows] == ["203.0.113.7"]


def test_list_escapes_the_prefix_for_scan(ab_config, rdb):
    cli = Cli(ab_config(redis={"prefix": "a*b:"}))
    ok(cli("grant", "203.0.113.7", "alice"))
    rdb.hset("aXb:grant:1.2.3.4", "user", "mallory")
    rows = json.loads(ok(cli("list", "--json")))
    assert [r["user"] for r in rows] == ["alice"]


def test_show_prints_every_field_as_in_redis(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice", "--ttl", "300"))
    ok(cli("grant", "203.0.113.7", "alice", "--ttl", "300"))
    h = rdb.hgetall(KEY + "203.0.113.7")

    fields = dict(line.split(":", 1) for line in
                  ok(cli("show", "203.0.113.7")).splitlines())
    fields = {k: v.strip() for k, v in fields.items()}
    assert fields["address"] == "203.0.113.7"
    assert fields["user"] == "alice"
    assert fields["since"] == time.strftime("%Y-%m-%d %H:%M:%SZ",
                                            time.gmtime(int(h["since"])))
    assert fields["renewed"] == time.strftime("%Y-%m-%d %H:%M:%SZ",
                                              time.gmtime(int(h["renewed"])))
    assert fields["node"] == NODE
    assert fields["method"] == "ADMIN"
    assert fields["tls"] == "no"
    assert fields["logins"] == "2"
    ttl = int(fields["ttl"].split()[0])
    assert abs(ttl - rdb.ttl(KEY + "203.0.113.7")) <= 1 and 295 <= ttl <= 300


def test_show_of_a_missing_grant_exits_1(cli):
    line = one_line_error(cli("show", "192.0.2.1"), 1)
    assert line == "authbridge: no grant for 192.0.2.1"


# ---- revoke ---------------------------------------------------------------------

def test_revoke_address_removes_exactly_that_grant(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice"))
    ok(cli("grant", "203.0.113.8", "alice"))

    assert ok(cli("revoke", "203.0.113.7")) == "revoked 1 grant\n"
    assert rdb.keys(KEY + "*") == [KEY + "203.0.113.8"]
    assert log_entries(rdb, "revoke") == [
        {"event": "revoke", "addr": "203.0.113.7", "by": "admin", "node": NODE}]
    one_line_error(cli("show", "203.0.113.7"), 1)


def test_revoke_of_a_missing_grant_revokes_none(cli, rdb):
    ok(cli("grant", "203.0.113.8", "alice"))
    assert ok(cli("revoke", "203.0.113.7")) == "revoked 0 grants\n"
    assert rdb.keys(KEY + "*") == [KEY + "203.0.113.8"]


def test_revoke_mapped_address_removes_the_ipv4_grant(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice"))
    assert ok(cli("revoke", "::ffff:203.0.113.7")) == "revoked 1 grant\n"
    assert rdb.keys(KEY + "*") == []


def test_revoke_user_removes_every_grant_of_that_user_only(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice"))
    ok(cli("grant", "2001:db8::7", "alice"))
    ok(cli("grant", "203.0.113.8", "bob"))
    ok(cli("grant", "203.0.113.9", "alice2"))

    assert ok(cli("revoke", "--user", "alice")) == "revoked 2 grants\n"
    assert sorted(rdb.keys(KEY + "*")) == [KEY + "203.0.113.8",
                                           KEY + "203.0.113.9"]
    revoked = sorted(e["addr"] for e in log_entries(rdb, "revoke"))
    assert revoked == ["2001:db8::7", "203.0.113.7"]
    assert ok(cli("revoke", "--user", "nobody")) == "revoked 0 grants\n"


# ---- expiry ---------------------------------------------------------------------

def test_short_ttl_really_expires(cli, rdb):
    ok(cli("grant", "203.0.113.7", "alice", "--ttl", "1"))
    assert "203.0.113.7" in ok(cli("list"))
    assert rdb.ttl(KEY + "203.0.113.7") in (0, 1)

    wait_until(lambda: "203.0.113.7" not in ok(cli("list")), timeout=3,
               interval=0.1, what="the grant to leave the list")
    assert rdb.exists(KEY + "203.0.113.7") == 0
    one_line_error(cli("show", "203.0.113.7"), 1)


# ---- stats ----------------------------------------------------------------------

def stats_of(out):
    figures = {}
    for line in out.splitlines():
        m = re.match(r"\s*(.+?):?\s+(\d+)", line)
        if m:
            figures[m.group(1)] = int(m.group(2))
    return figures


def test_stats_counts_live_grants_and_log_events(cli, rdb):
    assert stats_of(ok(cli("stats")))["live grants"] == 0
    for addr in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        ok(cli("grant", addr, "alice"))
    ok(cli("grant", "203.0.113.1", "alice"))      # a renewal is logged too
    ok(cli("revoke", "203.0.113.2"))
    rdb.xadd(LOG, {"event": "relay-denied", "addr": "192.0.2.1"})
    rdb.xadd(LOG, {"event": "something-new"})

    figures = stats_of(ok(cli("stats")))
    assert figures["live grants"] == 2
    assert figures["log entries"] == 7
    assert figures["grants"] == 4
    assert figures["revocations"] == 1
    assert figures["relays allowed"] == 0
    assert figures["relays denied"] == 1
    assert figures["other"] == 1


# ---- watch ----------------------------------------------------------------------

def xread_clients(rdb):
    return [c for c in rdb.client_list() if c.get("cmd") == "xread"]


def test_watch_prints_grants_and_revocations_as_they_happen(cli, rdb):
    watch = cli.popen("watch")
    try:
        wait_until(lambda: xread_clients(rdb), timeout=5,
                   what="watch to wait on the log stream")
        ok(cli("grant", "203.0.113.7", "alice"))
        line = read_line(watch, timeout=5)
        assert line is not None, "watch printed nothing"
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z grant ", line)
        assert "addr=203.0.113.7" in line and "user=alice" in line
        assert f"node={NODE}" in line and "method=ADMIN" in line

        ok(cli("revoke", "203.0.113.7"))
        line = read_line(watch, timeout=5)
        assert line is not None and " revoke " in line
        assert "addr=203.0.113.7" in line and "by=admin" in line
        assert watch.poll() is None
    finally:
        watch.kill()
        watch.communicate(timeout=5)


def test_watch_quotes_values_with_spaces(cli, rdb):
    watch = cli.popen("watch")
    try:
        wait_until(lambda: xread_clients(rdb), timeout=5,
                   what="watch to wait on the log stream")
        rdb.xadd(LOG, {"event": "relay-denied", "reason": "not granted",
                       "empty": ""})
        line = read_line(watch, timeout=5)
        assert line is not None
        assert line.rstrip("\n").endswith(
            ' relay-denied reason="not granted" empty=""')
    finally:
        watch.kill()
        watch.communicate(timeout=5)


# ---- bad input ------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["grant", "not-an-address", "alice"],
     "'not-an-address' is not an IPv4 or IPv6 address"),
    (["grant", "1.2.3", "alice"], "'1.2.3' is not an IPv4 or IPv6 address"),
    (["grant", "01.2.3.4", "alice"], "'01.2.3.4' is not an IPv4 or IPv6"),
    (["grant", "fe80::1%lo", "alice"], "is not an IPv4 or IPv6 address"),
    (["grant", "", "alice"], "'' is not an IPv4 or IPv6 address"),
    (["show", "256.1.1.1"], "'256.1.1.1' is not an IPv4 or IPv6 address"),
    (["revoke", "1.2.3.4.5"], "'1.2.3.4.5' is not an IPv4 or IPv6 address"),
    (["revoke", "10.0.0.0/8"], "'10.0.0.0/8' is not an IPv4 or IPv6 address"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["grant", "192.0.2.1", "alice", "--ttl", "0"], "--ttl: '0' is not"),
    (["grant", "192.0.2.1", "alice", "--ttl", "abc"], "--ttl: 'abc' is not"),
    (["grant", "192.0.2.1", "alice", "--ttl", "-5"], "--ttl: '-5' is not"),
    (["grant", "192.0.2.1", "alice", "--ttl", "604801"], "--ttl: '604801'"),
    (["grant", "192.0.2.1", "alice", "--ttl", "99999999999999999999999"],
     "--ttl:"),
    (["grant", "192.0.2.1", "alice", "--ttl"], "usage: grant"),
    (["grant", "192.0.2.1", "alice", "--tll", "60"], "usage: grant"),
    (["grant", "192.0.2.1"], "usage: grant"),
    (["grant", "192.0.2.1", "al ice"], "'al ice' is not a valid user name"),
    (["grant", "192.0.2.1", "al:ice"], "'al:ice' is not a valid user name"),
    (["grant", "192.0.2.1", "al\nice"], "is not a valid user name"),
    (["grant", "192.0.2.1", ""], "'' is not a valid user name"),
    (["grant", "192.0.2.1", "u" * 256], "is not a valid user name"),
    (["show"], "usage: show ADDR"),
    (["show", "192.0.2.1", "192.0.2.2"], "usage: show ADDR"),
    (["revoke"], "usage: revoke"),
    (["revoke", "--user"], "usage: revoke"),
    (["revoke", "--usr", "alice"], "usage: revoke"),
    (["list", "--bogus"], "list: unknown option '--bogus'"),
    (["stats", "extra"], "usage: stats"),
    (["watch", "extra"], "usage: watch"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path, args, message):
    # No Redis behind the address: had the command tried to connect, it
    # would exit 3, so exit 2 also shows bad input never reaches Redis.
    config = write_config(tmp_path / "offline.conf", {
        "redis": {"address": f"127.0.0.1:{free_port()}"}})
    line = one_line_error(Cli(config)(*args), 2)
    assert message in line


def test_longest_user_name_is_accepted(cli, rdb):
    # 255: the one limit every program shares (users_valid_name).
    ok(cli("grant", "192.0.2.1", "u" * 255))
    assert rdb.hget(KEY + "192.0.2.1", "user") == "u" * 255


def test_no_command_prints_usage_and_exits_2(cli):
    result = cli()
    assert result.returncode == 2
    assert result.stderr.startswith("usage: authbridge")


def test_help_prints_usage_and_exits_0(cli):
    result = cli("-h")
    assert result.returncode == 0
    assert "grant ADDR USER" in result.stdout


# ---- Redis unreachable -----------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["list"], ["list", "--json"], ["show", "192.0.2.1"],
    ["grant", "192.0.2.1", "alice"], ["revoke", "192.0.2.1"],
    ["revoke", "--user", "alice"], ["stats"],
])
def test_redis_down_is_one_line_naming_the_address_and_exit_3(
        cli, redis_server, args):
    redis_server.stop()
    line = one_line_error(cli(*args), 3)
    assert line == (f"authbridge: cannot connect to Redis at "
                    f"{redis_server.address}: Connection refused")


def test_redis_hung_times_out_with_exit_3(cli, redis_server):
    redis_server.pause()
    try:
        start = time.monotonic()
        line = one_line_error(cli("grant", "192.0.2.1", "alice"), 3)
        elapsed = time.monotonic() - start
    finally:
        redis_server.resume()
    assert line == (f"authbridge: Redis at {redis_server.address}: "
                    f"no reply within 500 ms")
    assert elapsed < 3, f"took {elapsed:.1f}s with timeout_ms = 500"


def test_watch_keeps_trying_while_redis_is_down(cli, redis_server, rdb):
    redis_server.stop()
    watch = cli.popen("watch")
    try:
        time.sleep(0.3)
        assert watch.poll() is None, "watch gave up while Redis was down"
        redis_server.start()
        wait_until(lambda: xread_clients(redis_server.client()), timeout=5,
                   what="watch to reconnect")
        ok(cli("grant", "203.0.113.7", "alice"))
        line = read_line(watch, timeout=5)
        assert line is not None and "addr=203.0.113.7" in line
    finally:
        watch.kill()
        _, err = watch.communicate(timeout=5)
    assert "(retrying)" in err


def test_wrong_password_is_one_line_and_exit_3(ab_config, rdb):
    rdb.config_set("requirepass", "right")
    try:
        cli = Cli(ab_config(redis={"password": "wrong"}))
        line = one_line_error(cli("list"), 3)
        assert "AUTH" in line
    finally:
        rdb.execute_command("AUTH", "right")
        rdb.config_set("requirepass", "")


def test_password_is_sent_with_auth(ab_config, rdb):
    rdb.config_set("requirepass", "s3cret")
    try:
        cli = Cli(ab_config(redis={"password": "s3cret"}))
        ok(cli("grant", "192.0.2.1", "alice"))
        assert "alice" in ok(cli("show", "192.0.2.1"))
    finally:
        rdb.execute_command("AUTH", "s3cret")
        rdb.config_set("requirepass", "")


def test_acl_user_and_password_are_sent(ab_config, rdb):
    rdb.acl_setuser("ab", enabled=True, passwords=["+pw1"], keys=["*"],
                    commands=["+@all"])
    cli = Cli(ab_config(redis={"username": "ab", "password": "pw1"}))
    ok(cli("grant", "192.0.2.1", "alice"))
    assert rdb.hget(KEY + "192.0.2.1", "user") == "alice"

    cli = Cli(ab_config(redis={"username": "ab", "password": "pw2"}))
    line = one_line_error(cli("list"), 3)
    assert "AUTH refused: WRONGPASS" in line


def test_unix_socket_address_is_used(tmp_path):
    server = RedisServer(tmp_path / "redis-unix", unixsocket=True).start()
    try:
        config = write_config(tmp_path / "unix.conf", {
            "redis": {"address": f"unix:{server.unixsocket}"}})
        cli = Cli(config)
        ok(cli("grant", "192.0.2.1", "alice"))
        assert server.client().hget(KEY + "192.0.2.1", "user") == "alice"
        server.stop()
        line = one_line_error(cli("list"), 3)
        assert line.startswith(f"authbridge: cannot connect to Redis at "
                               f"unix:{server.unixsocket}: ")
    finally:
        server.stop()


# ---- configuration check -------------------------------------------------------

def test_check_of_a_good_config_exits_0(cli):
    result = cli("-t")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{cli.config}: configuration OK\n"
    assert result.stderr == ""


def test_check_of_a_bad_config_names_every_error_and_exits_1(cli, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[redis]\n"
                   "timeout_ms = soon\n"
                   "[grant]\n"
                   "ttl = 60\n"
                   "colour = blue\n"
                   "[nowhere]\n")
    result = cli("-t", config=bad)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{bad}:2: timeout_ms: 'soon' is not a number from 10 to 60000",
        f"{bad}:5: unknown key 'colour' in [grant]",
        f"{bad}:6: unknown section [nowhere]",
    ]


def test_bad_config_without_check_exits_2(cli, tmp_path):
    bad = write_config(tmp_path / "bad.conf", {"grant": {"ttl": "never"}})
    result = cli("list", config=bad)
    assert result.returncode == 2
    assert result.stderr == (f"{bad}:2: ttl: 'never' is not a number from 1 "
                             f"to 604800\n")


def test_missing_config_is_an_error_naming_it(cli, tmp_path):
    missing = tmp_path / "nope.conf"
    result = cli("-t", config=missing)
    assert result.returncode == 1
    assert result.stderr == f"{missing}: No such file or directory\n"
    assert cli("list", config=missing).returncode == 2

