/*
 * The metrics of the shared core, one definition each: what every daemon
 * has because it talks to Redis, writes grants, throttles logins and
 * reloads its configuration. The README's "Metrics" table lists them.
 */
#include "metrics.h"

#include <time.h>

struct metric metric_redis_up = METRIC_GAUGE("redis_up",
    "1 while the connection to the Redis master is established and "
    "answered, else 0.");

/* From 100 us (a pipelined HGET on loopback) to the largest timeout_ms
 * that makes sense; beyond that, +Inf. */
struct metric metric_redis_latency = METRIC_HISTOGRAM(
    "redis_request_duration_seconds",
    "Time from sending a Redis request to its answer (answered requests "
    "only; the others count in authbridge_redis_errors_total).",
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1, 2.5);

struct metric metric_redis_errors = METRIC_COUNTER("redis_errors_total",
    "Redis requests that failed: reply (Redis answered an error), timeout "
    "(no answer within redis.timeout_ms), unavailable (no connection).",
    METRIC_LABEL("kind", "reply", "timeout", "unavailable"));

struct metric metric_grants = METRIC_COUNTER("grants_total",
    "Grants written to Redis (logins, WHOSON LOGIN, retries), by result.",
    METRIC_LABEL("result", "written", "failed"));

struct metric metric_grant_cache = METRIC_COUNTER("grant_cache_lookups_total",
    "smtpgate's grant lookups: answered from memory (hit), read from Redis "
    "and kept (miss), or read with the cache off (Redis without tracking).",
    METRIC_LABEL("result", "hit", "miss", "off"));

struct metric metric_throttle_blocks = METRIC_COUNTER("throttle_blocks_total",
    "Logins refused by the failed-login throttle before any password "
    "check, by what reached its limit.",
    METRIC_LABEL("scope", "address", "user"));

struct metric metric_start_time = METRIC_GAUGE("process_start_time_seconds",
    "When the process started, in seconds since the Unix epoch.");

struct metric metric_reload_time = METRIC_GAUGE(
    "config_last_reload_success_timestamp_seconds",
    "When the configuration was last loaded successfully (start-up or "
    "SIGHUP), in seconds since the Unix epoch.");

struct metric metric_reload_ok = METRIC_GAUGE(
    "config_last_reload_successful",
    "1 if the last configuration load (start-up or SIGHUP) worked, 0 if "
    "it failed and the previous configuration stays in force.");

void metrics_started(void)
{
    long long now = (long long)time(NULL);

    metric_set(&metric_start_time, now, NULL, NULL);
    metric_set(&metric_reload_time, now, NULL, NULL);
    metric_set(&metric_reload_ok, 1, NULL, NULL);
}

void metrics_reloaded(bool ok)
{
    if (ok)
        metric_set(&metric_reload_time, (long long)time(NULL), NULL, NULL);
    metric_set(&metric_reload_ok, ok ? 1 : 0, NULL, NULL);
}
