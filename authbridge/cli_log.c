/*
 * The streams: watch (follow them live) and stats (count them).
 * <prefix>log holds grants and revocations, <prefix>decisions relay
 * decisions (refusals sampled per address, an entry with "count=N"
 * standing for N of them).
 */
#include "authbridge/cli.h"
#include "authbridge/hmap.h"
#include "authbridge/limits.h"
#include "authbridge/redis.h"
#include "authbridge/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define XRANGE_BATCH 10000

static void print_entry(const redisReply *e)
{
    const redisReply *id = e->element[0], *f = e->element[1];
    long long ms = strtoll(id->str, NULL, 10);
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char stamp[32];
    const char *event = "?";

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (strcmp(f->element[i]->str, "event") == 0)
            event = f->element[i + 1]->str;
    printf("%s.%03lldZ ", stamp, ms % 1000);
    print_safe(event, true);
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const char *k = f->element[i]->str, *v = f->element[i + 1]->str;
        if (strcmp(k, "event") == 0)
            continue;
        putchar(' ');
        print_safe(k, true);
        putchar('=');
        print_safe(v, true);
    }
    putchar('\n');
}

/* The two streams, in the order watch and stats show them. */
enum { STREAM_LOG, STREAM_DECISIONS, NSTREAMS };

static void stream_keys(char keys[NSTREAMS][GRANT_KEY_MAX])
{
    snprintf(keys[STREAM_LOG], GRANT_KEY_MAX, "%slog", cli_conf->redis.prefix);
    snprintf(keys[STREAM_DECISIONS], GRANT_KEY_MAX, "%sdecisions",
             cli_conf->redis.prefix);
}

static int id_cmp(const char *a, const char *b)
{
    unsigned long long ma = strtoull(a, NULL, 10), mb = strtoull(b, NULL, 10);
    const char *da = strchr(a, '-'), *db = strchr(b, '-');

    if (ma != mb)
        return ma < mb ? -1 : 1;
    ma = da ? strtoull(da + 1, NULL, 10) : 0;
    mb = db ? strtoull(db + 1, NULL, 10) : 0;
    return ma < mb ? -1 : ma > mb;
}

/* One XREAD's entries of both streams, oldest first (a merge: each
 * stream's own are in order). */
static void print_batch(const redisReply *r, char last[NSTREAMS][64],
                        char keys[NSTREAMS][GRANT_KEY_MAX])
{
    const redisReply *list[NSTREAMS] = { NULL, NULL };
    size_t at[NSTREAMS] = { 0, 0 };

    for (size_t i = 0; i < r->elements; i++)
        for (int k = 0; k < NSTREAMS; k++)
            if (strcmp(r->element[i]->element[0]->str, keys[k]) == 0)
                list[k] = r->element[i]->element[1];
    for (;;) {
        int pick = -1;
        for (int k = 0; k < NSTREAMS; k++)
            if (list[k] != NULL && at[k] < list[k]->elements &&
                (pick < 0 ||
                 id_cmp(list[k]->element[at[k]]->element[0]->str,
                        list[pick]->element[at[pick]]->element[0]->str) < 0))
                pick = k;
        if (pick < 0)
            return;
        const redisReply *e = list[pick]->element[at[pick]++];
        print_entry(e);
        snprintf(last[pick], 64, "%s", e->element[0]->str);
    }
}

int cmd_watch(int argc, char **argv)
{
    char keys[NSTREAMS][GRANT_KEY_MAX], last[NSTREAMS][64] = { "$", "$" };
    redisContext *c = NULL;

    (void)argv;
    if (argc != 1)
        die(EX_USAGE, "usage: watch");
    stream_keys(keys);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        char err[256];
        if (c == NULL) {
            c = rconn_sync_connect(&cli_conf->redis, err, sizeof(err));
            if (c == NULL) {
                fprintf(stderr, "authbridge: %s (retrying)\n", err);
                sleep(1);
                continue;
            }
            struct timeval tv = { 5, 0 };
            redisSetTimeout(c, tv);
        }
        const char *xargv[] = { "XREAD", "BLOCK", "2000", "COUNT", "100",
                                "STREAMS", keys[0], keys[1], last[0],
                                last[1] };
        redisReply *r = redisCommandArgv(c, 10, xargv, NULL);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "authbridge: Redis: %s (retrying)\n",
                    r ? r->str : c->errstr);
            freeReplyObject(r);
            redisFree(c);
            c = NULL;
            sleep(1);
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY)
            print_batch(r, last, keys);
        freeReplyObject(r);
    }
}

