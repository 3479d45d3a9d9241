#include "smtpgate/dovecot.h"
#include "smtpgate/gate.h"
#include "smtpgate/http.h"
#include "smtpgate/json.h"
#include "smtpgate/limits.h"
#include "smtpgate/renew.h"
#include "smtpgate/reqconn.h"

#include "authbridge/conf.h"
#include "authbridge/daemon.h"
#include "authbridge/grant.h"
#include "authbridge/log.h"
#include "authbridge/users.h"
#include "authbridge/util.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLICY_CONTINUE "{\"status\":0}"
#define ST_200 "200 OK"
#define NODE_MAX 64               /* a host name, or an address */
#define MECH_MAX 20               /* SCRAM-SHA-256-PLUS and the like */

struct dovecot {
    struct gate *g;
    struct reqdoor *door;
    struct renew_table *renew;
    unsigned renewing;            /* renewals waiting for Redis */
};

/* A connection, and the login it is writing (one at a time). */
struct dove_conn {
    struct dovecot *d;
    struct reqconn *rc;
    char sid[17];
    bool close;                   /* the request asked for it */
    struct ab_addr addr;
    char addr_text[ADDR_TEXT_MAX];
    char user[USER_NAME_MAX + 1];
    char protocol[16];
    char method[16 + MECH_MAX + 2];
    char node[NODE_MAX + 1];
    bool tls;
    uint64_t start_ms;
};

/* An IMAP session's renewal: outlives the event post that started it. */
struct renewal {
    struct dovecot *d;
    struct ab_addr addr;
    char addr_text[ADDR_TEXT_MAX];
    char user[USER_NAME_MAX + 1];
    char node[NODE_MAX + 1];
};

static const struct reqconn_limits dovecot_limits = {
    .line_max = HTTP_LINE_MAX, .lines_max = HTTP_HEADERS_MAX + 2,
    .request_max = HTTP_HEAD_MAX + HTTP_BODY_MAX, .out_high = REQ_OUT_HIGH,
    .idle_s = DOVECOT_IDLE_S, .frame = http_frame,
};

/* ---- answers ------------------------------------------------------------- */

static void answer(struct dove_conn *dc, const char *status, const char *body,
                   bool close)
{
    char buf[256];
    size_t n;

    close = close || dc->close;
    n = http_response(buf, sizeof(buf), status, body, close);
    if (close)
        reqconn_reply_close(dc->rc, buf, n);
    else
        reqconn_reply(dc->rc, buf, n);
}

/* ---- checks ----------------------------------------------------------------- */

/* Constant time for equal lengths: the key's length is no secret. */
static bool same_secret(const char *given, const char *key)
{
    size_t n = strlen(key);

    return strlen(given) == n && CRYPTO_memcmp(given, key, n) == 0;
}

/* X-API-Key (auth policy), or the password of HTTP Basic (the event
 * exporter's URL "http://user:KEY@host:port/..."). */
static bool key_ok(const struct dove_conn *dc, const struct http_req *req)
{
    const char *key = dc->d->g->sc->dovecot_api_key;
    char pw[256];

    if (req->api_key != NULL && same_secret(req->api_key, key))
        return true;
    return http_basic_password(req->authorization, pw, sizeof(pw)) &&
           same_secret(pw, key);
}

