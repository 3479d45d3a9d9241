/*
 * Metrics (authbridge/metrics.c): counting by label values, the text
 * exposition, the naming rules, and the daemons' own sets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authbridge/metrics.h"
#include "pop3d/counters.h"
#include "smtpgate/counters.h"

/* The exposition of one metric, as a string (caller frees). */
static char *render(struct metric *m)
{
    struct evbuffer *b = evbuffer_new();
    struct metric *set[] = { m };
    size_t n;
    char *s;

    metrics_render(set, 1, b);
    n = evbuffer_get_length(b);
    s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

static void every_label_combination_is_there_from_the_start(void **state)
{
    struct metric m = METRIC_COUNTER("things_total", "Things.",
                                     METRIC_LABEL("kind", "a", "b"),
                                     METRIC_LABEL("result", "ok", "bad"));
    char *s = render(&m);

    (void)state;
    assert_string_equal(s,
        "# HELP authbridge_things_total Things.\n"
        "# TYPE authbridge_things_total counter\n"
        "authbridge_things_total{kind=\"a\",result=\"ok\"} 0\n"
        "authbridge_things_total{kind=\"a\",result=\"bad\"} 0\n"
        "authbridge_things_total{kind=\"b\",result=\"ok\"} 0\n"
        "authbridge_things_total{kind=\"b\",result=\"bad\"} 0\n");
    free(s);
}

static void counts_land_in_their_own_combination(void **state)
{
    struct metric m = METRIC_COUNTER("logins_total", "Logins.",
                                     METRIC_LABEL("method", "user", "sasl-plain"),
                                     METRIC_LABEL("result", "ok", "failed"));
    char *s;

    (void)state;
    metric_inc(&m, "SASL-PLAIN", "ok");      /* the code's spelling */
    metric_inc(&m, "sasl-plain", "ok");
    metric_add(&m, 5, "user", "failed");
    assert_int_equal(metric_value(&m, "sasl-plain", "ok"), 2);
    assert_int_equal(metric_value(&m, "user", "failed"), 5);
    assert_int_equal(metric_value(&m, "user", "ok"), 0);
    s = render(&m);
    assert_non_null(strstr(s, "{method=\"sasl-plain\",result=\"ok\"} 2\n"));
    assert_non_null(strstr(s, "{method=\"user\",result=\"failed\"} 5\n"));
    free(s);
}

static void an_unknown_label_value_counts_nowhere(void **state)
{
    struct metric m = METRIC_COUNTER("doors_total", "Doors.",
                                     METRIC_LABEL("via", "smtp", "policy"));

    (void)state;
    metric_inc(&m, "socketmap", NULL);       /* not in the list */
    metric_inc(&m, NULL, NULL);              /* a label left out */
    metric_inc(&m, "smtp", NULL);
    assert_int_equal(metric_value(&m, "smtp", NULL), 1);
    assert_int_equal(metric_value(&m, "policy", NULL), 0);
    assert_int_equal(metric_value(&m, "socketmap", NULL), 0);
    metric_inc(NULL, "smtp", NULL);          /* a metric not in use */
}

static void a_gauge_is_set_not_added(void **state)
{
    struct metric m = METRIC_GAUGE("up", "Up.");
    char *s;

    (void)state;
    metric_set(&m, 1, NULL, NULL);
    metric_set(&m, 1, NULL, NULL);
    assert_int_equal(metric_value(&m, NULL, NULL), 1);
    metric_set(&m, 0, NULL, NULL);
    s = render(&m);
    assert_string_equal(s, "# HELP authbridge_up Up.\n"
                           "# TYPE authbridge_up gauge\n"
                           "authbridge_up 0\n");
    free(s);
}

static void a_histogram_has_cumulative_buckets_inf_sum_and_count(void **state)
{
    struct metric m = METRIC_HISTOGRAM("wait_seconds", "Waits.",
                                       0.001, 0.01, 0.1);
    char *s;

    (void)state;
    metric_observe(&m, 0.0005);              /* <= 0.001 */
    metric_observe(&m, 0.001);               /* le is inclusive */
    metric_observe(&m, 0.05);                /* <= 0.1 */
    metric_observe(&m, 3.0);                 /* only +Inf */
    s = render(&m);
    assert_string_equal(s,
        "# HELP authbridge_wait_seconds Waits.\n"
        "# TYPE authbridge_wait_seconds histogram\n"
        "authbridge_wait_seconds_bucket{le=\"0.001\"} 2\n"
        "authbridge_wait_seconds_bucket{le=\"0.01\"} 2\n"
        "authbridge_wait_seconds_bucket{le=\"0.1\"} 3\n"
        "authbridge_wait_seconds_bucket{le=\"+Inf\"} 4\n"
        "authbridge_wait_seconds_sum 3.051500000\n"
        "authbridge_wait_seconds_count 4\n");
    assert_int_equal(metric_value(&m, NULL, NULL), 4);
    free(s);
}

static void help_and_label_values_are_escaped(void **state)
{
    struct metric m = METRIC_GAUGE("info", "A \\ and\na newline.",
                                   METRIC_LABEL("version", "1.0\"x\\y\nz"));
    char *s = render(&m);

    (void)state;
    assert_string_equal(s,
        "# HELP authbridge_info A \\\\ and\\na newline.\n"
        "# TYPE authbridge_info gauge\n"
        "authbridge_info{version=\"1.0\\\"x\\\\y\\nz\"} 0\n");
    free(s);
}

static void expect_refused(struct metric *m, const char *why)
{
    char err[256] = "";

    assert_int_equal(metric_check(m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, why));
}

static void definitions_that_break_the_rules_are_refused(void **state)
{
    struct metric no_total = METRIC_COUNTER("logins", "Logins.");
    struct metric gauge_total = METRIC_GAUGE("up_total", "Up.");
    struct metric bad_name = METRIC_GAUGE("9lives", "Cats.");
    struct metric no_help = METRIC_GAUGE("up", "");
    struct metric dup = METRIC_COUNTER("x_total", "X.",
                                       METRIC_LABEL("via", "smtp", "SMTP"));
    struct metric reserved = METRIC_COUNTER("x_total", "X.",
                                            METRIC_LABEL("__via", "smtp"));
    struct metric unsorted = METRIC_HISTOGRAM("w_seconds", "W.", 0.1, 0.01);
    struct metric big = METRIC_COUNTER("big_total", "Big.",
        METRIC_LABEL("a", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10",
                     "11", "12"),
        METRIC_LABEL("b", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10",
                     "11", "12"));
    struct metric fine = METRIC_COUNTER("fine_total", "Fine.",
                                        METRIC_LABEL("via", "smtp"));
    char err[256];

    (void)state;
    expect_refused(&no_total, "_total");
    expect_refused(&gauge_total, "_total");
    expect_refused(&bad_name, "metric name");
    expect_refused(&no_help, "help");
    expect_refused(&dup, "twice");
    expect_refused(&reserved, "label");
    expect_refused(&unsorted, "ascending");
    expect_refused(&big, "METRIC_CELLS_MAX");
    assert_int_equal(metric_check(&fine, err, sizeof(err)), 0);
}

/* Both daemons' sets: valid, each name once, nothing but samples and
 * comments in the output. */
static void check_set(struct metric *const *set, size_t n)
{
    struct evbuffer *b = evbuffer_new();
    char err[256], *line;
    size_t len;

    for (size_t i = 0; i < n; i++) {
        if (metric_check(set[i], err, sizeof(err)) < 0)
            fail_msg("%s", err);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(set[i]->name, set[j]->name);
    }
    metrics_render(set, n, b);
    while ((line = evbuffer_readln(b, &len, EVBUFFER_EOL_LF)) != NULL) {
        if (line[0] != '#') {
            assert_true(strncmp(line, METRIC_PREFIX, strlen(METRIC_PREFIX)) == 0);
            assert_non_null(strrchr(line, ' '));
        }
        free(line);
    }
    assert_int_equal(evbuffer_get_length(b), 0);   /* ends in a newline */
    evbuffer_free(b);
}

static void the_daemons_sets_follow_the_rules(void **state)
{
    (void)state;
    check_set(pop3_metrics, pop3_metrics_n);
    check_set(gate_metrics, gate_metrics_n);
}

/* ---- several threads at once ---------------------------------------------- */

#define THREADS 4
#define PER_THREAD 100000

static struct metric shared = METRIC_COUNTER("shared_total", "Shared.",
                                             METRIC_LABEL("kind", "a", "b"));
static struct metric shared_h = METRIC_HISTOGRAM("shared_seconds", "S.", 1);

static void *count_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metric_inc(&shared, i % 2 ? "a" : "b", NULL);
        metric_observe(&shared_h, 0.5);
    }
    return NULL;
}

static void counts_from_several_threads_all_land(void **state)
{
    pthread_t t[THREADS];

    (void)state;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, count_many, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(metric_value(&shared, "a", NULL), THREADS * PER_THREAD / 2);
    assert_int_equal(metric_value(&shared, "b", NULL), THREADS * PER_THREAD / 2);
    assert_int_equal(metric_value(&shared_h, NULL, NULL), THREADS * PER_THREAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_label_combination_is_there_from_the_start),
        cmocka_unit_test(counts_land_in_their_own_combination),
        cmocka_unit_test(an_unknown_label_value_counts_nowhere),
        cmocka_unit_test(a_gauge_is_set_not_added),
        cmocka_unit_test(a_histogram_has_cumulative_buckets_inf_sum_and_count),
        cmocka_unit_test(help_and_label_values_are_escaped),
        cmocka_unit_test(definitions_that_break_the_rules_are_refused),
        cmocka_unit_test(the_daemons_sets_follow_the_rules),
        cmocka_unit_test(counts_from_several_threads_all_land),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
