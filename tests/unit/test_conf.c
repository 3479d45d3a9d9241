/*
 * The configuration file: a good file with every key, defaults, syntax
 * details, what each program additionally requires, and the folder
 * tests/bad_configs/ where every broken file sits next to NAME.conf.expect,
 * the exact errors it must produce (one a line, in order, without the
 * folder: "NAME.conf:LINE: message").
 *
 * The folder is found as $AB_TESTS_DIR/bad_configs, or argv[1]/bad_configs,
 * or tests/bad_configs from the repository root (where `make unit` runs).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authbridge/conf.h"

static const char *tests_dir = "tests";
static char tmpdir[256];          /* realpath of a fresh folder per run */

/* ---- helpers ----------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int make_tmpdir(void **state)
{
    char templ[] = "/tmp/ab-test-conf-XXXXXX", real[PATH_MAX], etc[300];

    (void)state;
    if (mkdtemp(templ) == NULL || realpath(templ, real) == NULL ||
        strlen(real) >= sizeof(tmpdir))
        return -1;
    strcpy(tmpdir, real);
    snprintf(etc, sizeof(etc), "%s/etc", tmpdir);
    return mkdir(etc, 0700);
}

static int remove_tmpdir(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write text to tmpdir/name; returns the path (valid until the next call). */
static const char *write_file(const char *name, const char *text, size_t len)
{
    static char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void print_errors(const struct conf_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        print_error("  %s\n", errs->v[i]);
}

/* Load text as etc/authbridge.conf; the file must be valid. */
static struct ab_conf *load_ok(const char *text)
{
    struct conf_errors errs = { 0 };
    struct ab_conf *c;

    c = conf_load(write_file("etc/authbridge.conf", text, strlen(text)), &errs);
    if (c == NULL || errs.n != 0) {
        print_errors(&errs);
        fail_msg("the configuration was refused");
    }
    return c;
}

/* Load text; exactly one error, "PATH:want". */
static void load_refused(const char *text, size_t len, const char *want)
{
    struct conf_errors errs = { 0 };
    const char *path = write_file("etc/authbridge.conf", text, len);
    char full[PATH_MAX + 256];

    assert_null(conf_load(path, &errs));
    snprintf(full, sizeof(full), "%s:%s", path, want);
    if (errs.n != 1 || strcmp(errs.v[0], full) != 0) {
        print_errors(&errs);
        fail_msg("wanted exactly: %s", full);
    }
    conf_errors_free(&errs);
}

static const char *in_tmp(const char *rel)
{
    static char path[512];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    return path;
}

/* ---- a good file ------------------------------------------------------------- */

static const char full_conf[] =
    "# Every key of the contract, none at its default.\n"
    "[redis]\n"
    "address     = 127.0.0.1:6390        # a comment after a value\n"
    "password    = s3cret#not-a-comment\n"
    "username    = authbridge\n"
    "database    = 3\n"
    "prefix      = ab:\n"
    "timeout_ms  = 250\n"
    "sentinels   = 127.0.0.1:26379, [::1]:26380\n"
    "master_name = main\n"
    "log_maxlen  = 5000\n"
    "\n"
    "[grant]\n"
    "ttl         = 900\n"
    "ipv6_prefix = 64\n"
    "replicas    = 1\n"
    "\n"
    "[throttle]\n"
    "window           = 600\n"
    "delay_after      = 2\n"
    "delay_ms         = 100\n"
    "max_delay_ms     = 4000\n"
    "block_after      = 10\n"
    "user_block_after = 30\n"
    "\n"
    "; a semicolon comment\n"
    "[pop3d]\n"
    "user        = mail\n"
    "listen      = 127.0.0.1:1110, [::1]:1110\n"
    "listen_tls  = 127.0.0.1:1995\n"
    "tls_cert    = tls/cert.pem\n"
    "tls_key     = /etc/ssl/private/key.pem\n"
    "users       = users\n"
    "plaintext_auth = always\n"
    "trusted_networks = 10.0.0.0/8, ::1/128\n"
    "log         = syslog\n"
    "node        = pop-1\n"
    "max_connections = 100\n"
    "max_connections_per_addr = 5\n"
    "worker_threads = 4\n"
    "auth_cache_ttl = 60\n"
    "login_timeout = 30\n"
    "idle_timeout = 900\n"
    "auth_fail_delay_ms = 200\n"
    "lock_name   = .lock\n"
    "\n"
    "[smtpgate]\n"
    "user        =\n"
    "listen      = 127.0.0.1:2525\n"
    "listen_tls  = 127.0.0.1:4465\n"
    "tls_cert    = ../tls/cert.pem\n"
    "tls_key     = ../tls/key.pem\n"
    "downstream  = 127.0.0.1:10025\n"
    "policy_listen = 127.0.0.1:10031\n"
    "whoson_listen = 127.0.0.1:9876, [::1]:9876\n"
    "local_domains = Example.NET, example.org.\n"
    "trusted_networks = 192.168.0.0/16\n"
    "sender_binding = yes\n"
    "header_from_check = yes\n"
    "sender_map  = senders\n"
    "deny_message = Relaying denied. Check your mail (POP3) first, or use SMTP AUTH.\n"
    "users       = users\n"
    "hostname    = mx.example.net\n"
    "max_message_size = 1048576\n"
    "max_recipients = 200\n"
    "command_timeout = 120\n"
    "data_timeout = 60\n"
    "downstream_timeout = 30\n"
    "auth_fail_delay_ms = 0\n";

static void full_file_sets_redis_keys(void **state)
{
    struct ab_conf *c = load_ok(full_conf);
    const struct redis_conf *r = &c->redis;

    (void)state;
    assert_int_equal(r->address.family, AF_INET);
    assert_string_equal(r->address.host, "127.0.0.1");
    assert_int_equal(r->address.port, 6390);
    assert_string_equal(r->address.text, "127.0.0.1:6390");
    assert_string_equal(r->password, "s3cret#not-a-comment");
    assert_string_equal(r->username, "authbridge");
    assert_int_equal(r->database, 3);
    assert_string_equal(r->prefix, "ab:");
    assert_int_equal(r->timeout_ms, 250);
    assert_int_equal(r->sentinels.n, 2);
    assert_string_equal(r->sentinels.v[0].host, "127.0.0.1");
    assert_int_equal(r->sentinels.v[0].port, 26379);
    assert_int_equal(r->sentinels.v[1].family, AF_INET6);
    assert_string_equal(r->sentinels.v[1].host, "::1");
    assert_int_equal(r->sentinels.v[1].port, 26380);
    assert_string_equal(r->master_name, "main");
    assert_int_equal(r->log_maxlen, 5000);
    conf_free(c);
}

static void full_file_sets_grant_and_throttle_keys(void **state)
{
    struct ab_conf *c = load_ok(full_conf);

    (void)state;
    assert_int_equal(c->grant.ttl, 900);
    assert_int_equal(c->grant.ipv6_prefix, 64);
    assert_int_equal(c->grant.replicas, 1);
    assert_int_equal(c->throttle.window, 600);
    assert_int_equal(c->throttle.delay_after, 2);
    assert_int_equal(c->throttle.delay_ms, 100);
    assert_int_equal(c->throttle.max_delay_ms, 4000);
    assert_int_equal(c->throttle.block_after, 10);
    assert_int_equal(c->throttle.user_block_after, 30);
    conf_free(c);
}

static void full_file_sets_pop3d_keys(void **state)
{
    struct ab_conf *c = load_ok(full_conf);
    const struct pop3d_conf *p = &c->pop3d;
    struct ab_addr a;

    (void)state;
    assert_string_equal(p->d.user, "mail");
    assert_int_equal(p->d.listen.n, 2);
    assert_string_equal(p->d.listen.v[0].text, "127.0.0.1:1110");
    assert_int_equal(p->d.listen.v[0].port, 1110);
    assert_int_equal(p->d.listen.v[1].family, AF_INET6);
    assert_int_equal(p->d.listen_tls.n, 1);
    assert_int_equal(p->d.listen_tls.v[0].port, 1995);
    assert_int_equal(p->plaintext_auth, PLAINTEXT_ALWAYS);
    assert_int_equal(p->d.trusted_networks.n, 2);
    assert_int_equal(addr_parse("10.200.0.1", &a), 0);
    assert_true(cidr_list_match(&p->d.trusted_networks, &a));
    assert_int_equal(addr_parse("127.0.0.1", &a), 0);
    assert_false(cidr_list_match(&p->d.trusted_networks, &a));
    assert_int_equal(p->d.log, LOGTARGET_SYSLOG);
    assert_string_equal(p->d.node, "pop-1");
    assert_int_equal(p->d.max_connections, 100);
    assert_int_equal(p->d.max_connections_per_addr, 5);
    assert_int_equal(p->d.worker_threads, 4);
    assert_int_equal(p->d.auth_cache_ttl, 60);
    assert_int_equal(p->login_timeout, 30);
    assert_int_equal(p->idle_timeout, 900);
    assert_int_equal(p->auth_fail_delay_ms, 200);
    assert_string_equal(p->lock_name, ".lock");
    conf_free(c);
}

static void full_file_sets_smtpgate_keys(void **state)
{
    struct ab_conf *c = load_ok(full_conf);
    const struct smtpgate_conf *s = &c->smtpgate;

    (void)state;
    assert_string_equal(s->d.user, "");
    assert_int_equal(s->d.listen.n, 1);
    assert_int_equal(s->d.listen.v[0].port, 2525);
    assert_int_equal(s->d.listen_tls.n, 1);
    assert_int_equal(s->downstream.family, AF_INET);
    assert_int_equal(s->downstream.port, 10025);
    assert_int_equal(s->policy_listen.n, 1);
    assert_int_equal(s->policy_listen.v[0].port, 10031);
    assert_int_equal(s->whoson_listen.n, 2);
    assert_int_equal(s->sender_binding, SENDER_BINDING_GRANT);
    assert_true(s->header_from_check);
    assert_string_equal(s->deny_message,
        "Relaying denied. Check your mail (POP3) first, or use SMTP AUTH.");
    assert_string_equal(s->hostname, "mx.example.net");
    assert_int_equal(s->max_message_size, 1048576);
    assert_int_equal(s->max_recipients, 200);
    assert_int_equal(s->command_timeout, 120);
    assert_int_equal(s->data_timeout, 60);
    assert_int_equal(s->downstream_timeout, 30);
    assert_int_equal(s->auth_fail_delay_ms, 0);
    assert_int_equal(s->d.trusted_networks.n, 1);
    conf_free(c);
}

static void domains_are_lower_case_without_trailing_dot(void **state)
{
    struct ab_conf *c = load_ok(full_conf);
    const struct strlist *d = &c->smtpgate.local_domains;

    (void)state;
    assert_int_equal(d->n, 2);
    assert_string_equal(d->v[0], "example.net");
    assert_string_equal(d->v[1], "example.org");
    assert_true(strlist_contains_ci(d, "EXAMPLE.org", 11));
    assert_false(strlist_contains_ci(d, "example.org.evil", 16));
    assert_false(strlist_contains_ci(d, "example.or", 10));
    conf_free(c);
}

static void relative_paths_resolve_against_the_files_folder(void **state)
{
    struct ab_conf *c = load_ok(full_conf);
    char want[600];

    (void)state;
    assert_string_equal(c->dir, in_tmp("etc"));
    assert_string_equal(c->pop3d.d.users, in_tmp("etc/users"));
    assert_string_equal(c->pop3d.d.tls_cert, in_tmp("etc/tls/cert.pem"));
    assert_string_equal(c->smtpgate.sender_map, in_tmp("etc/senders"));
    snprintf(want, sizeof(want), "%s/../tls/key.pem", in_tmp("etc"));
    assert_string_equal(c->smtpgate.d.tls_key, want);
    conf_free(c);
}

static void relative_paths_ignore_the_working_folder(void **state)
{
    char cwd[PATH_MAX], rel[PATH_MAX];
    struct conf_errors errs = { 0 };
    struct ab_conf *c;

    (void)state;
    write_file("etc/authbridge.conf", "[pop3d]\nusers = users\n",
               strlen("[pop3d]\nusers = users\n"));
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(tmpdir), 0);
    snprintf(rel, sizeof(rel), "etc/authbridge.conf");
    c = conf_load(rel, &errs);
    assert_int_equal(chdir(cwd), 0);
    assert_non_null(c);
    assert_string_equal(c->pop3d.d.users, in_tmp("etc/users"));
    conf_free(c);
}

