/*
 * RFC 5321 paths and the local/remote question (smtpgate/rcpt.c): the
 * classic open-relay probes, each of which must be refused as "local"
 * (a syntax error, or a remote recipient that needs a relay right), and
 * the legitimate forms that must be accepted.
 *
 * The table between PROBES BEGIN and PROBES END is also read by
 * tests/e2e/test_smtpgate_probes.py, which sends every line to a running
 * gate from an address without a grant: keep one entry per line, in the
 * form { "RCPT arguments", EXPECT, "detail" }, with plain C string
 * escapes (\xHH followed by a non-hex character, \", \\, \t).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smtpgate/rcpt.h"
#include "smtpgate/smtp_parse.h"

enum expect {
    LOCAL,           /* accepted as a local recipient; detail: the mailbox */
    REMOTE,          /* well-formed, not local; detail: the reason */
    BAD,             /* refused at parse time; detail: the reply code */
};

struct probe {
    const char *args;
    enum expect expect;
    const char *detail;
};

static const struct probe probes[] = {
/* PROBES BEGIN */
    /* the percent hack */
    { "TO:<user%remote.example@example.net>", REMOTE, "percent" },
    { "TO:<user%remote.example%example.net@example.net>", REMOTE, "percent" },
    { "TO:<user%example.net@example.net>", REMOTE, "percent" },
    { "TO:<user%remote.example@EXAMPLE.NET>", REMOTE, "percent" },
    { "TO:<user%remote.example@example.net.>", REMOTE, "percent" },
    /* source routes */
    { "TO:<@example.net:user@remote.example>", REMOTE, "remote_domain" },
    { "TO:<@remote.example:user@example.net>", REMOTE, "route" },
    { "TO:<@example.net,@remote.example:user@example.net>", REMOTE, "route" },
    { "TO:<@example.net:user%remote.example@example.net>", REMOTE, "route" },
    { "TO:<@remote.example:postmaster>", BAD, "501" },
    { "TO:<@:user@example.net>", BAD, "501" },
    { "TO:<@example.net>", BAD, "501" },
    { "TO:<@example.net,user@example.net>", BAD, "501" },
    /* bang paths */
    { "TO:<remote.example!user@example.net>", REMOTE, "bang" },
    { "TO:<remote.example!user>", BAD, "501" },
    { "TO:<example.net!remote.example!user@example.net>", REMOTE, "bang" },
    { "TO:<user@remote.example!example.net>", BAD, "501" },
    /* quoted local parts */
    { "TO:<\"user@remote.example\"@example.net>", REMOTE, "quoted" },
    { "TO:<\"user%remote.example\"@example.net>", REMOTE, "quoted" },
    { "TO:<\"user\"@example.net>", REMOTE, "quoted" },
    { "TO:<\"user\\\"@remote.example\"@example.net>", REMOTE, "quoted" },
    { "TO:<\"user@remote.example\">", BAD, "501" },
    { "TO:<\"postmaster\">", BAD, "501" },
    { "TO:<user\\@remote.example@example.net>", BAD, "501" },
    /* double @ */
    { "TO:<user@remote.example@example.net>", BAD, "501" },
    { "TO:<user@example.net@remote.example>", BAD, "501" },
    { "TO:<user@@example.net>", BAD, "501" },
    { "TO:<postmaster@example.net@remote.example>", BAD, "501" },
    /* trailing dots and other domain games */
    { "TO:<user@remote.example.>", REMOTE, "remote_domain" },
    { "TO:<user@example.net..>", BAD, "501" },
    { "TO:<user@.example.net>", BAD, "501" },
    { "TO:<user@example.net.remote.example>", REMOTE, "remote_domain" },
    { "TO:<user@example.net.remote.example.>", REMOTE, "remote_domain" },
    { "TO:<user@sub.example.net>", REMOTE, "remote_domain" },
    { "TO:<user@remote.example%example.net>", BAD, "501" },
    { "TO:<user@example.net:25>", BAD, "501" },
    { "TO:<user@-example.net>", BAD, "501" },
    { "TO:<user@example-.net>", BAD, "501" },
    { "TO:<user@example_net.example>", BAD, "501" },
    { "TO:<user@>", BAD, "501" },
    /* IP literals */
    { "TO:<user@[192.0.2.1]>", REMOTE, "literal" },
    { "TO:<user@[127.0.0.1]>", REMOTE, "literal" },
    { "TO:<postmaster@[127.0.0.1]>", REMOTE, "literal" },
    { "TO:<user%remote.example@[127.0.0.1]>", REMOTE, "literal" },
    { "TO:<user@[IPv6:::1]>", REMOTE, "literal" },
    { "TO:<user@[IPv6:2001:db8::1]>", REMOTE, "literal" },
    { "TO:<user@[192.0.2.1>", BAD, "501" },
    { "TO:<user@[999.1.1.1]>", BAD, "501" },
    { "TO:<user@[2001:db8::1]>", BAD, "501" },
    { "TO:<user@[tag:whatever]>", BAD, "501" },
    { "TO:<user@[]>", BAD, "501" },
    /* case games */
    { "TO:<USER@REMOTE.EXAMPLE>", REMOTE, "remote_domain" },
    { "TO:<Postmaster@remote.example>", REMOTE, "remote_domain" },
    { "TO:<postmaster%remote.example>", BAD, "501" },
    { "TO:<POSTMASTER@[127.0.0.1]>", REMOTE, "literal" },
    /* 8-bit and control characters */
    { "TO:<us\xe9r@example.net>", BAD, "553" },
    { "TO:<user@ex\xe4mple.net>", BAD, "553" },
    { "TO:<user@example.net\x01>", BAD, "501" },
    { "TO:<user@example.net\t>", BAD, "501" },
    { "TO:<\x7fuser@example.net>", BAD, "501" },
    /* spaces */
    { "TO:<user @example.net>", BAD, "501" },
    { "TO:< user@example.net>", BAD, "501" },
    { "TO:<user@example.net >", BAD, "501" },
    { "TO:<user@exa mple.net>", BAD, "501" },
    /* missing brackets and other envelope syntax */
    { "TO:user@example.net", BAD, "501" },
    { "TO:<user@example.net", BAD, "501" },
    { "TO:user@example.net>", BAD, "501" },
    { "TO:<user@example.net>junk", BAD, "501" },
    { "TO:<user@example.net> NOTIFY=NEVER", BAD, "555" },
    { "TO<user@example.net>", BAD, "501" },
    { "<user@example.net>", BAD, "501" },
    /* dot-atom errors */
    { "TO:<user.@example.net>", BAD, "501" },
    { "TO:<.user@example.net>", BAD, "501" },
    { "TO:<us..er@example.net>", BAD, "501" },
    /* unqualified and empty */
    { "TO:<user>", BAD, "501" },
    { "TO:<>", BAD, "501" },
    { "TO:<@>", BAD, "501" },
    /* lengths: local part 65 octets, path over 256 */
    { "TO:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.net>", BAD, "501" },
    { "TO:<user@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.net>", BAD, "501" },
    /* plain remote recipients */
    { "TO:<user@remote.example>", REMOTE, "remote_domain" },
    { "TO: <user@remote.example>", REMOTE, "remote_domain" },
/* PROBES END */
};

