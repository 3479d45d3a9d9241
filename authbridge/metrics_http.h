/*
 * The metrics endpoint: GET /metrics on every metrics_listen address, in
 * the Prometheus text format 0.0.4, served by libevent's evhttp on the
 * daemon's own loop. Every other path is 404; methods other than GET
 * and HEAD are refused (501, as evhttp answers them).
 *
 * Bounded like every front door (authbridge/limits.h): request size,
 * connections in all and per address, a timeout for reading, writing and
 * idling; accept() out of descriptors pauses the listener instead of
 * spinning. A scrape costs one render of the set (a few KiB).
 */
#ifndef AB_METRICS_HTTP_H
#define AB_METRICS_HTTP_H

#include <stddef.h>

struct endpoint_list;
struct event_base;
struct metric;
struct metrics_http;

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Bind every endpoint of l and serve set[0..n) (which must outlive the
 * server). NULL with a reason in err when an endpoint cannot be bound or
 * a metric breaks the rules (metric_check). */
struct metrics_http *metrics_http_new(struct event_base *base,
                                      const struct endpoint_list *l,
                                      struct metric *const *set, size_t n,
                                      char *err, size_t errlen);
/* Close the listeners and every connection. */
void metrics_http_free(struct metrics_http *mh);

#endif
