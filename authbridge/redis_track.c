/*
 * The invalidation connection of client-side caching (redis.h,
 * rconn_track): to the data connection's server, CLIENT ID, SUBSCRIBE
 * __redis__:invalidate; then, on the data connection, CLIENT TRACKING on
 * REDIRECT <that id>. It lives and dies with the data connection, so a
 * failover or a restart moves both to the new server, and whatever was
 * read before is forgotten.
 */
#include "redis_int.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INV_RETRY_MS 500
#define INV_CHANNEL  "__redis__:invalidate"

static void inv_open(struct rconn *rc);

bool rconn_tracking(const struct rconn *rc)
{
    return rc->tracking;
}

uint64_t rconn_track_epoch(const struct rconn *rc)
{
    return rc->track_epoch;
}

/* Everything read so far may have changed unannounced. */
static void forget_all(struct rconn *rc)
{
    rc->track_epoch++;
    if (rc->on_inval)
        rc->on_inval(NULL, 0, rc->inval_arg);
}

static void inv_close(struct rconn *rc)
{
    redisAsyncContext *inv = rc->inv;

    rc->inv = NULL;
    rc->inv_id = 0;
    if (inv != NULL)
        redisAsyncFree(inv);
}

static void stop_tracking(struct rconn *rc)
{
    if (rc->tracking)
        log_info("event=redis_tracking state=off");
    rc->tracking = false;
    forget_all(rc);
}

static void track_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rconn *rc = priv;
    redisReply *r = reply;

    if (r == NULL || ac != rc->ac || rc->inv == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        /* Redis before 6, or an ACL without CLIENT: no caching, lookups
         * go to Redis every time, as without it. */
        log_warn("event=redis_tracking state=unavailable reply=%s",
                 log_escn(r->str, r->len));
        rc->track_refused = true;
        inv_close(rc);
        return;
    }
    rc->tracking = true;
    forget_all(rc);               /* nothing read before is tracked */
    log_info("event=redis_tracking state=on redirect=%lld", rc->inv_id);
}

/* The subscription is there: have the data connection's reads tracked. */
static void enable(struct rconn *rc)
{
    char id[24];

    if (rc->ac == NULL || rc->state != RS_UP || rc->inv_id == 0)
        return;
    snprintf(id, sizeof(id), "%lld", rc->inv_id);
    redisAsyncCommand(rc->ac, track_reply, rc,
                      "CLIENT TRACKING on REDIRECT %s", id);
}

static void id_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rconn *rc = priv;
    redisReply *r = reply;

    if (ac != rc->inv || r == NULL)
        return;
    if (r->type == REDIS_REPLY_INTEGER)
        rc->inv_id = r->integer;
}

/* ["subscribe", channel, n] once; then ["message", channel, keys]: an
 * array of the changed keys, or nil for "all of them" (FLUSHALL). */
static void inv_message(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rconn *rc = priv;
    redisReply *r = reply, *keys;

    if (ac != rc->inv || r == NULL || r->type != REDIS_REPLY_ARRAY ||
        r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "subscribe") == 0) {
        enable(rc);
        return;
    }
    if (strcmp(r->element[0]->str, "message") != 0)
        return;
    keys = r->element[2];
    if (keys->type != REDIS_REPLY_ARRAY) {
        forget_all(rc);
        return;
    }
    for (size_t i = 0; i < keys->elements; i++)
        if (keys->element[i]->type == REDIS_REPLY_STRING && rc->on_inval)
            rc->on_inval(keys->element[i]->str, keys->element[i]->len,
                         rc->inval_arg);
}

static void inv_lost(struct rconn *rc)
{
    rc->inv = NULL;
    rc->inv_id = 0;
    if (rc->tracking && rc->ac != NULL)
        redisAsyncCommand(rc->ac, NULL, NULL, "CLIENT TRACKING off");
    stop_tracking(rc);
    if (rc->state == RS_UP)
        ri_arm_ms(rc->inv_ev, INV_RETRY_MS);
}

static void inv_disconnect(const redisAsyncContext *ac, int status)
{
    struct rconn *rc = ac->data;

    (void)status;
    if (ac == rc->inv)
        inv_lost(rc);             /* hiredis frees it */
}

static void inv_connect(const redisAsyncContext *ac, int status)
{
    struct rconn *rc = ac->data;

    if (status != REDIS_OK && ac == rc->inv)
        inv_lost(rc);
}

static void inv_open(struct rconn *rc)
{
    redisAsyncContext *ac;

    if (rc->on_inval == NULL || rc->inv != NULL || rc->track_refused)
        return;
    ac = rc->data_path ? redisAsyncConnectUnix(rc->data_path)
                       : redisAsyncConnect(rc->data_host, (int)rc->data_port);
    if (ac == NULL || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        ri_arm_ms(rc->inv_ev, INV_RETRY_MS);
        return;
    }
    ac->data = rc;
    rc->inv = ac;
    ri_attach(ac, rc->base);
    redisAsyncSetConnectCallback(ac, inv_connect);
    redisAsyncSetDisconnectCallback(ac, inv_disconnect);
    if (rc->password[0] && rc->username[0])
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", rc->username,
                          rc->password);
    else if (rc->password[0])
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", rc->password);
    redisAsyncCommand(ac, id_reply, rc, "CLIENT ID");
    redisAsyncCommand(ac, inv_message, rc, "SUBSCRIBE " INV_CHANNEL);
}

static void inv_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *rc = arg;

    (void)fd;
    (void)what;
    if (rc->state == RS_UP)
        inv_open(rc);
}

void rconn_track(struct rconn *rc, rconn_inval_fn *fn, void *arg)
{
    rc->on_inval = fn;
    rc->inval_arg = arg;
    if (rc->inv_ev == NULL)
        rc->inv_ev = evtimer_new(rc->base, inv_timer_cb, rc);
    if (rc->state == RS_UP)
        inv_open(rc);
}

void ri_track_up(struct rconn *rc)
{
    inv_open(rc);
}

void ri_track_down(struct rconn *rc)
{
    if (rc->inv_ev != NULL)
        evtimer_del(rc->inv_ev);
    inv_close(rc);
    stop_tracking(rc);
}

void ri_track_free(struct rconn *rc)
{
    rc->on_inval = NULL;
    inv_close(rc);
    if (rc->inv_ev != NULL)
        event_free(rc->inv_ev);
    rc->inv_ev = NULL;
}
