/*
 * One asynchronous Redis connection per process (hiredis + libevent),
 * shared by every session: requests from many clients are pipelined on it,
 * so throughput is not bound by round trips.
 *
 * Contract, in the hiredis style:
 *   - every request's callback runs exactly once, never from inside the
 *     call that queued it;
 *   - the callback gets the reply, or NULL meaning "unavailable": Redis is
 *     down, did not answer within redis.timeout_ms, or answered with an
 *     error (logged here);
 *   - the connection re-establishes itself with back-off (50 ms doubling to
 *     500 ms); with redis.sentinels set, the master is found through the
 *     sentinels and a failover (disconnect, READONLY, +switch-master) makes
 *     it ask again. Writes never go to a replica.
 */
#ifndef AB_REDIS_H
#define AB_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

struct event_base;
struct redis_conf;
struct rconn;

typedef void rconn_cb(redisReply *reply, void *arg);

/* One command's arguments (binary safe). */
struct rcmd {
    int argc;
    const char **argv;
    const size_t *argvlen;
};

struct rconn *rconn_new(struct event_base *base, const struct redis_conf *conf);
void rconn_free(struct rconn *rc);

/* One command. */
void rconn_command(struct rconn *rc, rconn_cb *cb, void *arg,
                   const struct rcmd *cmd);

/* MULTI, the commands, EXEC in one round trip; cb gets EXEC's array. */
void rconn_transaction(struct rconn *rc, rconn_cb *cb, void *arg,
                       const struct rcmd *cmds, int ncmds);

/*
 * A Lua script, sent as EVALSHA (the body crosses the network once). A
 * NOSCRIPT answer (Redis restarted, a failover to a master that never saw
 * it, SCRIPT FLUSH) sends the request once more as EVAL, which loads it,
 * within the same deadline. Every key the script touches is in its KEYS.
 */
struct rscript {
    const char *body;
    char sha1[41];
};

/* Once, before use: the body's SHA-1, as Redis names scripts. */
void rscript_init(struct rscript *s, const char *body);

/* argv: nkeys keys, then the arguments (NUL-terminated strings, copied);
 * the script must outlive the call. */
void rconn_eval(struct rconn *rc, rconn_cb *cb, void *arg,
                const struct rscript *s, int nkeys, int argc,
                const char *const *argv);

/*
 * Server-assisted client-side caching (Redis 6+ CLIENT TRACKING): keys
 * read on the data connection are remembered by Redis, which announces
 * every change of them. hiredis 0.14 speaks RESP2 only, so the
 * announcements come in the REDIRECT form, on a second connection
 * subscribed to __redis__:invalidate, to the same server. fn(key, len)
 * runs for each changed key, fn(NULL, 0) when everything read so far may
 * have changed unannounced: either connection dropped (a failover, a
 * restart), tracking (re)started, Redis flushed. A read's answer may be
 * kept only if rconn_tracking() held and rconn_track_epoch() did not
 * change from before it was sent to after it came back.
 */
typedef void rconn_inval_fn(const char *key, size_t len, void *arg);
void rconn_track(struct rconn *rc, rconn_inval_fn *fn, void *arg);
bool rconn_tracking(const struct rconn *rc);
uint64_t rconn_track_epoch(const struct rconn *rc);

/* True when a connection is established and answered. */
bool rconn_is_up(const struct rconn *rc);

/* Called (from the loop) each time the connection becomes usable. */
void rconn_on_up(struct rconn *rc, void (*fn)(void *arg), void *arg);

/*
 * Redis as the daemon knows it: UNKNOWN until the first attempt ended
 * (connected, or failed: refused, timed out, no sentinel answered), then
 * UP or DOWN. Every attempt ends within redis.timeout_ms per step (at
 * least a second for a connect), so UNKNOWN does not last.
 */
enum rconn_health { RCONN_UNKNOWN, RCONN_UP, RCONN_DOWN };
enum rconn_health rconn_health(const struct rconn *rc);

/* Called (from the loop, or from inside rconn_new() before it returns,
 * which is why callers read rconn_health() after registering) each time
 * the health changes: once per outage, once per recovery. */
void rconn_on_change(struct rconn *rc, void (*fn)(void *arg), void *arg);

/* The loop the connection runs on. */
struct event_base *redis_base(const struct rconn *rc);

/* Requests queued and not yet answered (for tests and stats). */
size_t rconn_pending(const struct rconn *rc);

/*
 * Synchronous connection for the admin command: finds the master through
 * the sentinels if configured, then AUTH and SELECT. NULL with a message
 * in err on failure.
 */
redisContext *rconn_sync_connect(const struct redis_conf *conf, char *err,
                                 size_t errlen);

#endif
