/*
 * Sentinel discovery: ask the sentinels in turn for the master's address
 * (SENTINEL get-master-addr-by-name), and follow +switch-master
 * announcements on a subscription to the current sentinel.
 */
#include "redis_int.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

void ri_sentinel_next(struct rconn *rc)
{
    redisAsyncContext *sac = rc->sac;

    rc->sac = NULL;
    if (sac != NULL)
        redisAsyncFree(sac);      /* deferred by hiredis inside a callback */
    rc->sentinel_idx = (rc->sentinel_idx + 1) % rc->nsentinels;
    if (rc->sentinel_idx == 0) {
        ri_schedule_retry(rc, "no sentinel named a reachable master");
        return;
    }
    ri_start(rc);
}

static void sentinel_reply(redisAsyncContext *sac, void *reply, void *priv)
{
    struct rconn *rc = priv;
    redisReply *r = reply;
    uint64_t port;

    if (sac != rc->sac)
        return;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= sizeof(rc->master_host) ||
        ab_parse_uint(r->element[1]->str, 1, 65535, &port) < 0) {
        log_warn("event=sentinel_no_master sentinel=%s master_name=%s",
                 rc->sentinels[rc->sentinel_idx].text, rc->master_name);
        ri_sentinel_next(rc);
        return;
    }
    memcpy(rc->master_host, r->element[0]->str, r->element[0]->len + 1);
    rc->master_port = (unsigned)port;
    rc->sac = NULL;
    redisAsyncFree(sac);
    ri_connect_data(rc, rc->master_host, rc->master_port, NULL);
}

static void sentinel_connect_cb(const redisAsyncContext *sac, int status)
{
    struct rconn *rc = sac->data;

    if (status == REDIS_OK || sac != rc->sac)
        return;
    rc->sac = NULL;               /* freed by hiredis */
    ri_sentinel_next(rc);
}

void ri_resolve_master(struct rconn *rc)
{
    const struct endpoint *s = &rc->sentinels[rc->sentinel_idx];
    redisAsyncContext *sac = redisAsyncConnect(s->host, (int)s->port);

    if (sac == NULL || sac->err) {
        if (sac)
            redisAsyncFree(sac);
        ri_sentinel_next(rc);
        return;
    }
    sac->data = rc;
    rc->sac = sac;
    ri_set_state(rc, RS_RESOLVING);
    ri_attach(sac, rc->base);
    redisAsyncSetConnectCallback(sac, sentinel_connect_cb);
    redisAsyncCommand(sac, sentinel_reply, rc,
                      "SENTINEL get-master-addr-by-name %s", rc->master_name);
    ri_arm_ms(rc->phase_ev, rc->timeout_ms);
}

/* +switch-master <name> <old-ip> <old-port> <new-ip> <new-port> */
static void psub_message(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rconn *rc = priv;
    redisReply *r = reply;
    char name[128];

    if (r == NULL) {
        if (ac == rc->psub) {
            rc->psub = NULL;
            ri_arm_ms(rc->psub_ev, PSUB_RETRY_MS);
        }
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    if (sscanf(r->element[2]->str, "%127s", name) != 1 ||
        strcmp(name, rc->master_name) != 0)
        return;
    log_info("event=sentinel_switch_master detail=%s",
             log_esc(r->element[2]->str));
    if (rc->ac != NULL)
        ri_drop(rc, "sentinel switched master");
}

static void psub_disconnect(const redisAsyncContext *ac, int status)
{
    struct rconn *rc = ac->data;

    (void)status;
    if (ac == rc->psub) {
        rc->psub = NULL;
        ri_arm_ms(rc->psub_ev, PSUB_RETRY_MS);
    }
}

void ri_psub_open(struct rconn *rc)
{
    const struct endpoint *s = &rc->sentinels[rc->sentinel_idx];
    redisAsyncContext *ac = redisAsyncConnect(s->host, (int)s->port);

    if (ac == NULL || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        ri_arm_ms(rc->psub_ev, PSUB_RETRY_MS);
        return;
    }
    ac->data = rc;
    rc->psub = ac;
    ri_attach(ac, rc->base);
    redisAsyncSetDisconnectCallback(ac, psub_disconnect);
    redisAsyncCommand(ac, psub_message, rc, "SUBSCRIBE +switch-master");
}

void ri_psub_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *rc = arg;

    (void)fd;
    (void)what;
    if (rc->psub == NULL && rc->state == RS_UP)
        ri_psub_open(rc);
}
