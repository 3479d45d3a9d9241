/*
 * smtpgate's pure parsers: command lines, MAIL parameters, MTA replies and
 * EHLO keywords, xtext, the DATA scanner (end of data and SMTP smuggling,
 * fed in every possible split), and SASL decoding.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smtpgate/datascan.h"
#include "authbridge/sasl.h"
#include "smtpgate/smtp_parse.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- command lines ------------------------------------------------------- */

static void test_cmd_split(void **state)
{
    struct smtp_cmd c;

    (void)state;
    assert_int_equal(smtp_cmd_split(S("ehlo client.example"), &c), 0);
    assert_string_equal(c.verb, "EHLO");
    assert_int_equal(c.argslen, 14);
    assert_memory_equal(c.args, "client.example", 14);
    assert_int_equal(smtp_cmd_split(S("QUIT"), &c), 0);
    assert_string_equal(c.verb, "QUIT");
    assert_int_equal(c.argslen, 0);
    assert_int_equal(smtp_cmd_split(S("RSET   "), &c), 0);
    assert_int_equal(c.argslen, 0);
    assert_int_equal(smtp_cmd_split(S("STARTTLS"), &c), 0);
    assert_string_equal(c.verb, "STARTTLS");
    /* Not a verb: empty, digits, a tab, 17 letters. */
    assert_int_equal(smtp_cmd_split(S(""), &c), -1);
    assert_int_equal(smtp_cmd_split(S(" MAIL"), &c), -1);
    assert_int_equal(smtp_cmd_split(S("MA1L FROM:<>"), &c), -1);
    assert_int_equal(smtp_cmd_split(S("MAIL\tFROM:<>"), &c), -1);
    assert_int_equal(smtp_cmd_split(S("ABCDEFGHIJKLMNOPQ"), &c), -1);
    assert_int_equal(smtp_cmd_split(S("ABCDEFGHIJKLMNOP"), &c), 0);
}

static void test_helo_names(void **state)
{
    char long_name[300];

    (void)state;
    assert_true(smtp_helo_valid(S("mail.example.org")));
    assert_true(smtp_helo_valid(S("[192.0.2.1]")));
    assert_true(smtp_helo_valid(S("WORKSTATION-7")));
    assert_false(smtp_helo_valid(S("")));
    assert_false(smtp_helo_valid(S("my pc")));
    assert_false(smtp_helo_valid(S("caf\xc3\xa9")));
    memset(long_name, 'a', sizeof(long_name));
    assert_true(smtp_helo_valid(long_name, 255));
    assert_false(smtp_helo_valid(long_name, 256));
}

static const char *mail(const char *args, struct smtp_mail_params *mp)
{
    struct smtp_path p;

    return smtp_parse_mail(args, strlen(args), &p, mp);
}

static void test_mail_parameters(void **state)
{
    struct smtp_mail_params mp;

    (void)state;
    assert_null(mail("FROM:<a@b.example> SIZE=12345 BODY=8BITMIME", &mp));
    assert_true(mp.has_size);
    assert_int_equal(mp.size, 12345);
    assert_int_equal(mp.body, BODY_8BITMIME);
    assert_null(mail("FROM:<a@b.example> body=7bit", &mp));
    assert_int_equal(mp.body, BODY_7BIT);
    assert_false(mp.has_size);
    assert_null(mail("FROM:<a@b.example> AUTH=<>", &mp));
    assert_true(mp.has_auth);
    assert_null(mail("FROM: <a@b.example>  SIZE=1", &mp));
    /* Refused, each with the reply it deserves. */
    assert_string_equal(mail("FROM:<a@b.example> SIZE=1 SIZE=2", &mp),
                        "501 5.5.4 Duplicate SIZE parameter");
    assert_memory_equal(mail("FROM:<a@b.example> SIZE=-1", &mp), "501", 3);
    assert_memory_equal(mail("FROM:<a@b.example> SIZE=", &mp), "501", 3);
    assert_memory_equal(mail("FROM:<a@b.example> SIZE=99999999999999999999",
                             &mp), "501", 3);
    assert_memory_equal(mail("FROM:<a@b.example> BODY=BINARYMIME", &mp),
                        "501", 3);
    assert_memory_equal(mail("FROM:<a@b.example> SMTPUTF8", &mp), "555", 3);
    assert_memory_equal(mail("FROM:<a@b.example> RET=HDRS", &mp), "555", 3);
    assert_memory_equal(mail("FROM:<a@b.example> =x", &mp), "501", 3);
    assert_memory_equal(mail("FROM:<a@b.example>SIZE=1", &mp), "501", 3);
    assert_memory_equal(mail("FROM:<a@b.example> SIZE=1=2", &mp), "501", 3);
    assert_memory_equal(mail("FROM <a@b.example>", &mp), "501", 3);
    assert_memory_equal(mail("TO:<a@b.example>", &mp), "501", 3);
}

