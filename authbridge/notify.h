/*
 * The service manager's notification protocol (sd_notify(3)) without
 * libsystemd: one datagram per message to the AF_UNIX socket named by
 * $NOTIFY_SOCKET, a path ("/run/systemd/notify") or an abstract name
 * ("@name"). Without the variable notify_new() returns NULL and every
 * call below does nothing, so a daemon behaves the same by hand, under
 * another supervisor and under systemd.
 *
 * What the daemons send (Type=notify units):
 *   READY=1                 listening, and the first Redis attempt ended
 *                           (up or down: a daemon without Redis still
 *                           serves, so it is ready either way)
 *   RELOADING=1, then READY=1   around a SIGHUP reload, failed or not
 *   STOPPING=1              when SIGTERM starts the graceful stop
 *   STATUS=...              the daemon's live figures, the Redis state
 *                           and a failed reload, sent again when they
 *                           change (checked every NOTIFY_STATUS_MS)
 */
#ifndef AB_NOTIFY_H
#define AB_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct notify;
struct rconn;

/* The daemon's own figures for STATUS=, e.g. "3 sessions". */
typedef void notify_status_fn(void *arg, char *buf, size_t len);

/* NULL when $NOTIFY_SOCKET is unset (or unusable: logged). */
struct notify *notify_new(struct event_base *base, notify_status_fn *fn,
                          void *arg);

/* Once listening: READY=1 now if rc's health is known, else as soon as
 * it is; then STATUS= updates until notify_free(). */
void notify_ready_when_known(struct notify *n, struct rconn *rc);

/* SIGHUP: RELOADING=1 first, then READY=1 with ok saying whether the new
 * configuration is in force (a failure shows in STATUS=). */
void notify_reloading(struct notify *n);
void notify_reloaded(struct notify *n, bool ok);

/* SIGTERM: STOPPING=1. */
void notify_stopping(struct notify *n);

/* Before the Redis connection is freed. */
void notify_free(struct notify *n);

#endif
