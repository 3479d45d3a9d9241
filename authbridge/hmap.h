/*
 * A string-keyed hash table with chaining and doubling. Keys are hashed
 * with SipHash-2-4 under a per-process random key, so clients who choose
 * keys (user names, addresses) cannot force collisions.
 */
#ifndef AB_HMAP_H
#define AB_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap;

struct hmap *hmap_new(void);
/* Frees the table; each value is passed to free_val (may be NULL). */
void hmap_free(struct hmap *m, void (*free_val)(void *));

void *hmap_get(const struct hmap *m, const char *key);
/* Insert or replace; returns the old value (or NULL). The key is copied. */
void *hmap_put(struct hmap *m, const char *key, void *val);
/* Remove; returns the value (or NULL if absent). */
void *hmap_del(struct hmap *m, const char *key);
size_t hmap_count(const struct hmap *m);

/* Visit every entry; fn may not modify the table. */
void hmap_each(const struct hmap *m,
               void (*fn)(const char *key, void *val, void *arg), void *arg);

/* SipHash-2-4 of data under key (16 bytes). */
uint64_t siphash24(const void *data, size_t len, const uint8_t key[16]);

#endif
