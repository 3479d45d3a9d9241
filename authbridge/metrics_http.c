#include "metrics_http.h"
#include "conf.h"
#include "limits.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

struct mh_listener {
    struct metrics_http *mh;
    struct evconnlistener *lev;       /* owned by evhttp once bound */
    struct event *resume;
    char *text;
    bool warned;
};

struct mh_new;
LIST_HEAD(mh_new_list, mh_new);

struct metrics_http {
    struct event_base *base;
    struct evhttp *http;
    struct metric *const *set;
    size_t n;
    struct conncap *cap;
    struct mh_listener *l;
    size_t nl;
    struct mh_new_list unchecked;     /* accepted, not looked at yet */
};

/*
 * evhttp (libevent 2.1) has no connection cap and tells nobody when it
 * accepts one. What it does offer: it asks us for each connection's
 * bufferevent, and once the connection is set up that bufferevent's
 * callback argument is its evhttp_connection. So a connection is looked
 * at right after it was accepted (from the loop, a moment later): its
 * peer is counted against the caps, and a close callback gives the
 * count back whenever evhttp lets it go (a reply, a timeout, garbage).
 */
struct mh_new {
    LIST_ENTRY(mh_new) link;
    struct metrics_http *mh;
    struct bufferevent *bev;          /* a reference held until checked */
    struct event *ev;
};

static void mh_new_free(struct mh_new *p)
{
    LIST_REMOVE(p, link);
    bufferevent_decref(p->bev);
    event_free(p->ev);
    free(p);
}

struct mh_conn {
    struct metrics_http *mh;
    char peer[64];
};

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct mh_conn *c = arg;

    (void)evcon;
    conncap_release(c->mh->cap, c->peer);
    free(c);
}

/* The connection behind a bufferevent evhttp set up, or NULL when evhttp
 * already dropped it (its callbacks are cleared then). */
static struct evhttp_connection *evcon_of(struct bufferevent *bev)
{
    bufferevent_data_cb readcb;
    void *arg;

    bufferevent_getcb(bev, &readcb, NULL, NULL, &arg);
    return readcb != NULL ? arg : NULL;
}

static void check_new(evutil_socket_t fd, short what, void *arg)
{
    struct mh_new *p = arg;
    struct evhttp_connection *evcon = evcon_of(p->bev);
    struct mh_conn *c;
    char *host = NULL;
    ev_uint16_t port = 0;

    (void)fd;
    (void)what;
    if (evcon != NULL) {
        evhttp_connection_get_peer(evcon, &host, &port);
        c = ab_calloc(1, sizeof(*c));
        c->mh = p->mh;
        snprintf(c->peer, sizeof(c->peer), "%s", host ? host : "?");
        enum cap_result r = conncap_acquire(p->mh->cap, c->peer);
        if (r == CAP_OK) {
            evhttp_connection_set_closecb(evcon, conn_closed, c);
        } else {
            log_info("event=connection_refused door=metrics client=%s "
                     "reason=%s", log_esc(c->peer), r == CAP_TOTAL ?
                     "max_connections" : "max_connections_per_addr");
            free(c);
            evhttp_connection_free(evcon);
        }
    }
    mh_new_free(p);
}

static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
    struct mh_new *p = ab_calloc(1, sizeof(*p));

    p->mh = arg;
    p->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (p->bev == NULL)
        fatalx("bufferevent_socket_new failed");
    bufferevent_incref(p->bev);
    p->ev = event_new(base, -1, 0, check_new, p);
    event_active(p->ev, 0, 0);
    LIST_INSERT_HEAD(&p->mh->unchecked, p, link);
    return p->bev;
}

/* ---- requests ------------------------------------------------------------ */

static void on_request(struct evhttp_request *req, void *arg)
{
    struct metrics_http *mh = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    struct evbuffer *body;

    if (path == NULL || strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, HTTP_NOTFOUND, NULL);
        return;
    }
    body = evbuffer_new();
    metrics_render(mh->set, mh->n, body);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      METRICS_CONTENT_TYPE);
    evhttp_send_reply(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

/* ---- listeners ------------------------------------------------------------ */

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mh_listener *l = arg;

    (void)fd;
    (void)what;
    evconnlistener_enable(l->lev);
}

