#include "grant.h"
#include "grant_cache.h"
#include "limits.h"
#include "hmap.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#define RETRY_MAX        10000 /* grants remembered while Redis is away */
#define RETRY_TICK_MS    1000
#define LOG_FIELDS_MAX   16    /* field/value pairs in one log entry */

struct retry {
    TAILQ_ENTRY(retry) link;
    char key[GRANT_KEY_MAX];
    struct ab_addr addr;
    char *user, *method, *node;   /* node NULL: the store's */
    bool tls;
    long long login_time;         /* wall clock, for since/renewed */
    uint64_t login_ms;            /* monotonic, for the TTL left */
    bool in_flight;
    bool superseded;              /* a newer login for the key replaced it */
};

struct grant_store {
    struct rconn *rc;
    struct grant_settings settings;   /* strings owned */
    char decisionkey[GRANT_KEY_MAX];
    char decisions_maxlen[16];
    struct hmap *retry_by_key;
    TAILQ_HEAD(, retry) retries;
    struct event *retry_ev;
    struct rscript put_script;        /* grant_put_script, by its SHA-1 */
    struct grant_cache *cache;        /* NULL unless grant_store_cache() */
    struct event *answers_ev;         /* hits answered from the loop */
    TAILQ_HEAD(, cached_answer) answers;
};

/* A lookup answered from the cache, waiting for its turn on the loop:
 * callbacks never run inside the call that asked (redis.h's contract). */
struct cached_answer {
    TAILQ_ENTRY(cached_answer) link;
    grant_get_cb *cb;
    void *arg;
    char *user;                       /* NULL: no grant */
};

/* A lookup that goes to Redis while the cache is on: HGET, then for a
 * grant found its PTTL (a change between the two is announced, and that
 * spoils the ticket). */
struct cached_read {
    struct grant_store *gs;
    grant_get_cb *cb;
    void *arg;
    char key[GRANT_KEY_MAX];
    struct gcache_ticket ticket;
    uint64_t track_epoch;
    char *user;                       /* from the HGET */
};

struct put_req {
    struct grant_store *gs;
    grant_done_cb *cb;
    void *arg;
    struct retry *retry;          /* when this put is a background retry */
};

struct get_req {
    grant_get_cb *cb;
    void *arg;
};

/* The address part of a key (the schema's own copy: grant_cmds.c). */
static const char *addr_of_key(const char *prefix, const char *key)
{
    return key + strlen(prefix) + strlen("grant:");
}

/* ---- put ------------------------------------------------------------------ */

static bool exec_ok(const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return false;             /* NULL, or a nil EXEC (aborted) */
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ERROR) {
            log_err("event=grant_write_error reply=%s",
                    log_escn(r->element[i]->str, r->element[i]->len));
            return false;
        }
    return true;
}

/* The script's answer: the login count (an error reply is NULL here,
 * logged by the connection). */
static bool put_ok(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_INTEGER;
}

static void put_finish(struct put_req *pr, enum grant_status st);

static void wait_reply(redisReply *r, void *arg)
{
    struct put_req *pr = arg;
    unsigned wanted = pr->gs->settings.replicas;

    /* The connection lost while waiting: the master may have died with
     * the grant not yet on a replica, so it is written again (the caller
     * retries it on the new master; at worst `logins` counts one more). */
    if (r == NULL) {
        log_warn("event=grant_wait_lost wanted=%u action=retry", wanted);
        put_finish(pr, GRANT_UNAVAILABLE);
        return;
    }
    /* The grant is on a live master: too few replicas is worth a
     * warning, not a failed login. */
    if (r->type != REDIS_REPLY_INTEGER || r->integer < (long long)wanted)
        log_warn("event=grant_wait_short replicas=%lld wanted=%u",
                 r->type == REDIS_REPLY_INTEGER ? r->integer : -1LL, wanted);
    put_finish(pr, GRANT_OK);
}

static void put_reply(redisReply *r, void *arg)
{
    struct put_req *pr = arg;
    const struct grant_settings *s = &pr->gs->settings;
    char n[16], t[16];

    if (!put_ok(r)) {
        metric_inc(&metric_grants, "failed", NULL);
        put_finish(pr, GRANT_UNAVAILABLE);
        return;
    }
    metric_inc(&metric_grants, "written", NULL);
    if (s->replicas == 0) {
        put_finish(pr, GRANT_OK);
        return;
    }
    /* WAIT on the same connection: it counts this connection's writes. */
    snprintf(n, sizeof(n), "%u", s->replicas);
    snprintf(t, sizeof(t), "%u", s->timeout_ms / 2);
    const char *argv[] = { "WAIT", n, t };
    const struct rcmd cmd = { 3, argv, NULL };
    rconn_command(pr->gs->rc, wait_reply, pr, &cmd);
}

