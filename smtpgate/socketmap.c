/*
 * Per request: frame (one netstring), parse in place, one pipelined HGET
 * (grant_store_lookup), one write, as the policy service does.
 *
 * Logging follows policy.c: a grant (OK) and an outage (TEMP) are relay
 * decisions, logged by relay_record() (a text line and a Redis stream
 * entry, what `authbridge stats` counts); a relay lookup that finds no
 * grant is a text line (the MTA decides what follows, and logs it); user
 * lookups and refused requests are text lines too. Once a minute an info
 * line sums the answers.
 */
#include "smtpgate/socketmap.h"
#include "smtpgate/counters.h"
#include "smtpgate/gate.h"
#include "smtpgate/limits.h"
#include "smtpgate/relay.h"
#include "smtpgate/reqconn.h"

#include "authbridge/conf.h"
#include "authbridge/daemon.h"
#include "authbridge/grant.h"
#include "authbridge/log.h"
#include "authbridge/users.h"
#include "authbridge/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUMMARY_EVERY_MS 60000
#define TEMP_REASON "relay grants cannot be checked right now"

/* The longest answer: "OK " and a user, as a netstring. */
#define ANSWER_MAX (USER_NAME_MAX + 16)

struct socketmap {
    struct reqdoor *door;
    struct {                      /* answers since the last summary */
        unsigned long ok, notfound, temp, perm;
        uint64_t since_ms;
    } counts;
};

struct smap_conn {
    struct gate *g;
    struct reqconn *rc;
    char sid[17];
    struct socketmap_req req;     /* points into the connection's buffer */
    struct ab_addr client;
    char client_text[ADDR_TEXT_MAX];
    unsigned bad;                 /* PERM answers so far */
};

static const struct reqconn_limits socketmap_limits = {
    .line_max = SOCKETMAP_REQUEST_MAX, .lines_max = 1,
    .request_max = SOCKETMAP_FRAME_MAX, .out_high = REQ_OUT_HIGH,
    .idle_s = SOCKETMAP_IDLE_S, .frame = socketmap_frame,
    .refusal = "37:PERM malformed or over-long netstring,",
};

/* ---- parsing ------------------------------------------------------------ */

int socketmap_frame(char *buf, size_t len, const struct reqconn_limits *lim,
                    char **parts, size_t *n, size_t *used)
{
    size_t i = 0, plen = 0, start;

    /* The length: digits up to ':', refused as soon as it is too big, so
     * a peer cannot make us wait for (or count) an endless number. */
    for (; i < len && buf[i] != ':'; i++) {
        if (buf[i] < '0' || buf[i] > '9' || (i == 1 && buf[0] == '0'))
            return -1;
        plen = plen * 10 + (size_t)(buf[i] - '0');
        if (plen > lim->line_max)
            return -1;
    }
    if (i == len)
        return 0;
    if (i == 0)
        return -1;
    start = i + 1;
    if (len - start < plen + 1)
        return 0;
    if (buf[start + plen] != ',' || memchr(buf + start, '\0', plen))
        return -1;
    buf[start + plen] = '\0';
    parts[0] = buf + start;
    *n = 1;
    *used = start + plen + 1;
    return 1;
}

static bool clean_key(const char *k)
{
    if (*k == '\0')
        return false;
    for (; *k; k++)
        if ((unsigned char)*k <= 0x20 || *k == 0x7f)
            return false;
    return true;
}

const char *socketmap_parse(char *payload, struct socketmap_req *r)
{
    char *sp = strchr(payload, ' ');

    memset(r, 0, sizeof(*r));
    if (sp == NULL || sp == payload)
        return "request is not \"<map> <key>\"";
    *sp = '\0';
    r->name = payload;
    r->key = sp + 1;
    if (!clean_key(r->key))
        return "key is empty or holds spaces or control characters";
    if (strcmp(r->name, "relay") == 0 || strcmp(r->name, "drac") == 0)
        r->map = SOCKETMAP_RELAY;
    else if (strcmp(r->name, "user") == 0)
        r->map = SOCKETMAP_USER;
    else
        return "no such map (relay, drac, user)";
    return NULL;
}

int socketmap_key_addr(const char *key, struct ab_addr *out)
{
    /* Sendmail's ${client_addr} for an IPv6 client: "IPv6:2001:db8::1",
     * and "IPv6:::ffff:192.0.2.7" for a mapped one (folded to IPv4). */
    if (ab_strncaseeq(key, "IPv6:", 5))
        key += 5;
    return addr_parse(key, out);
}

