#include "grant_cache.h"
#include "hmap.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct grant_cache {
    struct hmap *by_key;          /* key -> struct entry */
    size_t max;
    uint64_t max_age_ms;
    uint64_t epoch;               /* +1 at every clear */
};

struct entry {
    uint64_t gen;                 /* +1 at every change announced */
    bool known;                   /* an answer is kept */
    char *user;                   /* its user; NULL: no grant */
    uint64_t until_ms;            /* kept until (monotonic ms) */
};

static void entry_free(void *p)
{
    struct entry *e = p;

    free(e->user);
    free(e);
}

static void forget(struct entry *e)
{
    e->known = false;
    free(e->user);
    e->user = NULL;
}

struct grant_cache *gcache_new(size_t max, uint64_t max_age_ms)
{
    struct grant_cache *gc = ab_calloc(1, sizeof(*gc));

    gc->by_key = hmap_new();
    gc->max = max;
    gc->max_age_ms = max_age_ms;
    return gc;
}

void gcache_free(struct grant_cache *gc)
{
    if (gc == NULL)
        return;
    hmap_free(gc->by_key, entry_free);
    free(gc);
}

static void clear(struct grant_cache *gc)
{
    hmap_free(gc->by_key, entry_free);
    gc->by_key = hmap_new();
    gc->epoch++;
}

bool gcache_get(struct grant_cache *gc, const char *key, uint64_t now_ms,
                const char **user)
{
    struct entry *e = hmap_get(gc->by_key, key);

    if (e == NULL || !e->known)
        return false;
    if (now_ms >= e->until_ms) {
        forget(e);                /* expired, or kept long enough */
        return false;
    }
    *user = e->user;
    return true;
}

struct gcache_ticket gcache_reading(struct grant_cache *gc, const char *key)
{
    struct entry *e = hmap_get(gc->by_key, key);

    if (e == NULL) {
        if (hmap_count(gc->by_key) >= gc->max)
            clear(gc);
        e = ab_calloc(1, sizeof(*e));
        hmap_put(gc->by_key, key, e);
    }
    return (struct gcache_ticket){ e->gen, gc->epoch };
}

void gcache_put(struct grant_cache *gc, const char *key,
                struct gcache_ticket t, const char *user, uint64_t now_ms,
                uint64_t expires_ms)
{
    struct entry *e = hmap_get(gc->by_key, key);
    uint64_t until = now_ms + gc->max_age_ms;

    if (e == NULL || e->gen != t.gen || gc->epoch != t.epoch)
        return;
    if (expires_ms != 0 && expires_ms < until)
        until = expires_ms;
    forget(e);
    e->known = true;
    e->user = user ? ab_strdup(user) : NULL;
    e->until_ms = until;
}

void gcache_invalidate(struct grant_cache *gc, const char *key)
{
    struct entry *e;

    if (key == NULL) {
        clear(gc);
        return;
    }
    if ((e = hmap_get(gc->by_key, key)) != NULL) {
        e->gen++;
        forget(e);
    }
}

size_t gcache_count(const struct grant_cache *gc)
{
    return hmap_count(gc->by_key);
}
