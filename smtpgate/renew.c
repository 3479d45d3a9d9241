#include "smtpgate/renew.h"
#include "smtpgate/limits.h"

#include "authbridge/util.h"

#include <stdlib.h>
#include <string.h>

#define RENEW_PROBES 4

struct slot {
    struct ab_addr addr;          /* family 0: empty */
    uint64_t at_ms;
};

struct renew_table {
    struct slot s[RENEW_SLOTS];
};

_Static_assert((RENEW_SLOTS & (RENEW_SLOTS - 1)) == 0,
               "RENEW_SLOTS must be a power of two");

struct renew_table *renew_table_new(void)
{
    return ab_calloc(1, sizeof(struct renew_table));
}

void renew_table_free(struct renew_table *t)
{
    free(t);
}

/* FNV-1a over the family and the address octets. */
static size_t slot_of(const struct ab_addr *a)
{
    size_t len = a->family == AF_INET ? 4 : 16;
    uint32_t h = 2166136261u ^ (uint32_t)a->family;

    for (size_t i = 0; i < len; i++)
        h = (h ^ a->b[i]) * 16777619u;
    return h & (RENEW_SLOTS - 1);
}

static bool same(const struct ab_addr *x, const struct ab_addr *y)
{
    return x->family == y->family &&
           memcmp(x->b, y->b, x->family == AF_INET ? 4 : 16) == 0;
}

/* a's slot, or else an empty one, or else the oldest of the probes. */
static struct slot *find(struct renew_table *t, const struct ab_addr *a,
                         bool *found)
{
    size_t first = slot_of(a);
    struct slot *pick = NULL;

    for (size_t i = 0; i < RENEW_PROBES; i++) {
        struct slot *s = &t->s[(first + i) & (RENEW_SLOTS - 1)];
        if (s->addr.family != 0 && same(&s->addr, a)) {
            *found = true;
            return s;
        }
        if (pick == NULL || (pick->addr.family != 0 &&
                             (s->addr.family == 0 || s->at_ms < pick->at_ms)))
            pick = s;
    }
    *found = false;
    return pick;
}

bool renew_due(struct renew_table *t, const struct ab_addr *a,
               uint64_t now_ms, uint64_t every_ms)
{
    bool found;
    struct slot *s = find(t, a, &found);

    if (found && now_ms - s->at_ms < every_ms)
        return false;
    s->addr = *a;
    s->at_ms = now_ms;
    return true;
}

void renew_forget(struct renew_table *t, const struct ab_addr *a)
{
    bool found;
    struct slot *s = find(t, a, &found);

    if (found)
        memset(s, 0, sizeof(*s));
}

uint64_t renew_every_ms(unsigned ttl_s)
{
    uint64_t third = (uint64_t)ttl_s * 1000 / 3;

    return third < RENEW_EVERY_MAX_MS ? third : RENEW_EVERY_MAX_MS;
}
