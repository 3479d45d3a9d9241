/*
 * Metrics: counters, gauges and histograms for Prometheus, and their text
 * exposition (format 0.0.4), shared by every event loop of a process.
 *
 * A metric is a static object, defined once where its owner is, listing
 * every value each of its labels can take: so every combination is
 * exposed from the start (as 0, which rate() and alerts need), and no
 * label value can ever come from a client (no user names, no addresses:
 * those would make the series count unbounded). Adding a front door to a
 * "via" label is one more word in its list.
 *
 *     struct metric logins = METRIC_COUNTER("logins_total",
 *         "Login attempts, by method and result.",
 *         METRIC_LABEL("method", "user", "apop", "sasl-plain"),
 *         METRIC_LABEL("result", "ok", "failed", "blocked", "tempfail"));
 *
 *     metric_inc(&logins, "APOP", "ok");
 *
 * Values are C11 atomics updated with relaxed ordering: any thread or
 * event loop may count, nothing is locked, a scrape reads each value
 * whole (a histogram's buckets may be a few observations apart from each
 * other; its +Inf bucket always equals its _count). Names are given
 * without the "authbridge_" every one gets; counters end in "_total",
 * durations are in seconds (base units, Prometheus' rule).
 *
 * Label values are matched case-insensitively (the code's "SASL-PLAIN"
 * counts as "sasl-plain"). A value not in the list is a programming
 * error: it is counted nowhere and logged once per metric, never fatal
 * (a mail daemon does not stop for a statistic). Every metric_* call
 * accepts NULL.
 */
#ifndef AB_METRICS_H
#define AB_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define METRIC_PREFIX "authbridge_"
#define METRIC_LABELS_MAX 2
/* Values per metric: the product of its labels' value counts, or a
 * histogram's bounds + 2 (the +Inf bucket and the sum). */
#define METRIC_CELLS_MAX 128

enum metric_type {
    METRIC_TYPE_COUNTER,
    METRIC_TYPE_GAUGE,
    METRIC_TYPE_HISTOGRAM,
};

struct metric_label {
    const char *name;                   /* NULL: no such label */
    const char *const *values;          /* NULL-terminated, lower case */
};

struct metric {
    const char *name;                   /* without METRIC_PREFIX */
    const char *help;
    enum metric_type type;
    struct metric_label label[METRIC_LABELS_MAX];
    const double *bounds;               /* histograms: ascending upper bounds */
    unsigned nbounds;
    /* Counters and gauges: one per label combination, the last label
     * varying fastest. Histograms: per bucket (not cumulative), then the
     * +Inf bucket, then the sum in nanoseconds. */
    atomic_llong cell[METRIC_CELLS_MAX];
    atomic_bool warned;                 /* an unknown label value was logged */
};

#define METRIC_LABEL(label_name, ...) \
    { (label_name), (const char *const[]){ __VA_ARGS__, NULL } }

/* Up to METRIC_LABELS_MAX METRIC_LABEL(...) after the help text. */
#define METRIC_COUNTER(metric_name, help_text, ...) \
    { .name = (metric_name), .help = (help_text), \
      .type = METRIC_TYPE_COUNTER, .label = { __VA_ARGS__ } }
#define METRIC_GAUGE(metric_name, help_text, ...) \
    { .name = (metric_name), .help = (help_text), \
      .type = METRIC_TYPE_GAUGE, .label = { __VA_ARGS__ } }
/* Unlabelled; the bounds in seconds, ascending. */
#define METRIC_HISTOGRAM(metric_name, help_text, ...) \
    { .name = (metric_name), .help = (help_text), \
      .type = METRIC_TYPE_HISTOGRAM, \
      .bounds = (const double[]){ __VA_ARGS__ }, \
      .nbounds = sizeof((const double[]){ __VA_ARGS__ }) / sizeof(double) }

/* v1, v2: the labels' values in order, NULL for labels the metric lacks. */
void metric_add(struct metric *m, long long n, const char *v1, const char *v2);
void metric_inc(struct metric *m, const char *v1, const char *v2);
void metric_set(struct metric *m, long long value, const char *v1,
                const char *v2);
/* A histogram observation, in seconds. */
void metric_observe(struct metric *m, double seconds);

/* The value of one combination (tests, the daemons' status lines); 0
 * for an unknown one. A histogram gives its count. */
long long metric_value(const struct metric *m, const char *v1,
                       const char *v2);

/* A definition that breaks the rules above (name syntax, "_total", too
 * many cells, unsorted bounds): -1 and why. */
int metric_check(const struct metric *m, char *err, size_t errlen);

/*
 * Append the text exposition of a set of metrics to out: "# HELP" and
 * "# TYPE" for each, then one line per value; every line ends in "\n".
 */
struct evbuffer;
void metrics_render(struct metric *const *set, size_t n, struct evbuffer *out);

/* ---- the core library's own metrics (metrics_core.c) ------------------ */

extern struct metric metric_redis_up;            /* redis.c */
extern struct metric metric_redis_latency;       /* redis.c */
extern struct metric metric_redis_errors;        /* redis.c: kind */
extern struct metric metric_grants;              /* grant.c: result */
extern struct metric metric_grant_cache;         /* grant.c: smtpgate only */
extern struct metric metric_throttle_blocks;     /* throttle.c: scope */
extern struct metric metric_start_time;
extern struct metric metric_reload_time;
extern struct metric metric_reload_ok;

/* Every daemon's exposed set starts with these. */
#define METRICS_CORE \
    &metric_redis_up, &metric_redis_latency, &metric_redis_errors, \
    &metric_grants, &metric_throttle_blocks, &metric_start_time, \
    &metric_reload_time, &metric_reload_ok

/* At start-up, once the configuration is loaded: the start time, and the
 * configuration counts as the last successful load. */
void metrics_started(void);
/* After SIGHUP: the reload's outcome (its time only when it worked). */
void metrics_reloaded(bool ok);

#endif
