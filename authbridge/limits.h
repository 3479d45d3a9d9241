/*
 * Caps of the shared core's own doors and of the admin command, each with
 * its reason. The daemons' protocol caps are in pop3d/limits.h and
 * smtpgate/limits.h.
 */
#ifndef AB_LIMITS_H
#define AB_LIMITS_H

/* ---- the metrics endpoint (metrics_http.c) ---------------------------
 * Scraped by a Prometheus or two every few seconds: a handful of
 * connections is plenty, and anything more is someone else. */
#define METRICS_CONNS_MAX          16
#define METRICS_CONNS_PER_ADDR_MAX 4
/* A scrape's request line and headers (Prometheus sends about 300
 * bytes); a GET has no body. Larger: 400 and close. */
#define METRICS_HEADERS_MAX        8192
#define METRICS_BODY_MAX           1024
/* Seconds to read a request, write the answer, or idle between the
 * requests of a kept-alive connection (Prometheus reconnects). */
#define METRICS_TIMEOUT_S          10
#define METRICS_BACKLOG            64
/* accept() out of descriptors: pause the listener this long. */
#define METRICS_EMFILE_PAUSE_MS    100

/* ---- authbridge stats (cli_log.c) ---------------------------------------
 * A policy service entry is Postfix asking about a recipient the gate
 * already let through (the same client address and TCP port, passed by
 * XCLIENT, and the same recipient) only this soon after the gate's own:
 * the gate asks the MTA at once, or after connecting to it (at most
 * downstream_timeout, 300 s by default). Ports are reused, much later. */
#define STATS_ECHO_WINDOW_MS       (600 * 1000)

/* ---- authbridge why (cli_why.c) ----------------------------------------
 * The history of an address and its user is read newest first from each
 * stream (XREVRANGE ... COUNT), at most this many entries per stream, so
 * the command answers in the same time whether the streams hold a
 * thousand entries or their capped hundred thousand. */
#define WHY_SCAN_MAX               20000
#define WHY_SCAN_BATCH             1000
/* Entries about the address shown (text and JSON). */
#define WHY_SHOW_MAX               10

/* ---- the gate's grant cache (grant_cache.c) -----------------------------
 * Addresses whose lookups are kept: a provider's active customers at any
 * moment, with room (an entry is ~100 bytes and its user: at most a few
 * tens of MB); a full cache is emptied and refills from Redis. Every
 * answer is also re-read after a minute at the latest, whatever Redis
 * announced: a lost announcement costs a minute, never a day. */
#define GRANT_CACHE_MAX         65536
#define GRANT_CACHE_MAX_AGE_MS  60000

#endif
