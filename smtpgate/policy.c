/*
 * Per request: parse in place, one pipelined HGET (grant_store_lookup),
 * one write. No allocation of our own on the way; what the answer needs
 * (addresses for the log) is copied into the connection's struct.
 *
 * Logging: every OK goes to the Redis log stream (relay-allowed, what
 * `authbridge watch` and `stats` read) and to the text log at debug
 * level; outages (DEFER) and sender mismatches at info. A request
 * without a grant is no decision of ours (Postfix decides, and logs it).
 * Once a minute (at the next request) an info line sums the answers. A
 * text line for every OK would cost a write() per request, a tenth of
 * the service's throughput, to repeat what Postfix and the stream say.
 */
#include "smtpgate/policy.h"
#include "smtpgate/counters.h"
#include "smtpgate/gate.h"
#include "smtpgate/limits.h"
#include "smtpgate/relay.h"
#include "smtpgate/reqconn.h"

#include "authbridge/conf.h"
#include "authbridge/daemon.h"
#include "authbridge/grant.h"
#include "authbridge/log.h"
#include "authbridge/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REPLY_OK    "action=OK\n\n"
#define REPLY_DUNNO "action=DUNNO\n\n"
#define REPLY_DEFER "action=DEFER_IF_REJECT 4.3.0 Relay permission cannot " \
                    "be checked right now, try again later\n\n"

struct policy_conn {
    struct gate *g;
    struct reqconn *rc;
    char sid[17];
    struct ab_addr client;
    char client_text[ADDR_TEXT_MAX];
    unsigned client_port;          /* 0 when Postfix did not say */
    char sender[SMTP_PATH_MAX + 1];
    char rcpt[SMTP_PATH_MAX + 1];
    char helo[SMTP_HELO_MAX + 1];
};

#define SUMMARY_EVERY_MS 60000

/* Answers since the last summary line (each loop sums its own). */
static _Thread_local struct {
    unsigned long ok, dunno, defer, mismatch, unusable, bad;
    uint64_t since_ms;
} counts;

static const struct reqconn_limits policy_limits = {
    .line_max = POLICY_LINE_MAX, .lines_max = POLICY_ATTRS_MAX,
    .request_max = POLICY_REQUEST_MAX, .out_high = REQ_OUT_HIGH,
    .idle_s = POLICY_IDLE_S,
};

/* ---- parsing ------------------------------------------------------------ */

/* A name is [a-z0-9_]+ ending at '=': its length, or 0 if it is not
 * one. One pass: ~30 attributes a request, the service's hot path. */
static size_t name_len(const char *s)
{
    size_t i = 0;

    for (; (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
           s[i] == '_'; i++)
        ;
    return s[i] == '=' ? i : 0;
}

#define WANTED(name) { #name, sizeof(#name) - 1, \
                       offsetof(struct policy_req, name) }

int policy_parse(char **lines, size_t n, struct policy_req *r)
{
    static const struct {
        const char *name;
        size_t len, off;
    } wanted[] = {
        WANTED(request), WANTED(protocol_state), WANTED(client_address),
        WANTED(client_port), WANTED(helo_name), WANTED(sender),
        WANTED(recipient),
    };

    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < n; i++) {
        size_t len = name_len(lines[i]);
        if (len == 0)
            return -1;
        for (size_t k = 0; k < AB_ARRAY_LEN(wanted); k++)
            if (wanted[k].len == len &&
                memcmp(lines[i], wanted[k].name, len) == 0) {
                *(const char **)((char *)r + wanted[k].off) = lines[i] + len + 1;
                break;
            }
    }
    r->nattrs = (unsigned)n;
    return 0;
}

/* ---- answering -------------------------------------------------------------- */

static void copy_attr(char *dst, size_t size, const char *v)
{
    snprintf(dst, size, "%s", v ? v : "");
}

static struct relay_query query_of(const struct policy_conn *pc)
{
    struct relay_query q = {
        .via = "policy", .sid = pc->sid, .client = &pc->client,
        .client_text = pc->client_text, .client_port = pc->client_port,
        .helo = pc->helo,
        .sender = pc->sender, .rcpt = pc->rcpt,
    };
    return q;
}

void policy_log_summary(void)
{
    if (counts.ok + counts.dunno + counts.defer + counts.mismatch +
        counts.unusable + counts.bad > 0)
        log_info("event=policy_summary ok=%lu dunno=%lu defer=%lu "
                 "sender_mismatch=%lu unusable=%lu bad=%lu", counts.ok,
                 counts.dunno, counts.defer, counts.mismatch, counts.unusable,
                 counts.bad);
    memset(&counts, 0, sizeof(counts));
    counts.since_ms = ab_now_ms();
}

