#include "pop3d/counters.h"

#include "authbridge/util.h"
#include "authbridge/version.h"

struct metric pop3_build_info = METRIC_GAUGE("build_info",
    "Always 1; the labels say which program and version runs.",
    METRIC_LABEL("program", "pop3d"), METRIC_LABEL("version", AB_VERSION));

struct metric pop3_connections = METRIC_COUNTER("connections_total",
    "Connections accepted, by listener (before the connection caps).",
    METRIC_LABEL("listener", "pop3", "pop3s"));

/* result: the password check's outcome; "blocked" is the throttle
 * refusing before any check, "tempfail" a check that could not run. */
struct metric pop3_logins = METRIC_COUNTER("logins_total",
    "Login attempts, by method and result.",
    METRIC_LABEL("method", "user", "apop", "sasl-plain"),
    METRIC_LABEL("result", "ok", "failed", "blocked", "tempfail"));

struct metric *const pop3_metrics[] = {
    &pop3_build_info, METRICS_CORE, &pop3_connections, &pop3_logins,
};
const size_t pop3_metrics_n = AB_ARRAY_LEN(pop3_metrics);