static void absolute_paths_are_kept(void **state)
{
    struct ab_conf *c = load_ok(full_conf);

    (void)state;
    assert_string_equal(c->pop3d.d.tls_key, "/etc/ssl/private/key.pem");
    conf_free(c);
}

static void absent_keys_take_their_defaults(void **state)
{
    struct ab_conf *c = load_ok("# nothing but a comment\n");
    char host[256];
    struct ab_addr a;

    (void)state;
    assert_string_equal(c->redis.address.host, "127.0.0.1");
    assert_int_equal(c->redis.address.port, 6379);
    assert_string_equal(c->redis.password, "");
    assert_string_equal(c->redis.username, "");
    assert_int_equal(c->redis.database, 0);
    assert_string_equal(c->redis.prefix, "authbridge:");
    assert_int_equal(c->redis.timeout_ms, 500);
    assert_int_equal(c->redis.sentinels.n, 0);
    assert_string_equal(c->redis.master_name, "mymaster");
    assert_int_equal(c->grant.ttl, 1800);
    assert_int_equal(c->grant.ipv6_prefix, 128);
    assert_int_equal(c->grant.replicas, 0);
    assert_int_equal(c->pop3d.d.listen.n, 1);
    assert_string_equal(c->pop3d.d.listen.v[0].text, "0.0.0.0:110");
    assert_int_equal(c->pop3d.d.listen_tls.n, 0);
    assert_string_equal(c->pop3d.d.users, "");
    assert_int_equal(c->pop3d.plaintext_auth, PLAINTEXT_TLS_OR_TRUSTED);
    assert_int_equal(c->pop3d.d.trusted_networks.n, 2);
    assert_int_equal(addr_parse("::1", &a), 0);
    assert_true(cidr_list_match(&c->pop3d.d.trusted_networks, &a));
    assert_int_equal(c->pop3d.d.log, LOGTARGET_STDERR);
    assert_int_equal(c->smtpgate.d.listen.n, 1);
    assert_string_equal(c->smtpgate.d.listen.v[0].text, "0.0.0.0:25");
    assert_int_equal(c->smtpgate.downstream.family, 0);
    assert_int_equal(c->smtpgate.policy_listen.n, 0);
    assert_int_equal(c->smtpgate.local_domains.n, 0);
    assert_int_equal(c->smtpgate.sender_binding, SENDER_BINDING_NO);
    assert_false(c->smtpgate.header_from_check);
    assert_string_equal(c->smtpgate.deny_message,
        "Relaying denied. Check your mail (POP3) first, or use SMTP AUTH.");
    /* node defaults to the host name, and the SMTP hostname to the node */
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    assert_string_equal(c->pop3d.d.node, host);
    assert_string_equal(c->smtpgate.hostname, c->smtpgate.d.node);
    conf_free(c);
}

