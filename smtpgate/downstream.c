/*
 * The MTA connection: life cycle, failure, sending, and the command API.
 * A small ring of commands: queued, then sent, then answered in order
 * (downstream_reply.c reads the answers).
 *
 * Callbacks may call back into this module (queue the next command,
 * abort): a depth counter defers the free until the outermost callback
 * returns, and every loop over replies stops once the connection is
 * being freed.
 */
#include "smtpgate/downstream_int.h"

#include "authbridge/conf.h"
#include "authbridge/conn.h"
#include "authbridge/log.h"
#include "authbridge/util.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Connections that sent QUIT and wait for its answer, nobody's now (per
 * loop: each on the loop that made it). */
static _Thread_local LIST_HEAD(, ds) orphans = LIST_HEAD_INITIALIZER(orphans);

static void ds_connect(struct ds *ds);

const char *ds_state_name(enum ds_state st)
{
    static const char *const names[] = {
        "CONNECTING", "GREETING", "EHLO", "HELO", "XCLIENT", "EHLO2",
        "READY", "BODY", "QUITTING", "POOLED", "FAILED",
    };
    return names[st];
}

void ds_enter(struct ds *ds, enum ds_state st)
{
    log_debug("event=ds_state sid=%s from=%s to=%s", ds->sid,
              ds_state_name(ds->state), ds_state_name(st));
    ds->state = st;
}

/* ---- life cycle ------------------------------------------------------------ */

static void really_free(struct ds *ds)
{
    if (ds->state == DS_POOLED)
        ds_pool_remove(ds);
    else if (ds->orphan)
        LIST_REMOVE(ds, link);
    if (ds->bev)
        bufferevent_free(ds->bev);
    event_free(ds->fail_ev);
    event_free(ds->flush_ev);
    free(ds);
}

/* Free now, or when the outermost callback returns. */
void ds_destroy(struct ds *ds)
{
    ds->freeing = true;
    ds->drain_cb = NULL;
    if (ds->depth == 0)
        really_free(ds);
}

void ds_leave(struct ds *ds)
{
    if (--ds->depth == 0 && ds->freeing)
        really_free(ds);
}

void ds_abort(struct ds *ds)
{
    if (ds == NULL)
        return;
    /* Freeing the bufferevent drops unsent output: no end-of-data dot
     * can follow what the MTA already has. */
    if (ds->bev) {
        bufferevent_free(ds->bev);
        ds->bev = NULL;
    }
    ds_destroy(ds);
}

void ds_free_all(void)
{
    struct ds *ds;

    while ((ds = LIST_FIRST(&orphans)) != NULL)
        really_free(ds);
    ds_pool_free_all();
}

/* ---- replies made here ------------------------------------------------------- */