/* ---- replies from the MTA ------------------------------------------------ */

static void test_reply_lines(void **state)
{
    struct smtp_reply_line r;

    (void)state;
    assert_int_equal(smtp_reply_line_parse(S("250-mx.example"), &r), 0);
    assert_int_equal(r.code, 250);
    assert_false(r.last);
    assert_int_equal(r.textlen, 10);
    assert_int_equal(smtp_reply_line_parse(S("550 5.1.1 no such user"), &r), 0);
    assert_true(r.last);
    assert_int_equal(smtp_reply_line_parse(S("354"), &r), 0);
    assert_true(r.last);
    assert_int_equal(r.textlen, 0);
    assert_int_equal(smtp_reply_line_parse(S("25"), &r), -1);
    assert_int_equal(smtp_reply_line_parse(S("150 x"), &r), -1);
    assert_int_equal(smtp_reply_line_parse(S("600 x"), &r), -1);
    assert_int_equal(smtp_reply_line_parse(S("2500 x"), &r), -1);
    assert_int_equal(smtp_reply_line_parse(S("250_x"), &r), -1);
    assert_int_equal(smtp_reply_line_parse(S("abc x"), &r), -1);
}

static void test_enhanced_codes(void **state)
{
    (void)state;
    assert_int_equal(smtp_enhanced_len(S("2.1.5 Ok"), 250), 6);
    assert_int_equal(smtp_enhanced_len(S("5.7.1"), 550), 5);
    assert_int_equal(smtp_enhanced_len(S("4.4.123 x"), 451), 8);
    assert_int_equal(smtp_enhanced_len(S("5.1.1 x"), 250), 0);  /* class */
    assert_int_equal(smtp_enhanced_len(S("2.1234.5 x"), 250), 0);
    assert_int_equal(smtp_enhanced_len(S("Ok"), 250), 0);
    assert_int_equal(smtp_enhanced_len(S("2.0.0x"), 250), 0);
    assert_int_equal(smtp_enhanced_len(S("2..0 x"), 250), 0);
}

static void test_ehlo_keywords(void **state)
{
    unsigned ext = 0, xc = 0, xf = 0;

    (void)state;
    smtp_ehlo_line(S("PIPELINING"), &ext, &xc, &xf);
    smtp_ehlo_line(S("SIZE 10240000"), &ext, &xc, &xf);
    smtp_ehlo_line(S("8BITMIME"), &ext, &xc, &xf);
    smtp_ehlo_line(S("xclient NAME ADDR PROTO HELO PORT LOGIN DESTADDR"), &ext,
                   &xc, &xf);
    smtp_ehlo_line(S("XFORWARD NAME ADDR PROTO HELO SOURCE"), &ext, &xc, &xf);
    smtp_ehlo_line(S("ETRN"), &ext, &xc, &xf);
    smtp_ehlo_line(S("PIPELININGX"), &ext, &xc, &xf);
    assert_int_equal(ext, EXT_PIPELINING | EXT_SIZE | EXT_8BITMIME |
                     EXT_XCLIENT | EXT_XFORWARD);
    assert_int_equal(xc, XATTR_NAME | XATTR_ADDR | XATTR_PROTO | XATTR_HELO |
                     XATTR_PORT | XATTR_LOGIN);
    assert_int_equal(xf, XATTR_NAME | XATTR_ADDR | XATTR_PROTO | XATTR_HELO);
}

static void test_xtext(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(smtp_xtext("mail.example", out, sizeof(out)), 12);
    assert_string_equal(out, "mail.example");
    smtp_xtext("a+b=c d\x01", out, sizeof(out));
    assert_string_equal(out, "a+2Bb+3Dc+20d+01");
    assert_int_equal(smtp_xtext("abcd", out, 4), (size_t)-1);
    assert_int_equal(smtp_xtext("abc", out, 4), 3);
}