static void empty_list_value_clears_the_default(void **state)
{
    struct ab_conf *c = load_ok("[pop3d]\ntrusted_networks =\nlisten =\n");

    (void)state;
    assert_int_equal(c->pop3d.d.trusted_networks.n, 0);
    assert_int_equal(c->pop3d.d.listen.n, 0);
    conf_free(c);
}

static void list_continues_on_indented_lines(void **state)
{
    struct ab_conf *c = load_ok(
        "[smtpgate]\n"
        "local_domains = a.example,\n"
        "    b.example, c.example\n"
        "\tD.example   # tab-indented, with a comment\n"
        "trusted_networks = 10.0.0.0/8\n"
        "  2001:db8::/32\n");

    (void)state;
    assert_int_equal(c->smtpgate.local_domains.n, 4);
    assert_string_equal(c->smtpgate.local_domains.v[0], "a.example");
    assert_string_equal(c->smtpgate.local_domains.v[2], "c.example");
    assert_string_equal(c->smtpgate.local_domains.v[3], "d.example");
    assert_int_equal(c->smtpgate.d.trusted_networks.n, 2);
    conf_free(c);
}

static void indented_key_line_is_a_key_not_a_continuation(void **state)
{
    struct ab_conf *c = load_ok(
        "[smtpgate]\n"
        "local_domains = a.example\n"
        "    hostname = mx.a.example\n");

    (void)state;
    assert_int_equal(c->smtpgate.local_domains.n, 1);
    assert_string_equal(c->smtpgate.hostname, "mx.a.example");
    conf_free(c);
}

