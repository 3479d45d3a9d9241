/*
 * SASL decoding shared by pop3d and smtpgate (authbridge/sasl.c) and the
 * one rule for user names (users_valid_name).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "authbridge/sasl.h"
#include "authbridge/users.h"

#define B64(s) (s), strlen(s)

static void base64_decodes_with_padding(void **state)
{
    unsigned char out[64];

    (void)state;
    assert_int_equal(sasl_base64_decode(B64("AGFsaWNlAHNlY3JldA=="), out,
                                        sizeof(out)), 13);
    assert_memory_equal(out, "\0alice\0secret", 13);
    assert_int_equal(sasl_base64_decode(B64("YWI="), out, sizeof(out)), 2);
    assert_int_equal(sasl_base64_decode(B64(""), out, sizeof(out)), 0);
    assert_int_equal(sasl_base64_decode(B64("="), out, sizeof(out)), 0);
}

static void base64_garbage_and_overflow_are_refused(void **state)
{
    static const char *const bad[] = {
        "YWI", "Y===", "YW=I", "YW I", "!!!!", "YWJj=", "YQ==YQ==",
        "YR==",                  /* not canonical: dropped bits not zero */
    };
    unsigned char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sasl_base64_decode(B64(bad[i]), out, sizeof(out)) != -1)
            fail_msg("decoded '%s'", bad[i]);
    assert_int_equal(sasl_base64_decode(B64("YWJjZA=="), out, 3), -1);
}

static int split(const char *msg, size_t len, const char **user,
                 const char **pass, size_t *passlen)
{
    static unsigned char buf[256];

    memcpy(buf, msg, len);
    return sasl_plain_split(buf, len, user, pass, passlen);
}

static void plain_split_takes_authcid_and_password(void **state)
{
    const char *user, *pass;
    size_t n;

    (void)state;
    assert_int_equal(split("\0alice\0my secret", 16, &user, &pass, &n), 0);
    assert_string_equal(user, "alice");
    assert_int_equal(n, 9);
    assert_memory_equal(pass, "my secret", 9);
    assert_int_equal(split("alice\0alice\0pw", 14, &user, &pass, &n), 0);
}

static void plain_split_refuses_proxying_and_malformed_messages(void **state)
{
    const char *user, *pass;
    size_t n;

    (void)state;
    assert_int_equal(split("bob\0alice\0pw", 12, &user, &pass, &n), -1);
    assert_int_equal(split("\0alice", 6, &user, &pass, &n), -1);
    assert_int_equal(split("\0\0pw", 4, &user, &pass, &n), -1);
    assert_int_equal(split("\0alice\0p\0w", 10, &user, &pass, &n), -1);
    assert_int_equal(split("\0al ice\0pw", 10, &user, &pass, &n), -1);
}

static void user_names(void **state)
{
    char long_name[300];

    (void)state;
    assert_true(users_valid_name("alice"));
    assert_true(users_valid_name("alice@example.net"));
    assert_true(users_valid_name("\xc3\xa9lodie"));        /* UTF-8 */
    memset(long_name, 'a', 255);
    long_name[255] = '\0';
    assert_true(users_valid_name(long_name));
    long_name[255] = 'a';
    long_name[256] = '\0';
    assert_false(users_valid_name(long_name));
    assert_false(users_valid_name(""));
    assert_false(users_valid_name("a b"));
    assert_false(users_valid_name("a:b"));
    assert_false(users_valid_name("a\tb"));
    assert_false(users_valid_name("a\x7f"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64_decodes_with_padding),
        cmocka_unit_test(base64_garbage_and_overflow_are_refused),
        cmocka_unit_test(plain_split_takes_authcid_and_password),
        cmocka_unit_test(plain_split_refuses_proxying_and_malformed_messages),
        cmocka_unit_test(user_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
