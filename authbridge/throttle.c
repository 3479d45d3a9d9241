#include "throttle.h"
#include "conf.h"
#include "grant.h"
#include "redis.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THROTTLE_V6_PREFIX 64   /* one customer's IPv6 network */
#define KEY_MAX (GRANT_PREFIX_MAX + 300)

struct throttle {
    struct rconn *rc;
    char *prefix;
    struct throttle_conf tc;
};

struct check_req {
    struct throttle *t;
    throttle_cb *cb;
    void *arg;
};

struct throttle *throttle_new(struct rconn *rc, const char *prefix,
                              const struct throttle_conf *tc)
{
    struct throttle *t = ab_calloc(1, sizeof(*t));

    t->rc = rc;
    t->prefix = ab_strdup(prefix);
    t->tc = *tc;
    return t;
}

void throttle_set_conf(struct throttle *t, const struct throttle_conf *tc)
{
    t->tc = *tc;
}

void throttle_free(struct throttle *t)
{
    if (t == NULL)
        return;
    free(t->prefix);
    free(t);
}

enum throttle_verdict throttle_decide(const struct throttle_conf *tc,
                                      long long addr_fails,
                                      long long user_fails,
                                      unsigned *delay_ms)
{
    unsigned long long d;
    long long over;

    *delay_ms = 0;
    if (addr_fails >= tc->block_after)
        return THROTTLE_BLOCK_ADDR;
    if (user_fails >= tc->user_block_after)
        return THROTTLE_BLOCK_USER;
    if (addr_fails < tc->delay_after || tc->delay_ms == 0)
        return THROTTLE_OK;
    over = addr_fails - tc->delay_after;
    d = over >= 30 ? tc->max_delay_ms : (unsigned long long)tc->delay_ms << over;
    *delay_ms = d > tc->max_delay_ms ? tc->max_delay_ms : (unsigned)d;
    return THROTTLE_DELAY;
}

static void addr_key(const struct throttle *t, const struct ab_addr *a,
                     char *out, size_t len)
{
    char text[ADDR_TEXT_MAX];

    addr_grant_text(a, THROTTLE_V6_PREFIX, text);
    snprintf(out, len, "%sfail:%s", t->prefix, text);
}

static void user_key(const struct throttle *t, const char *user, char *out,
                     size_t len)
{
    snprintf(out, len, "%sfailuser:%.256s", t->prefix, user);
}

static long long count_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
}

static void check_reply(redisReply *r, void *arg)
{
    struct check_req *q = arg;
    enum throttle_verdict v = THROTTLE_OK;
    unsigned delay = 0;
    long long addr_fails = -1;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        addr_fails = count_of(r->element[0]);
        v = throttle_decide(&q->t->tc, addr_fails, count_of(r->element[1]),
                            &delay);
    }
    q->cb(v, delay, addr_fails, q->arg);
    free(q);
}

void throttle_check(struct throttle *t, const struct ab_addr *a,
                    const char *user, throttle_cb *cb, void *arg)
{
    struct check_req *q = ab_malloc(sizeof(*q));
    char ak[KEY_MAX], uk[KEY_MAX];

    q->t = t;
    q->cb = cb;
    q->arg = arg;
    addr_key(t, a, ak, sizeof(ak));
    user_key(t, user, uk, sizeof(uk));
    const char *argv[] = { "MGET", ak, uk };
    const struct rcmd cmd = { 3, argv, NULL };
    rconn_command(t->rc, check_reply, q, &cmd);
}

static void ignore(redisReply *r, void *arg)
{
    (void)r;
    (void)arg;
}

void throttle_failed(struct throttle *t, const struct ab_addr *a,
                     const char *user)
{
    char ak[KEY_MAX], uk[KEY_MAX], window[16];

    addr_key(t, a, ak, sizeof(ak));
    user_key(t, user, uk, sizeof(uk));
    snprintf(window, sizeof(window), "%u", t->tc.window);
    const char *incr_a[] = { "INCR", ak }, *exp_a[] = { "EXPIRE", ak, window };
    const char *incr_u[] = { "INCR", uk }, *exp_u[] = { "EXPIRE", uk, window };
    const struct rcmd cmds[] = {
        { 2, incr_a, NULL }, { 3, exp_a, NULL },
        { 2, incr_u, NULL }, { 3, exp_u, NULL },
    };
    rconn_transaction(t->rc, ignore, NULL, cmds, 4);
}

void throttle_succeeded(struct throttle *t, const struct ab_addr *a)
{
    char ak[KEY_MAX];

    addr_key(t, a, ak, sizeof(ak));
    const char *argv[] = { "DEL", ak };
    const struct rcmd cmd = { 2, argv, NULL };
    rconn_command(t->rc, ignore, NULL, &cmd);
}