static void count(unsigned long *counter)
{
    uint64_t now = ab_now_ms();

    (*counter)++;
    if (counts.since_ms == 0)
        counts.since_ms = now;
    else if (now - counts.since_ms >= SUMMARY_EVERY_MS)
        policy_log_summary();
}

static void grant_cb(enum grant_status st, const char *user, long long ttl,
                     void *arg)
{
    struct policy_conn *pc = arg;
    enum relay_path path = relay_grant_outcome(pc->g->sc, pc->g->sendermap,
                                               st, user, pc->sender);
    struct relay_query q = query_of(pc);

    (void)ttl;
    switch (path) {
    case RELAY_GRANT:
        relay_record(pc->g, &q, path, user, LOG_INFO);
        reqconn_reply(pc->rc, REPLY_OK, sizeof(REPLY_OK) - 1);
        count(&counts.ok);
        return;
    case RELAY_TEMPFAIL:
        relay_record(pc->g, &q, path, user, LOG_INFO);
        reqconn_reply(pc->rc, REPLY_DEFER, sizeof(REPLY_DEFER) - 1);
        count(&counts.defer);
        return;
    case RELAY_SENDER_MISMATCH:
        relay_record(pc->g, &q, path, user, LOG_INFO);
        count(&counts.mismatch);
        break;
    default:
        /* No grant: Postfix decides (and logs what it decides). */
        metric_inc(&gate_decisions, "policy", "none");
        log_info("event=rcpt via=policy sid=%s client=%s helo=%s sender=%s "
                 "rcpt=%s path=none action=DUNNO", pc->sid, pc->client_text,
                 log_esc(pc->helo), log_esc(pc->sender), log_esc(pc->rcpt));
        count(&counts.dunno);
        break;
    }
    reqconn_reply(pc->rc, REPLY_DUNNO, sizeof(REPLY_DUNNO) - 1);
}

static void on_request(struct reqconn *rc, char **lines, size_t n, void *arg)
{
    struct policy_conn *pc = arg;
    struct policy_req r;
    uint64_t port;

    if (policy_parse(lines, n, &r) < 0 || n == 0) {
        log_info("event=policy_bad_request sid=%s peer=%s", pc->sid,
                 reqconn_peer_text(rc));
        count(&counts.bad);
        reqconn_close(rc);
        return;
    }
    if (r.request == NULL || strcmp(r.request, "smtpd_access_policy") != 0 ||
        r.client_address == NULL ||
        addr_parse(r.client_address, &pc->client) < 0) {
        log_info("event=policy_unusable_request sid=%s request=%s client=%s "
                 "action=DUNNO", pc->sid, log_esc(r.request),
                 log_esc(r.client_address));
        count(&counts.unusable);
        reqconn_reply(rc, REPLY_DUNNO, sizeof(REPLY_DUNNO) - 1);
        return;
    }
    addr_format(&pc->client, pc->client_text);
    pc->client_port = 0;
    if (r.client_port != NULL && ab_parse_uint(r.client_port, 1, 65535,
                                               &port) == 0)
        pc->client_port = (unsigned)port;
    copy_attr(pc->sender, sizeof(pc->sender), r.sender);
    copy_attr(pc->rcpt, sizeof(pc->rcpt), r.recipient);
    copy_attr(pc->helo, sizeof(pc->helo), r.helo_name);
    grant_store_lookup(pc->g->svc.grants, &pc->client, grant_cb, pc);
}

static void on_close(void *arg)
{
    struct policy_conn *pc = arg;

    log_debug("event=policy_disconnect sid=%s", pc->sid);
    free(pc);
}

static const struct reqconn_ops policy_ops = { on_request, on_close };

struct reqdoor *policy_door_new(struct conncap *cap)
{
    return reqdoor_new("policy", &policy_limits, &policy_ops, cap);
}

void policy_accept(evutil_socket_t fd, struct sockaddr *sa, socklen_t len,
                   int kind, void *arg)
{
    struct gate *g = arg;
    struct policy_conn *pc;

    (void)len;
    (void)kind;
    if (g->stopping) {
        close(fd);
        return;
    }
    pc = ab_calloc(1, sizeof(*pc));
    pc->g = g;
    daemon_session_id(pc->sid);
    pc->rc = reqconn_accept(g->policy_door, g->base, fd, sa, pc);
    if (pc->rc == NULL) {
        free(pc);
        return;
    }
    log_debug("event=policy_connect sid=%s peer=%s", pc->sid,
              reqconn_peer_text(pc->rc));
}
