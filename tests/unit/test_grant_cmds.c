/*
 * The grant schema as commands: key naming (grant_key) and the exact
 * Redis commands of a grant and a revocation (grant_cmds_put/revoke).
 * Admins and the daemons read this schema with redis-cli: it is public.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "authbridge/grant.h"

static const struct grant_settings settings = {
    .prefix = "ab:", .node = "mx1", .ttl = 1800, .ipv6_prefix = 128,
    .log_maxlen = 5000, .replicas = 0, .timeout_ms = 500,
};

static struct ab_addr addr_of(const char *text)
{
    struct ab_addr a;

    if (addr_parse(text, &a) != 0)
        fail_msg("addr_parse refused '%s'", text);
    return a;
}

static const char *key_of(const char *prefix, const char *text, unsigned v6)
{
    static char key[GRANT_KEY_MAX];
    struct ab_addr a = addr_of(text);

    assert_int_equal(grant_key(prefix, &a, v6, key, sizeof(key)), 0);
    return key;
}

/* cmd must be exactly the NULL-terminated list of arguments. */
static void expect_argv(const struct rcmd *cmd, ...)
{
    va_list ap;
    const char *want;
    int i = 0;

    assert_null(cmd->argvlen);
    va_start(ap, cmd);
    while ((want = va_arg(ap, const char *)) != NULL) {
        if (i >= cmd->argc)
            fail_msg("argument %d missing, wanted '%s'", i, want);
        if (strcmp(cmd->argv[i], want) != 0)
            fail_msg("argument %d is '%s', wanted '%s'", i, cmd->argv[i], want);
        i++;
    }
    va_end(ap);
    assert_int_equal(cmd->argc, i);
}

/* ---- key naming ---------------------------------------------------------- */

static void key_is_prefix_grant_and_ipv4_address(void **state)
{
    (void)state;
    assert_string_equal(key_of("authbridge:", "203.0.113.7", 128),
                        "authbridge:grant:203.0.113.7");
}

static void key_of_mapped_address_is_the_ipv4_key(void **state)
{
    (void)state;
    assert_string_equal(key_of("authbridge:", "::ffff:203.0.113.7", 64),
                        "authbridge:grant:203.0.113.7");
}

static void key_of_ipv6_address_is_rfc5952_text(void **state)
{
    (void)state;
    assert_string_equal(key_of("authbridge:", "2001:DB8:0:0::1", 128),
                        "authbridge:grant:2001:db8::1");
}

static void key_of_ipv6_address_with_prefix_is_the_network(void **state)
{
    (void)state;
    assert_string_equal(key_of("authbridge:", "2001:db8:1:2:aa:bb:cc:dd", 64),
                        "authbridge:grant:2001:db8:1:2::/64");
    assert_string_equal(key_of("authbridge:", "2001:db8:1:2:aa:bb:cc:dd", 48),
                        "authbridge:grant:2001:db8:1::/48");
}

static void key_with_empty_prefix_starts_with_grant(void **state)
{
    (void)state;
    assert_string_equal(key_of("", "10.0.0.1", 128), "grant:10.0.0.1");
}

static void key_that_does_not_fit_is_refused(void **state)
{
    char small[20];
    struct ab_addr a = addr_of("203.0.113.7");

    (void)state;
    /* "ab:grant:203.0.113.7" is 20 characters: one short for the NUL. */
    assert_int_equal(grant_key("ab:", &a, 128, small, sizeof(small)), -1);
    assert_int_equal(grant_key("ab:", &a, 128, small, sizeof(small) - 1), -1);
    assert_int_equal(grant_key("a:", &a, 128, small, sizeof(small)), 0);
    assert_string_equal(small, "a:grant:203.0.113.7");
}

static void key_with_longest_prefix_and_address_fits(void **state)
{
    char prefix[GRANT_PREFIX_MAX + 1], key[GRANT_KEY_MAX];
    struct ab_addr a = addr_of("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");

    (void)state;
    memset(prefix, 'p', GRANT_PREFIX_MAX);
    prefix[GRANT_PREFIX_MAX] = '\0';
    assert_int_equal(grant_key(prefix, &a, 127, key, sizeof(key)), 0);
    assert_int_equal(strlen(key), GRANT_PREFIX_MAX + strlen("grant:") +
                     strlen("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"));
}

/* ---- the commands of a grant --------------------------------------------- */

static void put_is_five_commands_on_the_grant_key_and_the_log(void **state)
{
    struct grant_cmds c;
    struct grant_info g = { addr_of("203.0.113.7"),
                            "alice", "USER", true, NULL };

    (void)state;
    grant_cmds_put(&c, &settings, &g, 1700000000LL, 1800);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.key, "ab:grant:203.0.113.7");
    assert_string_equal(c.logkey, "ab:log");
}

static void put_keeps_since_of_an_existing_grant(void **state)
{
    struct grant_cmds c;
    struct grant_info g = { addr_of("203.0.113.7"),
                            "alice", "USER", true, NULL };

    (void)state;
    grant_cmds_put(&c, &settings, &g, 1700000000LL, 1800);
    expect_argv(&c.cmd[0], "HSETNX", "ab:grant:203.0.113.7", "since",
                "1700000000", NULL);
}

static void put_sets_user_renewed_node_method_tls(void **state)
{
    struct grant_cmds c;
    struct grant_info g = { addr_of("203.0.113.7"),
                            "alice", "USER", true, NULL };

    (void)state;
    grant_cmds_put(&c, &settings, &g, 1700000000LL, 1800);
    expect_argv(&c.cmd[1], "HSET", "ab:grant:203.0.113.7", "user", "alice",
                "renewed", "1700000000", "node", "mx1", "method", "USER",
                "tls", "1", NULL);
}

