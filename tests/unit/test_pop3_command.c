/*
 * pop3d's command line parser and strict numbers (pop3d/command.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pop3d/command.h"

static int parse(const char *text, struct pop3_cmd *c, char *buf)
{
    strcpy(buf, text);
    return pop3_parse(buf, c);
}

static void keyword_is_upper_cased_and_rest_kept(void **state)
{
    struct pop3_cmd c;
    char buf[300];

    (void)state;
    assert_int_equal(parse("pass my secret  pw ", &c, buf), 0);
    assert_string_equal(c.keyword, "PASS");
    assert_string_equal(c.rest, "my secret  pw ");
}

static void keyword_alone(void **state)
{
    struct pop3_cmd c;
    char buf[300];

    (void)state;
    assert_int_equal(parse("STAT", &c, buf), 0);
    assert_string_equal(c.keyword, "STAT");
    assert_string_equal(c.rest, "");
    assert_int_equal(pop3_split_args(&c, 0), 0);
    assert_int_equal(c.argc, 0);
}

static void malformed_keywords_are_refused(void **state)
{
    static const char *const bad[] = {
        "", "ST", "STATS", "ST4T", " STAT", "STAT\t1", "\xc3\xa9tat", "1234",
        "RE-T 1",
    };
    struct pop3_cmd c;
    char buf[300];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(bad[i], &c, buf) != -1)
            fail_msg("accepted '%s'", bad[i]);
}

static void arguments_split_on_single_spaces(void **state)
{
    struct pop3_cmd c;
    char buf[300];

    (void)state;
    parse("TOP 1 10", &c, buf);
    assert_int_equal(pop3_split_args(&c, 2), 0);
    assert_int_equal(c.argc, 2);
    assert_string_equal(c.argv[0], "1");
    assert_string_equal(c.argv[1], "10");
}

static void trailing_spaces_are_tolerated(void **state)
{
    struct pop3_cmd c;
    char buf[300];

    (void)state;
    parse("LIST 1  ", &c, buf);
    assert_int_equal(pop3_split_args(&c, 1), 0);
    assert_int_equal(c.argc, 1);
    assert_string_equal(c.argv[0], "1");
    parse("LIST ", &c, buf);
    assert_int_equal(pop3_split_args(&c, 1), 0);
    assert_int_equal(c.argc, 0);
}

static void empty_and_extra_arguments_are_refused(void **state)
{
    struct pop3_cmd c;
    char buf[300];

    (void)state;
    parse("LIST  1", &c, buf);
    assert_int_equal(pop3_split_args(&c, 1), -1);
    parse("RETR 1 2", &c, buf);
    assert_int_equal(pop3_split_args(&c, 1), -1);
    parse("APOP a b c d", &c, buf);
    assert_int_equal(pop3_split_args(&c, 3), -1);
}

static void message_numbers_are_strict(void **state)
{
    static const char *const bad[] = {
        "0", "-1", "+1", "1x", "x1", "", " 1", "1 ", "4", "4294967297",
        "18446744073709551617", "99999999999999999999999",
    };
    size_t idx;

    (void)state;
    assert_int_equal(pop3_msgno("1", 3, &idx), 0);
    assert_int_equal(idx, 0);
    assert_int_equal(pop3_msgno("3", 3, &idx), 0);
    assert_int_equal(idx, 2);
    assert_int_equal(pop3_msgno("003", 3, &idx), 0);   /* decimal is decimal */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (pop3_msgno(bad[i], 3, &idx) != -1)
            fail_msg("accepted message number '%s'", bad[i]);
}

static void top_line_counts(void **state)
{
    uint64_t n;

    (void)state;
    assert_int_equal(pop3_linecount("0", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(pop3_linecount("4294967295", &n), 0);
    assert_int_equal(pop3_linecount("4294967296", &n), -1);
    assert_int_equal(pop3_linecount("-1", &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keyword_is_upper_cased_and_rest_kept),
        cmocka_unit_test(keyword_alone),
        cmocka_unit_test(malformed_keywords_are_refused),
        cmocka_unit_test(arguments_split_on_single_spaces),
        cmocka_unit_test(trailing_spaces_are_tolerated),
        cmocka_unit_test(empty_and_extra_arguments_are_refused),
        cmocka_unit_test(message_numbers_are_strict),
        cmocka_unit_test(top_line_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
