#include "smtpgate/reqconn.h"
#include "smtpgate/counters.h"

#include "authbridge/listen.h"
#include "authbridge/log.h"
#include "authbridge/util.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQCONN_BUF_FIRST 2048    /* most requests fit; grows to the cap */

struct reqdoor {
    const char *name;
    const struct reqconn_limits *lim;
    const struct reqconn_ops *ops;
    struct conncap *cap;
    LIST_HEAD(, reqconn) all;
    struct log_limit refused_log;     /* connection and request refusals */
};

struct reqconn {
    LIST_ENTRY(reqconn) link;
    struct reqdoor *door;
    evutil_socket_t fd;
    struct event *rev, *wev;
    const struct reqconn_limits *lim;
    const struct reqconn_ops *ops;
    void *arg;
    struct ab_addr peer;
    char peer_text[ADDR_TEXT_MAX];

    char *buf;                    /* input */
    size_t len, cap;
    size_t cur_used;              /* octets of the request being answered */
    char **lines;

    char *out;                    /* output the socket did not take yet */
    size_t outlen, outcap;

    bool busy;                    /* a request is outstanding */
    bool gone;                    /* error, timeout, or we close */
    bool eof;                     /* the peer sent all it will send */
    bool in_process;
    bool refused;                 /* closing after limits.refusal */
    bool reading, writing;        /* rev, wev armed */
};

/* ---- parsing ------------------------------------------------------------ */

/* Length of the line at p (without CR LF), or -1 if incomplete. */
static long line_at(const char *p, size_t left, size_t *next)
{
    const char *nl = memchr(p, '\n', left);
    size_t n;

    if (nl == NULL)
        return -1;
    n = (size_t)(nl - p);
    *next = n + 1;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    return (long)n;
}

int reqblock_parse(char *buf, size_t len, const struct reqconn_limits *lim,
                   char **lines, size_t *n, size_t *used)
{
    size_t pos = 0, count = 0, next;
    long l;

    /* First find the end, touching nothing: an incomplete request is
     * parsed again when more arrives. */
    for (;;) {
        if (pos >= lim->request_max)
            return -1;
        l = line_at(buf + pos, len - pos, &next);
        if (l < 0)
            return len - pos > lim->line_max + 2 ? -1 : 0;
        if ((size_t)l > lim->line_max || memchr(buf + pos, '\0', (size_t)l))
            return -1;
        if (l == 0)
            break;
        if (++count > lim->lines_max)
            return -1;
        pos += next;
    }
    *used = pos + next;
    if (*used > lim->request_max)
        return -1;
    /* Then split in place. */
    pos = 0;
    for (size_t i = 0; i < count; i++) {
        l = line_at(buf + pos, len - pos, &next);
        lines[i] = buf + pos;
        buf[pos + (size_t)l] = '\0';
        pos += next;
    }
    *n = count;
    return 1;
}

/* ---- the connection --------------------------------------------------------- */

/* Read away what the peer already sent: closing with input unread
 * makes the kernel send a reset, which can destroy the refusal still on
 * its way to the peer. Bounded: a peer still sending gets the reset. */
static void discard_input(evutil_socket_t fd)
{
    char junk[4096];

    for (int i = 0; i < 16 && read(fd, junk, sizeof(junk)) > 0; i++)
        ;
}

static void rc_free(struct reqconn *rc)
{
    if (rc->refused)
        discard_input(rc->fd);
    LIST_REMOVE(rc, link);
    conncap_release(rc->door->cap, rc->peer_text);
    rc->ops->on_close(rc->arg);
    event_free(rc->rev);
    event_free(rc->wev);
    evutil_closesocket(rc->fd);
    free(rc->buf);
    free(rc->out);
    free(rc->lines);
    free(rc);
}

/* Mark gone; free now unless a request is outstanding or we are inside
 * the processing loop (it frees on the way out). */
static void rc_gone(struct reqconn *rc)
{
    rc->gone = true;
    event_del(rc->rev);
    event_del(rc->wev);
    rc->reading = rc->writing = false;
    if (!rc->busy && !rc->in_process)
        rc_free(rc);
}

/* Read while there is room and the answers so far have been taken: a
 * peer that pipelines requests without reading the answers stops being
 * read once out_high octets wait for it. */
static bool want_read(const struct reqconn *rc)
{
    return !rc->gone && !rc->eof && rc->outlen <= rc->lim->out_high &&
           (rc->len < rc->cap || !rc->busy);
}

