/*
 * The asynchronous grant store against a real Redis, through outages.
 * Driven by tests/e2e/test_grant_store.py, which starts the Redis:
 *
 *   grant_store_test PORT
 *
 * The program asks its driver to act on that Redis by printing
 * "ACTION stop|start|pause|resume" and waiting for one line back ("done").
 * Figures are printed as "FIGURE name value unit". On the first failed
 * check it prints "FAIL: ..." on stderr and exits 1; 0 means all passed.
 *
 * One rconn and one grant_store live for the whole run: reconnecting after
 * an outage is the store's job, not the caller's.
 */
#include "authbridge/conf.h"
#include "authbridge/grant.h"
#include "authbridge/log.h"
#include "authbridge/redis.h"
#include "authbridge/util.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* redis.timeout_ms under test: twice the default, so that a burst of
 * 10,000 puts fits well inside it even in a sanitizer build on a busy
 * machine (about 0.2 s plain, 0.4 s with ASan). */
#define TIMEOUT_MS     1000
#define SLACK_MS       150     /* timer and scheduling slack, sanitizers too */
#define BURST          10000   /* puts in flight at once on one connection */
#define WAVE_CALLS     12      /* calls issued together during an outage */
#define WAVE_GAP_MS    40
#define RECOVER_MS     3000    /* Redis back -> store usable again */

struct batch;

struct call {
    struct batch *batch;
    uint64_t issued_ms, done_ms;
    enum grant_status st;
    int done;                     /* completions seen: must end up 1 */
    char user[64];
    long long ttl;
};

struct batch {
    struct call *v;
    size_t n, ndone;
};

static struct event_base *base;
static struct rconn *rc;
static struct grant_store *gs;
static unsigned port;
static bool in_call;              /* inside a grant_store_* call */

static const struct grant_settings settings = {
    .prefix = "authbridge:", .node = "store-test", .ttl = 600,
    .ipv6_prefix = 128, .log_maxlen = 100000, .replicas = 0,
    .timeout_ms = TIMEOUT_MS,
};

