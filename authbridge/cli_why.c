/*
 * why ADDR [--from SENDER] [--rcpt RCPT] [--json]: the helpdesk's answer
 * to "why was this customer refused?". What smtpgate would decide for
 * that client right now and by which path, using smtpgate's own decision
 * code (relay.c, rcpt.c, sendermap.c: the rules live in one place), the
 * grant's user, age and remaining TTL, and the recent history of the
 * address and its user from both streams, in plain words.
 *
 * Exit status: 0 smtpgate would relay (or accept: local recipient), 1 it
 * would refuse, 2 bad usage or configuration, 3 Redis unreachable.
 *
 * History is read newest first (XREVRANGE ... COUNT), at most
 * WHY_SCAN_MAX entries per stream (authbridge/limits.h).
 */
#include "authbridge/cli.h"
#include "authbridge/addr.h"
#include "authbridge/limits.h"
#include "authbridge/throttle.h"
#include "authbridge/util.h"
#include "smtpgate/rcpt.h"
#include "smtpgate/relay.h"
#include "smtpgate/sendermap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A grant or revocation entry of <prefix>log. */
struct log_hit {
    long long ms;                 /* 0: none */
    char *event, *addr, *user, *method, *node, *by;
    long long ttl;
};

/* A decisions entry about the address. */
struct decision_hit {
    long long ms;
    char *event, *via, *rcpt, *sender, *path, *user;
    long long count;
};

struct why {
    const char *arg, *from, *rcpt;      /* as given; NULL when not */
    bool json;
    struct ab_addr addr;
    char addr_text[ADDR_TEXT_MAX];      /* the client, canonical */
    char grant_addr[ADDR_TEXT_MAX];     /* as granted (an IPv6 /prefix) */
    char key[GRANT_KEY_MAX];
    struct smtp_path rpath, fpath;
    const char *rcpt_why;
    enum relay_path path;
    bool has_grant;
    struct grant_row grant;
    long long now;
    /* the log stream, newest first: its grant and revoke entries */
    struct log_hit *log;
    size_t nlog;
    long long log_scanned, dec_scanned;
    const struct log_hit *last_grant, *last_revoke, *user_login;
    const char *user;                   /* the grant's, or the last one's */
    struct decision_hit recent[WHY_SHOW_MAX];
    size_t nrecent;
    long long refusals;                 /* in the entries scanned */
    long long fails_addr, fails_addr_ttl, fails_user;
};

/* ---- text ----------------------------------------------------------------- */

/* Text from Redis, safe for a terminal; valid for the next 8 calls. */
static const char *safe(const char *s)
{
    static char *ring[8];
    static unsigned at;
    unsigned i = at++ % 8;

    free(ring[i]);
    ring[i] = text_safe(s ? s : "", false);
    return ring[i];
}

/* "12 min", "3 h 5 min", "2 days": how long, for people. */
static const char *span(long long s, char *buf, size_t len)
{
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(buf, len, "%lld s", s);
    else if (s < 3600)
        snprintf(buf, len, "%lld min", s / 60);
    else if (s < 86400)
        snprintf(buf, len, "%lld h %lld min", s / 3600, s / 60 % 60);
    else
        snprintf(buf, len, "%lld days", s / 86400);
    return buf;
}

static const char *ago(long long ms, long long now, char *buf, size_t len)
{
    return span(now - ms / 1000, buf, len);
}

/* ---- arguments -------------------------------------------------------------- */

/* A path as smtpgate parses it from MAIL FROM / RCPT TO, with or without
 * its angle brackets. */
static void parse_path(const char *what, const char *s, enum path_use use,
                       struct smtp_path *out)
{
    char buf[SMTP_PATH_MAX + 4];
    size_t end = 0;
    int n = snprintf(buf, sizeof(buf), s[0] == '<' ? "%s" : "<%s>", s);
    enum path_error e;