static void put_send(struct grant_store *gs, const struct grant_info *g,
                     long long when, unsigned ttl, struct put_req *pr)
{
    struct grant_cmds c;

    grant_cmds_put(&c, &gs->settings, g, when, ttl);
    rconn_eval(gs->rc, put_reply, pr, &gs->put_script, 2, c.script_argc,
               c.script_argv);
}

void grant_store_put(struct grant_store *gs, const struct grant_info *g,
                     grant_done_cb *cb, void *arg)
{
    struct put_req *pr = ab_calloc(1, sizeof(*pr));

    pr->gs = gs;
    pr->cb = cb;
    pr->arg = arg;
    put_send(gs, g, (long long)time(NULL), gs->settings.ttl, pr);
}

/* ---- background retries ---------------------------------------------------- */

static void retry_free(struct retry *rt)
{
    free(rt->user);
    free(rt->method);
    free(rt->node);
    free(rt);
}

static void retry_remove(struct grant_store *gs, struct retry *rt)
{
    TAILQ_REMOVE(&gs->retries, rt, link);
    if (!rt->superseded)
        hmap_del(gs->retry_by_key, rt->key);
    retry_free(rt);
}

static const char *retry_addr(const struct grant_store *gs,
                              const struct retry *rt)
{
    return addr_of_key(gs->settings.prefix, rt->key);
}

static void put_finish(struct put_req *pr, enum grant_status st)
{
    struct retry *rt = pr->retry;

    if (rt != NULL) {
        rt->in_flight = false;
        if (st == GRANT_OK)
            log_info("event=grant_retried addr=%s user=%s",
                     retry_addr(pr->gs, rt), log_esc(rt->user));
        if (st == GRANT_OK || rt->superseded)
            retry_remove(pr->gs, rt);
    }
    if (pr->cb)
        pr->cb(st, pr->arg);
    free(pr);
}

static void retry_arm(struct grant_store *gs)
{
    struct timeval tv = { RETRY_TICK_MS / 1000, (RETRY_TICK_MS % 1000) * 1000 };

    if (!TAILQ_EMPTY(&gs->retries) && !evtimer_pending(gs->retry_ev, NULL))
        evtimer_add(gs->retry_ev, &tv);
}

static void retry_one(struct grant_store *gs, struct retry *rt, uint64_t age_s)
{
    struct put_req *pr = ab_calloc(1, sizeof(*pr));
    struct grant_info g = { rt->addr, rt->user, rt->method, rt->tls,
                            rt->node };

    pr->gs = gs;
    pr->retry = rt;
    rt->in_flight = true;
    /* The grant keeps the lifetime it had at login, not a fresh one. */
    put_send(gs, &g, rt->login_time, gs->settings.ttl - (unsigned)age_s, pr);
}

static void retry_tick(evutil_socket_t fd, short what, void *arg)
{
    struct grant_store *gs = arg;
    struct retry *rt, *next;
    uint64_t now = ab_now_ms();

    (void)fd;
    (void)what;
    for (rt = TAILQ_FIRST(&gs->retries); rt; rt = next) {
        uint64_t age_s = (now - rt->login_ms) / 1000;
        next = TAILQ_NEXT(rt, link);
        if (rt->in_flight)
            continue;
        if (age_s >= gs->settings.ttl) {
            log_warn("event=grant_retry_expired addr=%s user=%s",
                     retry_addr(gs, rt), log_esc(rt->user));
            retry_remove(gs, rt);
            continue;
        }
        if (rconn_is_up(gs->rc))
            retry_one(gs, rt, age_s);
    }
    retry_arm(gs);
}

static void retry_on_up(void *arg)
{
    struct grant_store *gs = arg;

    if (!TAILQ_EMPTY(&gs->retries))
        event_active(gs->retry_ev, 0, 0);
}

/*
 * Make room: drop the oldest queued grant. One whose put is on the wire is
 * only marked, like a superseded one: that put still points at it, and
 * put_finish() frees it when it lands.
 */
static void retry_drop_oldest(struct grant_store *gs)
{
    struct retry *rt;

    TAILQ_FOREACH(rt, &gs->retries, link)
        if (!rt->superseded)
            break;
    if (rt == NULL)
        return;
    log_warn("event=grant_retry_dropped addr=%s reason=queue_full",
             retry_addr(gs, rt));
    if (rt->in_flight) {
        rt->superseded = true;
        hmap_del(gs->retry_by_key, rt->key);
    } else {
        retry_remove(gs, rt);
    }
}