static const struct probe legit[] = {
    { "TO:<user@example.net>", LOCAL, "user@example.net" },
    { "TO:<User.Name@Example.NET>", LOCAL, "User.Name@Example.NET" },
    { "to:<user@example.net>", LOCAL, "user@example.net" },
    { "To: <user@example.org>", LOCAL, "user@example.org" },
    { "TO:<user+tag@example.net>", LOCAL, "user+tag@example.net" },
    { "TO:<first.last@example.org>", LOCAL, "first.last@example.org" },
    { "TO:<user@example.net.>", LOCAL, "user@example.net" },
    { "TO:<user@EXAMPLE.org.>", LOCAL, "user@EXAMPLE.org" },
    { "TO:<postmaster>", LOCAL, "postmaster" },
    { "TO:<POSTMASTER>", LOCAL, "POSTMASTER" },
    { "TO:<PostMaster>", LOCAL, "PostMaster" },
    { "TO:<postmaster@example.org>", LOCAL, "postmaster@example.org" },
    { "TO:<a-b_c=d/e{f}|g~h'i*j#k$l&m?n^o`p@example.net>", LOCAL,
      "a-b_c=d/e{f}|g~h'i*j#k$l&m?n^o`p@example.net" },
    { "TO:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.net>",
      LOCAL, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.net" },
    { "TO:<x@example.net>  ", LOCAL, "x@example.net" },
};

static char *domains_v[] = { "example.net", "example.org" };
static const struct strlist domains = { domains_v, 2 };

static void run(const struct probe *p)
{
    struct smtp_path path;
    size_t len = strlen(p->args);
    const char *err, *why = NULL;
    enum rcpt_class cls;

    /* The session trims trailing spaces before the parser sees them. */
    while (len > 0 && p->args[len - 1] == ' ')
        len--;
    err = smtp_parse_rcpt(p->args, len, &path);
    if (p->expect == BAD) {
        if (err == NULL)
            fail_msg("'%s' parsed, as '%s'", p->args, path.mailbox);
        if (strncmp(err, p->detail, 3) != 0)
            fail_msg("'%s': reply '%s', wanted %s", p->args, err, p->detail);
        return;
    }
    if (err != NULL)
        fail_msg("'%s' refused: %s", p->args, err);
    cls = rcpt_classify(&path, &domains, &why);
    if (p->expect == REMOTE) {
        if (cls != RCPT_REMOTE)
            fail_msg("'%s' taken as LOCAL (%s)", p->args, path.mailbox);
        if (strcmp(why, p->detail) != 0)
            fail_msg("'%s': reason %s, wanted %s", p->args, why, p->detail);
        return;
    }
    if (cls != RCPT_LOCAL)
        fail_msg("'%s' not local: %s", p->args, why);
    if (strcmp(path.mailbox, p->detail) != 0)
        fail_msg("'%s' forwarded as '%s', wanted '%s'", p->args, path.mailbox,
                 p->detail);
}

static void test_open_relay_probes_are_never_local(void **state)
{
    (void)state;
    /* The issue asks for at least 40. */
    assert_true(sizeof(probes) / sizeof(probes[0]) >= 40);
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
        run(&probes[i]);
}

static void test_legitimate_local_forms_are_accepted(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(legit) / sizeof(legit[0]); i++)
        run(&legit[i]);
}