    if (n < 0 || (size_t)n >= sizeof(buf))
        die(EX_USAGE, "%s: address too long", what);
    e = smtp_path_parse(buf, (size_t)n, use, out, &end);
    if (e != PATH_OK || end != (size_t)n)
        die(EX_USAGE, "%s '%s': smtpgate would answer: %s", what, s,
            e != PATH_OK ? smtp_path_error_reply(e, use) : "syntax error");
}

static void parse_args(struct why *w, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            w->json = true;
        else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            w->from = argv[++i];
        else if (strcmp(argv[i], "--rcpt") == 0 && i + 1 < argc)
            w->rcpt = argv[++i];
        else if (argv[i][0] != '-' && w->arg == NULL)
            w->arg = argv[i];
        else
            die(EX_USAGE, "usage: why ADDR [--from SENDER] [--rcpt RCPT] "
                "[--json]");
    }
    if (w->arg == NULL)
        die(EX_USAGE, "usage: why ADDR [--from SENDER] [--rcpt RCPT] [--json]");
    if (addr_parse(w->arg, &w->addr) < 0)
        die(EX_USAGE, "'%s' is not an IPv4 or IPv6 address", w->arg);
    addr_format(&w->addr, w->addr_text);
    addr_grant_text(&w->addr, cli_conf->grant.ipv6_prefix, w->grant_addr);
    key_for_arg(w->addr_text, w->key, sizeof(w->key));
    if (w->rcpt)
        parse_path("--rcpt", w->rcpt, PATH_FORWARD, &w->rpath);
    if (w->from)
        parse_path("--from", w->from, PATH_REVERSE, &w->fpath);
}

/* ---- the decision: smtpgate's own code ------------------------------------- */

static struct sendermap *load_sendermap(const struct smtpgate_conf *sc)
{
    struct conf_errors errs = { 0 };
    struct sendermap *m;

    if (!sc->sender_binding || sc->sender_map[0] == '\0')
        return NULL;
    m = sendermap_load(sc->sender_map, &errs);
    if (m == NULL)
        die(EX_USAGE, "%s", errs.n ? errs.v[0] : "sender_map unreadable");
    return m;
}

static void read_grant(redisContext *c, struct why *w)
{
    redisReply *h, *t;

    redisAppendCommand(c, "HGETALL %s", w->key);
    redisAppendCommand(c, "TTL %s", w->key);
    h = reply_or_die(c);
    t = reply_or_die(c);
    w->has_grant = grant_row_from(&w->grant, w->key, h, t);
    freeReplyObject(h);
    freeReplyObject(t);
}

static void decide(struct why *w)
{
    struct smtpgate_conf sc = cli_conf->smtpgate;
    struct sendermap *map;
    struct relay_query q = {
        .via = "why", .sid = "-", .client = &w->addr,
        .client_text = w->addr_text, .helo = "",
        .sender = w->from ? w->fpath.mailbox : "",
        .rcpt = w->rcpt ? w->rpath.mailbox : "",
    };

    if (w->rcpt)
        q.rcpt_local = rcpt_classify(&w->rpath, &sc.local_domains,
                                     &w->rcpt_why) == RCPT_LOCAL;
    w->path = relay_decide_now(&sc, &q);
    if (w->path != RELAY_NEED_GRANT)
        return;
    /* Sender binding only judges a sender it was given. */
    if (w->from == NULL)
        sc.sender_binding = false;
    map = load_sendermap(&sc);
    w->path = relay_grant_outcome(&sc, map, w->has_grant ? GRANT_OK :
                                  GRANT_NONE, w->grant.user, q.sender);
    sendermap_free(map);
}

/* ---- history ---------------------------------------------------------------- */

static const char *field(const redisReply *f, const char *name)
{
    for (size_t j = 0; j + 1 < f->elements; j += 2)
        if (strcmp(f->element[j]->str, name) == 0)
            return f->element[j + 1]->str;
    return NULL;
}

static char *dup_field(const redisReply *f, const char *name)
{
    const char *v = field(f, name);

    return ab_strdup(v ? v : "");
}

typedef void entry_fn(struct why *w, long long ms, const redisReply *f);