/* A node name from the request: a host name's characters, else none. */
static void node_of(const char *given, const char *peer, char *out)
{
    bool ok = given != NULL && given[0] != '\0' && strlen(given) <= NODE_MAX;

    for (const char *p = given; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || strchr(".-_:", *p) != NULL;
    snprintf(out, NODE_MAX + 1, "%s", ok ? given : peer);
}

/* "IMAP-PLAIN": the protocol and Dovecot's mechanism, upper case. */
static void method_of(const char *protocol, const char *mech, char *out,
                      size_t outlen)
{
    size_t o = 0;

    for (const char *p = protocol; *p && o + 1 < outlen; p++)
        out[o++] = (char)toupper((unsigned char)*p);
    if (mech != NULL && mech[0] != '\0' && o + 2 < outlen) {
        out[o++] = '-';
        for (const char *p = mech; *p && o + 1 < outlen && p - mech < MECH_MAX;
             p++)
            out[o++] = isalnum((unsigned char)*p) || *p == '-' || *p == '_'
                       ? (char)toupper((unsigned char)*p) : '_';
    }
    out[o] = '\0';
}

/* ---- auth policy: command=allow ---------------------------------------------- */

static void grant_info_of(const struct dove_conn *dc, struct grant_info *gi)
{
    *gi = (struct grant_info){ dc->addr, dc->user, dc->method, dc->tls,
                               dc->node };
}

static void login_done(enum grant_status st, void *arg)
{
    struct dove_conn *dc = arg;
    struct grant_info gi;

    grant_info_of(dc, &gi);
    if (st != GRANT_OK)
        grant_store_retry_later(dc->d->g->svc.grants, &gi);
    log_info("event=dovecot_login sid=%s peer=%s protocol=%s user=%s rip=%s "
             "method=%s node=%s tls=%d grant=%s ms=%llu", dc->sid,
             reqconn_peer_text(dc->rc), log_esc(dc->protocol),
             log_esc(dc->user), dc->addr_text, log_esc(dc->method),
             log_esc(dc->node), dc->tls, st == GRANT_OK ? "ok" : "failed",
             (unsigned long long)(ab_now_ms() - dc->start_ms));
    answer(dc, ST_200, POLICY_CONTINUE, false);
}

/* Why this request writes no grant, or NULL: it is a verified login of
 * one of our protocols, for an address and a user. */
static const char *not_a_grant(const struct dove_conn *dc,
                               const struct json_doc *doc, struct ab_addr *a)
{
    const struct smtpgate_conf *sc = dc->d->g->sc;
    const char *protocol = json_get_str(doc, "protocol");
    const char *verified = json_get_str(doc, "verified");
    const char *remote = json_get_str(doc, "remote");
    const char *user = json_get_str(doc, "user");

    if (user == NULL || user[0] == '\0')
        user = json_get_str(doc, "login");
    if (protocol == NULL)
        return "incomplete";
    if (!strlist_contains_ci(&sc->dovecot_protocols, protocol,
                             strlen(protocol)))
        return "other_protocol";
    if (verified == NULL || strcmp(verified, "yes") != 0)
        return "not_verified";
    if (remote == NULL || addr_parse(remote, a) < 0)
        return "no_address";
    if (user == NULL || !users_valid_name(user))
        return "bad_user";
    return NULL;
}

static void policy_allow(struct dove_conn *dc, const struct json_doc *doc)
{
    const struct json_member *tls = json_get(doc, "tls");
    const char *protocol = json_get_str(doc, "protocol");
    const char *user = json_get_str(doc, "user");
    const char *why = not_a_grant(dc, doc, &dc->addr);
    struct grant_info gi;

    if (user == NULL || user[0] == '\0')
        user = json_get_str(doc, "login");
    snprintf(dc->protocol, sizeof(dc->protocol), "%s", protocol ? protocol : "");
    if (why != NULL) {
        log_info("event=dovecot_policy sid=%s peer=%s protocol=%s user=%s "
                 "rip=%s result=%s", dc->sid, reqconn_peer_text(dc->rc),
                 log_esc(dc->protocol), log_esc(user),
                 log_esc(json_get_str(doc, "remote")), why);
        answer(dc, ST_200, POLICY_CONTINUE, false);
        return;
    }
    addr_format(&dc->addr, dc->addr_text);
    snprintf(dc->user, sizeof(dc->user), "%s", user);
    method_of(protocol, json_get_str(doc, "mech"), dc->method,
              sizeof(dc->method));
    node_of(json_get_str(doc, "node"), reqconn_peer_text(dc->rc), dc->node);
    dc->tls = tls != NULL && tls->type == JSON_TRUE;
    dc->start_ms = ab_now_ms();
    grant_info_of(dc, &gi);
    grant_store_put(dc->d->g->svc.grants, &gi, login_done, dc);
}

/* ---- event exporter: IMAP sessions keep their grants --------------------------- */

static void renewal_end(struct renewal *r, const char *result)
{
    if (strcmp(result, "ok") == 0)
        log_debug("event=dovecot_renew addr=%s user=%s result=ok",
                  r->addr_text, log_esc(r->user));
    else
        log_info("event=dovecot_renew addr=%s user=%s result=%s",
                 r->addr_text, log_esc(r->user), result);
    if (strcmp(result, "tempfail") == 0)
        renew_forget(r->d->renew, &r->addr);
    r->d->renewing--;
    free(r);
}

static void renew_put_done(enum grant_status st, void *arg)
{
    renewal_end(arg, st == GRANT_OK ? "ok" : "tempfail");
}

/* Renew a grant that is absent (it ran out while the session idled) or
 * the same user's; never take over another user's. */
static void renew_looked_up(enum grant_status st, const char *user,
                            long long ttl, void *arg)
{
    struct renewal *r = arg;
    struct grant_info gi = { r->addr, r->user, "IMAP-SESSION", false,
                             r->node };

    (void)ttl;
    if (st == GRANT_UNAVAILABLE) {
        renewal_end(r, "tempfail");
        return;
    }
    if (st == GRANT_OK && strcmp(user, r->user) != 0) {
        renewal_end(r, "other_user");
        return;
    }
    grant_store_put(r->d->g->svc.grants, &gi, renew_put_done, r);
}

static void renew_start(struct dovecot *d, const struct ab_addr *a,
                        const char *user, const char *node)
{
    struct renewal *r;

    if (d->renewing >= RENEW_INFLIGHT_MAX ||
        !renew_due(d->renew, a, ab_now_ms(),
                   renew_every_ms(d->g->conf->grant.ttl)))
        return;
    r = ab_calloc(1, sizeof(*r));
    r->d = d;
    r->addr = *a;
    addr_format(a, r->addr_text);
    snprintf(r->user, sizeof(r->user), "%s", user);
    snprintf(r->node, sizeof(r->node), "%s", node);
    d->renewing++;
    grant_store_lookup(d->g->svc.grants, a, renew_looked_up, r);
}

static void event_post(struct dove_conn *dc, const struct json_doc *doc)
{
    const char *name = json_get_str(doc, "event");
    const char *user = json_get_str(doc, "fields/user");
    const char *ip = json_get_str(doc, "fields/remote_ip");
    char node[NODE_MAX + 1];
    struct ab_addr a;

    /* Everything is taken from the body before the answer: the answer
     * lets the connection reuse its buffer. */
    if (strcmp(name, "imap_command_finished") == 0 && user != NULL &&
        users_valid_name(user) && ip != NULL && addr_parse(ip, &a) == 0) {
        node_of(json_get_str(doc, "hostname"), reqconn_peer_text(dc->rc),
                node);
        renew_start(dc->d, &a, user, node);
    } else {
        log_debug("event=dovecot_event sid=%s peer=%s name=%s result=ignored",
                  dc->sid, reqconn_peer_text(dc->rc), log_esc(name));
    }
    answer(dc, ST_200, "", false);
}

/* ---- requests ------------------------------------------------------------------- */

static void dispatch(struct dove_conn *dc, const struct http_req *req,
                     const struct json_doc *doc)
{
    char cmd[16];

    if (!http_query_param(req->query, "command", cmd, sizeof(cmd))) {
        if (json_get_str(doc, "event") != NULL)
            event_post(dc, doc);
        else
            answer(dc, "400 Bad Request", "", false);
    } else if (strcmp(cmd, "allow") == 0) {
        policy_allow(dc, doc);
    } else if (strcmp(cmd, "report") == 0) {
        answer(dc, ST_200, POLICY_CONTINUE, false);
    } else {
        answer(dc, "400 Bad Request", "", false);
    }
}

static void on_request(struct reqconn *rc, char **parts, size_t n, void *arg)
{
    struct dove_conn *dc = arg;
    struct http_req req;
    struct json_doc doc;
    const char *err = n == 1 ? parts[0] : http_parse(parts, n, &req);

    if (err != NULL) {
        log_info("event=dovecot_bad_request sid=%s peer=%s status=%s",
                 dc->sid, reqconn_peer_text(rc), log_esc(err));
        answer(dc, err, "", true);
        return;
    }
    dc->close = req.close;
    if (!key_ok(dc, &req)) {
        log_warn("event=dovecot_refused sid=%s peer=%s reason=%s", dc->sid,
                 reqconn_peer_text(rc), req.api_key || req.authorization ?
                 "wrong_api_key" : "no_api_key");
        answer(dc, "403 Forbidden", "", true);
        return;
    }
    if (strcmp(req.method, "POST") != 0) {
        answer(dc, "405 Method Not Allowed", "", false);
        return;
    }
    if ((err = json_parse(req.body, req.body_len, &doc)) != NULL) {
        log_info("event=dovecot_bad_request sid=%s peer=%s status=400 "
                 "reason=%s", dc->sid, reqconn_peer_text(rc), log_esc(err));
        answer(dc, "400 Bad Request", "", false);
        return;
    }
    dispatch(dc, &req, &doc);
}

static void on_close(void *arg)
{
    free(arg);
}

static const struct reqconn_ops dovecot_ops = { on_request, on_close };

/* ---- the door ------------------------------------------------------------------- */

struct dovecot *dovecot_new(struct gate *g, struct conncap *cap)
{
    struct dovecot *d = ab_calloc(1, sizeof(*d));

    d->g = g;
    d->door = reqdoor_new("dovecot", &dovecot_limits, &dovecot_ops, cap);
    d->renew = renew_table_new();
    return d;
}

void dovecot_free(struct dovecot *d)
{
    if (d == NULL)
        return;
    reqdoor_free(d->door);
    renew_table_free(d->renew);
    free(d);
}

void dovecot_accept(evutil_socket_t fd, struct sockaddr *sa, socklen_t len,
                    int kind, void *arg)
{
    struct gate *g = arg;
    struct dove_conn *dc;
    struct ab_addr peer = { 0 };
    char text[ADDR_TEXT_MAX] = "local";

    (void)len;
    (void)kind;
    if (g->stopping) {
        close(fd);
        return;
    }
    /* Only Dovecot hosts may write grants: others are not even read. */
    if (addr_from_sockaddr(sa, &peer) < 0 ||
        !cidr_list_match(&g->sc->d.trusted_networks, &peer)) {
        if (peer.family != 0)
            addr_format(&peer, text);
        log_warn("event=connection_refused door=dovecot client=%s "
                 "reason=untrusted", text);
        close(fd);
        return;
    }
    dc = ab_calloc(1, sizeof(*dc));
    dc->d = g->dovecot;
    daemon_session_id(dc->sid);
    dc->rc = reqconn_accept(g->dovecot->door, g->base, fd, sa, dc);
    if (dc->rc == NULL)
        free(dc);
}