static void local_reply(struct ds_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void local_reply(struct ds_reply *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    r->code = 451;
    r->local = true;
    r->nlines = 1;
    va_start(ap, fmt);
    n = vsnprintf(r->text, sizeof(r->text) - 1, fmt, ap);
    va_end(ap);
    r->len = n < 0 ? 0 : (size_t)n >= sizeof(r->text) - 1 ?
             sizeof(r->text) - 2 : (size_t)n;
    r->text[r->len++] = '\n';
    r->text[r->len] = '\0';
}

/* The MTA closes after 421; our client's session goes on, so it hears a
 * plain temporary failure instead. The enhanced code, if any, stays. */
void ds_soften_421(struct ds_reply *r)
{
    if (r->code == 421)
        r->code = 451;
}

/* ---- failure: every queued command, and the drain waiter, hear it ------ */

static void fail_deliver(evutil_socket_t fd, short what, void *arg)
{
    struct ds *ds = arg;

    (void)fd;
    (void)what;
    ds->depth++;
    while (ds->qlen > 0 && !ds->freeing) {
        struct ds_req *rq = &ds->q[ds->qhead];
        ds_reply_cb *cb = rq->cb;
        void *cbarg = rq->arg;
        ds->qhead = (ds->qhead + 1) % DS_QUEUE_MAX;
        ds->qlen--;
        if (cb)
            cb(&ds->fail, cbarg);
    }
    if (ds->drain_cb && !ds->freeing) {
        ds_drain_cb *cb = ds->drain_cb;
        ds->drain_cb = NULL;
        cb(ds->drain_arg);
    }
    ds_leave(ds);
}

/*
 * A pooled connection the MTA closed while it sat idle shows that only
 * when it is used again. If the MTA answered nothing since, nothing was
 * done there: start over on a new connection, same commands queued.
 */
static bool retry_stale(struct ds *ds, const char *why)
{
    if (!ds->reused || ds->answered || ds->state != DS_READY)
        return false;
    log_info("event=ds_stale sid=%s reason=%s action=reconnect", ds->sid,
             log_esc(why));
    ds->reused = false;
    ds->qsent = 0;
    ds->in_tx = false;
    ds->lines_seen = 0;
    bufferevent_free(ds->bev);
    ds->bev = NULL;
    ds_connect(ds);
    return true;
}

void ds_fail(struct ds *ds, const char *enh_text, const char *why)
{
    if (ds->state == DS_FAILED || retry_stale(ds, why))
        return;
    if (ds->has_early && ds->fail.code >= 400) {
        ds_soften_421(&ds->fail);         /* the MTA's own reason, kept */
    } else {
        local_reply(&ds->fail, "%s", enh_text);
    }
    log_warn("event=ds_failed sid=%s state=%s reason=%s", ds->sid,
             ds_state_name(ds->state), log_esc(why));
    ds_enter(ds, DS_FAILED);
    ds->qsent = 0;
    if (ds->bev) {
        bufferevent_free(ds->bev);
        ds->bev = NULL;
    }
    event_active(ds->fail_ev, 0, 0);
}

void ds_fail_protocol(struct ds *ds, const char *why)
{
    ds_fail(ds, "4.4.0 Mail server protocol error, try again later", why);
}

/* ---- sending --------------------------------------------------------------- */

/*
 * Once connected, commands and message octets are written directly at the
 * end of the loop turn that queued them (bev_flush_direct), as conn does
 * for clients: a bufferevent would arm and disarm write interest in epoll
 * around every command, two system calls and a loop turn each. Only when
 * the MTA does not take everything does the bufferevent write the rest.
 */
static void ds_flush(evutil_socket_t fd, short what, void *arg)
{
    struct ds *ds = arg;

    (void)fd;
    (void)what;
    if (ds->bev == NULL || !ds->direct || ds->freeing)
        return;
    bev_flush_direct(ds->bev);
    if (evbuffer_get_length(bufferevent_get_output(ds->bev)) == 0 &&
        !(bufferevent_get_enabled(ds->bev) & EV_WRITE))
        ds_write_cb(ds->bev, ds);          /* a drain callback may wait */
}

static void ds_output_added(struct evbuffer *buf,
                            const struct evbuffer_cb_info *info, void *arg)
{
    struct ds *ds = arg;

    (void)buf;
    if (info->n_added > 0 && ds->direct &&
        !(bufferevent_get_enabled(ds->bev) & EV_WRITE))
        event_active(ds->flush_ev, 0, 0);
}

void ds_go_direct(struct ds *ds)
{
    ds->direct = true;
    bufferevent_disable(ds->bev, EV_WRITE);
    evbuffer_add_cb(bufferevent_get_output(ds->bev), ds_output_added, ds);
    event_active(ds->flush_ev, 0, 0);    /* whatever was queued meanwhile */
}

void ds_arm_timeouts(struct ds *ds)
{
    bool want = ds->state < DS_READY || ds->state == DS_QUITTING ||
                ds->qsent > 0;
    struct timeval tv = { ds->timeout_s, 0 };

    if (ds->bev == NULL || want == ds->reading_timed)
        return;
    ds->reading_timed = want;
    bufferevent_set_timeouts(ds->bev, want ? &tv : NULL, &tv);
}

static void send_line(struct ds *ds, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void send_line(struct ds *ds, const char *fmt, ...)
{
    struct evbuffer *out = bufferevent_get_output(ds->bev);
    va_list ap;

    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
}

void ds_send_ehlo(struct ds *ds, enum ds_state next)
{
    send_line(ds, "%s %s", next == DS_HELO ? "HELO" : "EHLO", ds->hostname);
    ds_enter(ds, next);
}

/* " KEY=value" for the client attributes the MTA listed. */
static void add_attrs(struct ds *ds, char *line, size_t size, unsigned attrs,
                      bool with_login)
{
    char val[3 * 256 + 1];
    size_t o = strlen(line);

#define ADD(...) do { int n_ = snprintf(line + o, size - o, __VA_ARGS__); \
        if (n_ > 0 && (size_t)n_ < size - o) o += (size_t)n_; } while (0)
    if (attrs & XATTR_NAME)
        ADD(" NAME=[UNAVAILABLE]");
    if (attrs & XATTR_ADDR)
        ADD(" ADDR=%s%s", ds->addr.family == AF_INET6 ? "IPV6:" : "",
            ds->addr_text);
    /* The client's own port: Postfix hands it to the policy service
     * (client_port), which is how `authbridge stats` tells Postfix's
     * question about a recipient the gate let through from a relay of
     * its own. */
    if ((attrs & XATTR_PORT) && ds->port != 0)
        ADD(" PORT=%u", ds->port);
    if (attrs & XATTR_PROTO)
        ADD(" PROTO=%s", ds->esmtp ? "ESMTP" : "SMTP");
    if ((attrs & XATTR_HELO) && ds->helo[0] != '\0' &&
        smtp_xtext(ds->helo, val, sizeof(val)) != (size_t)-1)
        ADD(" HELO=%s", val);
    if (with_login && (attrs & XATTR_LOGIN) && ds->has_login &&
        smtp_xtext(ds->login, val, sizeof(val)) != (size_t)-1)
        ADD(" LOGIN=%s", val);
#undef ADD
}

void ds_send_xclient(struct ds *ds)
{
    char line[2048] = "XCLIENT";

    add_attrs(ds, line, sizeof(line), ds->xclient, true);
    send_line(ds, "%s", line);
    ds_enter(ds, DS_XCLIENT);
}

/* MAIL FROM with only the parameters the MTA advertised. */
static void send_mail(struct ds *ds, const struct ds_req *rq)
{
    char size[32] = "";
    const char *body = "";

    if (rq->mp.has_size && (ds->ext & EXT_SIZE))
        snprintf(size, sizeof(size), " SIZE=%llu",
                 (unsigned long long)rq->mp.size);
    if (ds->ext & EXT_8BITMIME)
        body = rq->mp.body == BODY_8BITMIME ? " BODY=8BITMIME" :
               rq->mp.body == BODY_7BIT ? " BODY=7BIT" : "";
    send_line(ds, "MAIL FROM:<%s>%s%s", rq->text, size, body);
}

static void send_req(struct ds *ds, const struct ds_req *rq)
{
    char line[2048] = "XFORWARD";

    switch (rq->kind) {
    case REQ_XFORWARD:
        add_attrs(ds, line, sizeof(line), ds->xforward, false);
        send_line(ds, "%s", line);
        break;
    case REQ_MAIL:
        send_mail(ds, rq);
        ds->in_tx = true;
        break;
    case REQ_RCPT:
        send_line(ds, "RCPT TO:<%s>", rq->text);
        break;
    case REQ_RSET:
        send_line(ds, "RSET");
        ds->in_tx = false;
        break;
    case REQ_DATA:
        send_line(ds, "DATA");
        break;
    case REQ_DOT:
        break;                            /* the session wrote it */
    }
}

/* XFORWARD only when the MTA offers it and XCLIENT did not happen. */
static bool want_xforward(const struct ds *ds)
{
    return !ds->xclient_used && (ds->ext & EXT_XFORWARD) &&
           (ds->xforward & (XATTR_ADDR | XATTR_NAME | XATTR_HELO |
                            XATTR_PROTO));
}

/* Take the unsent entry at offset i out of the ring. */
static void ring_remove(struct ds *ds, unsigned i)
{
    for (; i + 1 < ds->qlen; i++)
        ds->q[(ds->qhead + i) % DS_QUEUE_MAX] =
            ds->q[(ds->qhead + i + 1) % DS_QUEUE_MAX];
    ds->qlen--;
}

/* Send what may go now: one command, or with PIPELINING all up to DATA. */
void ds_pump(struct ds *ds)
{
    while (ds->state == DS_READY && ds->qsent < ds->qlen) {
        struct ds_req *rq = &ds->q[(ds->qhead + ds->qsent) % DS_QUEUE_MAX];
        if (rq->kind == REQ_XFORWARD && !want_xforward(ds)) {
            ring_remove(ds, ds->qsent);
            continue;
        }
        if (ds->qsent > 0 && !(ds->ext & EXT_PIPELINING))
            break;
        if (ds->qsent > 0 &&
            ds->q[(ds->qhead + ds->qsent - 1) % DS_QUEUE_MAX].kind == REQ_DATA)
            break;                        /* RFC 2920: DATA ends a group */
        send_req(ds, rq);
        ds->qsent++;
    }
    ds_arm_timeouts(ds);
}

static struct ds_req *push(struct ds *ds, enum req_kind kind, ds_reply_cb *cb,
                           void *arg)
{
    struct ds_req *rq;

    if (ds->qlen == DS_QUEUE_MAX)
        fatalx("downstream queue overflow (sid=%s)", ds->sid);
    rq = &ds->q[(ds->qhead + ds->qlen) % DS_QUEUE_MAX];
    memset(rq, 0, sizeof(*rq));
    rq->kind = kind;
    rq->cb = cb;
    rq->arg = arg;
    ds->qlen++;
    return rq;
}

/* Queued on a failed connection: answered from the loop, not from here. */
static void push_done(struct ds *ds)
{
    if (ds->state == DS_FAILED)
        event_active(ds->fail_ev, 0, 0);
    else
        ds_pump(ds);
}

void ds_mail(struct ds *ds, const char *sender,
             const struct smtp_mail_params *mp, ds_reply_cb *cb, void *arg)
{
    struct ds_req *rq;

    /* XFORWARD is decided after the handshake; queue it and let the
     * sender skip it if XCLIENT was used or nothing is offered. */
    push(ds, REQ_XFORWARD, NULL, NULL);
    rq = push(ds, REQ_MAIL, cb, arg);
    snprintf(rq->text, sizeof(rq->text), "%s", sender);
    rq->mp = *mp;
    push_done(ds);
}

void ds_rcpt(struct ds *ds, const char *rcpt, ds_reply_cb *cb, void *arg)
{
    struct ds_req *rq = push(ds, REQ_RCPT, cb, arg);

    snprintf(rq->text, sizeof(rq->text), "%s", rcpt);
    push_done(ds);
}

void ds_rset(struct ds *ds)
{
    push(ds, REQ_RSET, NULL, NULL);
    push_done(ds);
}

void ds_data(struct ds *ds, ds_reply_cb *cb, void *arg)
{
    push(ds, REQ_DATA, cb, arg);
    push_done(ds);
}

void ds_body_move(struct ds *ds, struct evbuffer *src, size_t n)
{
    if (ds->state == DS_BODY && ds->bev != NULL)
        evbuffer_remove_buffer(src, bufferevent_get_output(ds->bev), n);
    else
        evbuffer_drain(src, n);
}

void ds_data_end(struct ds *ds, ds_reply_cb *cb, void *arg)
{
    push(ds, REQ_DOT, cb, arg);
    if (ds->state == DS_FAILED) {
        event_active(ds->fail_ev, 0, 0);
        return;
    }
    if (ds->has_early) {
        ds_fail(ds, "4.4.2 Mail server ended the message early, try again "
                "later", "reply during the message body");
        return;
    }
    ds->qsent++;
    ds_enter(ds, DS_READY);
    ds_arm_timeouts(ds);
}

bool ds_usable(const struct ds *ds)
{
    return ds->state != DS_FAILED && !ds->has_early && !ds->freeing;
}

size_t ds_body_pending(const struct ds *ds)
{
    return ds->bev ? evbuffer_get_length(bufferevent_get_output(ds->bev)) : 0;
}

void ds_when_drained(struct ds *ds, size_t low, ds_drain_cb *cb, void *arg)
{
    ds->drain_cb = cb;
    ds->drain_arg = arg;
    ds->drain_low = low;
    if (ds->state == DS_FAILED) {
        event_active(ds->fail_ev, 0, 0);
        return;
    }
    bufferevent_setwatermark(ds->bev, EV_WRITE, low, 0);
}

void ds_quit(struct ds *ds)
{
    struct timeval tv = { DS_QUIT_WAIT_S, 0 };

    if (ds == NULL)
        return;
    if (ds->state != DS_READY || ds->freeing) {
        ds_abort(ds);                     /* mid-handshake, body or failed */
        return;
    }
    /* Nobody listens any more: drop the callbacks, keep the order. */
    for (unsigned i = 0; i < ds->qlen; i++)
        ds->q[(ds->qhead + i) % DS_QUEUE_MAX].cb = NULL;
    ds->drain_cb = NULL;
    ds->qlen = ds->qsent = 0;
    send_line(ds, "QUIT");
    ds_enter(ds, DS_QUITTING);
    ds->orphan = true;
    LIST_INSERT_HEAD(&orphans, ds, link);
    bufferevent_set_timeouts(ds->bev, &tv, &tv);
}

/* ---- creation -------------------------------------------------------------- */

static void copy_client(struct ds *ds, const struct ds_client *c)
{
    snprintf(ds->sid, sizeof(ds->sid), "%s", c->sid);
    ds->addr = *c->addr;
    snprintf(ds->addr_text, sizeof(ds->addr_text), "%s", c->addr_text);
    ds->port = c->port;
    snprintf(ds->helo, sizeof(ds->helo), "%s", c->helo);
    ds->esmtp = c->esmtp;
    ds->has_login = c->login != NULL;
    snprintf(ds->login, sizeof(ds->login), "%s", c->login ? c->login : "");
}

struct ds *ds_new(struct event_base *base, const struct smtpgate_conf *sc,
                  const struct ds_client *client)
{
    struct ds *ds = ds_pool_take(sc);
    const struct endpoint *ep = &sc->downstream;

    if (ds != NULL) {
        copy_client(ds, client);
        log_debug("event=ds_reuse sid=%s downstream=%s", ds->sid, ep->text);
        return ds;
    }
    ds = ab_calloc(1, sizeof(*ds));
    memcpy(&ds->peer, &ep->ss, ep->sslen);
    ds->peerlen = ep->sslen;
    ds->base = base;
    ds->timeout_s = sc->downstream_timeout;
    snprintf(ds->hostname, sizeof(ds->hostname), "%s", sc->hostname);
    copy_client(ds, client);
    ds->fail_ev = event_new(base, -1, 0, fail_deliver, ds);
    ds->flush_ev = event_new(base, -1, 0, ds_flush, ds);
    log_debug("event=ds_connect sid=%s downstream=%s", ds->sid, ep->text);
    ds_connect(ds);
    return ds;
}

static void ds_connect(struct ds *ds)
{
    struct timeval tv = { ds->timeout_s, 0 };

    ds->state = DS_CONNECTING;
    ds->direct = false;                   /* until this socket connects */
    ds->ext = ds->xclient = ds->xforward = 0;
    ds->xclient_used = false;
    ds->bev = bufferevent_socket_new(ds->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (ds->bev == NULL) {
        ds_fail(ds, "4.4.1 Mail server unreachable, try again later",
                "no memory for a socket");
        return;
    }
    bufferevent_setcb(ds->bev, ds_read_cb, ds_write_cb, ds_event_cb, ds);
    bufferevent_set_timeouts(ds->bev, &tv, &tv);
    ds->reading_timed = true;
    bufferevent_enable(ds->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(ds->bev, (struct sockaddr *)&ds->peer,
                                   (int)ds->peerlen) < 0)
        ds_fail(ds, "4.4.1 Mail server unreachable, try again later",
                "connect failed");
}