/* Newest first, at most WHY_SCAN_MAX entries; returns how many. */
static long long scan_newest(redisContext *c, const char *key, struct why *w,
                             entry_fn *fn)
{
    char end[80] = "+", count[24];
    long long seen = 0;

    while (seen < WHY_SCAN_MAX) {
        long long want = WHY_SCAN_MAX - seen < WHY_SCAN_BATCH ?
                         WHY_SCAN_MAX - seen : WHY_SCAN_BATCH;
        snprintf(count, sizeof(count), "%lld", want);
        const char *argv[] = { "XREVRANGE", key, end, "-", "COUNT", count };
        redisReply *r = command_or_die(c, 6, argv);
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            fn(w, strtoll(e->element[0]->str, NULL, 10), e->element[1]);
        }
        seen += (long long)r->elements;
        if ((long long)r->elements < want) {
            freeReplyObject(r);
            break;
        }
        snprintf(end, sizeof(end), "(%s",
                 r->element[r->elements - 1]->element[0]->str);
        freeReplyObject(r);
    }
    return seen;
}

static void on_log_entry(struct why *w, long long ms, const redisReply *f)
{
    const char *event = field(f, "event");
    struct log_hit *h;

    if (event == NULL || (strcmp(event, "grant") != 0 &&
                          strcmp(event, "revoke") != 0))
        return;
    w->log = ab_realloc(w->log, (w->nlog + 1) * sizeof(*w->log));
    h = &w->log[w->nlog++];
    h->ms = ms;
    h->event = ab_strdup(event);
    h->addr = dup_field(f, "addr");
    h->user = dup_field(f, "user");
    h->method = dup_field(f, "method");
    h->node = dup_field(f, "node");
    h->by = dup_field(f, "by");
    h->ttl = strtoll(field(f, "ttl") ? field(f, "ttl") : "0", NULL, 10);
}

static void on_decision(struct why *w, long long ms, const redisReply *f)
{
    const char *client = field(f, "client"), *event = field(f, "event"),
               *count = field(f, "count");
    long long n = count ? strtoll(count, NULL, 10) : 1;
    struct decision_hit *d;

    if (client == NULL || event == NULL || strcmp(client, w->addr_text) != 0)
        return;
    if (strcmp(event, "relay-denied") == 0)
        w->refusals += n > 0 ? n : 1;
    if (w->nrecent == WHY_SHOW_MAX)
        return;
    d = &w->recent[w->nrecent++];
    d->ms = ms;
    d->event = ab_strdup(event);
    d->via = dup_field(f, "via");
    d->rcpt = dup_field(f, "rcpt");
    d->sender = dup_field(f, "sender");
    d->path = dup_field(f, "path");
    d->user = dup_field(f, "user");
    d->count = n > 0 ? n : 1;
}

/* From the log entries (newest first): this address's last grant and
 * revocation, then its user's last login from anywhere. */
static void find_history(struct why *w)
{
    for (size_t i = 0; i < w->nlog; i++) {
        const struct log_hit *h = &w->log[i];
        if (strcmp(h->addr, w->grant_addr) != 0)
            continue;
        if (w->last_grant == NULL && strcmp(h->event, "grant") == 0)
            w->last_grant = h;
        if (w->last_revoke == NULL && strcmp(h->event, "revoke") == 0)
            w->last_revoke = h;
    }
    w->user = w->has_grant ? w->grant.user :
              w->last_grant ? w->last_grant->user : NULL;
    if (w->user == NULL || w->user[0] == '\0')
        return;
    for (size_t i = 0; i < w->nlog && w->user_login == NULL; i++)
        if (strcmp(w->log[i].event, "grant") == 0 &&
            strcmp(w->log[i].user, w->user) == 0)
            w->user_login = &w->log[i];
}

static long long get_int(redisContext *c, const char *cmd, const char *key)
{
    const char *argv[] = { cmd, key };
    redisReply *r = command_or_die(c, 2, argv);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer :
                  r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;

    freeReplyObject(r);
    return n;
}