struct event_count {
    const char *event, *label;
    long long n;
};

struct stream_total {
    long long entries;
    char first[32];               /* the oldest entry's ID */
};

/* What stats adds up over both streams. */
struct tally {
    struct event_count *counts;
    size_t n;
    long long other;
    /* Relays refused because the sender was not the user's own address,
     * by the check that refused: [0] the envelope (MAIL FROM; entries
     * written before the check field existed are envelope ones), [1] the
     * header. */
    long long mismatch[2];
};

static const char *field(const redisReply *f, const char *name)
{
    for (size_t j = 0; j + 1 < f->elements; j += 2)
        if (strcmp(f->element[j]->str, name) == 0)
            return f->element[j + 1]->str;
    return NULL;
}

/*
 * One relay, counted once. A message the gate relays to a Postfix that
 * asks the policy service is decided twice: by the gate at RCPT, then by
 * the policy service for the same recipient, and both write
 * relay-allowed. The gate passes the client's address and TCP port to
 * Postfix (XCLIENT ADDR, PORT), Postfix passes them on (client_address,
 * client_port), and both entries record them. Entries stand for several
 * decisions of one client, port and user ("count", decisions.c), so per
 * client, port and ten-minute window the policy service's allowed relays
 * are echoes of the gate's up to the gate's count. Entries without a port
 * (other MTAs, XFORWARD, older entries), or split across two windows, are
 * not merged: a relay may be counted twice, never lost.
 */
struct echoes {
    struct hmap *by_key;          /* client|port|window -> struct seen */
    long long merged;
};

struct seen {
    long long gate, policy;       /* allowed relays counted by each */
};

static void seen_free(void *p)
{
    free(p);
}

/* Count an allowed relay of the gate or the policy service. */
static void echo_count(struct echoes *ec, const redisReply *e, long long times)
{
    const redisReply *f = e->element[1];
    const char *via = field(f, "via"), *client = field(f, "client"),
               *port = field(f, "port");
    long long ms = strtoll(e->element[0]->str, NULL, 10);
    char key[256];
    struct seen *s;

    if (ec == NULL || via == NULL || client == NULL || port == NULL ||
        port[0] == '\0' ||
        (strcmp(via, "smtp") != 0 && strcmp(via, "policy") != 0))
        return;
    snprintf(key, sizeof(key), "%s|%s|%lld", client, port,
             ms / STATS_ECHO_WINDOW_MS);
    if ((s = hmap_get(ec->by_key, key)) == NULL)
        hmap_put(ec->by_key, key, s = ab_calloc(1, sizeof(*s)));
    if (via[0] == 's')
        s->gate += times;
    else
        s->policy += times;
}

static void echo_sum(const char *key, void *val, void *arg)
{
    const struct seen *s = val;
    struct echoes *ec = arg;

    (void)key;
    ec->merged += s->gate < s->policy ? s->gate : s->policy;
}

/* One entry: its event, as many times as it stands for (refusals are
 * sampled per address: one entry with "count=N" for N of them). */
static void count_entry(const redisReply *e, struct echoes *ec,
                        struct tally *t)
{
    const redisReply *f = e->element[1];
    const char *event = field(f, "event"), *count = field(f, "count");
    const char *path = field(f, "path"), *check = field(f, "check");
    long long times = count ? strtoll(count, NULL, 10) : 1;

    if (times <= 0)
        times = 1;
    if (event != NULL && strcmp(event, "relay-allowed") == 0)
        echo_count(ec, e, times);
    if (path != NULL && strcmp(path, "sender_mismatch") == 0)
        t->mismatch[check != NULL && strcmp(check, "header") == 0] += times;
    for (size_t k = 0; k < t->n; k++)
        if (event != NULL && strcmp(t->counts[k].event, event) == 0) {
            t->counts[k].n += times;
            return;
        }
    t->other++;
}