/* ---- the DATA scanner ------------------------------------------------------ */

struct scan_result {
    size_t used, clean;
    bool done, bad;
    uint64_t size;
};

/* Feed in pieces cut at the given positions (sorted, < len). */
static struct scan_result scan_split(const char *in, size_t len,
                                     const size_t *cuts, size_t ncuts)
{
    struct datascan s;
    struct scan_result r = { 0 };
    size_t from = 0;

    datascan_init(&s);
    for (size_t i = 0; i <= ncuts && !s.done; i++) {
        size_t to = i < ncuts ? cuts[i] : len, clean;
        size_t used = datascan_feed(&s, in + from, to - from, &clean);
        r.used += used;
        r.clean += clean;
        if (used < to - from)
            assert_true(s.done);
        from = to;
    }
    r.done = s.done;
    r.bad = s.bad;
    r.size = datascan_size(&s);
    return r;
}

/*
 * The same answer whatever the chunking: whole, every two-way split,
 * and byte by byte. (The clean count may include a bare CR that ended a
 * chunk, by design; so it is compared as "at most".)
 */
static struct scan_result scan_all_ways(const char *in, size_t len)
{
    struct scan_result whole = scan_split(in, len, NULL, 0), r;
    size_t cuts[1024];

    for (size_t c = 1; c < len; c++) {
        cuts[0] = c;
        r = scan_split(in, len, cuts, 1);
        assert_int_equal(r.used, whole.used);
        assert_int_equal(r.done, whole.done);
        assert_int_equal(r.bad, whole.bad);
        assert_true(r.clean <= whole.clean + 1 && r.clean + 1 >= whole.clean);
    }
    assert_true(len <= 1024);
    for (size_t c = 1; c < len; c++)
        cuts[c - 1] = c;
    r = scan_split(in, len, cuts, len > 0 ? len - 1 : 0);
    assert_int_equal(r.used, whole.used);
    assert_int_equal(r.done, whole.done);
    assert_int_equal(r.bad, whole.bad);
    return whole;
}

static void test_data_end_is_crlf_dot_crlf(void **state)
{
    struct scan_result r;

    (void)state;
    r = scan_all_ways(S("Subject: x\r\n\r\nhello\r\n.\r\n"));
    assert_true(r.done);
    assert_false(r.bad);
    assert_int_equal(r.used, 24);
    assert_int_equal(r.clean, 24);
    assert_int_equal(r.size, 21);
    /* An empty message: the dot right after DATA's CRLF. */
    r = scan_all_ways(S(".\r\n"));
    assert_true(r.done);
    assert_int_equal(r.size, 0);
    /* Dot-stuffed lines are message text, forwarded as they are. */
    r = scan_all_ways(S("a\r\n..\r\n.x\r\n.\r\n"));
    assert_true(r.done);
    assert_false(r.bad);
    assert_int_equal(r.size, 11);
    /* What follows the end is the next command, not the message. */
    r = scan_all_ways(S("a\r\n.\r\nMAIL FROM:<x@y.example>\r\n"));
    assert_true(r.done);
    assert_int_equal(r.used, 6);
    /* NUL and 8-bit octets are text. */
    r = scan_all_ways(S("a\0b\xff\r\n.\r\n"));
    assert_true(r.done);
    assert_false(r.bad);
    /* Not an end: incomplete. */
    r = scan_all_ways(S("a\r\n.\r"));
    assert_false(r.done);
    assert_int_equal(r.used, 5);
    r = scan_all_ways(S("a\r\n. \r\n"));
    assert_false(r.done);
}