static void read_history(redisContext *c, struct why *w)
{
    const char *prefix = cli_conf->redis.prefix;
    char key[GRANT_KEY_MAX + 300];

    snprintf(key, sizeof(key), "%slog", prefix);
    w->log_scanned = scan_newest(c, key, w, on_log_entry);
    snprintf(key, sizeof(key), "%sdecisions", prefix);
    w->dec_scanned = scan_newest(c, key, w, on_decision);
    find_history(w);
    throttle_addr_key(prefix, &w->addr, key, sizeof(key));
    w->fails_addr = get_int(c, "GET", key);
    w->fails_addr_ttl = get_int(c, "TTL", key);
    w->fails_user = -1;
    if (w->user != NULL && w->user[0] != '\0') {
        throttle_user_key(prefix, w->user, key, sizeof(key));
        w->fails_user = get_int(c, "GET", key);
    }
}

/* ---- the answer in words ------------------------------------------------------ */

static const char *reply_of(const struct why *w, char *buf, size_t len)
{
    /* As smtpgate answers them (session_tx.c). */
    if (w->path == RELAY_SENDER_MISMATCH)
        snprintf(buf, len, "553 5.7.1 <%s>: Sender address is not owned by "
                 "the user who checked mail from your address",
                 w->fpath.mailbox);
    else if (w->path == RELAY_DENIED)
        snprintf(buf, len, "550 5.7.1 <%s>: %s", w->rcpt ? w->rpath.mailbox :
                 "recipient", cli_conf->smtpgate.deny_message);
    else
        buf[0] = '\0';
    return buf;
}

static void say_decision(const struct why *w)
{
    char a[32], b[32], reply[1024];

    switch (w->path) {
    case RELAY_LOCAL:
        printf("Accepted: %s is in a local domain, and mail to our own "
               "domains is accepted from anyone.\n", safe(w->rpath.mailbox));
        return;
    case RELAY_TRUSTED:
        printf("Relayed: %s is in smtpgate's trusted_networks.\n",
               w->addr_text);
        return;
    case RELAY_GRANT:
        printf("Relayed, by a grant: %s checked mail from %s %s ago; relay "
               "rights for %s more.\n", safe(w->grant.user), w->grant.addr,
               span(w->now - w->grant.renewed, a, sizeof(a)),
               span(w->grant.ttl, b, sizeof(b)));
        return;
    case RELAY_SENDER_MISMATCH:
        printf("Refused: %s checked mail from this address, but "
               "sender_binding is on and %s is not one of %s's "
               "addresses.\n", safe(w->grant.user), safe(w->fpath.mailbox),
               safe(w->grant.user));
        break;
    default:
        printf("Refused%s: there is no live grant for %s (a POP3 login "
               "gives one for %s, grant.ttl).\n", w->rcpt ? "" :
               " (a recipient outside the local domains)", w->addr_text,
               span(cli_conf->grant.ttl, a, sizeof(a)));
        break;
    }
    printf("  smtpgate answers: %s\n", safe(reply_of(w, reply, sizeof(reply))));
}

static void say_grant_history(const struct why *w)
{
    const struct log_hit *g = w->last_grant, *r = w->last_revoke;
    char a[32], b[32];

    if (w->has_grant) {
        printf("This address's grant: %s, since %s, %lld login%s, by %s on "
               "%s.\n", safe(w->grant.user),
               fmt_time(w->grant.since, a, sizeof(a)), w->grant.logins,
               w->grant.logins == 1 ? "" : "s", safe(w->grant.method),
               safe(w->grant.node));
        return;
    }
    if (r != NULL && (g == NULL || r->ms > g->ms))
        printf("This address's grant was revoked %s ago (by %s).\n",
               ago(r->ms, w->now, a, sizeof(a)), safe(r->by));
    else if (g != NULL && g->ms / 1000 + g->ttl <= w->now)
        printf("This address's grant (%s) expired %s ago; it was last "
               "renewed %s ago.\n", safe(g->user),
               span(w->now - (g->ms / 1000 + g->ttl), a, sizeof(a)),
               ago(g->ms, w->now, b, sizeof(b)));
    else if (g != NULL)
        printf("This address's grant (%s, %s ago) is no longer in Redis.\n",
               safe(g->user), ago(g->ms, w->now, a, sizeof(a)));
    else
        printf("No grant for this address among the last %lld log "
               "entries.\n", w->log_scanned);
}

