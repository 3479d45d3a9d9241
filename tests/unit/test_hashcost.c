/*
 * Hash cost classes (what a check costs depends on method and parameters,
 * not salt), and the dummy a mixed user file gets: its costliest hash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authbridge/conf.h"
#include "authbridge/hashcost.h"
#include "authbridge/users.h"

static void class_is(const char *hash, const char *want)
{
    char out[HASHCOST_CLASS_LEN];

    hashcost_class(hash, out, sizeof(out));
    assert_string_equal(out, want);
}

static void classes_ignore_the_salt_and_keep_the_parameters(void **state)
{
    (void)state;
    class_is("$6$saltA$hashA", "$6");
    class_is("$6$rounds=10000$saltB$hashB", "$6$rounds=10000");
    class_is("$5$rounds=1000$s$h", "$5$rounds=1000");
    class_is("$2b$12$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNO",
             "$2b$12");
    class_is("$y$j9T$salt$hash", "$y$j9T");
    class_is("$1$salt$hash", "$1");
    class_is("abcdefghijklm", "des");
}

static void a_costlier_setting_measures_costlier(void **state)
{
    (void)state;
    uint64_t cheap = hashcost_measure_ns("$6$rounds=1000$saltsalt$"
                                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    uint64_t dear = hashcost_measure_ns("$6$rounds=100000$saltsalt$"
                                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    assert_true(dear > 5 * cheap);
}

static void a_mixed_file_lists_each_class_once(void **state)
{
    char path[] = "/tmp/ab-users-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    struct conf_errors errs = { 0 };
    char names[HASHCOST_CLASSES_MAX][HASHCOST_CLASS_LEN];
    const char *reps[HASHCOST_CLASSES_MAX];
    struct userdb *db;
    size_t n;

    (void)state;
    fprintf(f, "a:{PLAIN}x::::/h::\n"
               "b:{SHA512-CRYPT}$6$s1$GbU6P3rlFtmS6yQ5HnEl2fhP1Fkm2wu0k9/"
               "VI03AvyeUvWSMxFD3Ci0ZUbUkFUbrCUm9T2ZPj3cxNCCGJ2G0O/::::/h::\n"
               "c:{SHA512-CRYPT}$6$s2$GbU6P3rlFtmS6yQ5HnEl2fhP1Fkm2wu0k9/"
               "VI03AvyeUvWSMxFD3Ci0ZUbUkFUbrCUm9T2ZPj3cxNCCGJ2G0O/::::/h::\n"
               "d:{SHA256-CRYPT}$5$rounds=5000$s3$"
               "Lc0nrFz2wPfdVbw4jgGwFzVUHFQkVDSJ9MJ3eW3zWX5::::/h::\n");
    fclose(f);
    db = userdb_load(path, &errs);
    unlink(path);
    assert_non_null(db);
    n = userdb_classes(db, names, reps, HASHCOST_CLASSES_MAX);
    assert_int_equal(n, 2);
    assert_true((strcmp(names[0], "$6") == 0 &&
                 strcmp(names[1], "$5$rounds=5000") == 0) ||
                (strcmp(names[1], "$6") == 0 &&
                 strcmp(names[0], "$5$rounds=5000") == 0));
    userdb_unref(db);
    conf_errors_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(classes_ignore_the_salt_and_keep_the_parameters),
        cmocka_unit_test(a_costlier_setting_measures_costlier),
        cmocka_unit_test(a_mixed_file_lists_each_class_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
