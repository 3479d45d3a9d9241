/*
 * The relay decision table (smtpgate/relay.c) and the sender map: the
 * order local > trusted > auth > grant, Redis outages as TEMPFAIL, and
 * sender_binding.
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
#include "smtpgate/relay.h"
#include "smtpgate/sendermap.h"

static char *domains_v[] = { "example.net", "example.org" };

static struct smtpgate_conf conf_with(struct cidr *trusted, size_t ntrusted,
                                      bool binding)
{
    struct smtpgate_conf sc;

    memset(&sc, 0, sizeof(sc));
    sc.local_domains.v = domains_v;
    sc.local_domains.n = 2;
    sc.d.trusted_networks.v = trusted;
    sc.d.trusted_networks.n = ntrusted;
    sc.sender_binding = binding;
    return sc;
}

static struct ab_addr addr(const char *text)
{
    struct ab_addr a;

    assert_int_equal(addr_parse(text, &a), 0);
    return a;
}

static void test_decision_order(void **state)
{
    struct cidr net;
    char err[64];
    struct smtpgate_conf sc;
    struct ab_addr inside = addr("10.1.2.3"), outside = addr("192.0.2.7");
    struct relay_query q = { .client = &outside, .rcpt_local = true };

    (void)state;
    assert_int_equal(cidr_parse("10.0.0.0/8", &net, err, sizeof(err)), 0);
    sc = conf_with(&net, 1, false);
    /* Local first, whoever asks. */
    assert_int_equal(relay_decide_now(&sc, &q), RELAY_LOCAL);
    q.rcpt_local = false;
    assert_int_equal(relay_decide_now(&sc, &q), RELAY_NEED_GRANT);
    q.auth_user = "alice";
    assert_int_equal(relay_decide_now(&sc, &q), RELAY_AUTH);
    q.client = &inside;
    assert_int_equal(relay_decide_now(&sc, &q), RELAY_TRUSTED);
    q.auth_user = NULL;
    assert_int_equal(relay_decide_now(&sc, &q), RELAY_TRUSTED);
}

static void test_grant_outcomes(void **state)
{
    struct smtpgate_conf sc = conf_with(NULL, 0, false);

    (void)state;
    assert_int_equal(relay_grant_outcome(&sc, NULL, GRANT_OK, "alice",
                                         "x@elsewhere.example"), RELAY_GRANT);
    assert_int_equal(relay_grant_outcome(&sc, NULL, GRANT_NONE, NULL,
                                         "x@elsewhere.example"), RELAY_DENIED);
    /* Redis down: never an allow, never a refusal. */
    assert_int_equal(relay_grant_outcome(&sc, NULL, GRANT_UNAVAILABLE, NULL,
                                         "x@elsewhere.example"),
                     RELAY_TEMPFAIL);
    sc.sender_binding = true;
    assert_int_equal(relay_grant_outcome(&sc, NULL, GRANT_OK, "alice",
                                         "x@elsewhere.example"),
                     RELAY_SENDER_MISMATCH);
    assert_int_equal(relay_grant_outcome(&sc, NULL, GRANT_OK, "alice",
                                         "Alice@EXAMPLE.org"), RELAY_GRANT);
    assert_int_equal(relay_grant_outcome(&sc, NULL, GRANT_UNAVAILABLE, NULL,
                                         "alice@example.org"), RELAY_TEMPFAIL);
    assert_true(relay_allowed(RELAY_GRANT));
    assert_false(relay_allowed(RELAY_SENDER_MISMATCH));
    assert_false(relay_allowed(RELAY_TEMPFAIL));
}

static void test_sender_ownership(void **state)
{
    struct strlist d = { domains_v, 2 };

    (void)state;
    assert_true(relay_sender_owned(&d, NULL, "alice@example.net", "alice"));
    assert_true(relay_sender_owned(&d, NULL, "ALICE@example.org", "alice"));
    assert_false(relay_sender_owned(&d, NULL, "alice@remote.example", "alice"));
    assert_false(relay_sender_owned(&d, NULL, "alicex@example.net", "alice"));
    assert_false(relay_sender_owned(&d, NULL, "xalice@example.net", "alice"));
    assert_false(relay_sender_owned(&d, NULL, "bob@example.net", "alice"));
    assert_false(relay_sender_owned(&d, NULL, "", "alice"));
    /* Logins that are whole addresses own exactly that address. */
    assert_true(relay_sender_owned(&d, NULL, "carol@remote.example",
                                   "carol@remote.example"));
    assert_false(relay_sender_owned(&d, NULL, "carol@example.net",
                                    "carol@remote.example"));
}

static const char *write_file(const char *text)
{
    static char path[] = "/tmp/test_relay_map_XXXXXX";
    int fd;

    strcpy(path, "/tmp/test_relay_map_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_sender_map(void **state)
{
    struct conf_errors errs = { 0 };
    struct strlist d = { domains_v, 2 };
    const char *path = write_file(
        "# address or @domain   logins\n"
        "Sales@Example.NET      alice, bob\n"
        "\n"
        "@shared.example        carol   # a whole domain\n"
        "dave@remote.example    dave\n");
    struct sendermap *m = sendermap_load(path, &errs);

    (void)state;
    unlink(path);
    assert_non_null(m);
    assert_int_equal(errs.n, 0);
    assert_true(sendermap_owns(m, "sales@example.net", "alice"));
    assert_true(sendermap_owns(m, "SALES@example.net", "bob"));
    assert_false(sendermap_owns(m, "sales@example.net", "carol"));
    assert_false(sendermap_owns(m, "sales@example.net", "Alice"));
    assert_true(sendermap_owns(m, "anyone@shared.example", "carol"));
    assert_false(sendermap_owns(m, "anyone@shared.example", "alice"));
    assert_true(relay_sender_owned(&d, m, "dave@remote.example", "dave"));
    assert_true(relay_sender_owned(&d, m, "sales@example.net", "bob"));
    assert_false(relay_sender_owned(&d, m, "dave@remote.example", "bob"));
    sendermap_free(m);
}

static void test_sender_map_errors(void **state)
{
    struct conf_errors errs = { 0 };
    const char *path = write_file("ok@example.net alice\n"
                                  "not-an-address alice\n"
                                  "lonely@example.net\n"
                                  "ok@EXAMPLE.net bob\n");
    struct sendermap *m = sendermap_load(path, &errs);
    char want[256];

    (void)state;
    assert_null(m);
    assert_int_equal(errs.n, 3);
    snprintf(want, sizeof(want), "%s:2: 'not-an-address' is not an address "
             "or @domain", path);
    assert_string_equal(errs.v[0], want);
    snprintf(want, sizeof(want), "%s:3: 'lonely@example.net' names no login",
             path);
    assert_string_equal(errs.v[1], want);
    snprintf(want, sizeof(want), "%s:4: 'ok@example.net' is listed twice",
             path);
    assert_string_equal(errs.v[2], want);
    unlink(path);
    conf_errors_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_order),
        cmocka_unit_test(test_grant_outcomes),
        cmocka_unit_test(test_sender_ownership),
        cmocka_unit_test(test_sender_map),
        cmocka_unit_test(test_sender_map_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
