/*
 * The failed-login rule (authbridge/throttle.c): delays that double from
 * delay_after, a cap, blocks per address and per user.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "authbridge/conf.h"
#include "authbridge/throttle.h"

static const struct throttle_conf tc = {
    .window = 900, .delay_after = 3, .delay_ms = 500, .max_delay_ms = 8000,
    .block_after = 20, .user_block_after = 50,
};

static void below_delay_after_nothing_happens(void **state)
{
    unsigned d;

    (void)state;
    assert_int_equal(throttle_decide(&tc, 0, 0, &d), THROTTLE_OK);
    assert_int_equal(throttle_decide(&tc, 2, 49, &d), THROTTLE_OK);
    assert_int_equal(d, 0);
}

static void delay_doubles_then_caps(void **state)
{
    static const unsigned want[] = { 500, 1000, 2000, 4000, 8000, 8000, 8000 };
    unsigned d;

    (void)state;
    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(throttle_decide(&tc, 3 + i, 0, &d), THROTTLE_DELAY);
        assert_int_equal(d, want[i]);
    }
}

static void no_overflow_for_huge_counts(void **state)
{
    struct throttle_conf big = tc;
    unsigned d;

    (void)state;
    big.block_after = 1000000;
    assert_int_equal(throttle_decide(&big, 999999, 0, &d), THROTTLE_DELAY);
    assert_int_equal(d, 8000);
    assert_int_equal(throttle_decide(&big, 35, 0, &d), THROTTLE_DELAY);
    assert_int_equal(d, 8000);
}

static void blocks_by_address_then_by_user(void **state)
{
    unsigned d;

    (void)state;
    assert_int_equal(throttle_decide(&tc, 19, 0, &d), THROTTLE_DELAY);
    assert_int_equal(throttle_decide(&tc, 20, 0, &d), THROTTLE_BLOCK_ADDR);
    assert_int_equal(throttle_decide(&tc, 0, 50, &d), THROTTLE_BLOCK_USER);
    assert_int_equal(throttle_decide(&tc, 25, 60, &d), THROTTLE_BLOCK_ADDR);
}

static void zero_delay_disables_delays(void **state)
{
    struct throttle_conf none = tc;
    unsigned d;

    (void)state;
    none.delay_ms = 0;
    assert_int_equal(throttle_decide(&none, 10, 0, &d), THROTTLE_OK);
    assert_int_equal(throttle_decide(&none, 20, 0, &d), THROTTLE_BLOCK_ADDR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(below_delay_after_nothing_happens),
        cmocka_unit_test(delay_doubles_then_caps),
        cmocka_unit_test(no_overflow_for_huge_counts),
        cmocka_unit_test(blocks_by_address_then_by_user),
        cmocka_unit_test(zero_delay_disables_delays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