static void hash_comment_needs_a_space_before_it(void **state)
{
    struct ab_conf *c = load_ok(
        "[redis]\n"
        "password = pa#ss # the comment\n"
        "username = us;er ; another comment\n"
        "[grant] # a comment after a section\n"
        "ttl = 60\t# after a tab\n");

    (void)state;
    assert_string_equal(c->redis.password, "pa#ss");
    assert_string_equal(c->redis.username, "us;er");
    assert_int_equal(c->grant.ttl, 60);
    conf_free(c);
}

static void crlf_line_ends_are_accepted(void **state)
{
    struct ab_conf *c = load_ok("[grant]\r\nttl = 77\r\n[redis]\r\nprefix = x:\r\n");

    (void)state;
    assert_int_equal(c->grant.ttl, 77);
    assert_string_equal(c->redis.prefix, "x:");
    conf_free(c);
}

static void booleans_take_yes_no_true_false_on_off_1_0(void **state)
{
    static const char *const yes[] = { "yes", "YES", "true", "on", "1" };
    static const char *const no[] = { "no", "False", "off", "0" };
    char text[128];

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        snprintf(text, sizeof(text), "[smtpgate]\nheader_from_check = %s\n",
                 yes[i]);
        struct ab_conf *c = load_ok(text);
        assert_true(c->smtpgate.header_from_check);
        conf_free(c);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        snprintf(text, sizeof(text), "[smtpgate]\nheader_from_check = %s\n",
                 no[i]);
        struct ab_conf *c = load_ok(text);
        assert_false(c->smtpgate.header_from_check);
        conf_free(c);
    }
}

