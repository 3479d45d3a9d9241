#include "throttle.h"
#include "conf.h"
#include "grant.h"
#include "metrics.h"
#include "redis.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/*
 * An attempt counts as a failure before its password is checked, and the
 * verdict is taken on the counts that include it: parallel guesses each
 * see their own count, so no more than block_after of them get through
 * (a check, then an increment later, let 18 parallel attempts push the
 * counter to 36). A right password then takes its attempt back.
 */
static const char count_script[] =
    "local a = redis.call('INCR', KEYS[1])\n"
    "local u = redis.call('INCR', KEYS[2])\n"
    "local p = redis.call('INCR', KEYS[3])\n"
    "for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end\n"
    "return {a, u, p}\n";

/*
 * Forgive failures against one user from one address: ARGV[1] "all"
 * takes back every failure counted for that pair (a right password: the
 * user got it wrong before, an attacker's failures against *other* users
 * stay), "1" only the attempt at hand (it could not be checked). A count
 * that reaches 0 goes; so does one DECRBY created (a key gone meanwhile:
 * it comes out negative), which would otherwise stay without a TTL. No
 * EXISTS first: a successful login runs this, every call counts.
 */
static const char forgive_script[] =
    "local n = 1\n"
    "if ARGV[1] == 'all' then n = tonumber(redis.call('GET', KEYS[3]) or '0') end\n"
    "if n <= 0 then return 0 end\n"
    "for i = 1, 3 do\n"
    "  if redis.call('DECRBY', KEYS[i], n) <= 0 then\n"
    "    redis.call('DEL', KEYS[i])\n"
    "  end\n"
    "end\n"
    "return n\n";

static struct rscript count_rs, forgive_rs;
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void scripts_init(void)
{
    rscript_init(&count_rs, count_script);
    rscript_init(&forgive_rs, forgive_script);
}

struct throttle *throttle_new(struct rconn *rc, const char *prefix,
                              const struct throttle_conf *tc)
{
    struct throttle *t = ab_calloc(1, sizeof(*t));

    pthread_once(&scripts_once, scripts_init);
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
    throttle_addr_key(t->prefix, a, out, len);
}

static void user_key(const struct throttle *t, const char *user, char *out,
                     size_t len)
{
    throttle_user_key(t->prefix, user, out, len);
}

static void pair_key(const struct throttle *t, const struct ab_addr *a,
                     const char *user, char *out, size_t len)
{
    char text[ADDR_TEXT_MAX];

    addr_grant_text(a, THROTTLE_V6_PREFIX, text);
    snprintf(out, len, "%sfailpair:%s:%.256s", t->prefix, text, user);
}

struct throttle_keys {
    char addr[KEY_MAX], user[KEY_MAX], pair[KEY_MAX];
};

static void keys_of(const struct throttle *t, const struct ab_addr *a,
                    const char *user, struct throttle_keys *k)
{
    addr_key(t, a, k->addr, sizeof(k->addr));
    user_key(t, user, k->user, sizeof(k->user));
    pair_key(t, a, user, k->pair, sizeof(k->pair));
}

static long long int_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

static void check_reply(redisReply *r, void *arg)
{
    struct check_req *q = arg;
    enum throttle_verdict v = THROTTLE_OK;
    unsigned delay = 0;
    bool counted = false;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        /* The rule is about failures before this attempt. */
        v = throttle_decide(&q->t->tc, int_of(r->element[0]) - 1,
                            int_of(r->element[1]) - 1, &delay);
        counted = true;
    }
    if (v == THROTTLE_BLOCK_ADDR || v == THROTTLE_BLOCK_USER)
        metric_inc(&metric_throttle_blocks,
                   v == THROTTLE_BLOCK_ADDR ? "address" : "user", NULL);
    q->cb(v, delay, counted, q->arg);
    free(q);
}

static void ignore(redisReply *r, void *arg)
{
    (void)r;
    (void)arg;
}

static void run_count(struct throttle *t, const struct ab_addr *a,
                      const char *user, rconn_cb *cb, void *arg)
{
    struct throttle_keys k;
    char window[16];

    keys_of(t, a, user, &k);
    snprintf(window, sizeof(window), "%u", t->tc.window);
    const char *argv[] = { k.addr, k.user, k.pair, window };
    rconn_eval(t->rc, cb, arg, &count_rs, 3, 4, argv);
}

static void run_forgive(struct throttle *t, const struct ab_addr *a,
                        const char *user, const char *how)
{
    struct throttle_keys k;

    keys_of(t, a, user, &k);
    const char *argv[] = { k.addr, k.user, k.pair, how };
    rconn_eval(t->rc, ignore, NULL, &forgive_rs, 3, 4, argv);
}

void throttle_check(struct throttle *t, const struct ab_addr *a,
                    const char *user, throttle_cb *cb, void *arg)
{
    struct check_req *q = ab_malloc(sizeof(*q));

    q->t = t;
    q->cb = cb;
    q->arg = arg;
    run_count(t, a, user, check_reply, q);
}

void throttle_failed(struct throttle *t, const struct ab_addr *a,
                     const char *user, bool counted)
{
    if (!counted)
        run_count(t, a, user, ignore, NULL);
}

void throttle_succeeded(struct throttle *t, const struct ab_addr *a,
                        const char *user)
{
    run_forgive(t, a, user, "all");
}

void throttle_unchecked(struct throttle *t, const struct ab_addr *a,
                        const char *user, bool counted)
{
    if (counted)
        run_forgive(t, a, user, "1");
}
