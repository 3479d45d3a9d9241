/*
 * authbridge: the admin command. Reads and writes the same Redis schema as
 * the daemons (synchronous hiredis is fine here).
 *
 * Exit status: 0 done, 1 nothing found (show), 2 bad usage or config,
 * 3 Redis unreachable or failing.
 */
#include "authbridge/addr.h"
#include "authbridge/conf.h"
#include "authbridge/grant.h"
#include "authbridge/redis.h"
#include "authbridge/users.h"
#include "authbridge/util.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONF "/etc/authbridge/authbridge.conf"
#define SCAN_BATCH   1000
#define XRANGE_BATCH 10000

enum { EX_OK = 0, EX_NONE = 1, EX_USAGE = 2, EX_REDIS = 3 };

struct grant_row {
    char *addr, *user, *node, *method;
    long long since, renewed, logins, ttl;
    int tls;
};

struct rows {
    struct grant_row *v;
    size_t n;
};

static const struct ab_conf *conf;
static struct grant_settings settings;

static _Noreturn void die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One line on stderr: what the user typed may hold control characters. */
static void die(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fputs("authbridge: ", stderr);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    }
    fputc('\n', stderr);
    exit(code);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: authbridge [-c FILE] [-t] COMMAND [ARGS]\n"
        "  list [--json]                 live grants: address, user, since, expires in\n"
        "  show ADDR                     one grant with all fields (exit 1: none)\n"
        "  grant ADDR USER [--ttl SECS]  create or renew a grant, as pop3d does\n"
        "  revoke ADDR | --user USER     remove grants; prints how many\n"
        "  watch                         follow the log stream live\n"
        "  stats                         live grants, log entries by event\n"
        "  -c FILE  configuration (default " DEFAULT_CONF ")\n"
        "  -t       check the configuration and exit\n");
}

/* ---- Redis helpers --------------------------------------------------------- */

/* Where the commands go, for error messages. */
static const char *redis_where(void)
{
    static char where[160];

    if (conf->redis.sentinels.n > 0)
        snprintf(where, sizeof(where), "master '%s'", conf->redis.master_name);
    else
        snprintf(where, sizeof(where), "%s", conf->redis.address.text);
    return where;
}

/* The connection failed or timed out (the socket has redis.timeout_ms). */
static _Noreturn void redis_failed(const redisContext *c)
{
    if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
        die(EX_REDIS, "Redis at %s: no reply within %u ms", redis_where(),
            conf->redis.timeout_ms);
    die(EX_REDIS, "Redis at %s: %s", redis_where(),
        c->errstr[0] ? c->errstr : "no reply");
}

static redisContext *connect_or_die(void)
{
    char err[256];
    redisContext *c = rconn_sync_connect(&conf->redis, err, sizeof(err));

    if (c == NULL)
        die(EX_REDIS, "%s", err);
    return c;
}

static redisReply *command_or_die(redisContext *c, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);

    if (r == NULL)
        redis_failed(c);
    if (r->type == REDIS_REPLY_ERROR)
        die(EX_REDIS, "Redis: %s", r->str);
    return r;
}

static redisReply *reply_or_die(redisContext *c)
{
    void *r = NULL;

    if (redisGetReply(c, &r) != REDIS_OK || r == NULL)
        redis_failed(c);
    if (((redisReply *)r)->type == REDIS_REPLY_ERROR)
        die(EX_REDIS, "Redis: %s", ((redisReply *)r)->str);
    return r;
}

/* Run a MULTI ... EXEC body; returns EXEC's reply. */
static redisReply *transaction_or_die(redisContext *c, const struct grant_cmds *g)
{
    redisAppendCommand(c, "MULTI");
    for (int i = 0; i < g->n; i++)
        redisAppendCommandArgv(c, g->cmd[i].argc, g->cmd[i].argv, NULL);
    redisAppendCommand(c, "EXEC");
    for (int i = 0; i < g->n + 1; i++)
        freeReplyObject(reply_or_die(c));
    redisReply *r = reply_or_die(c);
    if (r->type != REDIS_REPLY_ARRAY)
        die(EX_REDIS, "Redis: transaction aborted");
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ERROR)
            die(EX_REDIS, "Redis: %s", r->element[i]->str);
    return r;
}

/* SCAN MATCH needs the prefix's glob characters escaped. */
static char *grant_pattern(void)
{
    const char *p = conf->redis.prefix;
    char *out = ab_malloc(strlen(p) * 2 + 16), *o = out;

    for (; *p; p++) {
        if (strchr("*?[]\\", *p))
            *o++ = '\\';
        *o++ = *p;
    }
    strcpy(o, "grant:*");
    return out;
}