/* sender_binding was yes/no: those spellings keep their meaning. */
static void sender_binding_is_no_grant_or_all_and_yes_means_grant(void **state)
{
    static const struct { const char *text; unsigned want; } cases[] = {
        { "no", SENDER_BINDING_NO }, { "grant", SENDER_BINDING_GRANT },
        { "all", SENDER_BINDING_ALL }, { "yes", SENDER_BINDING_GRANT },
        { "Yes", SENDER_BINDING_GRANT }, { "true", SENDER_BINDING_GRANT },
        { "on", SENDER_BINDING_GRANT }, { "1", SENDER_BINDING_GRANT },
        { "off", SENDER_BINDING_NO }, { "0", SENDER_BINDING_NO },
        { "false", SENDER_BINDING_NO },
    };
    char text[128];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "[smtpgate]\nsender_binding = %s\n",
                 cases[i].text);
        struct ab_conf *c = load_ok(text);
        assert_int_equal(c->smtpgate.sender_binding, cases[i].want);
        conf_free(c);
    }
}

static void numbers_at_both_ends_of_their_range_are_accepted(void **state)
{
    struct ab_conf *c = load_ok("[redis]\ntimeout_ms = 10\ndatabase = 65535\n"
                                "[grant]\nipv6_prefix = 16\nttl = 604800\n");

    (void)state;
    assert_int_equal(c->redis.timeout_ms, 10);
    assert_int_equal(c->redis.database, 65535);
    assert_int_equal(c->grant.ipv6_prefix, 16);
    assert_int_equal(c->grant.ttl, 604800);
    conf_free(c);
}

static void redis_address_may_be_a_unix_socket(void **state)
{
    struct ab_conf *c = load_ok("[redis]\naddress = unix:/run/redis/redis.sock\n");

    (void)state;
    assert_int_equal(c->redis.address.family, AF_UNIX);
    assert_string_equal(c->redis.address.path, "/run/redis/redis.sock");
    conf_free(c);
}

static void redis_address_may_be_ipv6_in_brackets(void **state)
{
    struct ab_conf *c = load_ok("[redis]\naddress = [::1]:6380\n");

    (void)state;
    assert_int_equal(c->redis.address.family, AF_INET6);
    assert_string_equal(c->redis.address.host, "::1");
    assert_int_equal(c->redis.address.port, 6380);
    conf_free(c);
}

static void line_of_198_characters_is_accepted(void **state)
{
    char text[512];
    struct ab_conf *c;
    int n;

    (void)state;
    /* "deny_message = " is 15 characters: 183 more make 198. */
    n = snprintf(text, sizeof(text), "[smtpgate]\ndeny_message = %0183d\n", 0);
    assert_true(n > 0);
    c = load_ok(text);
    assert_int_equal(strlen(c->smtpgate.deny_message), 183);
    conf_free(c);
}

static void line_of_199_characters_is_refused(void **state)
{
    char text[512];
    int n;

    (void)state;
    n = snprintf(text, sizeof(text), "[smtpgate]\ndeny_message = %0184d\n", 0);
    load_refused(text, (size_t)n, "2: line longer than 198 characters "
                 "(continue lists on an indented next line)");
}

static void endless_line_is_one_error_and_the_next_line_is_read(void **state)
{
    size_t len = 10000;
    char *text = malloc(len + 64);
    struct conf_errors errs = { 0 };
    const char *path;

    (void)state;
    assert_non_null(text);
    memcpy(text, "[smtpgate]\ndeny_message = ", 26);
    memset(text + 26, 'x', len);
    strcpy(text + 26 + len, "\nbogus = 1\n");
    path = write_file("etc/authbridge.conf", text, strlen(text));
    free(text);
    assert_null(conf_load(path, &errs));
    assert_int_equal(errs.n, 2);
    assert_non_null(strstr(errs.v[0], "authbridge.conf:2: line longer than 198"));
    assert_non_null(strstr(errs.v[1],
                           "authbridge.conf:3: unknown key 'bogus' in [smtpgate]"));
    conf_errors_free(&errs);
}

static void nul_byte_in_a_line_is_refused(void **state)
{
    static const char text[] = "[grant]\nttl = 6\0" "0\n";

    (void)state;
    load_refused(text, sizeof(text) - 1, "2: NUL byte in line");
}