void grant_store_retry_later(struct grant_store *gs, const struct grant_info *g)
{
    struct retry *rt = ab_calloc(1, sizeof(*rt)), *old;

    if (grant_key(gs->settings.prefix, &g->addr, gs->settings.ipv6_prefix,
                  rt->key, sizeof(rt->key)) < 0)
        fatalx("grant key does not fit in %d bytes", GRANT_KEY_MAX);
    rt->addr = g->addr;
    rt->user = ab_strdup(g->user);
    rt->method = ab_strdup(g->method);
    rt->node = g->node ? ab_strdup(g->node) : NULL;
    rt->tls = g->tls;
    rt->login_time = (long long)time(NULL);
    rt->login_ms = ab_now_ms();
    old = hmap_get(gs->retry_by_key, rt->key);
    if (old != NULL && !old->in_flight) {
        retry_remove(gs, old);    /* the newer login wins */
    } else if (old != NULL) {
        old->superseded = true;   /* let the flight land, then drop it */
        hmap_del(gs->retry_by_key, old->key);
    }
    if (hmap_count(gs->retry_by_key) >= RETRY_MAX)
        retry_drop_oldest(gs);
    TAILQ_INSERT_TAIL(&gs->retries, rt, link);
    hmap_put(gs->retry_by_key, rt->key, rt);
    retry_arm(gs);
}

size_t grant_store_retry_pending(const struct grant_store *gs)
{
    return hmap_count(gs->retry_by_key);
}

/* ---- get / lookup ---------------------------------------------------------- */

static void get_reply(redisReply *r, void *arg)
{
    struct get_req *gr = arg;
    const redisReply *user, *ttl;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        gr->cb(GRANT_UNAVAILABLE, NULL, -1, gr->arg);
        free(gr);
        return;
    }
    user = r->element[0];
    ttl = r->element[1];
    /* TTL -2: expired between the two commands; treat as none. */
    if (user->type != REDIS_REPLY_STRING || ttl->type != REDIS_REPLY_INTEGER ||
        ttl->integer == -2)
        gr->cb(GRANT_NONE, NULL, -1, gr->arg);
    else
        gr->cb(GRANT_OK, user->str, ttl->integer, gr->arg);
    free(gr);
}

static struct get_req *get_req_new(grant_get_cb *cb, void *arg)
{
    struct get_req *gr = ab_malloc(sizeof(*gr));

    gr->cb = cb;
    gr->arg = arg;
    return gr;
}

static void store_key(const struct grant_store *gs, const struct ab_addr *a,
                      char out[GRANT_KEY_MAX])
{
    if (grant_key(gs->settings.prefix, a, gs->settings.ipv6_prefix, out,
                  GRANT_KEY_MAX) < 0)
        fatalx("grant key does not fit in %d bytes", GRANT_KEY_MAX);
}

void grant_store_get(struct grant_store *gs, const struct ab_addr *a,
                     grant_get_cb *cb, void *arg)
{
    char key[GRANT_KEY_MAX];

    store_key(gs, a, key);
    const char *hget[] = { "HGET", key, "user" };
    const char *ttl[] = { "TTL", key };
    const struct rcmd cmds[] = { { 3, hget, NULL }, { 2, ttl, NULL } };
    rconn_transaction(gs->rc, get_reply, get_req_new(cb, arg), cmds, 2);
}

static void lookup_reply(redisReply *r, void *arg)
{
    struct get_req *gr = arg;

    if (r == NULL)
        gr->cb(GRANT_UNAVAILABLE, NULL, -1, gr->arg);
    else if (r->type == REDIS_REPLY_STRING)
        gr->cb(GRANT_OK, r->str, -1, gr->arg);
    else
        gr->cb(GRANT_NONE, NULL, -1, gr->arg);
    free(gr);
}

/* ---- the cache ---------------------------------------------------------- */

static void answers_cb(evutil_socket_t fd, short what, void *arg)
{
    struct grant_store *gs = arg;
    TAILQ_HEAD(, cached_answer) list = TAILQ_HEAD_INITIALIZER(list);
    struct cached_answer *ca;

    (void)fd;
    (void)what;
    /* Detach first: callbacks may look up again. */
    TAILQ_CONCAT(&list, &gs->answers, link);
    while ((ca = TAILQ_FIRST(&list)) != NULL) {
        TAILQ_REMOVE(&list, ca, link);
        ca->cb(ca->user ? GRANT_OK : GRANT_NONE, ca->user, -1, ca->arg);
        free(ca->user);
        free(ca);
    }
}

