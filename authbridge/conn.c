#include "conn.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Input read ahead of the protocol: pipelining needs some, a flood none.
 * Reading pauses above this until the session consumes lines. */
#define CONN_INPUT_HIGH (64 * 1024)

/* libevent writes at most 16 KiB per call by default: a RETR of a large
 * message would cost a system call per 16 KiB. */
#define CONN_MAX_WRITE (256 * 1024)

struct conn {
    struct bufferevent *bev;
    struct event_base *base;
    struct event *flush_ev;       /* plaintext: write replies directly */
    struct event *line_ev;        /* a started line must end by then */
    bool line_armed;
    const struct conn_ops *ops;
    void *arg;
    struct ab_addr peer;
    char peer_text[ADDR_TEXT_MAX];
    SSL_CTX *pending_tls;         /* STARTTLS: start once output is written */
    unsigned read_s, write_s;
    size_t drain_low;
    bool tls;
    bool closing;                 /* close after flush */
    bool timed_out;               /* ending for inactivity */
    bool ended;
};

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void timed_out(struct conn *c, short what);
static void line_deadline_cb(evutil_socket_t fd, short what, void *arg);
static void line_deadline_stop(struct conn *c);
static enum line_result readline(struct conn *c, char *buf, size_t max,
                                 size_t *len);

/*
 * Plaintext output. A bufferevent turns write interest on in epoll for
 * every reply and off again once it is written: two epoll_ctl calls per
 * reply, a dozen per POP3 login. Instead, replies collect in the output
 * buffer and are written directly once the current loop iteration has run
 * its callbacks (an active event, no system call to arm it); write
 * interest is enabled only when the socket could not take everything.
 * TLS connections keep the bufferevent's own writing.
 */
void bev_flush_direct(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    int n;

    if (evbuffer_get_length(out) == 0 ||
        (bufferevent_get_enabled(bev) & EV_WRITE))
        return;
    /* libevent keeps the output's drain side frozen except inside its own
     * writer; we are the writer here. */
    evbuffer_unfreeze(out, 1);
    n = evbuffer_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
    /* Left over, or an error the bufferevent will meet and report. */
    if (n < 0 || evbuffer_get_length(out) > 0)
        bufferevent_enable(bev, EV_WRITE);
}

static void kick_output(struct conn *c)
{
    if (c->tls || c->ended)
        return;
    bev_flush_direct(c->bev);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
        !(bufferevent_get_enabled(c->bev) & EV_WRITE))
        conn_write_cb(c->bev, c);  /* close-after-flush, STARTTLS, drain */
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kick_output(arg);
}

static void output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                         void *arg)
{
    struct conn *c = arg;

    (void)buf;
    if (info->n_added > 0 && !(bufferevent_get_enabled(c->bev) & EV_WRITE))
        event_active(c->flush_ev, 0, 0);
}


static void end(struct conn *c, enum conn_end why)
{
    if (c->ended)
        return;
    c->ended = true;
    event_del(c->line_ev);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    c->ops->on_end(c, why, c->arg);
}

static void apply_timeouts(struct conn *c)
{
    struct timeval r = { c->read_s, 0 }, w = { c->write_s, 0 };

    bufferevent_set_timeouts(c->bev, c->read_s ? &r : NULL,
                             c->write_s ? &w : NULL);
}

static void setup_bev(struct conn *c)
{
    bufferevent_set_max_single_write(c->bev, CONN_MAX_WRITE);
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_INPUT_HIGH);
    bufferevent_setwatermark(c->bev, EV_WRITE, c->drain_low, 0);
    apply_timeouts(c);
    if (c->tls) {
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    } else {
        /* New bufferevents start with writing enabled: take it back
         * before the events are armed, so epoll hears of reading only. */
        bufferevent_disable(c->bev, EV_WRITE);
        bufferevent_enable(c->bev, EV_READ);
        evbuffer_add_cb(bufferevent_get_output(c->bev), output_added, c);
    }
}

