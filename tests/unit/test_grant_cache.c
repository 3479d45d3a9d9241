/*
 * The gate's grant cache: answers kept until announced changed, expired
 * or too old; answers to reads that a change overtook are never kept.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "authbridge/grant_cache.h"

static struct grant_cache *gc;

static int setup(void **state)
{
    (void)state;
    gc = gcache_new(4, 60000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gcache_free(gc);
    return 0;
}

static void keep(const char *key, const char *user, uint64_t now,
                 uint64_t expires)
{
    gcache_put(gc, key, gcache_reading(gc, key), user, now, expires);
}

static void hits_and_misses_are_kept(void **state)
{
    const char *user = "x";

    (void)state;
    assert_false(gcache_get(gc, "a", 0, &user));
    keep("a", "alice", 0, 5000);
    keep("b", NULL, 0, 0);
    assert_true(gcache_get(gc, "a", 100, &user));
    assert_string_equal(user, "alice");
    assert_true(gcache_get(gc, "b", 100, &user));
    assert_null(user);
}

static void a_grant_is_never_kept_past_its_expiry_nor_past_max_age(void **s)
{
    const char *user;

    (void)s;
    keep("a", "alice", 1000, 2000);
    assert_true(gcache_get(gc, "a", 1999, &user));
    assert_false(gcache_get(gc, "a", 2000, &user));
    keep("b", NULL, 1000, 0);
    assert_true(gcache_get(gc, "b", 60999, &user));
    assert_false(gcache_get(gc, "b", 61000, &user));
}

static void an_announced_change_forgets_the_key(void **state)
{
    const char *user;

    (void)state;
    keep("a", "alice", 0, 5000);
    keep("b", "bob", 0, 5000);
    gcache_invalidate(gc, "a");
    assert_false(gcache_get(gc, "a", 1, &user));
    assert_true(gcache_get(gc, "b", 1, &user));
    gcache_invalidate(gc, NULL);
    assert_false(gcache_get(gc, "b", 1, &user));
}

static void an_answer_a_change_overtook_is_not_kept(void **state)
{
    const char *user;
    struct gcache_ticket t, t2;

    (void)state;
    t = gcache_reading(gc, "a");
    gcache_invalidate(gc, "a");          /* the change came first */
    gcache_put(gc, "a", t, "alice", 0, 5000);
    assert_false(gcache_get(gc, "a", 1, &user));
    /* Two reads in flight, a change between them: only the second's
     * answer may be kept, whichever comes back first. */
    t = gcache_reading(gc, "a");
    gcache_invalidate(gc, "a");
    t2 = gcache_reading(gc, "a");
    gcache_put(gc, "a", t2, "bob", 0, 5000);
    gcache_put(gc, "a", t, "alice", 0, 5000);
    assert_true(gcache_get(gc, "a", 1, &user));
    assert_string_equal(user, "bob");
    /* A clear spoils every ticket. */
    t = gcache_reading(gc, "c");
    gcache_invalidate(gc, NULL);
    gcache_put(gc, "c", t, "carol", 0, 5000);
    assert_false(gcache_get(gc, "c", 1, &user));
}

static void a_full_cache_is_emptied_not_grown(void **state)
{
    char key[16];

    (void)state;
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        keep(key, "u", 0, 5000);
        assert_true(gcache_count(gc) <= 4);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hits_and_misses_are_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_grant_is_never_kept_past_its_expiry_nor_past_max_age, setup,
            teardown),
        cmocka_unit_test_setup_teardown(an_announced_change_forgets_the_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(an_answer_a_change_overtook_is_not_kept,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_cache_is_emptied_not_grown,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