static void say_user(const struct why *w)
{
    const struct log_hit *u = w->user_login;
    char a[32];

    if (u == NULL)
        return;
    if (strcmp(u->addr, w->grant_addr) == 0)
        printf("%s last logged in from this address, %s ago.\n",
               safe(u->user), ago(u->ms, w->now, a, sizeof(a)));
    else
        printf("%s last logged in from %s, %s ago (a different address: "
               "the customer's address may have changed).\n", safe(u->user),
               safe(u->addr), ago(u->ms, w->now, a, sizeof(a)));
}

static void say_recent(const struct why *w)
{
    char a[32];

    if (w->nrecent == 0) {
        printf("No relay decision for this address among the last %lld "
               "entries.\n", w->dec_scanned);
        return;
    }
    printf("Recent decisions for this address (newest first; %lld "
           "refusal%s in the last %lld entries):\n", w->refusals,
           w->refusals == 1 ? "" : "s", w->dec_scanned);
    for (size_t i = 0; i < w->nrecent; i++) {
        const struct decision_hit *d = &w->recent[i];
        printf("  %s ago  %s via %s  from %s to %s  path %s", ago(d->ms, w->now,
               a, sizeof(a)), safe(d->event), safe(d->via), safe(d->sender),
               safe(d->rcpt), safe(d->path));
        if (d->count > 1)
            printf("  (%lld like it in that minute)", d->count);
        putchar('\n');
    }
}

static void say_failures(const struct why *w)
{
    const struct throttle_conf *t = &cli_conf->throttle;
    char a[32];

    /* Each failure renews the count's TTL to the window. */
    if (w->fails_addr > 0)
        printf("%lld failed login%s from this address, the latest %s ago (the "
               "throttle refuses logins from it at %u%s).\n", w->fails_addr,
               w->fails_addr == 1 ? "" : "s",
               span((long long)t->window - (w->fails_addr_ttl > 0 ?
                                            w->fails_addr_ttl : 0), a,
                    sizeof(a)), t->block_after,
               w->fails_addr >= t->block_after ? ": it is blocked now" : "");
    if (w->fails_user > 0)
        printf("%lld failed login%s against %s from anywhere (blocked at "
               "%u).\n", w->fails_user, w->fails_user == 1 ? "" : "s",
               safe(w->user), t->user_block_after);
}

static void print_text(const struct why *w)
{
    printf("%s%s%s%s%s: ", w->addr_text, w->from ? " from " : "",
           w->from ? safe(w->fpath.mailbox) : "", w->rcpt ? " to " : "",
           w->rcpt ? safe(w->rpath.mailbox) : "");
    say_decision(w);
    say_grant_history(w);
    say_user(w);
    say_recent(w);
    say_failures(w);
}

/* ---- the answer for scripts --------------------------------------------------- */

/* ,"key":"value" (or null) */
static void jstr(const char *key, const char *v)
{
    printf(",\"%s\":", key);
    if (v == NULL)
        printf("null");
    else
        json_str(v);
}

static const char *decision_of(enum relay_path p)
{
    return p == RELAY_LOCAL ? "accept" : relay_allowed(p) ? "relay" : "refuse";
}

static void json_grant(const struct why *w)
{
    const struct grant_row *g = &w->grant;

    if (!w->has_grant) {
        printf(",\"grant\":null");
        return;
    }
    printf(",\"grant\":{\"address\":");
    json_str(g->addr);
    jstr("user", g->user);
    jstr("method", g->method);
    jstr("node", g->node);
    printf(",\"tls\":%s,\"since\":%lld,\"renewed\":%lld,\"age\":%lld,"
           "\"ttl\":%lld,\"logins\":%lld}", g->tls ? "true" : "false",
           g->since, g->renewed, w->now - g->renewed, g->ttl, g->logins);
}

