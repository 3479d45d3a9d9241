/*
 * The grants: list, show, grant, revoke, and the rows and formats they
 * share with the other verbs.
 */
#include "authbridge/cli.h"
#include "authbridge/addr.h"
#include "authbridge/users.h"
#include "authbridge/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCAN_BATCH 1000

/* SCAN MATCH needs the prefix's glob characters escaped. */
static char *grant_pattern(void)
{
    const char *p = cli_conf->redis.prefix;
    char *out = ab_malloc(strlen(p) * 2 + 16), *o = out;

    for (; *p; p++) {
        if (strchr("*?[]\\", *p))
            *o++ = '\\';
        *o++ = *p;
    }
    strcpy(o, "grant:*");
    return out;
}

const char *addr_of_key(const char *key)
{
    return key + strlen(cli_conf->redis.prefix) + strlen("grant:");
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
bool grant_row_from(struct grant_row *row, const char *key,
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
        if (grant_row_from(&out->v[out->n], keys->element[i]->str, h, t))
            out->n++;
        freeReplyObject(h);
        freeReplyObject(t);
    }
}

void scan_grants(redisContext *c, struct rows *out)
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

void grant_row_free(struct grant_row *g)
{
    free(g->addr);
    free(g->user);
    free(g->node);
    free(g->method);
}

void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        grant_row_free(&r->v[i]);
    free(r->v);
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

/* For a terminal (the JSON output escapes on its own). */
static void replace_safe(char **field)
{
    char *safe = text_safe(*field, true);

    free(*field);
    *field = safe;
}

static void row_make_safe(struct grant_row *g)
{
    replace_safe(&g->addr);
    replace_safe(&g->user);
    replace_safe(&g->node);
    replace_safe(&g->method);
}

static void print_table(const struct rows *r)
{
    char since[32], left[32];

    printf("%-40s %-24s %-21s %s\n", "ADDRESS", "USER", "SINCE", "EXPIRES IN");
    for (size_t i = 0; i < r->n; i++) {
        struct grant_row *g = &r->v[i];
        row_make_safe(g);
        printf("%-40s %-24s %-21s %s\n", g->addr, g->user,
               fmt_time(g->since, since, sizeof(since)),
               fmt_duration(g->ttl, left, sizeof(left)));
    }
}

/* ---- verbs -------------------------------------------------------------------- */

int cmd_list(int argc, char **argv)
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
void key_for_arg(const char *arg, char *key, size_t keylen)
{
    struct ab_addr a;
    struct cidr net;
    char err[128];

    if (addr_parse(arg, &a) == 0) {
        if (grant_key(cli_conf->redis.prefix, &a, cli_conf->grant.ipv6_prefix, key,
                      keylen) < 0)
            die(EX_USAGE, "address too long");
        return;
    }
    if (strchr(arg, '/') != NULL && cidr_parse(arg, &net, err, sizeof(err)) == 0 &&
        net.net.family == AF_INET6 && net.bits == cli_conf->grant.ipv6_prefix) {
        grant_key(cli_conf->redis.prefix, &net.net, net.bits, key, keylen);
        return;
    }
    die(EX_USAGE, "'%s' is not an IPv4 or IPv6 address", arg);
}

int cmd_show(int argc, char **argv)
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
    if (!grant_row_from(&g, key, h, t))
        die(EX_NONE, "no grant for %s", addr_of_key(key));
    row_make_safe(&g);
    printf("address: %s\nuser:    %s\nsince:   %s\nrenewed: %s\n"
           "node:    %s\nmethod:  %s\ntls:     %s\nlogins:  %lld\n"
           "ttl:     %lld (%s)\n", g.addr, g.user,
           fmt_time(g.since, t1, sizeof(t1)), fmt_time(g.renewed, t2, sizeof(t2)),
           g.node, g.method, g.tls ? "yes" : "no", g.logins, g.ttl,
           fmt_duration(g.ttl, left, sizeof(left)));
    grant_row_free(&g);
    freeReplyObject(h);
    freeReplyObject(t);
    redisFree(c);
    return EX_OK;
}

int cmd_grant(int argc, char **argv)
{
    struct grant_info g = { .method = "ADMIN", .tls = false };
    struct grant_cmds cmds;
    unsigned ttl = cli_conf->grant.ttl;
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
    grant_cmds_put(&cmds, &cli_settings, &g, (long long)time(NULL), ttl);
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

    grant_cmds_revoke(&cmds, &cli_settings, key, "admin");
    r = transaction_or_die(c, &cmds);
    n = r->element[0]->type == REDIS_REPLY_INTEGER ? r->element[0]->integer : 0;
    freeReplyObject(r);
    return n;
}

int cmd_revoke(int argc, char **argv)
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
            snprintf(key, sizeof(key), "%sgrant:%s", cli_conf->redis.prefix,
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