size_t socketmap_format(char *out, size_t size, const char *status,
                        const char *value)
{
    size_t plen = strlen(status) + 1 + strlen(value);
    int n = snprintf(out, size, "%zu:%s %s,", plen, status, value);

    return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

/* ---- answering -------------------------------------------------------------- */

void socketmap_log_summary(struct socketmap *sm)
{
    if (sm == NULL)
        return;
    if (sm->counts.ok + sm->counts.notfound + sm->counts.temp +
        sm->counts.perm > 0)
        log_info("event=socketmap_summary ok=%lu notfound=%lu temp=%lu "
                 "perm=%lu", sm->counts.ok, sm->counts.notfound,
                 sm->counts.temp, sm->counts.perm);
    memset(&sm->counts, 0, sizeof(sm->counts));
    sm->counts.since_ms = ab_now_ms();
}

static void count(struct socketmap *sm, unsigned long *counter)
{
    uint64_t now = ab_now_ms();

    (*counter)++;
    if (sm->counts.since_ms == 0)
        sm->counts.since_ms = now;
    else if (now - sm->counts.since_ms >= SUMMARY_EVERY_MS)
        socketmap_log_summary(sm);
}

/* Answer and count; status is OK, NOTFOUND, TEMP or PERM. */
static void answer(struct smap_conn *c, const char *status, const char *value)
{
    struct socketmap *sm = c->g->socketmap;
    char buf[ANSWER_MAX];
    size_t n = socketmap_format(buf, sizeof(buf), status, value);

    count(sm, status[0] == 'O' ? &sm->counts.ok :
              status[0] == 'N' ? &sm->counts.notfound :
              status[0] == 'T' ? &sm->counts.temp : &sm->counts.perm);
    if (n == 0)                   /* cannot happen: values are bounded */
        fatalx("socketmap: answer does not fit");
    reqconn_reply(c->rc, buf, n);
}

/* A user from Redis goes into the answer: nothing the MTA could take
 * for the end of the value or of a line, and not longer than a name. */
static void printable_user(const char *in, char out[USER_NAME_MAX + 1])
{
    size_t i = 0;

    for (; in[i] && i < USER_NAME_MAX; i++)
        out[i] = (unsigned char)in[i] <= 0x20 || in[i] == 0x7f ? '?' : in[i];
    out[i] = '\0';
}

static void relay_cb(enum grant_status st, const char *user, long long ttl,
                     void *arg)
{
    struct smap_conn *c = arg;
    enum relay_path path = relay_grant_outcome(c->g->sc, c->g->sendermap, st,
                                               user, "");
    struct relay_query q = {
        .via = "socketmap", .sid = c->sid, .client = &c->client,
        .client_text = c->client_text, .helo = "", .sender = "", .rcpt = "",
    };

    (void)ttl;
    if (path == RELAY_GRANT || path == RELAY_TEMPFAIL ||
        path == RELAY_SENDER_MISMATCH)
        relay_record(c->g, &q, path, user, LOG_INFO);
    else {
        log_info("event=rcpt via=socketmap sid=%s client=%s map=%s path=none "
                 "answer=NOTFOUND", c->sid, c->client_text,
                 log_esc(c->req.name));
        metric_inc(&gate_decisions, "socketmap", "none");
    }
    if (path == RELAY_GRANT)
        answer(c, "OK", "OK");
    else if (path == RELAY_TEMPFAIL)
        answer(c, "TEMP", TEMP_REASON);
    else
        answer(c, "NOTFOUND", "");
}

static void user_cb(enum grant_status st, const char *user, long long ttl,
                    void *arg)
{
    struct smap_conn *c = arg;
    char u[USER_NAME_MAX + 1] = "";

    (void)ttl;
    if (st == GRANT_OK)
        printable_user(user, u);
    log_info("event=socketmap sid=%s map=user client=%s answer=%s user=%s",
             c->sid, c->client_text, st == GRANT_OK ? "OK" :
             st == GRANT_NONE ? "NOTFOUND" : "TEMP", log_esc(u));
    if (st == GRANT_OK)
        answer(c, "OK", u);
    else if (st == GRANT_NONE)
        answer(c, "NOTFOUND", "");
    else
        answer(c, "TEMP", TEMP_REASON);
}

static void on_request(struct reqconn *rc, char **parts, size_t n, void *arg)
{
    struct smap_conn *c = arg;
    const char *err = socketmap_parse(parts[0], &c->req);

    (void)n;
    if (err != NULL) {
        log_info("event=socketmap_bad_request sid=%s peer=%s map=%s key=%s "
                 "answer=PERM reason=%s", c->sid, reqconn_peer_text(rc),
                 log_esc(c->req.name), log_esc(c->req.key), log_esc(err));
        if (++c->bad >= SOCKETMAP_BAD_MAX)
            reqconn_close(rc);
        else
            answer(c, "PERM", err);
        return;
    }
    if (socketmap_key_addr(c->req.key, &c->client) < 0) {
        log_info("event=socketmap sid=%s map=%s key=%s answer=NOTFOUND "
                 "why=not_an_address", c->sid, c->req.name,
                 log_esc(c->req.key));
        answer(c, "NOTFOUND", "");
        return;
    }
    addr_format(&c->client, c->client_text);
    grant_store_lookup(c->g->svc.grants, &c->client,
                       c->req.map == SOCKETMAP_USER ? user_cb : relay_cb, c);
}

static void on_close(void *arg)
{
    struct smap_conn *c = arg;

    log_debug("event=socketmap_disconnect sid=%s", c->sid);
    free(c);
}

static const struct reqconn_ops socketmap_ops = { on_request, on_close };

/* ---- the door ------------------------------------------------------------------ */

struct socketmap *socketmap_new(struct conncap *cap)
{
    struct socketmap *sm = ab_calloc(1, sizeof(*sm));

    sm->door = reqdoor_new("socketmap", &socketmap_limits, &socketmap_ops,
                           cap);
    return sm;
}

void socketmap_free(struct socketmap *sm)
{
    if (sm == NULL)
        return;
    reqdoor_free(sm->door);
    free(sm);
}

void socketmap_accept(evutil_socket_t fd, struct sockaddr *sa, socklen_t len,
                      int kind, void *arg)
{
    struct gate *g = arg;
    struct smap_conn *c;

    (void)len;
    (void)kind;
    if (g->stopping) {
        close(fd);
        return;
    }
    c = ab_calloc(1, sizeof(*c));
    c->g = g;
    daemon_session_id(c->sid);
    c->rc = reqconn_accept(g->socketmap->door, g->base, fd, sa, c);
    if (c->rc == NULL) {
        free(c);
        return;
    }
    log_debug("event=socketmap_connect sid=%s peer=%s", c->sid,
              reqconn_peer_text(c->rc));
}