static void missing_file_is_an_error_naming_it(void **state)
{
    struct conf_errors errs = { 0 };

    (void)state;
    assert_null(conf_load(in_tmp("no/such.conf"), &errs));
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.v[0], "no/such.conf: No such file or directory"));
    conf_errors_free(&errs);
}

static void errors_are_appended_to_existing_ones(void **state)
{
    struct conf_errors errs = { 0 };
    struct ab_conf *c;

    (void)state;
    conf_errors_add(&errs, "earlier: %d", 1);
    c = conf_load(write_file("etc/authbridge.conf", "[grant]\nttl = 5\n",
                             strlen("[grant]\nttl = 5\n")), &errs);
    assert_non_null(c);               /* an earlier error is not this file's */
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.v[0], "earlier: 1");
    conf_free(c);
    conf_errors_free(&errs);
    assert_int_equal(errs.n, 0);
}

/* ---- the broken files ---------------------------------------------------------- */

/* Read NAME.conf.expect: non-empty lines. */
static size_t read_expect(const char *path, char lines[][512], size_t max)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;

    if (f == NULL)
        fail_msg("%s: missing (every broken file needs one)", path);
    while (n < max && fgets(lines[n], 512, f) != NULL) {
        lines[n][strcspn(lines[n], "\n")] = '\0';
        if (lines[n][0] != '\0')
            n++;
    }
    fclose(f);
    return n;
}

/* One broken file: refused, with exactly the expected errors in order. */
static bool bad_config_case(const char *dir, const char *name)
{
    char path[PATH_MAX + 256], expect_path[PATH_MAX + 300];
    char want[PATH_MAX + 1024];
    char lines[16][512];
    struct conf_errors errs = { 0 };
    struct ab_conf *c;
    size_t n;
    bool ok = true;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(expect_path, sizeof(expect_path), "%s.expect", path);
    n = read_expect(expect_path, lines, 16);
    c = conf_load(path, &errs);
    if (c != NULL) {
        print_error("%s: accepted, but must be refused\n", name);
        conf_free(c);
        return false;
    }
    for (size_t i = 0; i < n || i < errs.n; i++) {
        snprintf(want, sizeof(want), "%s/%s", dir, i < n ? lines[i] : "");
        if (i >= n || i >= errs.n || strcmp(errs.v[i], want) != 0) {
            print_error("%s: error %zu\n   got: %s\n  want: %s\n", name, i + 1,
                        i < errs.n ? errs.v[i] : "(none)",
                        i < n ? want : "(none)");
            ok = false;
        }
    }
    conf_errors_free(&errs);
    return ok;
}

static void every_broken_file_gives_its_expected_errors(void **state)
{
    char dir[PATH_MAX];
    DIR *d;
    struct dirent *e;
    int cases = 0, failed = 0;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/bad_configs", tests_dir);
    d = opendir(dir);
    if (d == NULL)
        fail_msg("%s: cannot open (run from the repository root, or set "
                 "AB_TESTS_DIR)", dir);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 12 && strcmp(e->d_name + len - 12, ".conf.expect") == 0) {
            char conf_path[PATH_MAX + 256];
            snprintf(conf_path, sizeof(conf_path), "%s/%.*s", dir,
                     (int)(len - 7), e->d_name);
            if (access(conf_path, R_OK) != 0) {
                print_error("%s: no broken file for it\n", e->d_name);
                failed++;
            }
            continue;
        }
        if (len <= 5 || strcmp(e->d_name + len - 5, ".conf") != 0)
            continue;
        cases++;
        if (!bad_config_case(dir, e->d_name))
            failed++;
    }
    closedir(d);
    print_message("%d broken files checked, %d failed\n", cases, failed);
    assert_int_equal(failed, 0);
    assert_true(cases >= 30);
}

/* ---- what each program requires ---------------------------------------------- */

/* Load text and run a requirement check; the errors must be exactly want
 * (NULL-terminated, each without the "PATH: " in front). */
static void expect_required(const char *text,
                            void (*require)(const struct ab_conf *,
                                            struct conf_errors *), ...)
{
    struct ab_conf *c = load_ok(text);
    struct conf_errors errs = { 0 };
    const char *w;
    char full[PATH_MAX + 256];
    size_t i = 0;
    va_list ap;