static const char *addr_of_key(const char *key)
{
    return key + strlen(conf->redis.prefix) + strlen("grant:");
}

static long long field_ll(const redisReply *h, const char *name, long long dflt)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (strcmp(h->element[i]->str, name) == 0)
            return strtoll(h->element[i + 1]->str, NULL, 10);
    return dflt;
}

static char *field_str(const redisReply *h, const char *name)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (strcmp(h->element[i]->str, name) == 0)
            return ab_strdup(h->element[i + 1]->str);
    return ab_strdup("");
}

/* Fill a row from HGETALL + TTL replies; false when the grant vanished. */
static bool row_from(struct grant_row *row, const char *key,
                     const redisReply *h, const redisReply *ttl)
{
    if (h->type != REDIS_REPLY_ARRAY || h->elements == 0 ||
        ttl->type != REDIS_REPLY_INTEGER || ttl->integer == -2)
        return false;
    row->addr = ab_strdup(addr_of_key(key));
    row->user = field_str(h, "user");
    row->node = field_str(h, "node");
    row->method = field_str(h, "method");
    row->since = field_ll(h, "since", 0);
    row->renewed = field_ll(h, "renewed", 0);
    row->logins = field_ll(h, "logins", 0);
    row->tls = (int)field_ll(h, "tls", 0);
    row->ttl = ttl->integer;
    return true;
}

static void rows_add_batch(redisContext *c, redisReply *keys, struct rows *out)
{
    for (size_t i = 0; i < keys->elements; i++) {
        redisAppendCommand(c, "HGETALL %s", keys->element[i]->str);
        redisAppendCommand(c, "TTL %s", keys->element[i]->str);
    }
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *h = reply_or_die(c), *t = reply_or_die(c);
        out->v = ab_realloc(out->v, (out->n + 1) * sizeof(*out->v));
        if (row_from(&out->v[out->n], keys->element[i]->str, h, t))
            out->n++;
        freeReplyObject(h);
        freeReplyObject(t);
    }
}

static void scan_grants(redisContext *c, struct rows *out)
{
    char *pattern = grant_pattern();
    char cursor[32] = "0";
    char count[16];

    snprintf(count, sizeof(count), "%d", SCAN_BATCH);
    do {
        const char *argv[] = { "SCAN", cursor, "MATCH", pattern, "COUNT", count };
        redisReply *r = command_or_die(c, 6, argv);
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
            die(EX_REDIS, "Redis: unexpected SCAN reply");
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        rows_add_batch(c, r->element[1], out);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    free(pattern);
}

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct grant_row *)a)->addr,
                  ((const struct grant_row *)b)->addr);
}

static void row_free(struct grant_row *g)
{
    free(g->addr);
    free(g->user);
    free(g->node);
    free(g->method);
}

static void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        row_free(&r->v[i]);
    free(r->v);
}

/* ---- formatting -------------------------------------------------------------- */

static const char *fmt_time(long long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
    return buf;
}

static const char *fmt_duration(long long s, char *buf, size_t len)
{
    if (s < 0)
        snprintf(buf, len, "never");
    else if (s >= 3600)
        snprintf(buf, len, "%lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
    else if (s >= 60)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, len, "%llds", s);
    return buf;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json(const struct rows *r)
{
    putchar('[');
    for (size_t i = 0; i < r->n; i++) {
        const struct grant_row *g = &r->v[i];
        printf("%s{\"addr\":", i ? ",\n " : "");
        json_str(g->addr);
        printf(",\"user\":");
        json_str(g->user);
        printf(",\"since\":%lld,\"renewed\":%lld,\"node\":", g->since, g->renewed);
        json_str(g->node);
        printf(",\"method\":");
        json_str(g->method);
        printf(",\"tls\":%s,\"logins\":%lld,\"ttl\":%lld}", g->tls ? "true" : "false",
               g->logins, g->ttl);
    }
    printf("]\n");
}

static void print_table(const struct rows *r)
{
    char since[32], left[32];

    printf("%-40s %-24s %-21s %s\n", "ADDRESS", "USER", "SINCE", "EXPIRES IN");
    for (size_t i = 0; i < r->n; i++) {
        const struct grant_row *g = &r->v[i];
        printf("%-40s %-24s %-21s %s\n", g->addr, g->user,
               fmt_time(g->since, since, sizeof(since)),
               fmt_duration(g->ttl, left, sizeof(left)));
    }
}

/* ---- verbs -------------------------------------------------------------------- */

static int cmd_list(int argc, char **argv)
{
    bool json = false;
    struct rows rows = { 0 };
    redisContext *c;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            die(EX_USAGE, "list: unknown option '%s'", argv[i]);
    }
    c = connect_or_die();
    scan_grants(c, &rows);
    if (rows.n > 1)               /* rows.v is NULL when there are none */
        qsort(rows.v, rows.n, sizeof(*rows.v), row_cmp);
    if (json)
        print_json(&rows);
    else
        print_table(&rows);
    rows_free(&rows);
    redisFree(c);
    return EX_OK;
}

