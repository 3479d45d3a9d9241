/*
 * Addresses: parsing, the canonical text that every grant key is built
 * from (a public interface), IPv6 prefix grants and CIDR matching.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "authbridge/addr.h"

/* Parse text and return its canonical form (or fail the test). */
static const char *canon(const char *text)
{
    static char out[ADDR_TEXT_MAX];
    struct ab_addr a;

    if (addr_parse(text, &a) != 0)
        fail_msg("addr_parse refused '%s'", text);
    addr_format(&a, out);
    return out;
}

static int family_of(const char *text)
{
    struct ab_addr a;

    assert_int_equal(addr_parse(text, &a), 0);
    return a.family;
}

static const char *grant_text(const char *text, unsigned prefix)
{
    static char out[ADDR_TEXT_MAX];
    struct ab_addr a;

    assert_int_equal(addr_parse(text, &a), 0);
    addr_grant_text(&a, prefix, out);
    return out;
}

/* ---- parsing and canonical text ---------------------------------------- */

static void ipv4_dotted_quad_is_kept(void **state)
{
    (void)state;
    assert_string_equal(canon("203.0.113.7"), "203.0.113.7");
    assert_string_equal(canon("0.0.0.0"), "0.0.0.0");
    assert_string_equal(canon("255.255.255.255"), "255.255.255.255");
    assert_int_equal(family_of("203.0.113.7"), AF_INET);
}

static void ipv4_parse_fills_network_order_bytes(void **state)
{
    struct ab_addr a;

    (void)state;
    assert_int_equal(addr_parse("10.20.30.40", &a), 0);
    assert_int_equal(a.b[0], 10);
    assert_int_equal(a.b[1], 20);
    assert_int_equal(a.b[2], 30);
    assert_int_equal(a.b[3], 40);
}

static void ipv6_compressed_form_is_kept(void **state)
{
    (void)state;
    assert_string_equal(canon("2001:db8::1"), "2001:db8::1");
    assert_string_equal(canon("::1"), "::1");
    assert_string_equal(canon("::"), "::");
    assert_int_equal(family_of("2001:db8::1"), AF_INET6);
}

static void ipv6_uppercase_becomes_lowercase(void **state)
{
    (void)state;
    assert_string_equal(canon("2001:DB8::ABCD"), "2001:db8::abcd");
    assert_string_equal(canon("FE80::1"), "fe80::1");
}

static void ipv6_leading_zeros_in_groups_are_dropped(void **state)
{
    (void)state;
    assert_string_equal(canon("2001:0db8:0000:0000:0000:0000:0000:0001"),
                        "2001:db8::1");
    assert_string_equal(canon("2001:db8:00a:0::01"), "2001:db8:a::1");
}

