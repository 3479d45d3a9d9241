/*
 * The gate's memory of grant lookups (hits and misses), kept exact by
 * Redis's client-side caching (redis.h rconn_track): every answer kept
 * here is forgotten when Redis announces that its key changed, when
 * tracking is lost, and when its grant's own expiry comes, whichever is
 * first. Pure: the grant store feeds it.
 *
 * The race every client-side cache has: a key can change after its read
 * was sent and before the answer is back, and the announcement can
 * overtake the answer. So a read takes a ticket first (the key's
 * generation and the cache's epoch); an announcement for the key, or a
 * clear, moves them on; an answer whose ticket no longer matches is
 * used, not kept.
 */
#ifndef AB_GRANT_CACHE_H
#define AB_GRANT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct grant_cache;

struct gcache_ticket {
    uint64_t gen, epoch;
};

/* At most max entries (answers and reads in flight); a full cache is
 * emptied. Answers are kept at most max_age_ms. */
struct grant_cache *gcache_new(size_t max, uint64_t max_age_ms);
void gcache_free(struct grant_cache *gc);

/* A kept answer for key at now_ms: true, *user the grant's user, or NULL
 * for "no grant" (valid until the next call on the cache). */
bool gcache_get(struct grant_cache *gc, const char *key, uint64_t now_ms,
                const char **user);

/* Before sending the read of key. */
struct gcache_ticket gcache_reading(struct grant_cache *gc, const char *key);

/* The read's answer: user (NULL: no grant) valid until expires_ms (0: no
 * expiry of its own). Kept only if nothing touched key since ticket. */
void gcache_put(struct grant_cache *gc, const char *key,
                struct gcache_ticket t, const char *user, uint64_t now_ms,
                uint64_t expires_ms);

/* key changed (NULL: everything may have). */
void gcache_invalidate(struct grant_cache *gc, const char *key);

size_t gcache_count(const struct grant_cache *gc);

#endif