static void answer_later(struct grant_store *gs, const char *user,
                         grant_get_cb *cb, void *arg)
{
    struct cached_answer *ca = ab_malloc(sizeof(*ca));

    ca->cb = cb;
    ca->arg = arg;
    ca->user = user ? ab_strdup(user) : NULL;
    TAILQ_INSERT_TAIL(&gs->answers, ca, link);
    event_active(gs->answers_ev, 0, 0);
}

static void on_inval(const char *key, size_t len, void *arg)
{
    struct grant_store *gs = arg;
    char k[GRANT_KEY_MAX];

    if (key == NULL) {
        gcache_invalidate(gs->cache, NULL);
        return;
    }
    if (len >= sizeof(k))
        return;                       /* not one of our keys */
    memcpy(k, key, len);
    k[len] = '\0';
    gcache_invalidate(gs->cache, k);
}

void grant_store_cache(struct grant_store *gs)
{
    if (gs->cache != NULL)
        return;
    gs->cache = gcache_new(GRANT_CACHE_MAX, GRANT_CACHE_MAX_AGE_MS);
    rconn_track(gs->rc, on_inval, gs);
}

void grant_store_cache_clear(struct grant_store *gs)
{
    if (gs->cache != NULL)
        gcache_invalidate(gs->cache, NULL);
}

/* Keep what the read found, if nothing overtook it. */
static void keep(struct cached_read *cr, const char *user, uint64_t expires)
{
    struct grant_store *gs = cr->gs;

    if (rconn_tracking(gs->rc) && rconn_track_epoch(gs->rc) == cr->track_epoch)
        gcache_put(gs->cache, cr->key, cr->ticket, user, ab_now_ms(),
                   expires);
}

/* A grant's expiry, to keep it no longer than it lives: PTTL -1 is a
 * grant without one (written by hand), kept as long as any answer; -2,
 * gone meanwhile (its deletion is announced anyway). */
static void read_pttl(redisReply *r, void *arg)
{
    struct cached_read *cr = arg;

    if (r != NULL && r->type == REDIS_REPLY_INTEGER &&
        (r->integer > 0 || r->integer == -1))
        keep(cr, cr->user, r->integer > 0 ?
             ab_now_ms() + (uint64_t)r->integer : 0);
    free(cr->user);
    free(cr);
}

/* The answer goes out at once; a grant found is kept once its expiry is
 * known (a second round trip, only the first time an address is found:
 * a miss costs what a lookup always cost, one HGET). */
static void read_user(redisReply *r, void *arg)
{
    struct cached_read *cr = arg;
    struct grant_store *gs = cr->gs;

    if (r == NULL) {
        cr->cb(GRANT_UNAVAILABLE, NULL, -1, cr->arg);
    } else if (r->type != REDIS_REPLY_STRING) {
        keep(cr, NULL, 0);
        cr->cb(GRANT_NONE, NULL, -1, cr->arg);
    } else {
        cr->cb(GRANT_OK, r->str, -1, cr->arg);
        cr->user = ab_strdup(r->str);
        const char *pttl[] = { "PTTL", cr->key };
        const struct rcmd cmd = { 2, pttl, NULL };
        rconn_command(gs->rc, read_pttl, cr, &cmd);
        return;
    }
    free(cr);
}

/* The cache on and tracking live: answer from it, or read and keep. */
static bool lookup_cached(struct grant_store *gs, const char *key,
                          grant_get_cb *cb, void *arg)
{
    struct cached_read *cr;
    const char *user;

    if (gs->cache == NULL || !rconn_tracking(gs->rc)) {
        metric_inc(&metric_grant_cache, "off", NULL);
        return false;
    }
    if (gcache_get(gs->cache, key, ab_now_ms(), &user)) {
        metric_inc(&metric_grant_cache, "hit", NULL);
        answer_later(gs, user, cb, arg);
        return true;
    }
    metric_inc(&metric_grant_cache, "miss", NULL);
    cr = ab_calloc(1, sizeof(*cr));
    cr->gs = gs;
    cr->cb = cb;
    cr->arg = arg;
    snprintf(cr->key, sizeof(cr->key), "%s", key);
    cr->ticket = gcache_reading(gs->cache, key);
    cr->track_epoch = rconn_track_epoch(gs->rc);
    const char *hget[] = { "HGET", key, "user" };
    const struct rcmd cmd = { 3, hget, NULL };
    rconn_command(gs->rc, read_user, cr, &cmd);
    return true;
}

