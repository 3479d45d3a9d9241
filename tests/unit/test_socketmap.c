/*
 * The socketmap door's pure parts: netstring framing (both sides of each
 * limit), the "<map> <key>" split, keys as addresses, answer format.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtpgate/reqconn.h"
#include "smtpgate/socketmap.h"

static const struct reqconn_limits lim = {
    .line_max = 16, .lines_max = 1, .request_max = 22, .idle_s = 1,
};

static char buf[256];
static char *parts[2];
static size_t n, used;

static int frame_len(const char *text, size_t len)
{
    memcpy(buf, text, len);
    n = used = 0;
    return socketmap_frame(buf, len, &lim, parts, &n, &used);
}

static int frame(const char *text)
{
    return frame_len(text, strlen(text));
}

static void test_one_netstring(void **state)
{
    (void)state;
    assert_int_equal(frame("15:relay 192.0.2.7,"), 1);
    assert_int_equal(n, 1);
    assert_int_equal(used, 19);
    assert_string_equal(parts[0], "relay 192.0.2.7");
    /* What follows is the next request. */
    assert_int_equal(frame("7:relay x,7:relay y,"), 1);
    assert_int_equal(used, 10);
    assert_string_equal(parts[0], "relay x");
    /* An empty payload frames (the parser refuses it). */
    assert_int_equal(frame("0:,"), 1);
    assert_string_equal(parts[0], "");
}

static void test_incomplete_is_untouched(void **state)
{
    (void)state;
    assert_int_equal(frame(""), 0);
    assert_int_equal(frame("1"), 0);
    assert_int_equal(frame("15"), 0);
    assert_int_equal(frame("15:"), 0);
    assert_int_equal(frame("15:relay 192.0.2."), 0);
    assert_int_equal(frame("15:relay 192.0.2.7"), 0);
    assert_memory_equal(buf, "15:relay 192.0.2.7", 18);
}

static void test_broken_netstrings(void **state)
{
    (void)state;
    assert_int_equal(frame(":x,"), -1);            /* no length */
    assert_int_equal(frame("01:x,"), -1);          /* leading zero */
    assert_int_equal(frame("00:,"), -1);
    assert_int_equal(frame("-1:x,"), -1);
    assert_int_equal(frame("1x:x,"), -1);
    assert_int_equal(frame(" 1:x,"), -1);
    assert_int_equal(frame("relay x\n"), -1);      /* a plain line */
    assert_int_equal(frame("1:xy"), -1);           /* no comma */
    assert_int_equal(frame("3:x,yz"), -1);         /* length too short */
    assert_int_equal(frame_len("3:a\0b,", 6), -1); /* NUL in the payload */
}

static void test_payload_limit_both_sides(void **state)
{
    (void)state;
    /* 16 octets of payload pass, 17 do not... */
    assert_int_equal(frame("16:relay 0123456789,"), 1);
    assert_string_equal(parts[0], "relay 0123456789");
    assert_int_equal(frame("17:relay 01234567890,"), -1);
    /* ...and a length over the cap is refused before its payload, */
    assert_int_equal(frame("17:"), -1);
    assert_int_equal(frame("17"), -1);
    /* however many digits it has: counting never overflows. */
    assert_int_equal(frame("99999999999999999999999999999"), -1);
}

static void expect_perm(const char *payload, const char *reason)
{
    char p[64];
    struct socketmap_req r;
    const char *err;

    snprintf(p, sizeof(p), "%s", payload);
    err = socketmap_parse(p, &r);
    assert_non_null(err);
    assert_non_null(strstr(err, reason));
}

static void test_map_and_key(void **state)
{
    char p[64];
    struct socketmap_req r;

    (void)state;
    strcpy(p, "relay 192.0.2.7");
    assert_null(socketmap_parse(p, &r));
    assert_int_equal(r.map, SOCKETMAP_RELAY);
    assert_string_equal(r.name, "relay");
    assert_string_equal(r.key, "192.0.2.7");
    strcpy(p, "drac IPv6:2001:db8::1");
    assert_null(socketmap_parse(p, &r));
    assert_int_equal(r.map, SOCKETMAP_RELAY);
    assert_string_equal(r.key, "IPv6:2001:db8::1");
    strcpy(p, "user unknown");
    assert_null(socketmap_parse(p, &r));
    assert_int_equal(r.map, SOCKETMAP_USER);

    expect_perm("", "request is not");
    expect_perm("relay", "request is not");
    expect_perm(" 192.0.2.7", "request is not");
    expect_perm("relay ", "key is empty");
    expect_perm("relay a b", "spaces");
    expect_perm("relay a\tb", "control");
    expect_perm("relay a\r", "control");
    expect_perm("relay \x7f", "control");
    expect_perm("virtual x", "no such map");
    expect_perm("Relay x", "no such map");
}

static void expect_addr(const char *key, const char *canonical)
{
    struct ab_addr a;
    char text[ADDR_TEXT_MAX];

    if (canonical == NULL) {
        assert_int_equal(socketmap_key_addr(key, &a), -1);
        return;
    }
    assert_int_equal(socketmap_key_addr(key, &a), 0);
    addr_format(&a, text);
    assert_string_equal(text, canonical);
}

static void test_keys_as_addresses(void **state)
{
    (void)state;
    expect_addr("192.0.2.7", "192.0.2.7");
    expect_addr("2001:DB8:0:0:0:0:0:1", "2001:db8::1");
    expect_addr("IPv6:2001:db8::1", "2001:db8::1");
    expect_addr("ipv6:2001:db8::1", "2001:db8::1");
    expect_addr("IPv6:0:0:0:0:0:0:0:1", "::1");
    expect_addr("::ffff:192.0.2.7", "192.0.2.7");
    expect_addr("IPv6:::ffff:192.0.2.7", "192.0.2.7");
    expect_addr("[2001:db8::1]", "2001:db8::1");
    /* Not addresses: what check_client_access also asks about. */
    expect_addr("unknown", NULL);
    expect_addr("127.0.0", NULL);
    expect_addr("127", NULL);
    expect_addr("mail.example.com", NULL);
    expect_addr("2001:db8:0:0:0:0:0", NULL);
    expect_addr("192.0.2.07", NULL);
    expect_addr("IPv6:", NULL);
    expect_addr("IPv6", NULL);
    expect_addr("IPv6:IPv6:::1", NULL);
}

static void test_answers(void **state)
{
    char out[32];

    (void)state;
    assert_int_equal(socketmap_format(out, sizeof(out), "OK", "OK"), 8);
    assert_string_equal(out, "5:OK OK,");
    assert_int_equal(socketmap_format(out, sizeof(out), "NOTFOUND", ""), 12);
    assert_string_equal(out, "9:NOTFOUND ,");
    assert_int_equal(socketmap_format(out, sizeof(out), "OK", "alice"), 11);
    assert_string_equal(out, "8:OK alice,");
    /* Does not fit: 0, never a cut netstring. */
    assert_int_equal(socketmap_format(out, 11, "OK", "alice"), 0);
    /* Every answer frames as what it says. */
    socketmap_format(out, sizeof(out), "TEMP", "later");
    assert_int_equal(frame(out), 1);
    assert_string_equal(parts[0], "TEMP later");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_netstring),
        cmocka_unit_test(test_incomplete_is_untouched),
        cmocka_unit_test(test_broken_netstrings),
        cmocka_unit_test(test_payload_limit_both_sides),
        cmocka_unit_test(test_map_and_key),
        cmocka_unit_test(test_keys_as_addresses),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