/*
 * The key an admin means: an address (canonicalised, folded into the
 * configured IPv6 prefix) or the prefix itself ("2001:db8:1:2::/64").
 */
static void key_for_arg(const char *arg, char *key, size_t keylen)
{
    struct ab_addr a;
    struct cidr net;
    char err[128];

    if (addr_parse(arg, &a) == 0) {
        if (grant_key(conf->redis.prefix, &a, conf->grant.ipv6_prefix, key,
                      keylen) < 0)
            die(EX_USAGE, "address too long");
        return;
    }
    if (strchr(arg, '/') != NULL && cidr_parse(arg, &net, err, sizeof(err)) == 0 &&
        net.net.family == AF_INET6 && net.bits == conf->grant.ipv6_prefix) {
        grant_key(conf->redis.prefix, &net.net, net.bits, key, keylen);
        return;
    }
    die(EX_USAGE, "'%s' is not an IPv4 or IPv6 address", arg);
}

static int cmd_show(int argc, char **argv)
{
    char key[GRANT_KEY_MAX], t1[32], t2[32], left[32];
    struct grant_row g;
    redisContext *c;
    redisReply *h, *t;

    if (argc != 2)
        die(EX_USAGE, "usage: show ADDR");
    key_for_arg(argv[1], key, sizeof(key));
    c = connect_or_die();
    redisAppendCommand(c, "HGETALL %s", key);
    redisAppendCommand(c, "TTL %s", key);
    h = reply_or_die(c);
    t = reply_or_die(c);
    if (!row_from(&g, key, h, t))
        die(EX_NONE, "no grant for %s", addr_of_key(key));
    printf("address: %s\nuser:    %s\nsince:   %s\nrenewed: %s\n"
           "node:    %s\nmethod:  %s\ntls:     %s\nlogins:  %lld\n"
           "ttl:     %lld (%s)\n", g.addr, g.user,
           fmt_time(g.since, t1, sizeof(t1)), fmt_time(g.renewed, t2, sizeof(t2)),
           g.node, g.method, g.tls ? "yes" : "no", g.logins, g.ttl,
           fmt_duration(g.ttl, left, sizeof(left)));
    row_free(&g);
    freeReplyObject(h);
    freeReplyObject(t);
    redisFree(c);
    return EX_OK;
}

static int cmd_grant(int argc, char **argv)
{
    struct grant_info g = { .method = "ADMIN", .tls = false };
    struct grant_cmds cmds;
    unsigned ttl = conf->grant.ttl;
    uint64_t n;
    redisContext *c;

    if (argc == 5 && strcmp(argv[3], "--ttl") == 0) {
        if (ab_parse_uint(argv[4], 1, 604800, &n) < 0)
            die(EX_USAGE, "--ttl: '%s' is not a number of seconds from 1 to "
                "604800", argv[4]);
        ttl = (unsigned)n;
    } else if (argc != 3) {
        die(EX_USAGE, "usage: grant ADDR USER [--ttl SECONDS]");
    }
    if (addr_parse(argv[1], &g.addr) < 0)
        die(EX_USAGE, "'%s' is not an IPv4 or IPv6 address", argv[1]);
    if (!users_valid_name(argv[2]))
        die(EX_USAGE, "'%s' is not a valid user name", argv[2]);
    g.user = argv[2];
    grant_cmds_put(&cmds, &settings, &g, (long long)time(NULL), ttl);
    c = connect_or_die();
    freeReplyObject(transaction_or_die(c, &cmds));
    printf("granted %s to %s for %us\n", addr_of_key(cmds.key), g.user, ttl);
    redisFree(c);
    return EX_OK;
}

static long long revoke_key(redisContext *c, const char *key)
{
    struct grant_cmds cmds;
    redisReply *r;
    long long n;

    grant_cmds_revoke(&cmds, &settings, key, "admin");
    r = transaction_or_die(c, &cmds);
    n = r->element[0]->type == REDIS_REPLY_INTEGER ? r->element[0]->integer : 0;
    freeReplyObject(r);
    return n;
}