static void count_stream(redisContext *c, const char *key, struct echoes *ec,
                         struct tally *tl, struct stream_total *t)
{
    char start[80] = "-", batch[16];

    snprintf(batch, sizeof(batch), "%d", XRANGE_BATCH);
    for (;;) {
        const char *xargv[] = { "XRANGE", key, start, "+", "COUNT", batch };
        redisReply *r = command_or_die(c, 6, xargv);
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (t->entries++ == 0)
                snprintf(t->first, sizeof(t->first), "%s", e->element[0]->str);
            count_entry(e, ec, tl);
        }
        if (r->elements < XRANGE_BATCH) {
            freeReplyObject(r);
            return;
        }
        snprintf(start, sizeof(start), "(%s",
                 r->element[r->elements - 1]->element[0]->str);
        freeReplyObject(r);
    }
}

static void print_total(const char *label, const struct stream_total *t,
                        unsigned cap)
{
    char since[32];

    printf("%-32s%lld", label, t->entries);
    if (t->entries > 0)
        printf(" (since %s, capped at about %u)",
               fmt_time(strtoll(t->first, NULL, 10) / 1000, since,
                        sizeof(since)), cap);
    putchar('\n');
}

int cmd_stats(int argc, char **argv)
{
    struct event_count counts[] = {
        { "grant", "grants", 0 },
        { "revoke", "revocations", 0 },
        { "relay-allowed", "relays allowed", 0 },
        { "relay-denied", "relays denied", 0 },
        { "relay-tempfail", "relays deferred (Redis down)", 0 },
    };
    enum { FIRST_DECISION = 2 };
    char keys[NSTREAMS][GRANT_KEY_MAX];
    struct stream_total totals[NSTREAMS] = { { 0 } };
    struct rows rows = { 0 };
    struct tally tl = { counts, AB_ARRAY_LEN(counts), 0, { 0, 0 } };
    struct echoes ec = { hmap_new(), 0 };
    redisContext *c;

    (void)argv;
    if (argc != 1)
        die(EX_USAGE, "usage: stats");
    c = connect_or_die();
    scan_grants(c, &rows);
    stream_keys(keys);
    for (int k = 0; k < NSTREAMS; k++)
        count_stream(c, keys[k], k == STREAM_DECISIONS ? &ec : NULL, &tl,
                     &totals[k]);
    hmap_each(ec.by_key, echo_sum, &ec);
    for (size_t k = 0; k < AB_ARRAY_LEN(counts); k++)
        if (strcmp(counts[k].event, "relay-allowed") == 0)
            counts[k].n -= ec.merged;
    printf("%-32s%zu\n", "live grants:", rows.n);
    print_total("log entries:", &totals[STREAM_LOG],
                cli_conf->redis.log_maxlen);
    for (size_t k = 0; k < FIRST_DECISION; k++)
        printf("  %-30s%lld\n", counts[k].label, counts[k].n);
    print_total("decision entries:", &totals[STREAM_DECISIONS],
                cli_conf->redis.decisions_maxlen);
    for (size_t k = FIRST_DECISION; k < AB_ARRAY_LEN(counts); k++) {
        printf("  %-30s%lld\n", counts[k].label, counts[k].n);
        if (strcmp(counts[k].event, "relay-denied") != 0)
            continue;
        printf("    %-28s%lld\n", "sender not own (envelope)",
               tl.mismatch[0]);
        printf("    %-28s%lld\n", "sender not own (header)", tl.mismatch[1]);
    }
    if (tl.other)
        printf("  %-30s%lld\n", "other", tl.other);
    if (ec.merged)
        printf("  (%lld more decision%s: the MTA asking the policy service "
               "about a relay the gate allowed, counted once)\n", ec.merged,
               ec.merged == 1 ? "" : "s");
    hmap_free(ec.by_key, seen_free);
    rows_free(&rows);
    redisFree(c);
    return EX_OK;
}