/* Arm exactly the events the state needs. Both carry idle_s: an idle
 * peer, and one that stopped reading its answers, are closed alike. */
static void update_events(struct reqconn *rc)
{
    struct timeval tv = { rc->lim->idle_s, 0 };
    bool r = want_read(rc), w = !rc->gone && rc->outlen > 0;

    if (r != rc->reading) {
        rc->reading = r;
        if (r)
            event_add(rc->rev, &tv);
        else
            event_del(rc->rev);
    }
    if (w != rc->writing) {
        rc->writing = w;
        if (w)
            event_add(rc->wev, &tv);
        else
            event_del(rc->wev);
    }
}

static int frame(struct reqconn *rc, size_t *n)
{
    reqconn_frame_fn *fn = rc->lim->frame ? rc->lim->frame : reqblock_parse;

    return fn(rc->buf, rc->len, rc->lim, rc->lines, n, &rc->cur_used);
}

static bool send_reply(struct reqconn *rc, const char *data, size_t len);

/* Input the framing refused: nothing after it can be trusted to start a
 * request. Say so if the door has words for it, then close once they
 * are written (as after the peer's end of input). */
static void refuse(struct reqconn *rc)
{
    const char *text = rc->lim->refusal;

    rc->len = 0;
    rc->refused = true;
    if (text == NULL || !send_reply(rc, text, strlen(text))) {
        rc_gone(rc);
        return;
    }
    rc->eof = true;
}

/* Take the requests already read, one at a time, while the peer reads
 * its answers. After the peer's end of input, close once the last
 * complete request is answered and the answers are written. */
static void process(struct reqconn *rc)
{
    size_t n;
    int r = 0;

    rc->in_process = true;
    while (!rc->busy && !rc->gone && rc->len > 0 &&
           rc->outlen <= rc->lim->out_high) {
        r = frame(rc, &n);
        if (r == 0 && rc->len < rc->lim->request_max)
            break;
        if (r <= 0) {
            unsigned left_out;
            if (log_limited(&rc->door->refused_log, &left_out))
                log_info("event=request_refused door=%s client=%s reason="
                         "\"over a limit or malformed\" suppressed=%u",
                         rc->door->name, rc->peer_text, left_out);
            refuse(rc);
            break;
        }
        rc->busy = true;
        rc->ops->on_request(rc, rc->lines, n, rc->arg);
    }
    rc->in_process = false;
    if (rc->gone) {
        if (!rc->busy)
            rc_free(rc);
        return;
    }
    if (rc->eof && !rc->busy && rc->outlen == 0) {
        if (rc->len > 0)
            log_info("event=request_refused door=%s client=%s reason=\"input "
                     "ended inside a request\"", rc->door->name, rc->peer_text);
        rc_gone(rc);
        return;
    }
    update_events(rc);
}

/* Room to read into: grow up to the cap, but never while a request's
 * lines point into the buffer. */
static bool make_room(struct reqconn *rc)
{
    size_t max = rc->lim->request_max;

    if (rc->len < rc->cap)
        return true;
    if (rc->busy || rc->cap >= max)
        return false;
    rc->cap = rc->cap * 2 > max ? max : rc->cap * 2;
    rc->buf = ab_realloc(rc->buf, rc->cap);
    return true;
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct reqconn *rc = arg;
    ssize_t n;

    if (what & EV_TIMEOUT) {
        if (!rc->busy)
            rc_gone(rc);
        return;
    }
    if (!make_room(rc)) {
        update_events(rc);        /* busy and full: wait for the reply */
        return;
    }
    n = read(fd, rc->buf + rc->len, rc->cap - rc->len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        rc_gone(rc);
        return;
    }
    if (n == 0)
        rc->eof = true;           /* half-closed: answer what came */
    rc->len += (size_t)n;
    if (!rc->busy)
        process(rc);
    else
        update_events(rc);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct reqconn *rc = arg;
    ssize_t n;

    if (what & EV_TIMEOUT) {
        log_info("event=peer_not_reading door=%s client=%s queued=%zu",
                 rc->door->name, rc->peer_text, rc->outlen);
        rc_gone(rc);
        return;
    }
    n = send(fd, rc->out, rc->outlen, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        rc_gone(rc);
        return;
    }
    memmove(rc->out, rc->out + n, rc->outlen - (size_t)n);
    rc->outlen -= (size_t)n;
    if (rc->outlen > 0)
        return;
    /* Drained: take the next requests (or finish after the peer's end). */
    if (!rc->busy)
        process(rc);
    else
        update_events(rc);
}

