/*
 * The From: check's pure parts (smtpgate/hdrfrom.c): the header block
 * scanner (end of the block, folding, dot-stuffing, duplicates, caps,
 * any chunking), the RFC 5322 address-list parser on the forms mail
 * clients write and on garbage, and the verdict.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtpgate/hdrfrom.h"

/* ---- the address parser --------------------------------------------------- */

struct found {
    char v[8][HDRADDR_MAX + 1];
    int n;
};

static void collect(const char *addr, void *arg)
{
    struct found *f = arg;

    assert_true(f->n < 8);
    strcpy(f->v[f->n++], addr);
}

/* The addresses of s, joined by " ", or "ERROR". */
static const char *parse(const char *s)
{
    static char out[1024];
    struct found f = { .n = 0 };
    int n = hdraddr_parse(s, strlen(s), collect, &f);

    if (n < 0)
        return "ERROR";
    assert_int_equal(n, f.n);
    out[0] = '\0';
    for (int i = 0; i < f.n; i++)
        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s",
                 i ? " " : "", f.v[i]);
    return out;
}

static void test_the_forms_mail_clients_write(void **state)
{
    (void)state;
    assert_string_equal(parse(" terri@contoso.com"), "terri@contoso.com");
    assert_string_equal(parse(" \"Terri\" <terri@contoso.com>"),
                        "terri@contoso.com");
    assert_string_equal(parse(" terri@contoso.com (Terri)"),
                        "terri@contoso.com");
    assert_string_equal(parse(" Terri Smith <terri@contoso.com>"),
                        "terri@contoso.com");
    assert_string_equal(parse(" =?UTF-8?B?VGVycmkgU23DrXRo?= <x@example.net>"),
                        "x@example.net");
    assert_string_equal(parse(" =?ISO-8859-1?Q?Andr=E9?= Pirard <ap@example.net>"),
                        "ap@example.net");
    assert_string_equal(parse(" \"Smith, Terri\" <terri@contoso.com>"),
                        "terri@contoso.com");
    assert_string_equal(parse(" J. Smith <js@example.net>"), "js@example.net");
    assert_string_equal(parse(" <bare@example.net>"), "bare@example.net");
    /* RFC 6532: UTF-8 in names and addresses. */
    assert_string_equal(parse(" J\xc3\xb6rg <j\xc3\xb6rg@example.net>"),
                        "j\xc3\xb6rg@example.net");
}

static void test_several_addresses_and_groups(void **state)
{
    (void)state;
    assert_string_equal(parse(" alice@example.net, \"T\" <terri@contoso.com>"),
                        "alice@example.net terri@contoso.com");
    assert_string_equal(parse(" Team: alice@example.net, Bob <bob@example.net>;"),
                        "alice@example.net bob@example.net");
    assert_string_equal(parse(" Team: alice@example.net;, carol@example.org"),
                        "alice@example.net carol@example.org");
    assert_string_equal(parse(" undisclosed-recipients:;"), "");
    assert_string_equal(parse(""), "");
    /* obs-mbox-list: empty elements. */
    assert_string_equal(parse(" , alice@example.net,, ,"), "alice@example.net");
    assert_string_equal(parse(" A: ,a@example.net,;"), "a@example.net");
}

static void test_comments_quotes_and_obsolete_forms(void **state)
{
    (void)state;
    assert_string_equal(parse(" alice(a (nested) comment)@(here)example.net"),
                        "alice@example.net");
    assert_string_equal(parse(" (first) alice @ example . net (last)"),
                        "alice@example.net");
    assert_string_equal(parse(" alice . smith@example.net"),
                        "alice.smith@example.net");
    assert_string_equal(parse(" \"alice\"@example.net"), "alice@example.net");
    assert_string_equal(parse(" \"alice\".\"smith\"@example.net"),
                        "alice.smith@example.net");
    assert_string_equal(parse(" \"a b\"@example.net"), "\"a b\"@example.net");
    assert_string_equal(parse(" \"a\\\"b\"@example.net"), "\"a\\\"b\"@example.net");
    /* A quoted "@" stays in the local part: the domain is the last one. */
    assert_string_equal(parse(" \"alice@example.net\"@contoso.com"),
                        "\"alice@example.net\"@contoso.com");
    assert_string_equal(parse(" <@relay.example,@other.example:alice@example.net>"),
                        "alice@example.net");
    assert_string_equal(parse(" a@[192.0.2.1]"), "a@[192.0.2.1]");
    assert_string_equal(parse(" \"(not a comment)\" <a@example.net>"),
                        "a@example.net");
    assert_string_equal(parse(" Terri\r\n Smith\r\n\t<terri@contoso.com>"),
                        "terri@contoso.com");
}

