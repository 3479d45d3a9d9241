/*
 * The log stream: watch (follow it live) and stats (count it).
 */
#include "authbridge/cli.h"
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
    printf("%s.%03lldZ %s", stamp, ms % 1000, event);
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const char *k = f->element[i]->str, *v = f->element[i + 1]->str;
        if (strcmp(k, "event") == 0)
            continue;
        printf(strpbrk(v, " =\"") || !*v ? " %s=\"%s\"" : " %s=%s", k, v);
    }
    putchar('\n');
}

int cmd_watch(int argc, char **argv)
{
    char logkey[GRANT_KEY_MAX], last[64] = "$";
    redisContext *c = NULL;

    (void)argv;
    if (argc != 1)
        die(EX_USAGE, "usage: watch");
    snprintf(logkey, sizeof(logkey), "%slog", cli_conf->redis.prefix);
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
                                "STREAMS", logkey, last };
        redisReply *r = redisCommandArgv(c, 8, xargv, NULL);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "authbridge: Redis: %s (retrying)\n",
                    r ? r->str : c->errstr);
            freeReplyObject(r);
            redisFree(c);
            c = NULL;
            sleep(1);
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            const redisReply *entries = r->element[0]->element[1];
            for (size_t i = 0; i < entries->elements; i++) {
                print_entry(entries->element[i]);
                snprintf(last, sizeof(last), "%s",
                         entries->element[i]->element[0]->str);
            }
        }
        freeReplyObject(r);
    }
}

struct event_count {
    const char *event, *label;
    long long n;
};

static const char *field_of(const redisReply *f, const char *name)
{
    for (size_t j = 0; j + 1 < f->elements; j += 2)
        if (strcmp(f->element[j]->str, name) == 0)
            return f->element[j + 1]->str;
    return NULL;
}

/* Relays refused because the sender was not the user's own address, by
 * the check that refused: [0] the envelope (MAIL FROM; entries written
 * before the check field existed are envelope ones), [1] the header. */
static void count_mismatch(const redisReply *f, long long mismatch[2])
{
    const char *path = field_of(f, "path"), *check = field_of(f, "check");

    if (path == NULL || strcmp(path, "sender_mismatch") != 0)
        return;
    mismatch[check != NULL && strcmp(check, "header") == 0]++;
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
    char logkey[GRANT_KEY_MAX], start[80] = "-", batch[16], first[32] = "";
    struct rows rows = { 0 };
    long long total = 0, other = 0, mismatch[2] = { 0, 0 };
    redisContext *c;

    (void)argv;
    if (argc != 1)
        die(EX_USAGE, "usage: stats");
    c = connect_or_die();
    scan_grants(c, &rows);
    snprintf(logkey, sizeof(logkey), "%slog", cli_conf->redis.prefix);
    snprintf(batch, sizeof(batch), "%d", XRANGE_BATCH);
    for (;;) {
        const char *xargv[] = { "XRANGE", logkey, start, "+", "COUNT", batch };
        redisReply *r = command_or_die(c, 6, xargv);
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i], *f = e->element[1];
            const char *event = field_of(f, "event");
            if (total++ == 0)
                snprintf(first, sizeof(first), "%s", e->element[0]->str);
            if (event == NULL)
                continue;
            size_t k = 0;
            for (; k < AB_ARRAY_LEN(counts); k++)
                if (strcmp(counts[k].event, event) == 0) {
                    counts[k].n++;
                    break;
                }
            other += k == AB_ARRAY_LEN(counts);
            count_mismatch(f, mismatch);
        }
        if (r->elements < XRANGE_BATCH) {
            freeReplyObject(r);
            break;
        }
        snprintf(start, sizeof(start), "(%s", r->element[r->elements - 1]->element[0]->str);
        freeReplyObject(r);
    }
    char since[32];
    printf("live grants:                    %zu\n", rows.n);
    printf("log entries:                    %lld", total);
    if (total > 0)
        printf(" (since %s, capped at about %u)",
               fmt_time(strtoll(first, NULL, 10) / 1000, since, sizeof(since)),
               cli_conf->redis.log_maxlen);
    putchar('\n');
    for (size_t k = 0; k < AB_ARRAY_LEN(counts); k++) {
        printf("  %-30s%lld\n", counts[k].label, counts[k].n);
        if (strcmp(counts[k].event, "relay-denied") != 0)
            continue;
        printf("    %-28s%lld\n", "sender not own (envelope)", mismatch[0]);
        printf("    %-28s%lld\n", "sender not own (header)", mismatch[1]);
    }
    if (other)
        printf("  %-30s%lld\n", "other", other);
    rows_free(&rows);
    redisFree(c);
    return EX_OK;
}
