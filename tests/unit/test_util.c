/*
 * The small helpers every program leans on: strict numbers, the hash table
 * (and its SipHash), log escaping, string helpers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authbridge/hmap.h"
#include "authbridge/log.h"
#include "authbridge/util.h"

/* ---- numbers ---------------------------------------------------------------- */

static void parse_uint_takes_plain_decimal_in_range(void **state)
{
    uint64_t v = 99;

    (void)state;
    assert_int_equal(ab_parse_uint("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ab_parse_uint("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(ab_parse_uint("5", 5, 5, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(ab_parse_uint("007", 0, 10, &v), 0);
    assert_int_equal(v, 7);
}

static void parse_uint_refuses_anything_else(void **state)
{
    static const char *const bad[] = {
        "", " 1", "1 ", "+1", "-1", "-0", "1a", "0x10", "1.0", "1e3", "١",
        NULL
    };
    uint64_t v = 42;

    (void)state;
    for (size_t i = 0; bad[i] != NULL; i++)
        if (ab_parse_uint(bad[i], 0, UINT64_MAX, &v) == 0)
            fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(v, 42);                 /* untouched on failure */
}

static void parse_uint_checks_both_ends_of_the_range(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(ab_parse_uint("9", 10, 20, &v), -1);
    assert_int_equal(ab_parse_uint("21", 10, 20, &v), -1);
    assert_int_equal(ab_parse_uint("65536", 1, 65535, &v), -1);
    assert_int_equal(ab_parse_uint("65535", 1, 65535, &v), 0);
}

static void parse_uint_refuses_overflow(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(ab_parse_uint("18446744073709551615", 0, UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(ab_parse_uint("18446744073709551616", 0, UINT64_MAX, &v), -1);
    assert_int_equal(ab_parse_uint("99999999999999999999", 0, UINT64_MAX, &v), -1);
    assert_int_equal(ab_parse_uint("4294967296", 0, UINT32_MAX, &v), -1);
}

static void parse_uint_n_reads_only_the_given_length(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(ab_parse_uint_n("123abc", 3, 0, 1000, &v), 0);
    assert_int_equal(v, 123);
    assert_int_equal(ab_parse_uint_n("123abc", 4, 0, 1000, &v), -1);
    assert_int_equal(ab_parse_uint_n("123", 0, 0, 1000, &v), -1);
}

/* ---- strings ------------------------------------------------------------------ */

static void trim_strips_spaces_and_tabs_at_both_ends(void **state)
{
    char a[] = " \t value with  inner \t ", b[] = "   ", c[] = "x";

    (void)state;
    assert_string_equal(ab_trim(a), "value with  inner");
    assert_string_equal(ab_trim(b), "");
    assert_string_equal(ab_trim(c), "x");
}

static void caseless_comparison_is_ascii_only(void **state)
{
    (void)state;
    assert_true(ab_strcaseeq("Example.NET", "example.net"));
    assert_false(ab_strcaseeq("example.net", "example.ne"));
    assert_false(ab_strcaseeq("a", "b"));
    assert_false(ab_strcaseeq("\xc4", "\xe4"));     /* no Latin-1 folding */
    assert_true(ab_strncaseeq("HELO x", "helo y", 4));
    assert_false(ab_strncaseeq("HELO", "HELP", 4));
}

static void constant_time_equal_compares_every_byte(void **state)
{
    (void)state;
    assert_true(ab_ct_equal("secret", "secret", 6));
    assert_false(ab_ct_equal("secret", "secreT", 6));
    assert_false(ab_ct_equal("Secret", "secret", 6));
    assert_true(ab_ct_equal("", "", 0));
}

static void strndup_copies_and_terminates(void **state)
{
    char *s = ab_strndup("abcdef", 3);

    (void)state;
    assert_string_equal(s, "abc");
    free(s);
}

/* ---- log escaping ---------------------------------------------------------------- */

static void log_esc_passes_plain_text(void **state)
{
    (void)state;
    assert_string_equal(log_esc("alice@example.net"), "alice@example.net");
}

static void log_esc_quotes_spaces_equals_and_quotes(void **state)
{
    (void)state;
    assert_string_equal(log_esc("a b"), "\"a b\"");
    assert_string_equal(log_esc("k=v"), "\"k=v\"");
    assert_string_equal(log_esc("say \"hi\""), "\"say \\\"hi\\\"\"");
    assert_string_equal(log_esc(""), "\"\"");
    assert_string_equal(log_esc(NULL), "\"\"");
}

static void log_esc_hex_escapes_control_and_non_ascii_bytes(void **state)
{
    (void)state;
    assert_string_equal(log_esc("a\r\nb"), "a\\x0d\\x0ab");
    assert_string_equal(log_esc("\x1b[31m"), "\\x1b[31m");
    assert_string_equal(log_esc("caf\xc3\xa9"), "caf\\xc3\\xa9");
    assert_string_equal(log_esc("back\\slash"), "back\\\\slash");
    assert_string_equal(log_escn("a\0b", 3), "a\\x00b");
}

static void log_esc_cuts_long_values(void **state)
{
    char in[1000], want[256];

    (void)state;
    memset(in, 'x', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    memset(want, 'x', 200);
    strcpy(want + 200, "...");
    assert_string_equal(log_esc(in), want);
    /* escapes near the cut never overflow the buffer */
    memset(in, '\x01', sizeof(in) - 1);
    assert_true(strlen(log_esc(in)) <= 210);
    in[0] = ' ';
    assert_true(strlen(log_esc(in)) <= 212);
}

static void log_esc_results_survive_seven_more_calls(void **state)
{
    const char *first = log_esc("one");

    (void)state;
    for (int i = 0; i < 7; i++)
        log_esc("other");
    assert_string_equal(first, "one");
}

/* ---- hash table ------------------------------------------------------------------ */

static void siphash_matches_the_reference_vectors(void **state)
{
    uint8_t key[16], msg[64];

    (void)state;
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* From the SipHash paper and its reference implementation's vectors. */
    assert_true(siphash24(msg, 0, key) == 0x726fdb47dd0e0e31ULL);
    assert_true(siphash24(msg, 15, key) == 0xa129ca6149be45e5ULL);
    assert_true(siphash24(msg, 8, key) == 0x93f5f5799a932462ULL);
    assert_true(siphash24(msg, 63, key) == 0x958a324ceb064572ULL);
}

static void hmap_put_get_replace_delete(void **state)
{
    struct hmap *m = hmap_new();
    int a = 1, b = 2;
    char key[16] = "10.0.0.1";

    (void)state;
    assert_null(hmap_put(m, key, &a));
    strcpy(key, "changed");                 /* the table keeps its own copy */
    assert_ptr_equal(hmap_get(m, "10.0.0.1"), &a);
    assert_null(hmap_get(m, "changed"));
    assert_ptr_equal(hmap_put(m, "10.0.0.1", &b), &a);
    assert_ptr_equal(hmap_get(m, "10.0.0.1"), &b);
    assert_int_equal(hmap_count(m), 1);
    assert_ptr_equal(hmap_del(m, "10.0.0.1"), &b);
    assert_null(hmap_del(m, "10.0.0.1"));
    assert_null(hmap_get(m, "10.0.0.1"));
    assert_int_equal(hmap_count(m), 0);
    hmap_free(m, NULL);
}

static void count_visit(const char *key, void *val, void *arg)
{
    size_t *seen = arg;
    char want[32];

    snprintf(want, sizeof(want), "k%zu", (size_t)(uintptr_t)val);
    assert_string_equal(key, want);
    (*seen)++;
}

static void hmap_keeps_every_entry_while_growing(void **state)
{
    struct hmap *m = hmap_new();
    char key[32];
    size_t seen = 0;

    (void)state;
    for (uintptr_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%zu", (size_t)i);
        assert_null(hmap_put(m, key, (void *)i));
    }
    assert_int_equal(hmap_count(m), 5000);
    for (uintptr_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%zu", (size_t)i);
        assert_ptr_equal(hmap_get(m, key), (void *)i);
    }
    hmap_each(m, count_visit, &seen);
    assert_int_equal(seen, 5000);
    for (uintptr_t i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof(key), "k%zu", (size_t)i);
        assert_ptr_equal(hmap_del(m, key), (void *)i);
    }
    assert_int_equal(hmap_count(m), 2500);
    assert_null(hmap_get(m, "k0"));
    assert_ptr_equal(hmap_get(m, "k1"), (void *)1);
    hmap_free(m, NULL);
}

static int freed;

static void count_free(void *val)
{
    (void)val;
    freed++;
}

static void hmap_free_passes_every_value(void **state)
{
    struct hmap *m = hmap_new();

    (void)state;
    hmap_put(m, "a", &freed);
    hmap_put(m, "b", &freed);
    hmap_put(m, "", &freed);                 /* the empty key is a key */
    assert_ptr_equal(hmap_get(m, ""), &freed);
    freed = 0;
    hmap_free(m, count_free);
    assert_int_equal(freed, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_uint_takes_plain_decimal_in_range),
        cmocka_unit_test(parse_uint_refuses_anything_else),
        cmocka_unit_test(parse_uint_checks_both_ends_of_the_range),
        cmocka_unit_test(parse_uint_refuses_overflow),
        cmocka_unit_test(parse_uint_n_reads_only_the_given_length),
        cmocka_unit_test(trim_strips_spaces_and_tabs_at_both_ends),
        cmocka_unit_test(caseless_comparison_is_ascii_only),
        cmocka_unit_test(constant_time_equal_compares_every_byte),
        cmocka_unit_test(strndup_copies_and_terminates),
        cmocka_unit_test(log_esc_passes_plain_text),
        cmocka_unit_test(log_esc_quotes_spaces_equals_and_quotes),
        cmocka_unit_test(log_esc_hex_escapes_control_and_non_ascii_bytes),
        cmocka_unit_test(log_esc_cuts_long_values),
        cmocka_unit_test(log_esc_results_survive_seven_more_calls),
        cmocka_unit_test(siphash_matches_the_reference_vectors),
        cmocka_unit_test(hmap_put_get_replace_delete),
        cmocka_unit_test(hmap_keeps_every_entry_while_growing),
        cmocka_unit_test(hmap_free_passes_every_value),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