static void test_garbage_is_refused(void **state)
{
    static const char *const bad[] = {
        " Terri",                             /* a name, no address */
        " terri",
        " @example.net",
        " alice@",
        " alice@example.net.",
        " .alice@example.net",
        " alice..smith@example.net",
        " alice@example..net",
        " alice@example.net <terri@contoso.com>",  /* '@' in a bare name */
        " <alice@example.net",
        " alice@example.net>",
        " <>",
        " <alice>",
        " (unterminated comment alice@example.net",
        " \"unterminated alice@example.net",
        " alice@example.net (x",
        " a@b@c",
        " Team: alice@example.net",           /* group without ';' */
        " A: B: c@example.net;;",             /* group in a group */
        " : a@example.net;",                  /* group without a name */
        " =?UTF-8?Q?Smith,_J.?= <js@example.net>",  /* specials in a word */
        " =?UTF-8?Q?<terri@contoso.com>?= <alice@example.net>",
        " a@[1.2.3.4\\]]",
        " a@[1.2[3]",
        " a\x01@example.net",
        " alice@example.net; bob@example.net",
        " alice@example.net bob@example.net",
    };
    char nul[] = " alice\0@example.net";

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (strcmp(parse(bad[i]), "ERROR") != 0)
            fail_msg("accepted: %s", bad[i]);
    }
    assert_int_equal(hdraddr_parse(nul, sizeof(nul) - 1, NULL, NULL), -1);
}

static void test_address_length_cap(void **state)
{
    char s[600];
    int n;

    (void)state;
    /* 256 octets in all: the longest path RFC 5321 allows. */
    memset(s, 'a', sizeof(s));
    n = 256 - (int)strlen("@example.net");
    memcpy(s + n, "@example.net", 13);
    assert_int_equal(hdraddr_parse(s, strlen(s), NULL, NULL), 1);
    memset(s, 'a', sizeof(s));
    memcpy(s + n + 1, "@example.net", 13);
    assert_int_equal(hdraddr_parse(s, strlen(s), NULL, NULL), -1);
}

/* ---- the header block scanner ---------------------------------------------- */

static struct hdrscan scan;

static enum hdrscan_status scan_all(const char *data, size_t len, size_t chunk)
{
    enum hdrscan_status st = HDRSCAN_MORE;

    hdrscan_init(&scan);
    for (size_t i = 0; i < len; i += chunk)
        st = hdrscan_feed(&scan, data + i, len - i < chunk ? len - i : chunk);
    return st;
}

static void test_scanner_finds_the_fields_in_any_chunking(void **state)
{
    static const char msg[] =
        "Received: from x\r\n\tby y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        "FROM : \"Terri\"\r\n <terri@contoso.com>\r\n"
        "Subject: hello\r\n"
        "sender:alice@example.net\r\n"
        "\r\n"
        "From: in the body, not a header\r\n"
        ".\r\n";

    (void)state;
    for (size_t chunk = 1; chunk <= sizeof(msg); chunk++) {
        assert_int_equal(scan_all(msg, sizeof(msg) - 1, chunk), HDRSCAN_DONE);
        assert_true(scan.from.seen);
        assert_string_equal(scan.from.v, " \"Terri\" <terri@contoso.com>");
        assert_true(scan.sender.seen);
        assert_string_equal(scan.sender.v, "alice@example.net");
        assert_int_equal(scan.fields, 4);
    }
}

static void test_scanner_end_of_message_ends_the_header(void **state)
{
    static const char no_body[] = "From: a@example.net\r\n.\r\n";
    static const char stuffed[] = "..From: a@example.net\r\nFrom: b@example.net\r\n\r\n";
    static const char empty[] = ".\r\n";

    (void)state;
    assert_int_equal(scan_all(no_body, sizeof(no_body) - 1, 64), HDRSCAN_DONE);
    assert_string_equal(scan.from.v, " a@example.net");
    /* A stuffed dot is transparency: "..From:" is a field ".From". */
    assert_int_equal(scan_all(stuffed, sizeof(stuffed) - 1, 64), HDRSCAN_DONE);
    assert_string_equal(scan.from.v, " b@example.net");
    assert_int_equal(scan_all(empty, 3, 64), HDRSCAN_DONE);
    assert_false(scan.from.seen);
}