static void ipv6_full_form_becomes_rfc5952(void **state)
{
    (void)state;
    assert_string_equal(canon("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
    assert_string_equal(canon("2001:DB8:0:0::1"), "2001:db8::1");
    /* RFC 5952 4.2.2: a single zero group is not shortened with "::". */
    assert_string_equal(canon("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
    /* RFC 5952 4.2.3: the longest run of zeros is the one compressed. */
    assert_string_equal(canon("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
}

static void ipv4_mapped_ipv6_folds_to_ipv4(void **state)
{
    (void)state;
    assert_string_equal(canon("::ffff:1.2.3.4"), "1.2.3.4");
    assert_string_equal(canon("::FFFF:203.0.113.7"), "203.0.113.7");
    assert_string_equal(canon("0:0:0:0:0:ffff:0102:0304"), "1.2.3.4");
    assert_string_equal(canon("0000:0000:0000:0000:0000:ffff:1.2.3.4"),
                        "1.2.3.4");
    assert_int_equal(family_of("::ffff:1.2.3.4"), AF_INET);
}

static void ipv4_compatible_and_other_embedded_forms_stay_ipv6(void **state)
{
    (void)state;
    /* Only ::ffff:0:0/96 is the same host as an IPv4 address. */
    assert_int_equal(family_of("::1.2.3.4"), AF_INET6);
    assert_int_equal(family_of("64:ff9b::1.2.3.4"), AF_INET6);
    assert_int_equal(family_of("::fffe:1.2.3.4"), AF_INET6);
}

static void brackets_around_ipv6_are_accepted(void **state)
{
    (void)state;
    assert_string_equal(canon("[2001:db8::1]"), "2001:db8::1");
    assert_string_equal(canon("[::ffff:10.0.0.1]"), "10.0.0.1");
    assert_string_equal(canon("[::1]"), "::1");
}

static void garbage_is_refused(void **state)
{
    static const char *const bad[] = {
        "", " ", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\n", " ::1", "::1 ",
        "fe80::1%eth0", "fe80::1%1", "[fe80::1%eth0]",
        "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.02.3.4", "1.2.3.00",
        "256.1.1.1", "1.2.3.256", "-1.2.3.4", "1.2.3.4/32", "0x7f.0.0.1",
        "127.1", "1..2.3", ".1.2.3", "a.b.c.d", "localhost",
        ":::", "1:2:3:4:5:6:7:8:9", "12345::1", "2001:db8::1::2", "g::1",
        "::ffff:01.2.3.4", "::ffff:256.1.1.1",
        "[1.2.3.4]", "[]", "[", "]", "[::1", "::1]", "[[::1]]",
        "0000:0000:0000:0000:0000:0000:0000:0000:0",
        /* longer than any address text */
        "0000:0000:0000:0000:0000:ffff:255.255.255.255:1234567890",
        "1111111111111111111111111111111111111111111111111111111111111",
        NULL
    };
    struct ab_addr a;

    (void)state;
    for (size_t i = 0; bad[i] != NULL; i++)
        if (addr_parse(bad[i], &a) == 0)
            fail_msg("addr_parse accepted '%s'", bad[i]);
}

static void sockaddr_ipv4_is_taken_as_is(void **state)
{
    struct sockaddr_in sin;
    struct ab_addr a;
    char out[ADDR_TEXT_MAX];

    (void)state;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, "198.51.100.9", &sin.sin_addr);
    assert_int_equal(addr_from_sockaddr((struct sockaddr *)&sin, &a), 0);
    addr_format(&a, out);
    assert_string_equal(out, "198.51.100.9");
}

static void sockaddr_mapped_ipv6_folds_to_ipv4(void **state)
{
    struct sockaddr_in6 sin6;
    struct ab_addr a;
    char out[ADDR_TEXT_MAX];

    (void)state;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:198.51.100.9", &sin6.sin6_addr);
    assert_int_equal(addr_from_sockaddr((struct sockaddr *)&sin6, &a), 0);
    assert_int_equal(a.family, AF_INET);
    addr_format(&a, out);
    assert_string_equal(out, "198.51.100.9");

    inet_pton(AF_INET6, "2001:db8::7", &sin6.sin6_addr);
    assert_int_equal(addr_from_sockaddr((struct sockaddr *)&sin6, &a), 0);
    addr_format(&a, out);
    assert_string_equal(out, "2001:db8::7");
}

static void sockaddr_of_other_family_is_refused(void **state)
{
    struct sockaddr sa;
    struct ab_addr a;

    (void)state;
    memset(&sa, 0, sizeof(sa));
    sa.sa_family = AF_UNIX;
    assert_int_equal(addr_from_sockaddr(&sa, &a), -1);
}

static void equal_compares_family_and_bytes(void **state)
{
    struct ab_addr x, y;

    (void)state;
    assert_int_equal(addr_parse("::ffff:1.2.3.4", &x), 0);
    assert_int_equal(addr_parse("1.2.3.4", &y), 0);
    assert_true(addr_equal(&x, &y));
    assert_int_equal(addr_parse("1.2.3.5", &y), 0);
    assert_false(addr_equal(&x, &y));
    assert_int_equal(addr_parse("::102:304", &y), 0);   /* same bytes, v6 */
    assert_false(addr_equal(&x, &y));
}

/* ---- grant text: IPv6 prefix grants --------------------------------------- */

static void grant_text_prefix_64_names_the_network(void **state)
{
    (void)state;
    assert_string_equal(grant_text("2001:db8:1:2:3:4:5:6", 64),
                        "2001:db8:1:2::/64");
    assert_string_equal(grant_text("2001:db8:1:2::", 64), "2001:db8:1:2::/64");
}

static void grant_text_prefix_48_names_the_network(void **state)
{
    (void)state;
    assert_string_equal(grant_text("2001:db8:1:2:3:4:5:6", 48),
                        "2001:db8:1::/48");
}

static void grant_text_odd_prefix_masks_inside_a_group(void **state)
{
    (void)state;
    assert_string_equal(grant_text("2001:db8:1:ffff::1", 60),
                        "2001:db8:1:fff0::/60");
    assert_string_equal(grant_text("2001:db8:1:ffff::1", 57),
                        "2001:db8:1:ff80::/57");
}

static void grant_text_prefix_128_is_the_address(void **state)
{
    (void)state;
    assert_string_equal(grant_text("2001:db8:1:2:3:4:5:6", 128),
                        "2001:db8:1:2:3:4:5:6");
}

static void grant_text_ipv4_ignores_the_ipv6_prefix(void **state)
{
    (void)state;
    assert_string_equal(grant_text("203.0.113.7", 64), "203.0.113.7");
    assert_string_equal(grant_text("::ffff:203.0.113.7", 48), "203.0.113.7");
    assert_string_equal(grant_text("203.0.113.7", 16), "203.0.113.7");
}

static void grant_text_of_longest_address_fits(void **state)
{
    char out[ADDR_TEXT_MAX];
    struct ab_addr a;

    (void)state;
    assert_int_equal(addr_parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &a), 0);
    addr_grant_text(&a, 127, out);
    assert_string_equal(out, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
}

static void mask_keeps_exactly_the_prefix_bits(void **state)
{
    struct ab_addr a;
    char out[ADDR_TEXT_MAX];

    (void)state;
    assert_int_equal(addr_parse("255.255.255.255", &a), 0);
    addr_mask(&a, 20);
    addr_format(&a, out);
    assert_string_equal(out, "255.255.240.0");
    addr_mask(&a, 0);
    addr_format(&a, out);
    assert_string_equal(out, "0.0.0.0");

    assert_int_equal(addr_parse("10.1.2.3", &a), 0);
    addr_mask(&a, 32);
    addr_format(&a, out);
    assert_string_equal(out, "10.1.2.3");
    addr_mask(&a, 8);
    addr_format(&a, out);
    assert_string_equal(out, "10.0.0.0");
}

/* ---- CIDR ------------------------------------------------------------------- */

static struct cidr net_of(const char *text)
{
    struct cidr c;
    char err[256];

    if (cidr_parse(text, &c, err, sizeof(err)) != 0)
        fail_msg("cidr_parse refused '%s': %s", text, err);
    return c;
}

static bool matches(const char *net, const char *addr)
{
    struct cidr c = net_of(net);
    struct ab_addr a;

    assert_int_equal(addr_parse(addr, &a), 0);
    return cidr_match(&c, &a);
}

static void cidr_ipv4_network_matches_its_hosts_only(void **state)
{
    (void)state;
    assert_true(matches("10.0.0.0/8", "10.0.0.0"));
    assert_true(matches("10.0.0.0/8", "10.255.255.255"));
    assert_false(matches("10.0.0.0/8", "11.0.0.0"));
    assert_false(matches("10.0.0.0/8", "9.255.255.255"));
    assert_true(matches("192.168.4.0/22", "192.168.7.255"));
    assert_false(matches("192.168.4.0/22", "192.168.8.0"));
    assert_int_equal(net_of("192.168.4.0/22").bits, 22);
}

static void cidr_ipv4_slash_32_and_bare_address_match_one_host(void **state)
{
    (void)state;
    assert_true(matches("10.1.2.3/32", "10.1.2.3"));
    assert_false(matches("10.1.2.3/32", "10.1.2.4"));
    assert_true(matches("10.1.2.3", "10.1.2.3"));
    assert_false(matches("10.1.2.3", "10.1.2.2"));
    assert_int_equal(net_of("10.1.2.3").bits, 32);
}

static void cidr_slash_0_matches_its_whole_family(void **state)
{
    (void)state;
    assert_true(matches("0.0.0.0/0", "1.2.3.4"));
    assert_true(matches("0.0.0.0/0", "255.255.255.255"));
    assert_false(matches("0.0.0.0/0", "2001:db8::1"));
    assert_true(matches("::/0", "2001:db8::1"));
    assert_false(matches("::/0", "1.2.3.4"));
}

static void cidr_ipv6_network_matches_its_hosts_only(void **state)
{
    (void)state;
    assert_true(matches("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(matches("2001:db8::/32", "2001:db9::1"));
    assert_true(matches("2001:db8:1:2::/64", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
    assert_false(matches("2001:db8:1:2::/64", "2001:db8:1:3::"));
    assert_true(matches("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(matches("2001:db8::/33", "2001:db8:8000::1"));
}

static void cidr_ipv6_slash_128_matches_one_host(void **state)
{
    (void)state;
    assert_true(matches("::1/128", "::1"));
    assert_false(matches("::1/128", "::2"));
    assert_true(matches("::1", "::1"));
    assert_int_equal(net_of("::1").bits, 128);
}

static void cidr_ipv4_network_matches_mapped_clients(void **state)
{
    (void)state;
    /* Clients arrive folded, so an IPv4 network covers ::ffff:a.b.c.d. */
    assert_true(matches("127.0.0.0/8", "::ffff:127.0.0.1"));
    assert_false(matches("127.0.0.0/8", "::ffff:128.0.0.1"));
}

static void cidr_mapped_network_folds_to_ipv4(void **state)
{
    struct cidr c;

    (void)state;
    c = net_of("::ffff:10.0.0.0/104");
    assert_int_equal(c.net.family, AF_INET);
    assert_int_equal(c.bits, 8);
    assert_true(matches("::ffff:10.0.0.0/104", "10.9.8.7"));
    assert_false(matches("::ffff:10.0.0.0/104", "11.0.0.1"));
    c = net_of("::ffff:10.1.2.3/128");
    assert_int_equal(c.bits, 32);
    c = net_of("::ffff:10.1.2.3");
    assert_int_equal(c.bits, 32);
    c = net_of("::ffff:0.0.0.0/96");
    assert_int_equal(c.bits, 0);
    assert_true(matches("::ffff:0.0.0.0/96", "192.0.2.1"));
}

static void cidr_list_matches_any_member(void **state)
{
    struct cidr v[2] = { net_of("127.0.0.0/8"), net_of("::1/128") };
    struct cidr_list l = { v, 2 };
    struct cidr_list empty = { NULL, 0 };
    struct ab_addr a;

    (void)state;
    assert_int_equal(addr_parse("127.3.4.5", &a), 0);
    assert_true(cidr_list_match(&l, &a));
    assert_false(cidr_list_match(&empty, &a));
    assert_int_equal(addr_parse("::1", &a), 0);
    assert_true(cidr_list_match(&l, &a));
    assert_int_equal(addr_parse("::2", &a), 0);
    assert_false(cidr_list_match(&l, &a));
}

static void expect_cidr_error(const char *text, const char *want)
{
    struct cidr c;
    char err[256] = "";

    if (cidr_parse(text, &c, err, sizeof(err)) == 0)
        fail_msg("cidr_parse accepted '%s'", text);
    if (strstr(err, want) == NULL)
        fail_msg("cidr_parse('%s'): error '%s' lacks '%s'", text, err, want);
}

static void cidr_host_bits_set_is_an_error_with_a_hint(void **state)
{
    (void)state;
    expect_cidr_error("10.0.0.1/8",
                      "'10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)");
    expect_cidr_error("2001:db8::1/64",
                      "has host bits set (did you mean 2001:db8::/64?)");
    expect_cidr_error("::ffff:10.0.0.1/104",
                      "has host bits set (did you mean 10.0.0.0/8?)");
}

static void cidr_bad_prefix_is_an_error(void **state)
{
    (void)state;
    expect_cidr_error("10.0.0.0/33", "prefix longer than /32");
    expect_cidr_error("::/129", "bad prefix length");
    expect_cidr_error("10.0.0.0/", "bad prefix length");
    expect_cidr_error("10.0.0.0/-1", "bad prefix length");
    expect_cidr_error("10.0.0.0/8x", "bad prefix length");
    expect_cidr_error("10.0.0.0/ 8", "bad prefix length");
    expect_cidr_error("10.0.0.0/8/8", "bad prefix length");
    expect_cidr_error("::ffff:10.0.0.0/95", "mapped prefix shorter than /96");
}

static void cidr_bad_address_is_an_error(void **state)
{
    (void)state;
    expect_cidr_error("10.0.0/8", "'10.0.0' is not an IPv4 or IPv6 address");
    expect_cidr_error("/8", "is not a network");
    expect_cidr_error("", "is not a network");
    expect_cidr_error("example.net/24", "is not an IPv4 or IPv6 address");
    expect_cidr_error("fe80::%eth0/64", "is not an IPv4 or IPv6 address");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ipv4_dotted_quad_is_kept),
        cmocka_unit_test(ipv4_parse_fills_network_order_bytes),
        cmocka_unit_test(ipv6_compressed_form_is_kept),
        cmocka_unit_test(ipv6_uppercase_becomes_lowercase),
        cmocka_unit_test(ipv6_leading_zeros_in_groups_are_dropped),
        cmocka_unit_test(ipv6_full_form_becomes_rfc5952),
        cmocka_unit_test(ipv4_mapped_ipv6_folds_to_ipv4),
        cmocka_unit_test(ipv4_compatible_and_other_embedded_forms_stay_ipv6),
        cmocka_unit_test(brackets_around_ipv6_are_accepted),
        cmocka_unit_test(garbage_is_refused),
        cmocka_unit_test(sockaddr_ipv4_is_taken_as_is),
        cmocka_unit_test(sockaddr_mapped_ipv6_folds_to_ipv4),
        cmocka_unit_test(sockaddr_of_other_family_is_refused),
        cmocka_unit_test(equal_compares_family_and_bytes),
        cmocka_unit_test(grant_text_prefix_64_names_the_network),
        cmocka_unit_test(grant_text_prefix_48_names_the_network),
        cmocka_unit_test(grant_text_odd_prefix_masks_inside_a_group),
        cmocka_unit_test(grant_text_prefix_128_is_the_address),
        cmocka_unit_test(grant_text_ipv4_ignores_the_ipv6_prefix),
        cmocka_unit_test(grant_text_of_longest_address_fits),
        cmocka_unit_test(mask_keeps_exactly_the_prefix_bits),
        cmocka_unit_test(cidr_ipv4_network_matches_its_hosts_only),
        cmocka_unit_test(cidr_ipv4_slash_32_and_bare_address_match_one_host),
        cmocka_unit_test(cidr_slash_0_matches_its_whole_family),
        cmocka_unit_test(cidr_ipv6_network_matches_its_hosts_only),
        cmocka_unit_test(cidr_ipv6_slash_128_matches_one_host),
        cmocka_unit_test(cidr_ipv4_network_matches_mapped_clients),
        cmocka_unit_test(cidr_mapped_network_folds_to_ipv4),
        cmocka_unit_test(cidr_list_matches_any_member),
        cmocka_unit_test(cidr_host_bits_set_is_an_error_with_a_hint),
        cmocka_unit_test(cidr_bad_prefix_is_an_error),
        cmocka_unit_test(cidr_bad_address_is_an_error),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