    require(c, &errs);
    va_start(ap, require);
    while ((w = va_arg(ap, const char *)) != NULL) {
        snprintf(full, sizeof(full), "%s: %s", c->path, w);
        if (i >= errs.n || strcmp(errs.v[i], full) != 0) {
            print_errors(&errs);
            fail_msg("wanted error %zu: %s", i + 1, full);
        }
        i++;
    }
    va_end(ap);
    if (errs.n != i) {
        print_errors(&errs);
        fail_msg("%zu errors, wanted %zu", errs.n, i);
    }
    conf_errors_free(&errs);
    conf_free(c);
}

static void pop3d_with_users_and_listen_is_complete(void **state)
{
    (void)state;
    expect_required("[pop3d]\nusers = users\n", conf_require_pop3d, NULL);
    expect_required(full_conf, conf_require_pop3d, NULL);
}

static void pop3d_needs_a_user_file(void **state)
{
    (void)state;
    expect_required("[pop3d]\nlisten = 127.0.0.1:110\n", conf_require_pop3d,
                    "[pop3d] users (the passwd-file) is required", NULL);
}

static void pop3d_needs_a_listener(void **state)
{
    (void)state;
    expect_required("[pop3d]\nusers = u\nlisten =\n", conf_require_pop3d,
                    "[pop3d] needs listen or listen_tls", NULL);
}

static void pop3d_listen_tls_needs_cert_and_key(void **state)
{
    (void)state;
    expect_required("[pop3d]\nusers = u\nlisten_tls = 127.0.0.1:995\n",
                    conf_require_pop3d,
                    "[pop3d] listen_tls needs tls_cert and tls_key", NULL);
}

static void pop3d_tls_cert_without_key_is_refused(void **state)
{
    (void)state;
    expect_required("[pop3d]\nusers = u\ntls_cert = c.pem\n", conf_require_pop3d,
                    "[pop3d] tls_cert and tls_key go together", NULL);
}

static void smtpgate_with_listen_and_downstream_is_complete(void **state)
{
    (void)state;
    expect_required("[smtpgate]\ndownstream = 127.0.0.1:10025\n",
                    conf_require_smtpgate, NULL);
    expect_required(full_conf, conf_require_smtpgate, NULL);
}

static void smtpgate_policy_service_alone_needs_no_downstream(void **state)
{
    (void)state;
    expect_required("[smtpgate]\nlisten =\npolicy_listen = 127.0.0.1:10031\n",
                    conf_require_smtpgate, NULL);
    expect_required("[smtpgate]\nlisten =\nwhoson_listen = 127.0.0.1:9876\n",
                    conf_require_smtpgate, NULL);
    expect_required("[smtpgate]\nlisten =\nsocketmap_listen = [::1]:10032, "
                    "unix:/run/authbridge/socketmap\n", conf_require_smtpgate,
                    NULL);
}

static void smtpgate_needs_some_listener(void **state)
{
    (void)state;
    expect_required("[smtpgate]\nlisten =\n", conf_require_smtpgate,
                    "[smtpgate] needs at least one of listen, listen_tls, "
                    "policy_listen, whoson_listen, dovecot_listen, "
                    "socketmap_listen", NULL);
}

static void smtpgate_dovecot_door_needs_a_long_enough_key(void **state)
{
    (void)state;
    expect_required("[smtpgate]\nlisten =\ndovecot_listen = 127.0.0.1:10033\n"
                    "dovecot_api_key = 0123456789abcdef\n",
                    conf_require_smtpgate, NULL);
    expect_required("[smtpgate]\nlisten =\ndovecot_listen = 127.0.0.1:10033\n",
                    conf_require_smtpgate, "[smtpgate] dovecot_listen needs "
                    "dovecot_api_key (16 characters or more)", NULL);
    expect_required("[smtpgate]\nlisten =\ndovecot_listen = 127.0.0.1:10033\n"
                    "dovecot_api_key = 0123456789abcde\n",
                    conf_require_smtpgate, "[smtpgate] dovecot_listen needs "
                    "dovecot_api_key (16 characters or more)", NULL);
    expect_required("[smtpgate]\nlisten =\ndovecot_listen = 127.0.0.1:10033\n"
                    "dovecot_api_key = 0123456789abcdef@x\n",
                    conf_require_smtpgate, "[smtpgate] dovecot_api_key: only "
                    "letters, digits and - . _ ~ (it goes into a URL)", NULL);
}