/* Out of descriptors: the connection stays in the backlog; pause instead
 * of spinning on accept() (as listen.c does for the other doors). */
static void accept_error(struct evconnlistener *lev, void *arg)
{
    struct mh_listener *l = arg;
    struct timeval tv = { 0, METRICS_EMFILE_PAUSE_MS * 1000 };

    if (!l->warned) {
        log_warn("event=accept_failed listen=%s error=%s pause_ms=%d",
                 l->text, log_esc(strerror(EVUTIL_SOCKET_ERROR())),
                 METRICS_EMFILE_PAUSE_MS);
        l->warned = true;
    }
    evconnlistener_disable(lev);
    evtimer_add(l->resume, &tv);
}

static int bind_one(struct metrics_http *mh, const struct endpoint *ep,
                    struct mh_listener *l, char *err, size_t errlen)
{
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
                     LEV_OPT_REUSEABLE;

    if (ep->family == AF_UNIX)
        unlink(ep->path);
    l->mh = mh;
    l->text = ab_strdup(ep->text);
    l->lev = evconnlistener_new_bind(mh->base, NULL, NULL, flags,
                                     METRICS_BACKLOG,
                                     (const struct sockaddr *)&ep->ss,
                                     (int)ep->sslen);
    if (l->lev == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", ep->text,
                 strerror(errno));
        return -1;
    }
    l->resume = evtimer_new(mh->base, resume_cb, l);
    if (evhttp_bind_listener(mh->http, l->lev) == NULL) {
        snprintf(err, errlen, "cannot serve HTTP on %s", ep->text);
        evconnlistener_free(l->lev);
        l->lev = NULL;
        return -1;
    }
    /* evhttp set its accept callback; the error callback is ours. */
    evconnlistener_set_error_cb(l->lev, accept_error);
    return 0;
}

static int check_set(struct metric *const *set, size_t n, char *err,
                     size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (metric_check(set[i], err, errlen) < 0)
            return -1;
    return 0;
}

struct metrics_http *metrics_http_new(struct event_base *base,
                                      const struct endpoint_list *l,
                                      struct metric *const *set, size_t n,
                                      char *err, size_t errlen)
{
    struct metrics_http *mh;

    if (check_set(set, n, err, errlen) < 0)
        return NULL;
    mh = ab_calloc(1, sizeof(*mh));
    mh->base = base;
    mh->set = set;
    mh->n = n;
    mh->cap = conncap_new(METRICS_CONNS_MAX, METRICS_CONNS_PER_ADDR_MAX);
    mh->http = evhttp_new(base);
    if (mh->http == NULL)
        fatalx("evhttp_new failed");
    evhttp_set_allowed_methods(mh->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(mh->http, METRICS_HEADERS_MAX);
    evhttp_set_max_body_size(mh->http, METRICS_BODY_MAX);
    evhttp_set_timeout(mh->http, METRICS_TIMEOUT_S);
    evhttp_set_bevcb(mh->http, new_bev, mh);
    evhttp_set_gencb(mh->http, on_request, mh);
    LIST_INIT(&mh->unchecked);
    mh->l = ab_calloc(l->n ? l->n : 1, sizeof(*mh->l));
    for (size_t i = 0; i < l->n; i++) {
        mh->nl = i + 1;
        if (bind_one(mh, &l->v[i], &mh->l[i], err, errlen) < 0) {
            metrics_http_free(mh);
            return NULL;
        }
    }
    return mh;
}

void metrics_http_free(struct metrics_http *mh)
{
    if (mh == NULL)
        return;
    /* Frees the bound listeners and every connection (whose close
     * callbacks give their caps back, so the caps go last). */
    evhttp_free(mh->http);
    while (!LIST_EMPTY(&mh->unchecked))
        mh_new_free(LIST_FIRST(&mh->unchecked));
    for (size_t i = 0; i < mh->nl; i++) {
        if (mh->l[i].resume)
            event_free(mh->l[i].resume);
        free(mh->l[i].text);
    }
    free(mh->l);
    conncap_free(mh->cap);
    free(mh);
}
