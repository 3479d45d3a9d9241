/*
 * The request framing shared by the policy service and WHOSON (a block of
 * lines ended by an empty line), and both protocols' request parsers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtpgate/policy.h"
#include "smtpgate/reqconn.h"
#include "smtpgate/whoson.h"

static const struct reqconn_limits lim = {
    .line_max = 20, .lines_max = 3, .request_max = 64, .idle_s = 1,
};

static int parse(const char *text, char **lines, size_t *n, size_t *used,
                 char *buf)
{
    size_t len = strlen(text);

    memcpy(buf, text, len);
    return reqblock_parse(buf, len, &lim, lines, n, used);
}

static void test_request_blocks(void **state)
{
    char buf[256], *lines[8];
    size_t n, used;

    (void)state;
    assert_int_equal(parse("a=1\nb=2\n\n", lines, &n, &used, buf), 1);
    assert_int_equal(n, 2);
    assert_int_equal(used, 9);
    assert_string_equal(lines[0], "a=1");
    assert_string_equal(lines[1], "b=2");
    /* CRLF too, and what follows is the next request. */
    assert_int_equal(parse("a=1\r\n\r\nb=2\n\n", lines, &n, &used, buf), 1);
    assert_int_equal(n, 1);
    assert_int_equal(used, 7);
    assert_string_equal(lines[0], "a=1");
    /* An empty request is a request of no lines. */
    assert_int_equal(parse("\n", lines, &n, &used, buf), 1);
    assert_int_equal(n, 0);
    /* Incomplete: untouched, so it can be parsed again. */
    assert_int_equal(parse("a=1\nb=2\n", lines, &n, &used, buf), 0);
    assert_memory_equal(buf, "a=1\nb=2\n", 8);
    assert_int_equal(parse("a=1\nb=", lines, &n, &used, buf), 0);
    /* Limits: a line of 20 is fine, 21 is not (even before its end). */
    assert_int_equal(parse("aaaaaaaaaaaaaaaaaaaa\n\n", lines, &n, &used, buf), 1);
    assert_int_equal(parse("aaaaaaaaaaaaaaaaaaaaa\n\n", lines, &n, &used, buf),
                     -1);
    assert_int_equal(parse("aaaaaaaaaaaaaaaaaaaaaaaaa", lines, &n, &used, buf),
                     -1);
    /* Three lines are fine, four are not. */
    assert_int_equal(parse("a\nb\nc\n\n", lines, &n, &used, buf), 1);
    assert_int_equal(parse("a\nb\nc\nd\n\n", lines, &n, &used, buf), -1);
    /* A NUL byte is refused. */
    assert_int_equal(reqblock_parse(memcpy(buf, "a\0b\n\n", 5), 5, &lim, lines,
                                    &n, &used), -1);
}

static void test_policy_request(void **state)
{
    char l0[] = "request=smtpd_access_policy";
    char l1[] = "protocol_state=RCPT";
    char l2[] = "client_address=192.0.2.7";
    char l3[] = "sender=";
    char l4[] = "recipient=bob@remote.example";
    char l5[] = "ccert_subject=a=b";
    char l6[] = "helo_name=client.example";
    char *lines[] = { l0, l1, l2, l3, l4, l5, l6 };
    char bad1[] = "no equals sign", bad2[] = "=value", bad3[] = "Client=x";
    char *b1[] = { bad1 }, *b2[] = { bad2 }, *b3[] = { bad3 };
    struct policy_req r;

    (void)state;
    assert_int_equal(policy_parse(lines, 7, &r), 0);
    assert_string_equal(r.request, "smtpd_access_policy");
    assert_string_equal(r.protocol_state, "RCPT");
    assert_string_equal(r.client_address, "192.0.2.7");
    assert_string_equal(r.sender, "");
    assert_string_equal(r.recipient, "bob@remote.example");
    assert_string_equal(r.helo_name, "client.example");
    assert_int_equal(r.nattrs, 7);
    assert_int_equal(policy_parse(b1, 1, &r), -1);
    assert_int_equal(policy_parse(b2, 1, &r), -1);
    assert_int_equal(policy_parse(b3, 1, &r), -1);
    assert_int_equal(policy_parse(lines, 1, &r), 0);
    assert_null(r.client_address);
}

static const char *who(const char *text, struct whoson_req *r)
{
    static char buf[128];

    snprintf(buf, sizeof(buf), "%s", text);
    return whoson_parse(buf, r);
}

static void test_whoson_requests(void **state)
{
    struct whoson_req r;
    char text[64];

    (void)state;
    assert_null(who("QUERY 192.0.2.7", &r));
    assert_int_equal(r.verb, WHOSON_QUERY);
    addr_format(&r.addr, text);
    assert_string_equal(text, "192.0.2.7");
    assert_null(who("query ::ffff:192.0.2.7", &r));
    addr_format(&r.addr, text);
    assert_string_equal(text, "192.0.2.7");
    assert_null(who("LOGIN 2001:db8::1 alice", &r));
    assert_int_equal(r.verb, WHOSON_LOGIN);
    assert_string_equal(r.user, "alice");
    assert_null(who("LOGOUT 192.0.2.7", &r));
    assert_int_equal(r.verb, WHOSON_LOGOUT);
    /* Garbage of every kind gets the '*' text. */
    assert_non_null(who("", &r));
    assert_non_null(who("QUERY", &r));
    assert_non_null(who("QUERY 192.0.2.7 extra", &r));
    assert_non_null(who("QUERY  192.0.2.7", &r));
    assert_non_null(who("QUERY 192.0.2.300", &r));
    assert_non_null(who("QUERY example.org", &r));
    assert_non_null(who("LOGIN 192.0.2.7", &r));
    assert_non_null(who("LOGIN 192.0.2.7 a:b", &r));
    assert_non_null(who("LOGOUT 192.0.2.7 alice", &r));
    assert_non_null(who("FLUSH 192.0.2.7", &r));
    assert_non_null(who(" QUERY 192.0.2.7", &r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_blocks),
        cmocka_unit_test(test_policy_request),
        cmocka_unit_test(test_whoson_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