static struct bufferevent *tls_bev(struct conn *c, evutil_socket_t fd,
                                   SSL_CTX *ctx)
{
    SSL *ssl = SSL_new(ctx);
    struct bufferevent *bev;

    if (ssl == NULL)
        return NULL;
    bev = bufferevent_openssl_socket_new(c->base, fd, ssl,
                                         BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    /* Clients that drop TCP without close_notify are the norm. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

struct conn *conn_new(struct event_base *base, evutil_socket_t fd,
                      const struct sockaddr *sa, SSL_CTX *tls_ctx,
                      const struct conn_ops *ops, void *arg)
{
    struct conn *c = ab_calloc(1, sizeof(*c));

    c->base = base;
    c->ops = ops;
    c->arg = arg;
    if (addr_from_sockaddr(sa, &c->peer) == 0)
        addr_format(&c->peer, c->peer_text);
    else
        snprintf(c->peer_text, sizeof(c->peer_text), "local");
    /* Request-response protocols: Nagle would hold a reply's last small
     * segment (".\r\n") for the client's delayed ACK, ~40 ms. */
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    if (tls_ctx != NULL) {
        c->bev = tls_bev(c, fd, tls_ctx);
        c->tls = true;
    } else {
        c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        return NULL;
    }
    c->flush_ev = event_new(base, -1, 0, flush_cb, c);
    c->line_ev = evtimer_new(base, line_deadline_cb, c);
    setup_bev(c);
    return c;
}

void conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    if (c->pending_tls)
        SSL_CTX_free(c->pending_tls);
    bufferevent_free(c->bev);
    event_free(c->flush_ev);
    event_free(c->line_ev);
    free(c);
}

const struct ab_addr *conn_peer(const struct conn *c)
{
    return &c->peer;
}

const char *conn_peer_text(const struct conn *c)
{
    return c->peer_text;
}

bool conn_is_tls(const struct conn *c)
{
    return c->tls;
}

const char *conn_tls_desc(const struct conn *c, char *buf, size_t len)
{
    SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;

    if (ssl == NULL)
        snprintf(buf, len, "no");
    else
        snprintf(buf, len, "%s/%s", SSL_get_version(ssl),
                 SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
    return buf;
}

struct evbuffer *conn_input(struct conn *c)
{
    return bufferevent_get_input(c->bev);
}

struct evbuffer *conn_output(struct conn *c)
{
    return bufferevent_get_output(c->bev);
}

size_t conn_output_len(const struct conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void conn_write(struct conn *c, const void *data, size_t len)
{
    bufferevent_write(c->bev, data, len);
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
    va_end(ap);
}

/*
 * The read timeout restarts with every byte, so a client sending one byte
 * a minute would hold its connection (and, in pop3d, the mailbox lock)
 * for ever. A line that has begun must therefore also end within the
 * read timeout, counted from when it was first seen incomplete, as
 * Postfix's smtpd_per_record_deadline does.
 */
static void line_deadline_stop(struct conn *c)
{
    if (c->line_armed)
        event_del(c->line_ev);
    c->line_armed = false;
}

/* The deadline runs only while the owner reads: not while it pauses
 * input or turns the read timeout off (pop3d streaming a long RETR,
 * smtpgate waiting for Redis or the MTA). The next incomplete line
 * starts it afresh. */
static enum line_result line_deadline(struct conn *c, enum line_result r,
                                      size_t have)
{
    if (r != LINE_MORE) {
        line_deadline_stop(c);
    } else if (have > 0 && !c->line_armed && c->read_s > 0 && !c->ended) {
        struct timeval tv = { c->read_s, 0 };
        evtimer_add(c->line_ev, &tv);
        c->line_armed = true;
    }
    return r;
}

static void line_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    c->line_armed = false;
    if (!c->ended && !c->closing)
        timed_out(c, BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
}

enum line_result conn_readline(struct conn *c, char *buf, size_t max,
                               size_t *len)
{
    return line_deadline(c, readline(c, buf, max, len),
                         evbuffer_get_length(bufferevent_get_input(c->bev)));
}

static enum line_result readline(struct conn *c, char *buf, size_t max,
                                 size_t *len)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n, have = evbuffer_get_length(in);
    size_t window = have < max + 2 ? have : max + 2;   /* line, CR, LF */
    struct evbuffer_ptr p, stop;

    if (have == 0)
        return LINE_MORE;
    /* Look no further than the longest legal line: a flood without line
     * ends costs nothing to refuse. */
    evbuffer_ptr_set(in, &stop, window, EVBUFFER_PTR_SET);
    p = evbuffer_search_range(in, "\n", 1, NULL, &stop);
    if (p.pos < 0)
        return have >= max + 2 ? LINE_TOO_LONG : LINE_MORE;
    n = (size_t)p.pos;
    evbuffer_remove(in, buf, n);
    evbuffer_drain(in, 1);
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n > max)
        return LINE_TOO_LONG;
    buf[n] = '\0';
    *len = n;
    if (memchr(buf, '\0', n) != NULL || memchr(buf, '\r', n) != NULL)
        return LINE_BAD;
    return LINE_OK;
}