/* The mailbox judged is the mailbox forwarded: no route, no dot. */
static void test_route_and_trailing_dot_are_stripped(void **state)
{
    struct smtp_path p;

    (void)state;
    assert_null(smtp_parse_rcpt("TO:<@a.example,@b.example:u@c.example.>",
                                39, &p));
    assert_true(p.route);
    assert_true(p.trailing_dot);
    assert_string_equal(p.mailbox, "u@c.example");
    assert_string_equal(smtp_path_domain(&p), "c.example");
}

static void test_reverse_paths(void **state)
{
    struct smtp_path p;
    struct smtp_mail_params mp;

    (void)state;
    assert_null(smtp_parse_mail("FROM:<>", 7, &p, &mp));
    assert_true(p.null);
    assert_string_equal(p.mailbox, "");
    assert_null(smtp_parse_mail("FROM:<a@b.example>", 18, &p, &mp));
    assert_string_equal(p.mailbox, "a@b.example");
    /* Unqualified senders, even postmaster, are refused. */
    assert_non_null(smtp_parse_mail("FROM:<postmaster>", 17, &p, &mp));
    assert_non_null(smtp_parse_mail("FROM:<a>", 8, &p, &mp));
    assert_non_null(smtp_parse_mail("FROM:a@b.example", 16, &p, &mp));
}

/* Build "<64 x 'l'@domain>" with a domain of dlen octets (labels of 63). */
static size_t make_path(char *buf, size_t dlen)
{
    size_t n = 0, label = 0;

    buf[n++] = '<';
    memset(buf + n, 'l', 64);
    n += 64;
    buf[n++] = '@';
    for (size_t i = 0; i < dlen; i++) {
        bool dot = label == 63 && i + 1 < dlen;
        buf[n++] = dot ? '.' : 'd';
        label = dot ? 0 : label + 1;
    }
    buf[n++] = '>';
    return n;
}

static void test_path_length_limit(void **state)
{
    char buf[400];
    struct smtp_path p;
    size_t end, n;

    (void)state;
    /* RFC 5321 4.5.3.1.3: 256 octets with the brackets is the most. */
    n = make_path(buf, 256 - 2 - 64 - 1);
    assert_int_equal(n, 256);
    assert_int_equal(smtp_path_parse(buf, n, PATH_FORWARD, &p, &end), PATH_OK);
    assert_int_equal(end, 256);
    n = make_path(buf, 256 - 2 - 64);
    assert_int_equal(n, 257);
    assert_int_equal(smtp_path_parse(buf, n, PATH_FORWARD, &p, &end),
                     PATH_TOO_LONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_relay_probes_are_never_local),
        cmocka_unit_test(test_legitimate_local_forms_are_accepted),
        cmocka_unit_test(test_route_and_trailing_dot_are_stripped),
        cmocka_unit_test(test_reverse_paths),
        cmocka_unit_test(test_path_length_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