void grant_store_lookup(struct grant_store *gs, const struct ab_addr *a,
                        grant_get_cb *cb, void *arg)
{
    char key[GRANT_KEY_MAX];

    store_key(gs, a, key);
    if (lookup_cached(gs, key, cb, arg))
        return;
    const char *hget[] = { "HGET", key, "user" };
    const struct rcmd cmd = { 3, hget, NULL };
    rconn_command(gs->rc, lookup_reply, get_req_new(cb, arg), &cmd);
}

/* ---- revoke and the log stream ------------------------------------------- */

static void revoke_reply(redisReply *r, void *arg)
{
    put_finish(arg, exec_ok(r) ? GRANT_OK : GRANT_UNAVAILABLE);
}

void grant_store_revoke(struct grant_store *gs, const struct ab_addr *a,
                        const char *by, grant_done_cb *cb, void *arg)
{
    struct put_req *pr = ab_calloc(1, sizeof(*pr));
    struct grant_cmds c;
    char key[GRANT_KEY_MAX];

    pr->gs = gs;
    pr->cb = cb;
    pr->arg = arg;
    store_key(gs, a, key);
    grant_cmds_revoke(&c, &gs->settings, key, by);
    rconn_transaction(gs->rc, revoke_reply, pr, c.cmd, c.n);
}

static void ignore_reply(redisReply *r, void *arg)
{
    (void)r;
    (void)arg;
}

void grant_store_log_decision(struct grant_store *gs, const char *event,
                              const char *const *fields, size_t npairs)
{
    const char *argv[10 + 2 * LOG_FIELDS_MAX];
    int argc = 0;

    if (npairs > LOG_FIELDS_MAX)
        fatalx("grant_store_log_decision: %zu fields, at most %d", npairs,
               LOG_FIELDS_MAX);
    argv[argc++] = "XADD";
    argv[argc++] = gs->decisionkey;
    argv[argc++] = "MAXLEN";
    argv[argc++] = "~";
    argv[argc++] = gs->decisions_maxlen;
    argv[argc++] = "*";
    argv[argc++] = "event";
    argv[argc++] = event;
    argv[argc++] = "node";
    argv[argc++] = gs->settings.node;
    for (size_t i = 0; i < 2 * npairs; i += 2) {
        argv[argc++] = fields[i];
        argv[argc++] = fields[i + 1] ? fields[i + 1] : "";
    }
    const struct rcmd cmd = { argc, argv, NULL };
    rconn_command(gs->rc, ignore_reply, NULL, &cmd);
}

/* ---- life cycle ------------------------------------------------------------ */

struct grant_store *grant_store_new(struct rconn *rc,
                                    const struct grant_settings *s)
{
    struct grant_store *gs = ab_calloc(1, sizeof(*gs));

    if (strlen(s->prefix) > GRANT_PREFIX_MAX)
        fatalx("redis prefix longer than %d bytes", GRANT_PREFIX_MAX);
    gs->rc = rc;
    gs->settings = *s;
    rscript_init(&gs->put_script, grant_put_script);
    TAILQ_INIT(&gs->answers);
    gs->answers_ev = event_new(redis_base(rc), -1, 0, answers_cb, gs);
    gs->settings.prefix = ab_strdup(s->prefix);
    gs->settings.node = ab_strdup(s->node);
    snprintf(gs->decisionkey, sizeof(gs->decisionkey), "%sdecisions",
             s->prefix);
    snprintf(gs->decisions_maxlen, sizeof(gs->decisions_maxlen), "%u",
             s->decisions_maxlen);
    gs->retry_by_key = hmap_new();
    TAILQ_INIT(&gs->retries);
    gs->retry_ev = evtimer_new(redis_base(rc), retry_tick, gs);
    rconn_on_up(rc, retry_on_up, gs);
    return gs;
}

void grant_store_stop(struct grant_store *gs)
{
    if (gs != NULL)
        answers_cb(-1, 0, gs);
}

void grant_store_free(struct grant_store *gs)
{
    struct retry *rt;

    if (gs == NULL)
        return;
    answers_cb(-1, 0, gs);
    event_free(gs->answers_ev);
    gcache_free(gs->cache);
    while ((rt = TAILQ_FIRST(&gs->retries)) != NULL) {
        TAILQ_REMOVE(&gs->retries, rt, link);
        retry_free(rt);
    }
    hmap_free(gs->retry_by_key, NULL);
    event_free(gs->retry_ev);
    free((char *)gs->settings.prefix);
    free((char *)gs->settings.node);
    free(gs);
}