static void test_scanner_refuses_what_is_not_a_header(void **state)
{
    static const char *const bad[] = {
        " folded first line\r\n\r\n",
        "no colon here\r\n\r\n",
        "From a@example.net Mon Jan  1 00:00:00 2024\r\nFrom: a@example.net\r\n\r\n",
        "Bad\x01name: x\r\n\r\n",
        "\rX: y\r\n\r\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(scan_all(bad[i], strlen(bad[i]), 7), HDRSCAN_MALFORMED);
    assert_int_equal(scan_all("From: a@example.net\r\nfrom: b@example.net\r\n\r\n",
                              44, 5), HDRSCAN_DUPLICATE);
    assert_string_equal(scan.dup, "From");
}

static void test_scanner_caps(void **state)
{
    (void)state;
    /* A header block of exactly the cap passes; one octet more fails. */
    {
        char *blk = malloc(SMTP_HEADER_BLOCK_MAX + 2);
        size_t body = SMTP_HEADER_BLOCK_MAX - strlen("X: ") - 4;
        memcpy(blk, "X: ", 3);
        memset(blk + 3, 'x', body);
        memcpy(blk + 3 + body, "\r\n\r\n", 4);
        assert_int_equal(scan_all(blk, SMTP_HEADER_BLOCK_MAX, 4096), HDRSCAN_DONE);
        memcpy(blk, "X: x", 4);
        memset(blk + 3, 'x', body + 1);
        memcpy(blk + 3 + body + 1, "\r\n\r\n", 4);
        assert_int_equal(scan_all(blk, SMTP_HEADER_BLOCK_MAX + 1, 4096),
                         HDRSCAN_TOO_BIG);
        free(blk);
    }
    {
        char f[SMTP_HEADER_FIELD_MAX + 16];
        memcpy(f, "From:", 5);
        memset(f + 5, 'a', SMTP_HEADER_FIELD_MAX);
        memcpy(f + 5 + SMTP_HEADER_FIELD_MAX, "\r\n\r\n", 4);
        assert_int_equal(scan_all(f, SMTP_HEADER_FIELD_MAX + 9, 100), HDRSCAN_DONE);
        assert_int_equal(scan.from.len, SMTP_HEADER_FIELD_MAX);
        memcpy(f + 5 + SMTP_HEADER_FIELD_MAX, "a\r\n\r\n", 5);
        assert_int_equal(scan_all(f, SMTP_HEADER_FIELD_MAX + 10, 100),
                         HDRSCAN_FIELD_TOO_LONG);
    }
}

/* ---- the verdict ------------------------------------------------------------- */

static bool owned(const char *addr, void *arg)
{
    size_t n = strlen(addr);

    (void)arg;
    return strcasecmp(addr, "alice@example.net") == 0 ||
           (n > 12 && strcasecmp(addr + n - 12, "@example.org") == 0);
}

static enum hdrfrom_verdict judge(const char *header, struct hdrfrom_result *r)
{
    scan_all(header, strlen(header), 13);
    hdrfrom_judge(&scan, owned, NULL, r);
    return r->verdict;
}

static void test_verdicts(void **state)
{
    struct hdrfrom_result r;

    (void)state;
    assert_int_equal(judge("From: Alice <ALICE@example.net>\r\n\r\n", &r), HDRFROM_OK);
    assert_int_equal(judge("From: Team: alice@example.net, x@example.org;\r\n\r\n", &r),
                     HDRFROM_OK);
    assert_int_equal(judge("From: \"Terri\" <terri@contoso.com>\r\n\r\n", &r),
                     HDRFROM_FOREIGN);
    assert_string_equal(r.field, "From");
    assert_string_equal(r.addr, "terri@contoso.com");
    assert_int_equal(judge("From: alice@example.net, terri@contoso.com\r\n"
                           "Sender: alice@example.net\r\n\r\n", &r), HDRFROM_FOREIGN);
    assert_string_equal(r.addr, "terri@contoso.com");
    assert_int_equal(judge("From: alice@example.net\r\nSender: terri@contoso.com\r\n\r\n",
                           &r), HDRFROM_FOREIGN);
    assert_string_equal(r.field, "Sender");
    assert_int_equal(judge("Subject: none\r\n\r\n", &r), HDRFROM_NO_FROM);
    assert_int_equal(judge("From: undisclosed:;\r\n\r\n", &r), HDRFROM_NO_FROM);
    /* Unparsable wins over foreign: the field is refused as broken. */
    assert_int_equal(judge("From: terri@contoso.com, (broken\r\n\r\n", &r),
                     HDRFROM_UNPARSABLE);
    assert_string_equal(r.field, "From");
    assert_int_equal(judge("From: alice@example.net\r\nSender:\r\n\r\n", &r),
                     HDRFROM_UNPARSABLE);
    assert_string_equal(r.field, "Sender");
    assert_int_equal(judge("From: a@example.org\r\nFrom: terri@contoso.com\r\n\r\n", &r),
                     HDRFROM_DUPLICATE);
    assert_int_equal(judge("junk\r\n\r\n", &r), HDRFROM_MALFORMED);
    assert_string_equal(hdrfrom_verdict_name(HDRFROM_FOREIGN), "foreign");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_forms_mail_clients_write),
        cmocka_unit_test(test_several_addresses_and_groups),
        cmocka_unit_test(test_comments_quotes_and_obsolete_forms),
        cmocka_unit_test(test_garbage_is_refused),
        cmocka_unit_test(test_address_length_cap),
        cmocka_unit_test(test_scanner_finds_the_fields_in_any_chunking),
        cmocka_unit_test(test_scanner_end_of_message_ends_the_header),
        cmocka_unit_test(test_scanner_refuses_what_is_not_a_header),
        cmocka_unit_test(test_scanner_caps),
        cmocka_unit_test(test_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
