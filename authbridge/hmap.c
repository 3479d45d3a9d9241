#include "hmap.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct hentry {
    struct hentry *next;
    uint64_t hash;
    void *val;
    char key[];
};

struct hmap {
    struct hentry **buckets;
    size_t nbuckets;              /* a power of two */
    size_t count;
};

static uint8_t hmap_key[16];
static pthread_once_t hmap_key_once = PTHREAD_ONCE_INIT;

static void hmap_key_init(void)
{
    ab_random(hmap_key, sizeof(hmap_key));
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                    \
    do {                                                            \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);   \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                      \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                      \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);   \
    } while (0)

static uint64_t load64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t siphash24(const void *data, size_t len, const uint8_t key[16])
{
    const uint8_t *in = data, *end = in + (len & ~(size_t)7);
    uint64_t k0 = load64(key), k1 = load64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)len << 56, m;

    for (; in != end; in += 8) {
        m = load64(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

struct hmap *hmap_new(void)
{
    struct hmap *m = ab_calloc(1, sizeof(*m));

    pthread_once(&hmap_key_once, hmap_key_init);
    m->nbuckets = 16;
    m->buckets = ab_calloc(m->nbuckets, sizeof(*m->buckets));
    return m;
}

void hmap_free(struct hmap *m, void (*free_val)(void *))
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct hentry *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            if (free_val)
                free_val(e->val);
            free(e);
        }
    }
    free(m->buckets);
    free(m);
}

static struct hentry **find(const struct hmap *m, const char *key, uint64_t h)
{
    struct hentry **pp = &m->buckets[h & (m->nbuckets - 1)];

    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
            return pp;
    return pp;
}

static void grow(struct hmap *m)
{
    size_t n = m->nbuckets * 2;
    struct hentry **b = ab_calloc(n, sizeof(*b));

    for (size_t i = 0; i < m->nbuckets; i++) {
        struct hentry *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void *hmap_get(const struct hmap *m, const char *key)
{
    uint64_t h = siphash24(key, strlen(key), hmap_key);
    struct hentry *e = *find(m, key, h);

    return e ? e->val : NULL;
}

void *hmap_put(struct hmap *m, const char *key, void *val)
{
    size_t klen = strlen(key);
    uint64_t h = siphash24(key, klen, hmap_key);
    struct hentry **pp = find(m, key, h), *e;
    void *old;

    if (*pp != NULL) {
        old = (*pp)->val;
        (*pp)->val = val;
        return old;
    }
    e = ab_malloc(sizeof(*e) + klen + 1);
    e->next = NULL;
    e->hash = h;
    e->val = val;
    memcpy(e->key, key, klen + 1);
    *pp = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return NULL;
}

void *hmap_del(struct hmap *m, const char *key)
{
    uint64_t h = siphash24(key, strlen(key), hmap_key);
    struct hentry **pp = find(m, key, h), *e = *pp;
    void *val;

    if (e == NULL)
        return NULL;
    *pp = e->next;
    val = e->val;
    free(e);
    m->count--;
    return val;
}

size_t hmap_count(const struct hmap *m)
{
    return m->count;
}

void hmap_each(const struct hmap *m,
               void (*fn)(const char *key, void *val, void *arg), void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct hentry *e = m->buckets[i]; e; e = e->next)
            fn(e->key, e->val, arg);
}
