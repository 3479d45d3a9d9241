#include "smtpgate/whoson.h"
#include "smtpgate/counters.h"
#include "smtpgate/gate.h"
#include "smtpgate/limits.h"
#include "smtpgate/reqconn.h"
#include "authbridge/sasl.h"

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

#define WHOSON_ARGS_MAX 3

struct whoson_conn {
    struct gate *g;
    struct reqconn *rc;
    char sid[17];
    char addr_text[ADDR_TEXT_MAX];
    char user[USER_NAME_MAX + 1];
    unsigned bad;                 /* bad requests so far */
};

static const struct reqconn_limits whoson_limits = {
    .line_max = WHOSON_LINE_MAX, .lines_max = 4,
    .request_max = WHOSON_REQUEST_MAX, .out_high = REQ_OUT_HIGH,
    .idle_s = WHOSON_IDLE_S,
};

/* ---- parsing ------------------------------------------------------------ */

/* Split on single spaces; -1 for empty words or too many. */
static int split_words(char *line, char **w, int max)
{
    int n = 0;

    if (*line == '\0')
        return 0;
    for (char *p = line;; ) {
        char *sp = strchr(p, ' ');
        if (n == max || p == sp || *p == '\0')
            return -1;
        w[n++] = p;
        if (sp == NULL)
            return n;
        *sp = '\0';
        p = sp + 1;
    }
}

const char *whoson_parse(char *line, struct whoson_req *r)
{
    char *w[WHOSON_ARGS_MAX];
    int n = split_words(line, w, WHOSON_ARGS_MAX);

    memset(r, 0, sizeof(*r));
    if (n <= 0)
        return "Bad request";
    if (ab_strcaseeq(w[0], "QUERY") && n == 2)
        r->verb = WHOSON_QUERY;
    else if (ab_strcaseeq(w[0], "LOGOUT") && n == 2)
        r->verb = WHOSON_LOGOUT;
    else if (ab_strcaseeq(w[0], "LOGIN") && n == 3)
        r->verb = WHOSON_LOGIN;
    else
        return "Bad request: QUERY addr, LOGIN addr user or LOGOUT addr";
    if (addr_parse(w[1], &r->addr) < 0)
        return "Bad request: not an IP address";
    if (r->verb == WHOSON_LOGIN) {
        if (!users_valid_name(w[2]))
            return "Bad request: not a user name";
        r->user = w[2];
    }
    return NULL;
}

/* ---- answering -------------------------------------------------------------- */

static void answer(struct whoson_conn *wc, char kind, const char *text)
{
    char buf[USER_NAME_MAX + 64];
    int n = snprintf(buf, sizeof(buf), "%c%s\r\n\r\n", kind, text);

    reqconn_reply(wc->rc, buf, (size_t)n < sizeof(buf) ? (size_t)n :
                  sizeof(buf) - 1);
}

/* A user from Redis goes into a line: nothing that could end it. */
static void printable(const char *in, char *out, size_t size)
{
    size_t i = 0;

    for (; in[i] && i + 1 < size; i++)
        out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
    out[i] = '\0';
}

static void query_cb(enum grant_status st, const char *user, long long ttl,
                     void *arg)
{
    struct whoson_conn *wc = arg;
    char u[USER_NAME_MAX + 1];

    (void)ttl;
    metric_inc(&gate_decisions, "whoson", st == GRANT_OK ? "grant" :
               st == GRANT_NONE ? "none" : "tempfail");
    log_info("event=whoson sid=%s peer=%s verb=QUERY addr=%s result=%s "
             "user=%s", wc->sid, reqconn_peer_text(wc->rc), wc->addr_text,
             st == GRANT_OK ? "yes" : st == GRANT_NONE ? "no" : "tempfail",
             log_esc(user ? user : ""));
    if (st == GRANT_OK) {
        printable(user, u, sizeof(u));
        answer(wc, '+', u);
    } else if (st == GRANT_NONE) {
        answer(wc, '-', "Not logged in");
    } else {
        answer(wc, '*', "Temporary failure, try again later");
    }
}

static void change_cb(enum grant_status st, void *arg)
{
    struct whoson_conn *wc = arg;
    bool login = wc->user[0] != '\0';

    log_info("event=whoson sid=%s peer=%s verb=%s addr=%s user=%s result=%s",
             wc->sid, reqconn_peer_text(wc->rc), login ? "LOGIN" : "LOGOUT",
             wc->addr_text, log_esc(wc->user),
             st == GRANT_OK ? "ok" : "tempfail");
    if (st == GRANT_OK)
        answer(wc, '+', login ? "LOGIN ok" : "LOGOUT ok");
    else
        answer(wc, '*', "Temporary failure, try again later");
}

static void start(struct whoson_conn *wc, const struct whoson_req *r)
{
    struct grant_store *gs = wc->g->svc.grants;
    struct grant_info gi = { r->addr, wc->user, "WHOSON", false, NULL };

    addr_format(&r->addr, wc->addr_text);
    snprintf(wc->user, sizeof(wc->user), "%s", r->user ? r->user : "");
    switch (r->verb) {
    case WHOSON_QUERY:
        grant_store_lookup(gs, &r->addr, query_cb, wc);
        break;
    case WHOSON_LOGIN:
        grant_store_put(gs, &gi, change_cb, wc);
        break;
    case WHOSON_LOGOUT:
        grant_store_revoke(gs, &r->addr, "whoson", change_cb, wc);
        break;
    }
}

/* A '*' answer; at WHOSON_BAD_MAX of them, the connection closes. */
static void refuse(struct whoson_conn *wc, const char *err)
{
    if (++wc->bad >= WHOSON_BAD_MAX)
        reqconn_close(wc->rc);
    else
        answer(wc, '*', err);
}

static void on_request(struct reqconn *rc, char **lines, size_t n, void *arg)
{
    struct whoson_conn *wc = arg;
    struct whoson_req r;
    const char *err = n == 1 ? whoson_parse(lines[0], &r) :
                      "Bad request: one line, then an empty line";

    if (err != NULL) {
        log_info("event=whoson_bad_request sid=%s peer=%s count=%u", wc->sid,
                 reqconn_peer_text(rc), wc->bad + 1);
        refuse(wc, err);
        return;
    }
    if (r.verb != WHOSON_QUERY &&
        !cidr_list_match(&wc->g->sc->d.trusted_networks, reqconn_peer(rc))) {
        log_warn("event=whoson_refused sid=%s peer=%s verb=%s count=%u",
                 wc->sid, reqconn_peer_text(rc), r.verb == WHOSON_LOGIN ?
                 "LOGIN" : "LOGOUT", wc->bad + 1);
        refuse(wc, "LOGIN and LOGOUT are not allowed from your address");
        return;
    }
    start(wc, &r);
}

static void on_close(void *arg)
{
    free(arg);
}

static const struct reqconn_ops whoson_ops = { on_request, on_close };

struct reqdoor *whoson_door_new(struct conncap *cap)
{
    return reqdoor_new("whoson", &whoson_limits, &whoson_ops, cap);
}

void whoson_accept(evutil_socket_t fd, struct sockaddr *sa, socklen_t len,
                   int kind, void *arg)
{
    struct gate *g = arg;
    struct whoson_conn *wc;

    (void)len;
    (void)kind;
    if (g->stopping) {
        close(fd);
        return;
    }
    wc = ab_calloc(1, sizeof(*wc));
    wc->g = g;
    daemon_session_id(wc->sid);
    wc->rc = reqconn_accept(g->whoson_door, g->base, fd, sa, wc);
    if (wc->rc == NULL)
        free(wc);
}
