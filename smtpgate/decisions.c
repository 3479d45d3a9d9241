#include "smtpgate/decisions.h"
#include "smtpgate/limits.h"

#include "authbridge/grant.h"
#include "authbridge/hmap.h"
#include "authbridge/log.h"
#include "authbridge/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct decisions {
    struct grant_store *gs;
    struct hmap *by_addr;         /* client address -> struct sample */
    struct event *tick;
};

/* An address refused lately. */
struct sample {
    uint64_t last_ms;             /* when an entry for it was last written */
    unsigned count;               /* refusals since, not written yet */
    struct decision last;         /* the latest of those (strings owned) */
};

static void write_entry(struct decisions *d, const struct decision *e,
                        unsigned count)
{
    const char *f[2 * 12] = {
        "via", e->via, "sid", e->sid, "client", e->client, "helo", e->helo,
        "sender", e->sender, "rcpt", e->rcpt, "path", e->path,
        "user", e->user,
    };
    size_t n = 8;
    char num[16];

    /* The optional fields only where they say something. */
    if (e->port != NULL && e->port[0] != '\0') {
        f[2 * n] = "port";
        f[2 * n++ + 1] = e->port;
    }
    if (e->check != NULL) {
        f[2 * n] = "check";
        f[2 * n++ + 1] = e->check;
    }
    if (e->from != NULL) {
        f[2 * n] = "from";
        f[2 * n++ + 1] = e->from;
    }
    if (count > 1) {
        snprintf(num, sizeof(num), "%u", count);
        f[2 * n] = "count";
        f[2 * n++ + 1] = num;
    }
    grant_store_log_decision(d->gs, e->event, f, n);
}

static void decision_clear(struct decision *e)
{
    free((char *)e->event);
    free((char *)e->via);
    free((char *)e->sid);
    free((char *)e->client);
    free((char *)e->helo);
    free((char *)e->sender);
    free((char *)e->rcpt);
    free((char *)e->path);
    free((char *)e->user);
    free((char *)e->check);
    free((char *)e->from);
    free((char *)e->port);
    memset(e, 0, sizeof(*e));
}

static void decision_copy(struct decision *dst, const struct decision *src)
{
    decision_clear(dst);
    dst->event = ab_strdup(src->event);
    dst->via = ab_strdup(src->via);
    dst->sid = ab_strdup(src->sid);
    dst->client = ab_strdup(src->client);
    dst->helo = ab_strdup(src->helo);
    dst->sender = ab_strdup(src->sender);
    dst->rcpt = ab_strdup(src->rcpt);
    dst->path = ab_strdup(src->path);
    dst->user = ab_strdup(src->user);
    dst->check = src->check ? ab_strdup(src->check) : NULL;
    dst->from = src->from ? ab_strdup(src->from) : NULL;
    dst->port = ab_strdup(src->port ? src->port : "");
}

static void sample_free(void *p)
{
    struct sample *sm = p;

    decision_clear(&sm->last);
    free(sm);
}

/* ---- the minute's end: counts written, quiet addresses forgotten ------- */

struct sweep {
    struct decisions *d;
    struct hmap *keep;
    uint64_t now;
    bool all;                     /* write every count, forget nothing yet */
};

static void sweep_one(const char *addr, void *val, void *arg)
{
    struct sweep *sw = arg;
    struct sample *sm = val;

    if (sm->count > 0 && (sw->all || sw->now - sm->last_ms >= RELAY_SAMPLE_MS)) {
        write_entry(sw->d, &sm->last, sm->count);
        sm->count = 0;
        sm->last_ms = sw->now;
    }
    if (sm->count > 0 || sw->now - sm->last_ms < RELAY_SAMPLE_MS)
        hmap_put(sw->keep, addr, sm);
    else
        sample_free(sm);
}

static void sweep(struct decisions *d, bool all)
{
    struct sweep sw = { d, hmap_new(), ab_now_ms(), all };

    hmap_each(d->by_addr, sweep_one, &sw);
    hmap_free(d->by_addr, NULL);
    d->by_addr = sw.keep;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sweep(arg, false);
}

void decisions_flush(struct decisions *d)
{
    sweep(d, true);
}

size_t decisions_pending(const struct decisions *d)
{
    return hmap_count(d->by_addr);
}

/* ---- recording ---------------------------------------------------------- */

/*
 * What one entry may stand for: refusals of one client address (anyone
 * can be refused as often as they like), and allowed relays of one front
 * door, client, TCP port (one SMTP session), user and path.
 */
static void sample_key(const struct decision *e, char *key, size_t len)
{
    if (strcmp(e->event, "relay-allowed") != 0)
        snprintf(key, len, "refused|%s", e->client);
    else
        snprintf(key, len, "allowed|%s|%s|%s|%s|%.256s", e->via, e->client,
                 e->port ? e->port : "", e->path, e->user);
}

void decisions_record(struct decisions *d, const struct decision *e)
{
    uint64_t now = ab_now_ms();
    struct sample *sm;
    char key[512];

    sample_key(e, key, sizeof(key));
    sm = hmap_get(d->by_addr, key);
    if (sm != NULL && now - sm->last_ms < RELAY_SAMPLE_MS) {
        sm->count++;
        decision_copy(&sm->last, e);
        return;
    }
    if (sm == NULL) {
        /* A flood of new addresses costs a few early entries, never
         * memory: a full table is written out and emptied. */
        if (hmap_count(d->by_addr) >= RELAY_SAMPLE_ADDRS) {
            decisions_flush(d);
            hmap_free(d->by_addr, sample_free);
            d->by_addr = hmap_new();
        }
        sm = ab_calloc(1, sizeof(*sm));
        hmap_put(d->by_addr, key, sm);
    }
    /* The first in its minute (any counted before it are written with
     * the sweep that found the minute over). */
    write_entry(d, e, 1);
    sm->last_ms = now;
}

/* ---- life cycle ------------------------------------------------------------ */

struct decisions *decisions_new(struct event_base *base,
                                struct grant_store *gs)
{
    struct decisions *d = ab_calloc(1, sizeof(*d));
    struct timeval tv = { RELAY_SAMPLE_MS / 1000, 0 };

    d->gs = gs;
    d->by_addr = hmap_new();
    d->tick = event_new(base, -1, EV_PERSIST, tick_cb, d);
    event_add(d->tick, &tv);
    return d;
}

void decisions_free(struct decisions *d)
{
    if (d == NULL)
        return;
    event_free(d->tick);
    hmap_free(d->by_addr, sample_free);
    free(d);
}