static void queue_output(struct reqconn *rc, const char *data, size_t len)
{
    if (rc->outlen + len > rc->outcap) {
        rc->outcap = rc->outlen + len;
        rc->out = ab_realloc(rc->out, rc->outcap);
    }
    memcpy(rc->out + rc->outlen, data, len);
    rc->outlen += len;
}

/* Write now if nothing is queued: the common case is one send(). */
static bool send_reply(struct reqconn *rc, const char *data, size_t len)
{
    ssize_t n = 0;

    if (rc->outlen == 0) {
        n = send(rc->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return false;
        if (n < 0)
            n = 0;
    }
    if ((size_t)n < len)
        queue_output(rc, data + n, len - (size_t)n);
    return true;
}

void reqconn_reply(struct reqconn *rc, const char *data, size_t len)
{
    rc->busy = false;
    if (rc->gone || !send_reply(rc, data, len)) {
        rc_gone(rc);
        return;
    }
    memmove(rc->buf, rc->buf + rc->cur_used, rc->len - rc->cur_used);
    rc->len -= rc->cur_used;
    rc->cur_used = 0;
    if (!rc->in_process)
        process(rc);
}

void reqconn_reply_close(struct reqconn *rc, const char *data, size_t len)
{
    /* As if the peer had ended its input after this request: the answer
     * is written, then process() closes. */
    rc->len = rc->cur_used;
    rc->eof = true;
    reqconn_reply(rc, data, len);
}

void reqconn_close(struct reqconn *rc)
{
    rc->busy = false;
    rc_gone(rc);
}

const struct ab_addr *reqconn_peer(const struct reqconn *rc)
{
    return &rc->peer;
}

const char *reqconn_peer_text(const struct reqconn *rc)
{
    return rc->peer_text;
}

/* ---- the door ------------------------------------------------------------------ */

struct reqdoor *reqdoor_new(const char *name, const struct reqconn_limits *lim,
                            const struct reqconn_ops *ops, struct conncap *cap)
{
    struct reqdoor *d = ab_calloc(1, sizeof(*d));

    d->name = name;
    d->lim = lim;
    d->ops = ops;
    d->cap = cap;
    LIST_INIT(&d->all);
    return d;
}

void reqdoor_free(struct reqdoor *d)
{
    struct reqconn *rc;

    if (d == NULL)
        return;
    while ((rc = LIST_FIRST(&d->all)) != NULL)
        rc_free(rc);
    free(d);
}

unsigned reqdoor_count(const struct reqdoor *d)
{
    return conncap_total(d->cap);
}

struct reqconn *reqconn_accept(struct reqdoor *d, struct event_base *base,
                               evutil_socket_t fd, const struct sockaddr *sa,
                               void *arg)
{
    const struct reqconn_limits *lim = d->lim;
    struct reqconn *rc;
    struct ab_addr peer;
    char text[ADDR_TEXT_MAX] = "local";
    enum cap_result cap;

    metric_inc(&gate_connections, d->name, NULL);
    if (addr_from_sockaddr(sa, &peer) == 0)
        addr_format(&peer, text);
    else
        memset(&peer, 0, sizeof(peer));
    if ((cap = conncap_acquire(d->cap, text)) != CAP_OK) {
        unsigned left_out;
        if (log_limited(&d->refused_log, &left_out))
            log_info("event=connection_refused door=%s client=%s reason=%s "
                     "suppressed=%u", d->name, text, cap == CAP_TOTAL ?
                     "max_connections" : "max_connections_per_addr",
                     left_out);
        evutil_closesocket(fd);
        return NULL;
    }
    rc = ab_calloc(1, sizeof(*rc));
    evutil_make_socket_nonblocking(fd);
    rc->door = d;
    rc->fd = fd;
    rc->lim = lim;
    rc->ops = d->ops;
    rc->arg = arg;
    rc->peer = peer;
    memcpy(rc->peer_text, text, sizeof(text));
    rc->cap = REQCONN_BUF_FIRST < lim->request_max ? REQCONN_BUF_FIRST
                                                   : lim->request_max;
    rc->buf = ab_malloc(rc->cap);
    rc->lines = ab_calloc(lim->lines_max, sizeof(*rc->lines));
    rc->rev = event_new(base, fd, EV_READ | EV_PERSIST, read_cb, rc);
    rc->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, write_cb, rc);
    LIST_INSERT_HEAD(&d->all, rc, link);
    update_events(rc);
    return rc;
}
