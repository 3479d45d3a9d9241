/*
 * What pop3d counts for Prometheus (besides the core's metrics in
 * authbridge/metrics.h), and the set its /metrics serves. The README's
 * "Metrics" table lists them all.
 */
#ifndef POP3D_COUNTERS_H
#define POP3D_COUNTERS_H

#include <stddef.h>

#include "authbridge/metrics.h"

extern struct metric pop3_build_info;
extern struct metric pop3_connections;   /* listener: pop3, pop3s */
extern struct metric pop3_logins;        /* method, result */

extern struct metric *const pop3_metrics[];
extern const size_t pop3_metrics_n;

#endif
