/*
 * What the MTA says: reply lines (strict, bounded), the handshake state
 * machine (greeting, EHLO or HELO, XCLIENT and EHLO again), answers to
 * queued commands in order, and socket events. Callbacks run with the
 * depth counter raised, so a callback may abort the connection.
 */
#include "smtpgate/downstream_int.h"

#include "authbridge/log.h"
#include "authbridge/util.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

static void ehlo_reply(struct ds *ds, const struct ds_reply *r)
{
    const char *line = r->text, *nl;

    ds->ext = ds->xclient = ds->xforward = 0;
    /* The first line is the MTA's greeting name; keywords follow. */
    for (unsigned i = 0; (nl = strchr(line, '\n')) != NULL; i++) {
        if (i > 0)
            smtp_ehlo_line(line, (size_t)(nl - line), &ds->ext, &ds->xclient,
                           &ds->xforward);
        line = nl + 1;
    }
}

static void ready(struct ds *ds)
{
    log_debug("event=ds_ready sid=%s ext=0x%x xclient=0x%x xforward=0x%x",
              ds->sid, ds->ext, ds->xclient, ds->xforward);
    ds_enter(ds, DS_READY);
    ds_pump(ds);
}

static void after_ehlo(struct ds *ds, const struct ds_reply *r)
{
    ehlo_reply(ds, r);
    if (ds->state == DS_EHLO && (ds->ext & EXT_XCLIENT) &&
        (ds->xclient & XATTR_ADDR)) {
        ds_send_xclient(ds);
        return;
    }
    ready(ds);
}

static void handshake_reply(struct ds *ds, const struct ds_reply *r)
{
    switch (ds->state) {
    case DS_GREETING:
        if (r->code != 220)
            ds_fail(ds, "4.4.0 Mail server not accepting mail now, try again "
                    "later", r->text);
        else
            ds_send_ehlo(ds, DS_EHLO);
        return;
    case DS_EHLO:
    case DS_EHLO2:
        if (r->code == 250)
            after_ehlo(ds, r);
        else if (ds->state == DS_EHLO && r->code >= 500)
            ds_send_ehlo(ds, DS_HELO);
        else
            ds_fail(ds, "4.4.0 Mail server refused our EHLO, try again later",
                    r->text);
        return;
    case DS_HELO:
        if (r->code != 250)
            ds_fail(ds, "4.4.0 Mail server refused our HELO, try again later",
                    r->text);
        else
            ready(ds);
        return;
    case DS_XCLIENT:
        if (r->code == 220) {
            ds->xclient_used = true;
            ds_send_ehlo(ds, DS_EHLO2);
            return;
        }
        /* Not authorized for XCLIENT (smtpd_authorized_xclient_hosts):
         * go on as ourselves; the gate's decision stands. */
        log_warn("event=ds_xclient_refused sid=%s reply=%s", ds->sid,
                 log_esc(r->text));
        ready(ds);
        return;
    default:
        fatalx("handshake_reply in state %s", ds_state_name(ds->state));
    }
}

static void command_reply(struct ds *ds, struct ds_reply *r)
{
    struct ds_req rq;
    bool closing = r->code == 421;

    if (ds->qsent == 0) {
        ds_fail_protocol(ds, "reply to no command");
        return;
    }
    rq = ds->q[ds->qhead];
    ds->qhead = (ds->qhead + 1) % DS_QUEUE_MAX;
    ds->qlen--;
    ds->qsent--;
    ds->answered = true;
    if (rq.kind == REQ_DATA && r->code == 354)
        ds_enter(ds, DS_BODY);
    if (rq.kind == REQ_DOT || (rq.kind == REQ_MAIL && r->code / 100 != 2))
        ds->in_tx = false;
    if ((rq.kind == REQ_XFORWARD || rq.kind == REQ_RSET) && r->code / 100 != 2)
        log_warn("event=ds_refused sid=%s command=%s reply=%s", ds->sid,
                 rq.kind == REQ_RSET ? "RSET" : "XFORWARD", log_esc(r->text));
    ds_soften_421(r);
    if (rq.cb)
        rq.cb(r, rq.arg);
    if (ds->freeing)
        return;
    if (closing)
        ds_fail(ds, "4.4.2 Mail server closed the connection, try again "
                "later", "421 from the MTA");
    else if (rq.kind == REQ_RSET && r->code / 100 != 2)
        ds_fail_protocol(ds, "RSET refused");
    else
        ds_pump(ds);
}