static void put_counts_logins_and_sets_the_ttl(void **state)
{
    struct grant_cmds c;
    struct grant_info g = { addr_of("203.0.113.7"),
                            "alice", "USER", true, NULL };

    (void)state;
    grant_cmds_put(&c, &settings, &g, 1700000000LL, 1800);
    expect_argv(&c.cmd[2], "HINCRBY", "ab:grant:203.0.113.7", "logins", "1",
                NULL);
    expect_argv(&c.cmd[3], "EXPIRE", "ab:grant:203.0.113.7", "1800", NULL);
}

static void put_appends_a_capped_grant_log_entry(void **state)
{
    struct grant_cmds c;
    struct grant_info g = { addr_of("203.0.113.7"),
                            "alice", "USER", true, NULL };

    (void)state;
    grant_cmds_put(&c, &settings, &g, 1700000000LL, 1800);
    expect_argv(&c.cmd[4], "XADD", "ab:log", "MAXLEN", "~", "5000", "*",
                "event", "grant", "addr", "203.0.113.7", "user", "alice",
                "method", "USER", "tls", "1", "node", "mx1", "ttl", "1800",
                NULL);
}

static void put_uses_the_ttl_argument_not_the_setting(void **state)
{
    struct grant_cmds c;
    struct grant_info g = { addr_of("203.0.113.7"),
                            "bob", "ADMIN", false, NULL };

    (void)state;
    grant_cmds_put(&c, &settings, &g, 5, 7);
    expect_argv(&c.cmd[3], "EXPIRE", "ab:grant:203.0.113.7", "7", NULL);
    assert_string_equal(c.cmd[4].argv[c.cmd[4].argc - 1], "7");
    expect_argv(&c.cmd[0], "HSETNX", "ab:grant:203.0.113.7", "since", "5",
                NULL);
}

static void put_without_tls_writes_zero(void **state)
{
    struct grant_cmds c;
    struct grant_info g = { addr_of("203.0.113.7"),
                            "bob", "APOP", false, NULL };

    (void)state;
    grant_cmds_put(&c, &settings, &g, 1, 60);
    assert_string_equal(c.cmd[1].argv[11], "0");
    assert_string_equal(c.cmd[4].argv[15], "0");
}

static void put_for_ipv6_with_prefix_writes_the_network_key(void **state)
{
    struct grant_settings s = settings;
    struct grant_cmds c;
    struct grant_info g = { addr_of("2001:db8:1:2::99"), "carol", "USER", false,
                            NULL };

    (void)state;
    s.ipv6_prefix = 64;
    grant_cmds_put(&c, &s, &g, 1, 60);
    assert_string_equal(c.key, "ab:grant:2001:db8:1:2::/64");
    for (int i = 0; i < 4; i++)
        assert_string_equal(c.cmd[i].argv[1], "ab:grant:2001:db8:1:2::/64");
    assert_string_equal(c.cmd[4].argv[9], "2001:db8:1:2::/64");
}

static void put_names_the_login_server_when_given_a_node(void **state)
{
    struct grant_cmds c;
    struct grant_info g = { addr_of("203.0.113.7"), "alice", "IMAP-PLAIN",
                            false, "dovecot1" };

    (void)state;
    grant_cmds_put(&c, &settings, &g, 1, 60);
    expect_argv(&c.cmd[1], "HSET", "ab:grant:203.0.113.7", "user", "alice",
                "renewed", "1", "node", "dovecot1", "method", "IMAP-PLAIN",
                "tls", "0", NULL);
    assert_string_equal(c.cmd[4].argv[c.cmd[4].argc - 3], "dovecot1");
}

/* ---- the commands of a revocation ----------------------------------------- */

static void revoke_deletes_the_key_and_logs_who_revoked(void **state)
{
    struct grant_cmds c;

    (void)state;
    grant_cmds_revoke(&c, &settings, "ab:grant:2001:db8::1", "admin");
    assert_int_equal(c.n, 2);
    expect_argv(&c.cmd[0], "DEL", "ab:grant:2001:db8::1", NULL);
    expect_argv(&c.cmd[1], "XADD", "ab:log", "MAXLEN", "~", "5000", "*",
                "event", "revoke", "addr", "2001:db8::1", "by", "admin",
                "node", "mx1", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_is_prefix_grant_and_ipv4_address),
        cmocka_unit_test(key_of_mapped_address_is_the_ipv4_key),
        cmocka_unit_test(key_of_ipv6_address_is_rfc5952_text),
        cmocka_unit_test(key_of_ipv6_address_with_prefix_is_the_network),
        cmocka_unit_test(key_with_empty_prefix_starts_with_grant),
        cmocka_unit_test(key_that_does_not_fit_is_refused),
        cmocka_unit_test(key_with_longest_prefix_and_address_fits),
        cmocka_unit_test(put_is_five_commands_on_the_grant_key_and_the_log),
        cmocka_unit_test(put_keeps_since_of_an_existing_grant),
        cmocka_unit_test(put_sets_user_renewed_node_method_tls),
        cmocka_unit_test(put_counts_logins_and_sets_the_ttl),
        cmocka_unit_test(put_appends_a_capped_grant_log_entry),
        cmocka_unit_test(put_uses_the_ttl_argument_not_the_setting),
        cmocka_unit_test(put_without_tls_writes_zero),
        cmocka_unit_test(put_for_ipv6_with_prefix_writes_the_network_key),
        cmocka_unit_test(put_names_the_login_server_when_given_a_node),
        cmocka_unit_test(revoke_deletes_the_key_and_logs_who_revoked),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