static int cmd_revoke(int argc, char **argv)
{
    char key[GRANT_KEY_MAX];
    long long n = 0;
    redisContext *c;

    if (argc == 3 && strcmp(argv[1], "--user") == 0) {
        struct rows rows = { 0 };
        c = connect_or_die();
        scan_grants(c, &rows);
        for (size_t i = 0; i < rows.n; i++) {
            if (strcmp(rows.v[i].user, argv[2]) != 0)
                continue;
            snprintf(key, sizeof(key), "%sgrant:%s", conf->redis.prefix,
                     rows.v[i].addr);
            n += revoke_key(c, key);
        }
        rows_free(&rows);
    } else if (argc == 2 && argv[1][0] != '-') {
        key_for_arg(argv[1], key, sizeof(key));
        c = connect_or_die();
        n = revoke_key(c, key);
    } else {
        die(EX_USAGE, "usage: revoke ADDR | revoke --user USER");
    }
    printf("revoked %lld grant%s\n", n, n == 1 ? "" : "s");
    redisFree(c);
    return EX_OK;
}

/* ---- the log stream ------------------------------------------------------------- */

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

static int cmd_watch(int argc, char **argv)
{
    char logkey[GRANT_KEY_MAX], last[64] = "$";
    redisContext *c = NULL;

    (void)argv;
    if (argc != 1)
        die(EX_USAGE, "usage: watch");
    snprintf(logkey, sizeof(logkey), "%slog", conf->redis.prefix);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        char err[256];
        if (c == NULL) {
            c = rconn_sync_connect(&conf->redis, err, sizeof(err));
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

static int cmd_stats(int argc, char **argv)
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
    long long total = 0, other = 0;
    redisContext *c;

    (void)argv;
    if (argc != 1)
        die(EX_USAGE, "usage: stats");
    c = connect_or_die();
    scan_grants(c, &rows);
    snprintf(logkey, sizeof(logkey), "%slog", conf->redis.prefix);
    snprintf(batch, sizeof(batch), "%d", XRANGE_BATCH);
    for (;;) {
        const char *xargv[] = { "XRANGE", logkey, start, "+", "COUNT", batch };
        redisReply *r = command_or_die(c, 6, xargv);
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i], *f = e->element[1];
            if (total++ == 0)
                snprintf(first, sizeof(first), "%s", e->element[0]->str);
            for (size_t j = 0; j + 1 < f->elements; j += 2) {
                if (strcmp(f->element[j]->str, "event") != 0)
                    continue;
                size_t k = 0;
                for (; k < AB_ARRAY_LEN(counts); k++)
                    if (strcmp(counts[k].event, f->element[j + 1]->str) == 0) {
                        counts[k].n++;
                        break;
                    }
                other += k == AB_ARRAY_LEN(counts);
            }
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
               conf->redis.log_maxlen);
    putchar('\n');
    for (size_t k = 0; k < AB_ARRAY_LEN(counts); k++)
        printf("  %-30s%lld\n", counts[k].label, counts[k].n);
    if (other)
        printf("  %-30s%lld\n", "other", other);
    rows_free(&rows);
    redisFree(c);
    return EX_OK;
}

static const struct verb {
    const char *name;
    int (*fn)(int argc, char **argv);
} verbs[] = {
    { "list", cmd_list },   { "show", cmd_show },   { "grant", cmd_grant },
    { "revoke", cmd_revoke }, { "watch", cmd_watch }, { "stats", cmd_stats },
};

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONF;
    struct conf_errors errs = { 0 };
    struct ab_conf *c;
    bool test_only = false;
    int ch;

    signal(SIGPIPE, SIG_IGN);
    while ((ch = getopt(argc, argv, "+c:th")) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case 't': test_only = true; break;
        case 'h': usage(stdout); return EX_OK;
        default: usage(stderr); return EX_USAGE;
        }
    }
    c = conf_load(path, &errs);
    if (c == NULL) {
        conf_errors_print(&errs);
        conf_errors_free(&errs);
        return test_only ? 1 : EX_USAGE;
    }
    if (test_only) {
        printf("%s: configuration OK\n", path);
        conf_free(c);
        return EX_OK;
    }
    conf = c;
    settings = (struct grant_settings){
        .prefix = c->redis.prefix, .node = c->pop3d.d.node, .ttl = c->grant.ttl,
        .ipv6_prefix = c->grant.ipv6_prefix, .log_maxlen = c->redis.log_maxlen,
        .timeout_ms = c->redis.timeout_ms,
    };
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    for (size_t i = 0; i < AB_ARRAY_LEN(verbs); i++)
        if (strcmp(argv[optind], verbs[i].name) == 0) {
            int rc = verbs[i].fn(argc - optind, argv + optind);
            conf_free(c);
            return rc;
        }
    die(EX_USAGE, "unknown command '%s' (try: authbridge -h)", argv[optind]);
}
