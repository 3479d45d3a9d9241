/*
 * The grant store: relay rights in Redis (schema in README "Redis schema").
 *
 *   <prefix>grant:<addr>  hash  user since renewed node method tls logins
 *                               TTL = grant.ttl, renewed by every login
 *   <prefix>log           stream, one entry per grant and revocation
 *   <prefix>decisions     stream, one entry per relay decision (sampled
 *                         per address for refusals: relay.c)
 *
 * Every call completes exactly once, asynchronously, with a result or with
 * GRANT_UNAVAILABLE within redis.timeout_ms. A put is one round trip:
 * MULTI, HSETNX since, HSET fields, HINCRBY logins, EXPIRE, XADD, EXEC.
 */
#ifndef AB_GRANT_H
#define AB_GRANT_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "redis.h"

struct grant_store;

enum grant_status {
    GRANT_OK,             /* put/revoke done, or get found a live grant */
    GRANT_NONE,           /* get: no grant for that address */
    GRANT_UNAVAILABLE,    /* Redis down, slow or erroring */
};

/* What a login writes. */
struct grant_info {
    struct ab_addr addr;
    const char *user;
    const char *method;   /* USER, APOP, SASL-PLAIN, WHOSON, ADMIN */
    bool tls;
    const char *node;     /* the login server, when not this program
                           * (a Dovecot); NULL: the store's node */
};

struct grant_settings {
    const char *prefix;
    const char *node;
    unsigned ttl;
    unsigned ipv6_prefix;
    unsigned log_maxlen;          /* <prefix>log: grants and revocations */
    unsigned decisions_maxlen;    /* <prefix>decisions: relay decisions */
    unsigned replicas;    /* WAIT for this many replicas after a put */
    unsigned timeout_ms;
};

/* Longest key: prefix (at most GRANT_PREFIX_MAX) + "grant:" + address. */
#define GRANT_KEY_MAX 256
#define GRANT_PREFIX_MAX 128

/* "<prefix>grant:<canonical addr or v6 prefix>"; -1 if it does not fit. */
int grant_key(const char *prefix, const struct ab_addr *a, unsigned ipv6_prefix,
              char *out, size_t outlen);

/*
 * The exact commands of a write, shared by the async store and the admin
 * command so both write the same schema. Pure: no I/O. The rcmd array
 * points into the struct; hiredis copies it when the commands are queued.
 */
struct grant_cmds {
    struct rcmd cmd[5];
    int n;
    const char *argv[5][24];
    /* A put as one script (grant_put_script): 2 keys, then its ARGV. */
    const char *script_argv[10];
    int script_argc;
    char key[GRANT_KEY_MAX], logkey[GRANT_KEY_MAX];
    char when[24], ttl[16], tls[2], maxlen[16];
};

/*
 * A grant write as one Lua script, what the daemons send (EVALSHA): the
 * same commands as the transaction below, in one command instead of
 * seven (MULTI ... EXEC), so one Redis takes that many more grants a
 * second. KEYS: the grant, the log stream; ARGV: user, time, node,
 * method, tls, ttl, the stream's MAXLEN, the address. It returns the
 * login count. The admin command, which links no libcrypto to name the
 * script, sends the transaction: both write exactly the same.
 */
extern const char grant_put_script[];

/* Body of a grant transaction: HSETNX since, HSET, HINCRBY, EXPIRE, XADD;
 * and script_argv for grant_put_script. */
void grant_cmds_put(struct grant_cmds *c, const struct grant_settings *s,
                    const struct grant_info *g, long long when, unsigned ttl);
/* Body of a revocation of `key` (a full grant key): DEL, XADD. */
void grant_cmds_revoke(struct grant_cmds *c, const struct grant_settings *s,
                       const char *key, const char *by);

typedef void grant_done_cb(enum grant_status st, void *arg);
/* user is valid during the call only; ttl in seconds (-1 if unknown). */
typedef void grant_get_cb(enum grant_status st, const char *user, long long ttl,
                          void *arg);

struct grant_store *grant_store_new(struct rconn *rc,
                                    const struct grant_settings *s);
/* Free after rconn_free(rc): freeing the connection completes the calls
 * still pending (UNAVAILABLE), and those completions use the store. */
void grant_store_free(struct grant_store *gs);

void grant_store_put(struct grant_store *gs, const struct grant_info *g,
                     grant_done_cb *cb, void *arg);

/* The user and remaining TTL (one round trip: MULTI HGET TTL EXEC). */
void grant_store_get(struct grant_store *gs, const struct ab_addr *a,
                     grant_get_cb *cb, void *arg);

/*
 * Keep lookups in memory (hits and misses), exact through Redis's
 * client-side caching (grant_cache.h, redis.h rconn_track): smtpgate,
 * which asks about the same addresses again and again. Without tracking
 * (Redis before 6, the invalidation connection down) every lookup goes
 * to Redis, as without the cache.
 */
void grant_store_cache(struct grant_store *gs);
/* Forget every lookup kept (SIGHUP). */
void grant_store_cache_clear(struct grant_store *gs);

/* After rconn_free(): answer the lookups the cache answered and the loop
 * has not delivered yet, so their owners can go. */
void grant_store_stop(struct grant_store *gs);

/* The user only (HGET): the relay decision's hot path. ttl is -1. */
void grant_store_lookup(struct grant_store *gs, const struct ab_addr *a,
                        grant_get_cb *cb, void *arg);

/* DEL + a "revoke" log entry. */
void grant_store_revoke(struct grant_store *gs, const struct ab_addr *a,
                        const char *by, grant_done_cb *cb, void *arg);

/*
 * Append an entry to the decisions stream (<prefix>decisions), fire and
 * forget: npairs pairs of field and value in fields (a NULL value is
 * written empty). "event" and "node" are added here. Relay decisions have
 * a stream of their own so that no flood of them, which any client can
 * cause, evicts the grants and revocations of <prefix>log.
 */
void grant_store_log_decision(struct grant_store *gs, const char *event,
                              const char *const *fields, size_t npairs);

/*
 * A put that failed (Redis unavailable) is retried in the background until
 * it lands or its TTL would have run out; the queue holds the newest grant
 * per address and is bounded (oldest dropped, logged).
 */
void grant_store_retry_later(struct grant_store *gs, const struct grant_info *g);
size_t grant_store_retry_pending(const struct grant_store *gs);

#endif