void conn_set_timeouts(struct conn *c, unsigned read_s, unsigned write_s)
{
    c->read_s = read_s;
    c->write_s = write_s;
    if (read_s == 0)
        line_deadline_stop(c);
    apply_timeouts(c);
}

void conn_pause(struct conn *c)
{
    bufferevent_disable(c->bev, EV_READ);
    line_deadline_stop(c);
}

void conn_resume(struct conn *c)
{
    if (!c->closing && !c->ended && c->pending_tls == NULL)
        bufferevent_enable(c->bev, EV_READ);
}

void conn_want_drain(struct conn *c, size_t low)
{
    c->drain_low = low;
    bufferevent_setwatermark(c->bev, EV_WRITE, low, 0);
}

void conn_close_after_flush(struct conn *c)
{
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    if (!c->tls) {
        event_active(c->flush_ev, 0, 0);
        return;
    }
    /* Runs the write callback from the loop even if nothing is pending. */
    bufferevent_trigger(c->bev, EV_WRITE,
                        BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void conn_starttls(struct conn *c, SSL_CTX *ctx)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    bufferevent_disable(c->bev, EV_READ);
    evbuffer_drain(in, evbuffer_get_length(in));
    SSL_CTX_up_ref(ctx);
    c->pending_tls = ctx;
    event_active(c->flush_ev, 0, 0);   /* STARTTLS is a plaintext command */
}

/* The "go ahead" reply is written: swap the plain bufferevent for TLS on
 * the same socket. Bytes still in the kernel are the client's handshake. */
static void start_tls(struct conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    SSL_CTX *ctx = c->pending_tls;
    struct bufferevent *bev;

    c->pending_tls = NULL;
    bufferevent_setfd(c->bev, -1);   /* keep the socket open */
    bufferevent_free(c->bev);
    bev = tls_bev(c, fd, ctx);
    SSL_CTX_free(ctx);
    if (bev == NULL) {
        c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
        end(c, CONN_ERROR);
        return;
    }
    c->bev = bev;
    c->tls = true;
    setup_bev(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (!c->closing && !c->ended && c->pending_tls == NULL)
        c->ops->on_input(c, c->arg);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    size_t left = evbuffer_get_length(bufferevent_get_output(bev));

    if (c->ended)
        return;
    if (!c->tls && left == 0)
        bufferevent_disable(bev, EV_WRITE);
    if (c->pending_tls != NULL) {
        if (left == 0)
            start_tls(c);
        return;
    }
    if (c->closing) {
        if (left == 0)
            end(c, c->timed_out ? CONN_TIMEOUT : CONN_DONE);
        return;
    }
    if (c->ops->on_drain && c->drain_low > 0 && left <= c->drain_low)
        c->ops->on_drain(c, c->arg);
}

/* Say goodbye if the owner wants to: not to a client that stopped
 * reading (a write timeout), nor twice, nor while closing anyway. */
static void timed_out(struct conn *c, short what)
{
    struct timeval farewell = { CONN_FAREWELL_S, 0 };

    if (c->ops->on_timeout == NULL || (what & BEV_EVENT_WRITING) ||
        c->timed_out || c->closing || c->pending_tls != NULL) {
        end(c, CONN_TIMEOUT);
        return;
    }
    c->timed_out = true;
    bufferevent_set_timeouts(c->bev, NULL, &farewell);
    c->ops->on_timeout(c, c->arg);
    bufferevent_enable(c->bev, EV_WRITE);
    conn_close_after_flush(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    unsigned long e;
    char buf[256];

    if (what & BEV_EVENT_CONNECTED)
        return;
    if (what & BEV_EVENT_TIMEOUT) {
        timed_out(c, what);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        end(c, CONN_EOF);
        return;
    }
    while (c->tls && (e = bufferevent_get_openssl_error(bev)) != 0)
        log_debug("event=tls_error client=%s error=%s", c->peer_text,
                  log_esc(tls_error_text(e, buf, sizeof(buf))));
    end(c, CONN_ERROR);
}