static void json_log_hit(const char *key, const struct log_hit *h,
                         long long now)
{
    printf(",\"%s\":", key);
    if (h == NULL) {
        printf("null");
        return;
    }
    printf("{\"time\":%lld,\"ago\":%lld", h->ms / 1000, now - h->ms / 1000);
    jstr("address", h->addr);
    if (strcmp(h->event, "grant") == 0) {
        jstr("user", h->user);
        jstr("method", h->method);
        jstr("node", h->node);
        printf(",\"ttl\":%lld,\"expires\":%lld", h->ttl, h->ms / 1000 + h->ttl);
    } else {
        jstr("by", h->by);
    }
    putchar('}');
}

static void json_recent(const struct why *w)
{
    printf(",\"recent\":[");
    for (size_t i = 0; i < w->nrecent; i++) {
        const struct decision_hit *d = &w->recent[i];
        printf("%s{\"time\":%lld,\"ago\":%lld", i ? "," : "", d->ms / 1000,
               w->now - d->ms / 1000);
        jstr("event", d->event);
        jstr("via", d->via);
        jstr("sender", d->sender);
        jstr("rcpt", d->rcpt);
        jstr("path", d->path);
        jstr("user", d->user);
        printf(",\"count\":%lld}", d->count);
    }
    putchar(']');
}

static void print_json(const struct why *w)
{
    const struct throttle_conf *t = &cli_conf->throttle;
    char reply[1024];

    printf("{\"address\":");
    json_str(w->addr_text);
    jstr("granted_as", w->grant_addr);
    jstr("from", w->from ? w->fpath.mailbox : NULL);
    jstr("rcpt", w->rcpt ? w->rpath.mailbox : NULL);
    jstr("decision", decision_of(w->path));
    jstr("path", relay_path_name(w->path));
    reply_of(w, reply, sizeof(reply));
    jstr("reply", reply[0] ? reply : NULL);
    printf(",\"sender_binding\":%s", cli_conf->smtpgate.sender_binding &&
           w->from ? "true" : "false");
    json_grant(w);
    json_log_hit("last_grant", w->last_grant, w->now);
    json_log_hit("last_revoke", w->last_revoke, w->now);
    jstr("user", w->user && w->user[0] ? w->user : NULL);
    json_log_hit("user_last_login", w->user_login, w->now);
    json_recent(w);
    printf(",\"refusals\":%lld,\"scanned\":{\"log\":%lld,\"decisions\":%lld}",
           w->refusals, w->log_scanned, w->dec_scanned);
    printf(",\"failures\":{\"address\":%lld,\"user\":", w->fails_addr);
    if (w->fails_user < 0)
        printf("null");
    else
        printf("%lld", w->fails_user);
    printf(",\"block_after\":%u,\"user_block_after\":%u}}\n", t->block_after,
           t->user_block_after);
}

/* ---- the verb -------------------------------------------------------------------- */

static void why_free(struct why *w)
{
    for (size_t i = 0; i < w->nlog; i++) {
        struct log_hit *h = &w->log[i];
        free(h->event);
        free(h->addr);
        free(h->user);
        free(h->method);
        free(h->node);
        free(h->by);
    }
    free(w->log);
    for (size_t i = 0; i < w->nrecent; i++) {
        struct decision_hit *d = &w->recent[i];
        free(d->event);
        free(d->via);
        free(d->rcpt);
        free(d->sender);
        free(d->path);
        free(d->user);
    }
    if (w->has_grant)
        grant_row_free(&w->grant);
}

int cmd_why(int argc, char **argv)
{
    struct why w = { 0 };
    redisContext *c;
    int rc;

    parse_args(&w, argc, argv);
    c = connect_or_die();
    w.now = (long long)time(NULL);
    read_grant(c, &w);
    decide(&w);
    read_history(c, &w);
    if (w.json)
        print_json(&w);
    else
        print_text(&w);
    rc = relay_allowed(w.path) ? EX_OK : EX_NONE;
    why_free(&w);
    redisFree(c);
    return rc;
}