static _Noreturn void fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("FAIL: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void figure(const char *name, double value, const char *unit)
{
    printf("FIGURE %s %.1f %s\n", name, value, unit);
    fflush(stdout);
}

/* Ask the driver to act on Redis and wait until it has. */
static void action(const char *what)
{
    char line[64];

    printf("ACTION %s\n", what);
    fflush(stdout);
    if (fgets(line, sizeof(line), stdin) == NULL || strcmp(line, "done\n") != 0)
        fail("driver did not confirm '%s'", what);
}

/* ---- the loop ------------------------------------------------------------------- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run the loop until done(arg) or ms pass; returns done(arg). A 5 ms
 * ticker keeps EVLOOP_ONCE from sleeping past the deadline. */
static bool run_until(bool (*done)(void *), void *arg, unsigned ms)
{
    uint64_t deadline = ab_now_ms() + ms;

    while (!(done && done(arg))) {
        if (ab_now_ms() >= deadline)
            return false;
        event_base_loop(base, EVLOOP_ONCE);
    }
    return true;
}

static void run_for(unsigned ms)
{
    run_until(NULL, NULL, ms);
}

static bool batch_done(void *arg)
{
    const struct batch *b = arg;
    return b->ndone == b->n;
}

static bool store_up(void *arg)
{
    (void)arg;
    return rconn_is_up(rc);
}

/* ---- calls ---------------------------------------------------------------------- */

static struct ab_addr addr_n(unsigned i)
{
    struct ab_addr a = { .family = AF_INET };

    a.b[0] = 10;
    a.b[1] = (uint8_t)(i >> 16);
    a.b[2] = (uint8_t)(i >> 8);
    a.b[3] = (uint8_t)i;
    return a;
}

static void batch_init(struct batch *b, size_t n)
{
    b->v = ab_calloc(n, sizeof(*b->v));
    b->n = 0;
    b->ndone = 0;
}

static struct call *batch_add(struct batch *b)
{
    struct call *c = &b->v[b->n++];

    c->batch = b;
    c->issued_ms = ab_now_ms();
    c->ttl = -1;
    return c;
}

static void complete(struct call *c, enum grant_status st)
{
    if (in_call)
        fail("a callback ran inside the call that queued it");
    if (c->done++ == 0) {
        c->st = st;
        c->done_ms = ab_now_ms();
        c->batch->ndone++;
    }
}

static void done_cb(enum grant_status st, void *arg)
{
    complete(arg, st);
}

static void get_cb(enum grant_status st, const char *user, long long ttl,
                   void *arg)
{
    struct call *c = arg;

    if (user != NULL)
        snprintf(c->user, sizeof(c->user), "%s", user);
    c->ttl = ttl;
    complete(c, st);
}

static void put(struct batch *b, unsigned i)
{
    char user[32];
    struct grant_info g = { addr_n(i), user, "USER", false, NULL };

    snprintf(user, sizeof(user), "u%u", i);
    in_call = true;
    grant_store_put(gs, &g, done_cb, batch_add(b));
    in_call = false;
}

static void get(struct batch *b, unsigned i)
{
    struct ab_addr a = addr_n(i);

    in_call = true;
    grant_store_get(gs, &a, get_cb, batch_add(b));
    in_call = false;
}

static void lookup(struct batch *b, unsigned i)
{
    struct ab_addr a = addr_n(i);

    in_call = true;
    grant_store_lookup(gs, &a, get_cb, batch_add(b));
    in_call = false;
}

static void revoke(struct batch *b, unsigned i)
{
    struct ab_addr a = addr_n(i);

    in_call = true;
    grant_store_revoke(gs, &a, "test", done_cb, batch_add(b));
    in_call = false;
}

/* Every call completed exactly once; returns the slowest latency. */
static uint64_t batch_check_once(const struct batch *b, const char *phase)
{
    uint64_t worst = 0;

    for (size_t i = 0; i < b->n; i++) {
        const struct call *c = &b->v[i];
        if (c->done != 1)
            fail("%s: call %zu completed %d times", phase, i, c->done);
        if (c->done_ms - c->issued_ms > worst)
            worst = c->done_ms - c->issued_ms;
    }
    return worst;
}

/* One call, run to completion. */
static struct call one(void (*fn)(struct batch *, unsigned), unsigned i,
                       const char *what)
{
    struct batch b;
    struct call c;

    batch_init(&b, 1);
    fn(&b, i);
    if (!run_until(batch_done, &b, TIMEOUT_MS + SLACK_MS))
        fail("%s: no completion within %u ms", what, TIMEOUT_MS + SLACK_MS);
    batch_check_once(&b, what);
    c = b.v[0];
    free(b.v);
    return c;
}

/* ---- Redis, read synchronously -------------------------------------------------- */

static redisReply *sync_cmd(const char *fmt, ...)
{
    struct timeval tv = { 2, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", (int)port, tv);
    redisReply *r;
    va_list ap;

    if (c == NULL || c->err)
        fail("sync connect to 127.0.0.1:%u: %s", port, c ? c->errstr : "oom");
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        fail("sync %s: %s", fmt, r ? r->str : c->errstr);
    redisFree(c);
    return r;
}

static long long sync_int(const char *fmt, const char *arg)
{
    redisReply *r = sync_cmd(fmt, arg);
    long long n;

    if (r->type == REDIS_REPLY_INTEGER)
        n = r->integer;
    else if (r->type == REDIS_REPLY_ARRAY)
        n = (long long)r->elements;
    else
        fail("sync %s: unexpected reply type %d", fmt, r->type);
    freeReplyObject(r);
    return n;
}

/* ---- the checks ------------------------------------------------------------------ */

static void check_burst_of_puts_completes(void)
{
    struct batch b;
    uint64_t start, ms;

    freeReplyObject(sync_cmd("FLUSHALL"));
    batch_init(&b, BURST);
    start = ab_now_ms();
    for (unsigned i = 0; i < BURST; i++)
        put(&b, i);
    if (rconn_pending(rc) != BURST)
        fail("burst: %zu requests pending, wanted %d", rconn_pending(rc), BURST);
    if (!run_until(batch_done, &b, 30000))
        fail("burst: %zu of %d puts completed", b.ndone, BURST);
    ms = ab_now_ms() - start;
    batch_check_once(&b, "burst");
    for (size_t i = 0; i < b.n; i++)
        if (b.v[i].st != GRANT_OK)
            fail("burst: put %zu completed with status %d", i, b.v[i].st);
    figure("burst_puts", BURST, "puts");
    figure("burst_ms", (double)ms, "ms");
    figure("burst_rate", BURST * 1000.0 / (double)(ms ? ms : 1), "puts/s");
    if (sync_int("KEYS %s", "authbridge:grant:*") != BURST)
        fail("burst: Redis does not hold %d grant keys", BURST);
    if (sync_int("XLEN %s", "authbridge:log") != BURST)
        fail("burst: the log stream does not hold %d entries", BURST);
    if (rconn_pending(rc) != 0)
        fail("burst: %zu requests still pending", rconn_pending(rc));
    free(b.v);
}

static void check_get_returns_user_and_ttl(void)
{
    struct call c = one(get, 4242, "get");

    if (c.st != GRANT_OK || strcmp(c.user, "u4242") != 0)
        fail("get: status %d user '%s', wanted OK and u4242", c.st, c.user);
    if (c.ttl < (long long)settings.ttl - 5 || c.ttl > settings.ttl)
        fail("get: ttl %lld, wanted about %u", c.ttl, settings.ttl);
    c = one(lookup, 4242, "lookup");
    if (c.st != GRANT_OK || strcmp(c.user, "u4242") != 0 || c.ttl != -1)
        fail("lookup: status %d user '%s' ttl %lld", c.st, c.user, c.ttl);
    c = one(get, BURST + 1, "get of nothing");
    if (c.st != GRANT_NONE || c.ttl != -1)
        fail("get of nothing: status %d ttl %lld, wanted NONE", c.st, c.ttl);
    c = one(lookup, BURST + 1, "lookup of nothing");
    if (c.st != GRANT_NONE)
        fail("lookup of nothing: status %d, wanted NONE", c.st);
}

static void check_revoke_removes_the_grant(void)
{
    struct call c = one(revoke, 4242, "revoke");

    if (c.st != GRANT_OK)
        fail("revoke: status %d", c.st);
    c = one(get, 4242, "get after revoke");
    if (c.st != GRANT_NONE)
        fail("get after revoke: status %d, wanted NONE", c.st);
}

/*
 * During an outage, waves of calls (put, get, lookup, revoke) spread over
 * span_ms: every one completes UNAVAILABLE, none later than timeout_ms.
 */
static void check_calls_fail_in_time(const char *phase, unsigned span_ms)
{
    unsigned waves = span_ms / WAVE_GAP_MS + 1;
    struct batch b;
    uint64_t worst;
    char name[64];

    batch_init(&b, (size_t)waves * WAVE_CALLS);
    for (unsigned w = 0; w < waves; w++) {
        for (unsigned i = 0; i < WAVE_CALLS - 3; i++)
            put(&b, 20000 + w * WAVE_CALLS + i);
        get(&b, w);
        lookup(&b, w);
        revoke(&b, w);
        run_for(WAVE_GAP_MS);
    }
    if (!run_until(batch_done, &b, TIMEOUT_MS + SLACK_MS))
        fail("%s: %zu of %zu calls never completed", phase, b.n - b.ndone, b.n);
    worst = batch_check_once(&b, phase);
    for (size_t i = 0; i < b.n; i++)
        if (b.v[i].st != GRANT_UNAVAILABLE)
            fail("%s: call %zu completed with status %d, wanted UNAVAILABLE",
                 phase, i, b.v[i].st);
    snprintf(name, sizeof(name), "%s_calls", phase);
    figure(name, (double)b.n, "calls");
    snprintf(name, sizeof(name), "%s_worst_ms", phase);
    figure(name, (double)worst, "ms");
    if (worst > TIMEOUT_MS + SLACK_MS)
        fail("%s: a call took %llu ms, timeout_ms is %d", phase,
             (unsigned long long)worst, TIMEOUT_MS);
    free(b.v);
}

/* Redis is back: puts succeed again, on the same store, by themselves. */
static void check_store_recovers(const char *phase)
{
    uint64_t start = ab_now_ms();
    char name[64], key[GRANT_KEY_MAX];
    unsigned i = 30000;
    struct ab_addr a;

    for (;; i++) {
        struct call c = one(put, i, phase);
        if (c.st == GRANT_OK)
            break;
        if (ab_now_ms() - start > RECOVER_MS)
            fail("%s: puts still fail %d ms after Redis came back", phase,
                 RECOVER_MS);
        run_for(20);
    }
    snprintf(name, sizeof(name), "%s_recovery_ms", phase);
    figure(name, (double)(ab_now_ms() - start), "ms");
    a = addr_n(i);
    grant_key(settings.prefix, &a, 128, key, sizeof(key));
    if (sync_int("EXISTS %s", key) != 1)
        fail("%s: the put that succeeded is not in Redis (%s)", phase, key);
}

/* A put that failed is queued and lands by itself when Redis returns. */
static void check_retry_later_lands(void)
{
    struct grant_info g = { addr_n(50000), "late", "APOP", true, NULL };
    struct call c;
    uint64_t start;

    action("stop");
    c = one(put, 50000, "put while stopped");
    if (c.st != GRANT_UNAVAILABLE)
        fail("put while stopped: status %d", c.st);
    grant_store_retry_later(gs, &g);
    if (grant_store_retry_pending(gs) != 1)
        fail("retry_later: %zu pending, wanted 1", grant_store_retry_pending(gs));
    run_for(200);
    action("start");
    start = ab_now_ms();
    while (grant_store_retry_pending(gs) != 0) {
        if (ab_now_ms() - start > RECOVER_MS)
            fail("retry_later: still pending %d ms after Redis returned",
                 RECOVER_MS);
        run_for(20);
    }
    figure("retry_landed_ms", (double)(ab_now_ms() - start), "ms");
    c = one(get, 50000, "get of the retried grant");
    if (c.st != GRANT_OK || strcmp(c.user, "late") != 0)
        fail("retried grant: status %d user '%s'", c.st, c.user);
    if (c.ttl <= 0 || c.ttl > settings.ttl)
        fail("retried grant: ttl %lld", c.ttl);
}

static bool put_in_flight(void *arg)
{
    (void)arg;
    return rconn_pending(rc) > 0;
}

/*
 * A full retry queue drops its oldest entry, even one whose put is on the
 * wire: that put must still complete safely (sanitizer builds catch a
 * use after free here) and the queue must stay bounded.
 */
static void check_full_retry_queue_drops_safely(void)
{
    struct grant_info g = { addr_n(60000), "first", "USER", false, NULL };
    uint64_t start;

    action("pause");              /* connected, but nothing is answered */
    grant_store_retry_later(gs, &g);
    if (!run_until(put_in_flight, NULL, 2500))
        fail("retry queue: the queued put was never sent");
    for (unsigned i = 1; i <= 10000; i++) {
        g.addr = addr_n(60000 + i);
        g.user = "filler";
        grant_store_retry_later(gs, &g);
    }
    if (grant_store_retry_pending(gs) > 10000)
        fail("retry queue: %zu pending, the cap is 10000",
             grant_store_retry_pending(gs));
    run_for(TIMEOUT_MS + SLACK_MS);   /* the put in flight times out */
    action("resume");
    start = ab_now_ms();
    while (grant_store_retry_pending(gs) != 0) {
        if (ab_now_ms() - start > 4 * RECOVER_MS)
            fail("retry queue: %zu still pending", grant_store_retry_pending(gs));
        run_for(20);
    }
    figure("retry_queue_drained_ms", (double)(ab_now_ms() - start), "ms");
}

int main(int argc, char **argv)
{
    struct redis_conf rconf = {
        .password = "", .username = "", .database = 0, .prefix = "authbridge:",
        .timeout_ms = TIMEOUT_MS, .master_name = "mymaster",
        .log_maxlen = 100000,
    };
    char addr[32], err[256];
    uint64_t n;
    struct event *tick;
    struct timeval five_ms = { 0, 5000 };

    if (argc != 2 || ab_parse_uint(argv[1], 1, 65535, &n) < 0) {
        fprintf(stderr, "usage: grant_store_test PORT\n");
        return 2;
    }
    port = (unsigned)n;
    setvbuf(stdout, NULL, _IOLBF, 0);
    log_init("grant_store_test", LOG_DEST_STDERR, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    if (endpoint_parse(addr, false, &rconf.address, err, sizeof(err)) < 0)
        fail("%s", err);
    base = event_base_new();
    tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    event_add(tick, &five_ms);
    rc = rconn_new(base, &rconf);
    gs = grant_store_new(rc, &settings);
    if (!run_until(store_up, NULL, 2000))
        fail("the store did not connect to %s", addr);
    figure("timeout_ms", TIMEOUT_MS, "ms");
    figure("slack_ms", SLACK_MS, "ms");

    check_burst_of_puts_completes();
    check_get_returns_user_and_ttl();
    check_revoke_removes_the_grant();

    action("stop");
    check_calls_fail_in_time("stopped", 700);
    action("start");
    check_store_recovers("restarted");

    action("pause");
    /* long enough to see a timeout, a reconnect into the frozen server
     * (the kernel still accepts) and a second timeout there */
    check_calls_fail_in_time("hung", 2 * TIMEOUT_MS + 200);
    action("resume");
    check_store_recovers("resumed");

    check_retry_later_lands();
    check_full_retry_queue_drops_safely();

    /* The connection first: freeing it completes what is still pending,
     * and those completions still need the store. */
    rconn_free(rc);
    grant_store_free(gs);
    event_free(tick);
    event_base_free(base);
    endpoint_free(&rconf.address);
    printf("PASS\n");
    return 0;
}
