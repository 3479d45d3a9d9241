/*
 * What smtpgate counts for Prometheus (besides the core's metrics in
 * authbridge/metrics.h), and the set its /metrics serves. A new front
 * door adds its name to the "listener" and "via" lists. The README's
 * "Metrics" table lists them all.
 */
#ifndef SMTPGATE_COUNTERS_H
#define SMTPGATE_COUNTERS_H

#include <stddef.h>

#include "authbridge/metrics.h"

extern struct metric gate_build_info;
extern struct metric gate_connections;   /* listener */
extern struct metric gate_logins;        /* SMTP AUTH: method, result */
extern struct metric gate_decisions;     /* via, path */

extern struct metric *const gate_metrics[];
extern const size_t gate_metrics_n;

#endif
