#include "smtpgate/counters.h"

#include "authbridge/util.h"
#include "authbridge/version.h"

struct metric gate_build_info = METRIC_GAUGE("build_info",
    "Always 1; the labels say which program and version runs.",
    METRIC_LABEL("program", "smtpgate"), METRIC_LABEL("version", AB_VERSION));

struct metric gate_connections = METRIC_COUNTER("connections_total",
    "Connections accepted, by listener (before the connection caps).",
    METRIC_LABEL("listener", "smtp", "smtps", "policy", "whoson",
                 "socketmap", "dovecot"));

struct metric gate_logins = METRIC_COUNTER("logins_total",
    "SMTP AUTH attempts, by method and result.",
    METRIC_LABEL("method", "plain", "login"),
    METRIC_LABEL("result", "ok", "failed", "blocked", "tempfail"));

/* path: relay.h's paths, and "none" for a policy, WHOSON or socketmap
 * answer that found no grant (the MTA decides; it may still be local
 * mail). Socketmap keys that are no address count nowhere here. */
struct metric gate_decisions = METRIC_COUNTER("relay_decisions_total",
    "Relay decisions, by front door and path.",
    METRIC_LABEL("via", "smtp", "policy", "whoson", "socketmap"),
    METRIC_LABEL("path", "local", "trusted", "auth", "grant", "denied",
                 "tempfail", "sender_mismatch", "none"));

struct metric *const gate_metrics[] = {
    &gate_build_info, METRICS_CORE, &gate_connections, &gate_logins,
    &gate_decisions, &metric_grant_cache,
};
const size_t gate_metrics_n = AB_ARRAY_LEN(gate_metrics);