static void smtpgate_dovecot_protocols_default_to_pop3_and_imap(void **state)
{
    struct ab_conf *c = load_ok("[smtpgate]\n");

    (void)state;
    assert_int_equal(c->smtpgate.dovecot_protocols.n, 2);
    assert_string_equal(c->smtpgate.dovecot_protocols.v[0], "pop3");
    assert_string_equal(c->smtpgate.dovecot_protocols.v[1], "imap");
    assert_int_equal(c->smtpgate.dovecot_listen.n, 0);
    conf_free(c);
    c = load_ok("[smtpgate]\ndovecot_protocols = IMAP\n");
    assert_int_equal(c->smtpgate.dovecot_protocols.n, 1);
    assert_string_equal(c->smtpgate.dovecot_protocols.v[0], "imap");
    conf_free(c);
}

static void smtpgate_listen_needs_downstream(void **state)
{
    (void)state;
    expect_required("[smtpgate]\nlisten = 127.0.0.1:25\n", conf_require_smtpgate,
                    "[smtpgate] listen needs downstream (the MTA to pass mail "
                    "to)", NULL);
}

static void smtpgate_listen_tls_needs_cert_and_key(void **state)
{
    (void)state;
    expect_required("[smtpgate]\nlisten =\nlisten_tls = 127.0.0.1:465\n"
                    "downstream = 127.0.0.1:10025\n", conf_require_smtpgate,
                    "[smtpgate] listen_tls needs tls_cert and tls_key", NULL);
}

static void smtpgate_tls_cert_without_key_is_refused(void **state)
{
    (void)state;
    expect_required("[smtpgate]\ndownstream = 127.0.0.1:10025\n"
                    "tls_key = k.pem\n", conf_require_smtpgate,
                    "[smtpgate] tls_cert and tls_key go together", NULL);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_file_sets_redis_keys),
        cmocka_unit_test(full_file_sets_grant_and_throttle_keys),
        cmocka_unit_test(full_file_sets_pop3d_keys),
        cmocka_unit_test(full_file_sets_smtpgate_keys),
        cmocka_unit_test(domains_are_lower_case_without_trailing_dot),
        cmocka_unit_test(relative_paths_resolve_against_the_files_folder),
        cmocka_unit_test(relative_paths_ignore_the_working_folder),
        cmocka_unit_test(absolute_paths_are_kept),
        cmocka_unit_test(absent_keys_take_their_defaults),
        cmocka_unit_test(empty_list_value_clears_the_default),
        cmocka_unit_test(list_continues_on_indented_lines),
        cmocka_unit_test(indented_key_line_is_a_key_not_a_continuation),
        cmocka_unit_test(hash_comment_needs_a_space_before_it),
        cmocka_unit_test(crlf_line_ends_are_accepted),
        cmocka_unit_test(booleans_take_yes_no_true_false_on_off_1_0),
        cmocka_unit_test(sender_binding_is_no_grant_or_all_and_yes_means_grant),
        cmocka_unit_test(numbers_at_both_ends_of_their_range_are_accepted),
        cmocka_unit_test(redis_address_may_be_a_unix_socket),
        cmocka_unit_test(redis_address_may_be_ipv6_in_brackets),
        cmocka_unit_test(line_of_198_characters_is_accepted),
        cmocka_unit_test(line_of_199_characters_is_refused),
        cmocka_unit_test(endless_line_is_one_error_and_the_next_line_is_read),
        cmocka_unit_test(nul_byte_in_a_line_is_refused),
        cmocka_unit_test(missing_file_is_an_error_naming_it),
        cmocka_unit_test(errors_are_appended_to_existing_ones),
        cmocka_unit_test(every_broken_file_gives_its_expected_errors),
        cmocka_unit_test(pop3d_with_users_and_listen_is_complete),
        cmocka_unit_test(pop3d_needs_a_user_file),
        cmocka_unit_test(pop3d_needs_a_listener),
        cmocka_unit_test(pop3d_listen_tls_needs_cert_and_key),
        cmocka_unit_test(pop3d_tls_cert_without_key_is_refused),
        cmocka_unit_test(smtpgate_with_listen_and_downstream_is_complete),
        cmocka_unit_test(smtpgate_policy_service_alone_needs_no_downstream),
        cmocka_unit_test(smtpgate_needs_some_listener),
        cmocka_unit_test(smtpgate_dovecot_door_needs_a_long_enough_key),
        cmocka_unit_test(smtpgate_dovecot_protocols_default_to_pop3_and_imap),
        cmocka_unit_test(smtpgate_listen_needs_downstream),
        cmocka_unit_test(smtpgate_listen_tls_needs_cert_and_key),
        cmocka_unit_test(smtpgate_tls_cert_without_key_is_refused),
    };

    if (getenv("AB_TESTS_DIR") != NULL)
        tests_dir = getenv("AB_TESTS_DIR");
    else if (argc > 1)
        tests_dir = argv[1];
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