/* The 2023 SMTP smuggling sequences: never an end, always "bad". */
static void test_smuggling_sequences(void **state)
{
    static const struct { const char *in; size_t len; size_t clean; } cases[] = {
        { S("a\n.\nMAIL FROM:<x@y.example>\r\n"), 1 },
        { S("a\r.\rMAIL FROM:<x@y.example>\r\n"), 2 },
        { S("a\r\n.\nMAIL FROM:<x@y.example>\r\n"), 4 },
        { S("a\n.\r\nMAIL FROM:<x@y.example>\r\n"), 1 },
        { S("a\r\n.\rMAIL FROM:<x@y.example>\r\n"), 5 },
        { S("a\r\r\n.\r\n"), 2 },
        { S("\n.\r\n"), 0 },
        { S("a\rb\r\n"), 2 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct scan_result r = scan_all_ways(cases[i].in, cases[i].len);
        if (!r.bad)
            fail_msg("case %zu not flagged", i);
        if (r.clean != cases[i].clean)
            fail_msg("case %zu: clean %zu, wanted %zu", i, r.clean,
                     cases[i].clean);
        /* Only a real CRLF.CRLF may end it: case 5 has one. */
        assert_int_equal(r.done, i == 5);
    }
}

/* After a bare line end, only the strict end ends the message. */
static void test_smuggled_message_runs_to_the_real_end(void **state)
{
    struct scan_result r;

    (void)state;
    r = scan_all_ways(S("x\n.\nMAIL FROM:<e@vil.example>\r\nRCPT TO:<v@x.example>"
                        "\r\nDATA\r\nspam\r\n.\r\nQUIT\r\n"));
    assert_true(r.bad);
    assert_true(r.done);
    assert_int_equal(r.clean, 1);
    assert_int_equal(r.used, 69);    /* QUIT is the next command */
}

/* ---- SASL ----------------------------------------------------------------- */

static void test_base64(void **state)
{
    unsigned char out[64];

    (void)state;
    assert_int_equal(sasl_base64_decode(S("AGFsaWNlAHNlY3JldA=="), out,
                                        sizeof(out)), 13);
    assert_memory_equal(out, "\0alice\0secret", 13);
    assert_int_equal(sasl_base64_decode(S("YWJj"), out, sizeof(out)), 3);
    assert_int_equal(sasl_base64_decode(S("YWI="), out, sizeof(out)), 2);
    assert_int_equal(sasl_base64_decode(S("="), out, sizeof(out)), 0);
    assert_int_equal(sasl_base64_decode(S("YWJ"), out, sizeof(out)), -1);
    assert_int_equal(sasl_base64_decode(S("YW=j"), out, sizeof(out)), -1);
    assert_int_equal(sasl_base64_decode(S("YWJj YWJj"), out, sizeof(out)), -1);
    assert_int_equal(sasl_base64_decode(S("YWJ*"), out, sizeof(out)), -1);
    assert_int_equal(sasl_base64_decode(S("YWF="), out, sizeof(out)), -1);
    assert_int_equal(sasl_base64_decode(S("YWJjZGVm"), out, 5), -1);
}

static void test_plain_split(void **state)
{
    unsigned char m1[] = "\0alice\0secret";
    unsigned char m2[] = "alice\0alice\0pw";
    unsigned char m3[] = "bob\0alice\0pw";
    unsigned char m4[] = "\0alice";
    unsigned char m5[] = "\0\0pw";
    unsigned char m6[] = "\0al ice\0pw";
    const char *user, *pass;
    size_t passlen;

    (void)state;
    assert_int_equal(sasl_plain_split(m1, 13, &user, &pass, &passlen), 0);
    assert_string_equal(user, "alice");
    assert_int_equal(passlen, 6);
    assert_memory_equal(pass, "secret", 6);
    assert_int_equal(sasl_plain_split(m2, 14, &user, &pass, &passlen), 0);
    /* Acting for another user, missing parts, bad names: refused. */
    assert_int_equal(sasl_plain_split(m3, 12, &user, &pass, &passlen), -1);
    assert_int_equal(sasl_plain_split(m4, 6, &user, &pass, &passlen), -1);
    assert_int_equal(sasl_plain_split(m5, 4, &user, &pass, &passlen), -1);
    assert_int_equal(sasl_plain_split(m6, 10, &user, &pass, &passlen), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_split),
        cmocka_unit_test(test_helo_names),
        cmocka_unit_test(test_mail_parameters),
        cmocka_unit_test(test_reply_lines),
        cmocka_unit_test(test_enhanced_codes),
        cmocka_unit_test(test_ehlo_keywords),
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_data_end_is_crlf_dot_crlf),
        cmocka_unit_test(test_smuggling_sequences),
        cmocka_unit_test(test_smuggled_message_runs_to_the_real_end),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_plain_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
