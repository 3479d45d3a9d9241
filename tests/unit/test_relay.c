/*
 * The relay decision table (smtpgate/relay.c) and the sender map: the
 * order local > trusted > auth > grant, Redis outages as TEMPFAIL, and
 * sender_binding (no / grant / all, per path).
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
                                      unsigned binding)
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
    sc = conf_with(&net, 1, SENDER_BINDING_NO);
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
    struct smtpgate_conf sc = conf_with(NULL, 0, SENDER_BINDING_NO);

    (void)state;
    assert_int_equal(relay_grant_outcome(&sc, NULL, GRANT_OK, "alice",
                                         "x@elsewhere.example"), RELAY_GRANT);
    assert_int_equal(relay_grant_outcome(&sc, NULL, GRANT_NONE, NULL,
                                         "x@elsewhere.example"), RELAY_DENIED);
    /* Redis down: never an allow, never a refusal. */
    assert_int_equal(relay_grant_outcome(&sc, NULL, GRANT_UNAVAILABLE, NULL,
                                         "x@elsewhere.example"),
                     RELAY_TEMPFAIL);
    sc.sender_binding = SENDER_BINDING_GRANT;
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

/* Which mode binds which path; local mail never. */
static void test_binding_per_mode_and_path(void **state)
{
    static const enum relay_path paths[] = { RELAY_TRUSTED, RELAY_AUTH,
                                             RELAY_GRANT };
    /* [mode][path]: is a foreign sender refused? */
    static const bool refused[3][3] = {
        { false, false, false },           /* no */
        { false, false, true },            /* grant */
        { true, true, true },              /* all */
    };
    struct smtpgate_conf sc = conf_with(NULL, 0, SENDER_BINDING_NO);

    (void)state;
    for (unsigned mode = 0; mode < 3; mode++) {
        sc.sender_binding = mode;
        for (unsigned p = 0; p < 3; p++) {
            const char *user = paths[p] == RELAY_TRUSTED ? NULL : "alice";
            enum relay_path own = relay_bind(&sc, NULL, paths[p], user,
                                             "alice@example.net");
            enum relay_path foreign = relay_bind(&sc, NULL, paths[p], user,
                                                 "terri@contoso.com");
            assert_int_equal(own, paths[p]);
            assert_int_equal(foreign, refused[mode][p] ?
                             RELAY_SENDER_MISMATCH : paths[p]);
        }
        assert_int_equal(relay_bind(&sc, NULL, RELAY_LOCAL, NULL,
                                    "terri@contoso.com"), RELAY_LOCAL);
        assert_int_equal(relay_bind(&sc, NULL, RELAY_DENIED, NULL,
                                    "terri@contoso.com"), RELAY_DENIED);
    }
}

static void test_trusted_networks_need_one_of_our_domains(void **state)
{
    struct conf_errors errs = { 0 };
    struct smtpgate_conf sc = conf_with(NULL, 0, SENDER_BINDING_ALL);
    const char *path = write_file("@partner.example   carol\n"
                                  "noreply@service.example  web\n");
    struct sendermap *m = sendermap_load(path, &errs);

    (void)state;
    unlink(path);
    assert_non_null(m);
    /* No login: any address of a local domain or of the map. */
    assert_true(relay_sender_allowed(&sc, NULL, NULL, "anyone@example.net"));
    assert_true(relay_sender_allowed(&sc, NULL, NULL, "X@EXAMPLE.ORG"));
    assert_false(relay_sender_allowed(&sc, NULL, NULL, "terri@contoso.com"));
    assert_false(relay_sender_allowed(&sc, NULL, NULL, "x@sub.example.net"));
    assert_false(relay_sender_allowed(&sc, NULL, NULL, "no-at-sign"));
    assert_true(relay_sender_allowed(&sc, m, NULL, "bob@partner.example"));
    assert_true(relay_sender_allowed(&sc, m, NULL, "NoReply@service.example"));
    assert_false(relay_sender_allowed(&sc, m, NULL, "other@service.example"));
    assert_true(sendermap_lists(m, "x@PARTNER.example"));
    assert_false(sendermap_lists(m, "x@contoso.com"));
    assert_false(sendermap_lists(NULL, "x@partner.example"));
    /* Bounces of the provider's own hosts; never a user's. */
    assert_true(relay_sender_allowed(&sc, NULL, NULL, ""));
    assert_false(relay_sender_allowed(&sc, NULL, "alice", ""));
    /* A login on a trusted network is bound as a user. */
    assert_int_equal(relay_bind(&sc, m, RELAY_TRUSTED, "alice",
                                "bob@example.net"), RELAY_SENDER_MISMATCH);
    assert_int_equal(relay_bind(&sc, m, RELAY_TRUSTED, NULL,
                                "bob@example.net"), RELAY_TRUSTED);
    sendermap_free(m);
}

static void test_own_address_hint(void **state)
{
    struct smtpgate_conf sc = conf_with(NULL, 0, SENDER_BINDING_ALL);
    char buf[128];

    (void)state;
    relay_own_address(&sc, "alice", buf, sizeof(buf));
    assert_string_equal(buf, "alice@example.net");
    relay_own_address(&sc, "carol@remote.example", buf, sizeof(buf));
    assert_string_equal(buf, "carol@remote.example");
    relay_own_address(&sc, NULL, buf, sizeof(buf));
    assert_string_equal(buf, "an address @example.net");
    relay_own_address(&sc, "bad\r\nname", buf, sizeof(buf));
    assert_string_equal(buf, "bad??name@example.net");
    sc.local_domains.n = 0;
    relay_own_address(&sc, "alice", buf, sizeof(buf));
    assert_string_equal(buf, "your own address");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_order),
        cmocka_unit_test(test_grant_outcomes),
        cmocka_unit_test(test_sender_ownership),
        cmocka_unit_test(test_sender_map),
        cmocka_unit_test(test_sender_map_errors),
        cmocka_unit_test(test_binding_per_mode_and_path),
        cmocka_unit_test(test_trusted_networks_need_one_of_our_domains),
        cmocka_unit_test(test_own_address_hint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