static void reply_complete(struct ds *ds)
{
    switch (ds->state) {
    case DS_READY:
        command_reply(ds, &ds->reply);
        break;
    case DS_BODY:
        /* Nothing was asked: an MTA that gives up mid-message. */
        ds->fail = ds->reply;      /* the reason a later ds_fail gives */
        ds->has_early = true;
        log_warn("event=ds_early_reply sid=%s reply=%d %s", ds->sid,
                 ds->reply.code, log_esc(ds->reply.text));
        break;
    case DS_QUITTING:
    case DS_POOLED:               /* unasked: a 421 before it closes */
        ds_destroy(ds);
        break;
    default:
        handshake_reply(ds, &ds->reply);
        if (ds->state != DS_FAILED && !ds->freeing)
            ds_arm_timeouts(ds);
        break;
    }
}

/* One reply line; 1 when the reply is complete, 0 for more, -1 broken. */
static int reply_line(struct ds *ds, const char *line, size_t len)
{
    struct smtp_reply_line rl;
    struct ds_reply *r = &ds->reply;

    if (smtp_reply_line_parse(line, len, &rl) < 0)
        return -1;
    if (ds->lines_seen == 0) {
        r->code = rl.code;
        r->local = false;
        r->len = 0;
        r->nlines = 0;
    } else if (rl.code != r->code || ds->lines_seen == DS_REPLY_LINES_MAX) {
        return -1;
    }
    ds->lines_seen++;
    /* Lines past the text cap are dropped whole: the reply passed on
     * must stay a well-formed multi-line reply. */
    if (r->len + rl.textlen + 2 <= sizeof(r->text)) {
        memcpy(r->text + r->len, rl.text, rl.textlen);
        r->len += rl.textlen;
        r->text[r->len++] = '\n';
        r->text[r->len] = '\0';
        r->nlines++;
    }
    return rl.last ? 1 : 0;
}

void ds_read_cb(struct bufferevent *bev, void *arg)
{
    struct ds *ds = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char line[DS_REPLY_LINE_MAX + 1];
    struct evbuffer_ptr eol;
    size_t eol_len;
    int rc;

    ds->depth++;
    /* Stop when failed, freed, or reconnected (in is gone then). */
    while (!ds->freeing && ds->state != DS_FAILED && ds->bev == bev) {
        eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
        if (eol.pos < 0) {
            if (evbuffer_get_length(in) > DS_REPLY_LINE_MAX)
                ds_fail_protocol(ds, "reply line too long");
            break;
        }
        if ((size_t)eol.pos > DS_REPLY_LINE_MAX) {
            ds_fail_protocol(ds, "reply line too long");
            break;
        }
        evbuffer_remove(in, line, (size_t)eol.pos);
        evbuffer_drain(in, eol_len);
        line[eol.pos] = '\0';
        rc = reply_line(ds, line, (size_t)eol.pos);
        if (rc < 0) {
            ds_fail_protocol(ds, line);
            break;
        }
        if (rc == 1) {
            ds->lines_seen = 0;
            reply_complete(ds);
        }
    }
    ds_leave(ds);
}

void ds_write_cb(struct bufferevent *bev, void *arg)
{
    struct ds *ds = arg;
    ds_drain_cb *cb = ds->drain_cb;

    /* All written: back to writing directly (ds_go_direct). */
    if (ds->direct && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    if (cb == NULL ||
        evbuffer_get_length(bufferevent_get_output(bev)) > ds->drain_low)
        return;
    ds->drain_cb = NULL;
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    ds->depth++;
    cb(ds->drain_arg);
    ds_leave(ds);
}

void ds_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct ds *ds = arg;
    int one = 1;

    if (what & BEV_EVENT_CONNECTED) {
        /* Replies and the end-of-data dot are small writes after larger
         * ones: without this, Nagle and delayed ACKs add 40 ms a message. */
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
                   sizeof(one));
        ds_go_direct(ds);
        ds_enter(ds, DS_GREETING);
        return;
    }
    if (ds->state == DS_POOLED && (what & BEV_EVENT_TIMEOUT)) {
        ds_pool_remove(ds);          /* idle long enough: say goodbye */
        ds_enter(ds, DS_READY);
        ds_quit(ds);
        return;
    }
    if (ds->state == DS_QUITTING || ds->state == DS_POOLED) {
        if (ds->state == DS_POOLED)
            log_debug("event=ds_pool_closed sid=%s reason=%s", ds->sid,
                      (what & BEV_EVENT_EOF) ? "closed_by_mta" : "error");
        ds_destroy(ds);
        return;
    }
    ds->depth++;
    if (what & BEV_EVENT_TIMEOUT)
        ds_fail(ds, "4.4.2 Mail server timed out, try again later", "timeout");
    else if (ds->state == DS_CONNECTING)
        ds_fail(ds, "4.4.1 Mail server unreachable, try again later",
                "connect failed");
    else
        ds_fail(ds, "4.4.2 Connection to the mail server lost, try again "
                "later", (what & BEV_EVENT_EOF) ? "closed by the MTA" :
                "socket error");
    ds_leave(ds);
}

