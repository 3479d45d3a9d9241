/*
 * Idle MTA connections kept from one session for the next: a connect, a
 * greeting and an EHLO saved per session (limits.h: DS_POOL_MAX,
 * DS_POOL_IDLE_S). Only connections that carry no client identity
 * (never XCLIENT) and no open transaction are kept.
 */
#include "smtpgate/downstream_int.h"

#include "authbridge/conf.h"
#include "authbridge/log.h"

#include <string.h>

/* Newest first: the most recently used connection is the likeliest to
 * still be open at the MTA. One pool per loop (thread): a connection
 * lives on the loop that made it. */
static _Thread_local LIST_HEAD(, ds) pool = LIST_HEAD_INITIALIZER(pool);
static _Thread_local unsigned npool;

void ds_pool_remove(struct ds *ds)
{
    LIST_REMOVE(ds, link);
    npool--;
    ds->state = DS_READY;         /* really_free must not unlink it again */
}

/*
 * Reusable: idle, healthy, no transaction open, and no client identity
 * given to the MTA (XCLIENT makes the MTA believe the connection IS that
 * client; XFORWARD attributes are sent again before every MAIL anyway).
 */
static bool poolable(const struct ds *ds)
{
    return ds->state == DS_READY && !ds->freeing && ds->qlen == 0 &&
           !ds->in_tx && !ds->xclient_used && !ds->has_early &&
           npool < DS_POOL_MAX;
}

void ds_release(struct ds *ds)
{
    struct timeval tv = { DS_POOL_IDLE_S, 0 };

    if (ds == NULL)
        return;
    if (!poolable(ds)) {
        ds_quit(ds);
        return;
    }
    ds->drain_cb = NULL;
    ds_enter(ds, DS_POOLED);
    LIST_INSERT_HEAD(&pool, ds, link);
    npool++;
    bufferevent_set_timeouts(ds->bev, &tv, &tv);
    ds->reading_timed = true;
}

struct ds *ds_pool_take(const struct smtpgate_conf *sc)
{
    const struct endpoint *ep = &sc->downstream;
    struct ds *ds;

    LIST_FOREACH(ds, &pool, link)
        if (ds->peerlen == ep->sslen &&
            memcmp(&ds->peer, &ep->ss, ep->sslen) == 0 &&
            strcmp(ds->hostname, sc->hostname) == 0)
            break;
    if (ds == NULL)
        return NULL;
    ds_pool_remove(ds);
    ds->reused = true;
    ds->answered = false;
    ds->timeout_s = sc->downstream_timeout;
    ds_arm_timeouts(ds);
    return ds;
}

void ds_pool_free_all(void)
{
    struct ds *ds;

    while ((ds = LIST_FIRST(&pool)) != NULL)
        ds_destroy(ds);
}
