/*
 * pop3d sessions: life cycle, the command loop, mailbox release.
 *
 * Every command is one line; replies go out in order. A command that
 * waits (password check on the worker pool, the grant in Redis, UPDATE,
 * message streaming) marks the session busy: no further line is read
 * until it is done, so pipelined commands keep their order. A session
 * whose connection died stays allocated until its last pending callback
 * came back (s->pending), then is freed.
 */
#include "pop3d/session.h"
#include "pop3d/counters.h"
#include "pop3d/maildir.h"
#include "pop3d/server.h"

#include "authbridge/auth.h"
#include "authbridge/conf.h"
#include "authbridge/conn.h"
#include "authbridge/daemon.h"
#include "authbridge/grant.h"
#include "authbridge/listen.h"
#include "authbridge/log.h"
#include "authbridge/util.h"
#include "authbridge/workers.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A job that releases (and at QUIT first updates) a mailbox. */
struct mbox_job {
    struct work w;
    struct session *s;             /* NULL: nobody waits */
    struct mailbox *mb;
    bool update;
    int rc;
    unsigned removed;
    char err[256];
};

static void session_process(struct session *s);

static const char *state_name(enum pop3_state st)
{
    switch (st) {
    case POP3_AUTHORIZATION: return "AUTHORIZATION";
    case POP3_TRANSACTION:   return "TRANSACTION";
    case POP3_UPDATE:        return "UPDATE";
    }
    return "?";
}

void session_enter_state(struct session *s, enum pop3_state st)
{
    log_debug("event=state sid=%s from=%s to=%s", s->sid, state_name(s->state),
              state_name(st));
    s->state = st;
}

/* ---- replies and closing ------------------------------------------------- */

void session_reply(struct session *s, const char *fmt, ...)
{
    va_list ap;

    if (s->conn == NULL)
        return;
    va_start(ap, fmt);
    evbuffer_add_vprintf(conn_output(s->conn), fmt, ap);
    va_end(ap);
    evbuffer_add(conn_output(s->conn), "\r\n", 2);
}

void session_close(struct session *s, const char *why)
{
    if (s->conn == NULL)
        return;
    log_debug("event=closing sid=%s reason=%s", s->sid, why);
    s->busy = true;
    conn_close_after_flush(s->conn);
}

void session_bad_command(struct session *s, const char *reply)
{
    unsigned limit = s->state == POP3_AUTHORIZATION ? POP3_BAD_CMDS_AUTH
                                                    : POP3_BAD_CMDS_TRANS;

    if (++s->bad_cmds < limit) {
        session_reply(s, "%s", reply);
        return;
    }
    session_reply(s, "-ERR Too many bad commands, closing connection.");
    log_info("event=too_many_bad_commands sid=%s rip=%s user=%s count=%u",
             s->sid, s->peer_text, log_esc(s->user), s->bad_cmds);
    session_close(s, "bad commands");
}

/*
 * Busy only stops the command loop. Input keeps arriving into the
 * connection's buffer, whose high-water mark stops reading by itself, so
 * there is no need to switch the socket's events off and on (two
 * epoll_ctl calls per wait, several waits per login).
 */
void session_set_busy(struct session *s, bool busy)
{
    s->busy = busy;
    if (!busy && s->conn != NULL)
        session_process(s);        /* pipelined commands already here */
}

/* ---- the command loop -------------------------------------------------------- */

static void dispatch(struct session *s, char *line)
{
    struct pop3_cmd c;
    bool known = false;

    if (pop3_parse(line, &c) < 0) {
        session_bad_command(s, "-ERR Unknown command.");
        return;
    }
    if (s->state == POP3_AUTHORIZATION) {
        login_dispatch(s, &c);
        return;
    }
    if (strcmp(c.keyword, "CAPA") == 0) {
        login_capa(s);
        return;
    }
    if (!trans_dispatch(s, &c, &known))
        session_bad_command(s, known ? "-ERR Not allowed after login."
                                     : "-ERR Unknown command.");
}

static void session_process(struct session *s)
{
    char line[POP3_SASL_LINE_MAX + 2];

    /* A command that finishes at once (a short RETR) clears busy from
     * inside this loop; the loop itself goes on, no recursion. */
    if (s->in_process)
        return;
    s->in_process = true;
    while (!s->busy && !s->dead && s->conn != NULL) {
        size_t max = s->sasl ? POP3_SASL_LINE_MAX : POP3_LINE_MAX, len = 0;
        enum line_result r;

        /* A client that pipelines faster than it reads waits for us. */
        if (conn_output_len(s->conn) > POP3_OUTPUT_HIGH) {
            s->output_wait = true;
            conn_want_drain(s->conn, POP3_OUTPUT_LOW);
            break;
        }
        r = conn_readline(s->conn, line, max, &len);
        if (r == LINE_MORE)
            break;
        if (r == LINE_TOO_LONG) {
            session_reply(s, "-ERR Line too long (RFC 2449: at most 255 "
                          "octets), closing connection.");
            log_info("event=line_too_long sid=%s rip=%s", s->sid, s->peer_text);
            session_close(s, "line too long");
            break;
        }
        if (r == LINE_BAD)
            session_bad_command(s, "-ERR NUL or bare CR in command.");
        else if (s->sasl)
            login_sasl_response(s, line);
        else
            dispatch(s, line);
        explicit_bzero(line, len); /* it may have held a password */
    }
    s->in_process = false;
}

/* ---- connection events ----------------------------------------------------- */

static void on_input(struct conn *c, void *arg)
{
    (void)c;
    session_process(arg);
}

static void on_drain(struct conn *c, void *arg)
{
    struct session *s = arg;

    if (s->stream_fd >= 0) {
        trans_stream_more(s);
        return;
    }
    if (s->output_wait) {
        s->output_wait = false;
        conn_want_drain(c, 0);
        session_process(s);
    }
}

static const char *end_reason(enum conn_end why)
{
    switch (why) {
    case CONN_EOF:     return "disconnected";
    case CONN_ERROR:   return "error";
    case CONN_TIMEOUT: return "timeout";
    case CONN_DONE:    return "closed";
    }
    return "?";
}

static void on_end(struct conn *c, enum conn_end why, void *arg)
{
    struct session *s = arg;

    conn_free(c);
    s->conn = NULL;
    s->dead = true;
    conncap_release(s->srv->svc.cap, s->peer_text);
    if (s->stream_fd >= 0) {
        close(s->stream_fd);
        s->stream_fd = -1;
    }
    if (s->user != NULL && s->state != POP3_UPDATE)
        log_info("event=logout sid=%s user=%s rip=%s reason=%s retr=%u del=0 "
                 "marked=%u bytes=%llu grant=%s", s->sid, log_esc(s->user),
                 s->peer_text, end_reason(why), s->retr, s->dele,
                 (unsigned long long)s->bytes, s->grant_ok ? "ok" : "failed");
    else if (s->user == NULL)
        log_debug("event=disconnect sid=%s rip=%s reason=%s", s->sid,
                  s->peer_text, end_reason(why));
    /* Without QUIT nothing is deleted (RFC 1939 section 6). */
    if (s->mb != NULL) {
        session_release_mailbox(s, s->mb);
        s->mb = NULL;
    }
    session_unref_dead(s);
}

/* RFC 1939 calls it the autologout timer; say so before closing. */
static void on_timeout(struct conn *c, void *arg)
{
    (void)c;
    session_reply(arg, "-ERR Disconnected for inactivity.");
}

static const struct conn_ops session_ops = {
    on_input, on_drain, on_end, on_timeout
};

/* ---- mailbox release and UPDATE ---------------------------------------------- */

static void mbox_job_run(struct work *w)
{
    struct mbox_job *j = (struct mbox_job *)w;

    if (j->update)
        j->rc = maildir_update(j->mb, &j->removed, j->err, sizeof(j->err));
    maildir_close(j->mb);
}

static void mbox_job_done(struct work *w)
{
    struct mbox_job *j = (struct mbox_job *)w;
    struct session *s = j->s;

    if (s != NULL) {
        s->pending--;
        if (j->update)
            trans_update_done(s, j->rc, j->removed, j->err);
        session_unref_dead(s);
    }
    free(j);
}

static void submit_mbox_job(struct session *s, struct mailbox *mb, bool update)
{
    struct mbox_job *j = ab_calloc(1, sizeof(*j));

    j->w.run = mbox_job_run;
    j->w.done = mbox_job_done;
    j->s = s;
    j->mb = mb;
    j->update = update;
    s->pending++;
    workers_submit(s->srv->svc.port, &j->w);
}

void session_release_mailbox(struct session *s, struct mailbox *mb)
{
    submit_mbox_job(s, mb, false);
}

void session_quit_update(struct session *s)
{
    struct mailbox *mb = s->mb;

    s->mb = NULL;                  /* the job owns it now */
    session_enter_state(s, POP3_UPDATE);
    session_set_busy(s, true);
    submit_mbox_job(s, mb, true);
}

/* ---- life cycle --------------------------------------------------------------- */

static void session_free(struct session *s)
{
    TAILQ_REMOVE(&s->srv->sessions, s, link);
    s->srv->nsessions--;
    if (s->timer)
        event_free(s->timer);
    if (s->timer_lock)
        event_free(s->timer_lock);
    if (s->login_deadline)
        event_free(s->login_deadline);
    free(s->user_arg);
    free(s->user);
    free(s);
}

void session_unref_dead(struct session *s)
{
    if (s->dead && s->pending == 0)
        session_free(s);
}

static void greet(struct session *s)
{
    /* The APOP timestamp must be unique per greeting (RFC 1939 section 7). */
    snprintf(s->stamp, sizeof(s->stamp), "<%ld.%s.%lld@%s>", s->srv->pid,
             s->sid, (long long)time(NULL), s->srv->hostname);
    session_reply(s, "+OK authbridge POP3 server ready %s", s->stamp);
}

/*
 * login_timeout is also a deadline from connect: an idle timeout alone
 * lets a slowloris client, one byte every few seconds, hold a connection
 * forever without ever logging in.
 */
static void login_too_slow(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void)fd;
    (void)what;
    if (s->user != NULL || s->dead)
        return;
    log_info("event=login_too_slow sid=%s rip=%s seconds=%u", s->sid,
             s->peer_text, s->srv->pc->login_timeout);
    session_reply(s, "-ERR Login took too long, closing connection.");
    session_close(s, "login deadline");
}

static const char *cap_refusal(enum cap_result r)
{
    return r == CAP_TOTAL ? "-ERR [SYS/TEMP] Server busy, try again later.\r\n"
                          : "-ERR [SYS/TEMP] Too many connections from your "
                            "address, try again later.\r\n";
}

void session_accept(evutil_socket_t fd, struct sockaddr *sa, socklen_t len,
                    int kind, void *arg)
{
    struct server *srv = arg;
    struct session *s;
    struct ab_addr peer;
    char text[ADDR_TEXT_MAX];
    enum cap_result cr;

    (void)len;
    metric_inc(&pop3_connections, kind == LISTEN_TLS ? "pop3s" : "pop3", NULL);
    if (addr_from_sockaddr(sa, &peer) < 0) {
        evutil_closesocket(fd);
        return;
    }
    addr_format(&peer, text);
    cr = conncap_acquire(srv->svc.cap, text);
    if (cr != CAP_OK || srv->stopping) {
        /* Best effort, plaintext listeners only: a TLS client would read
         * it as garbage. The socket is non-blocking: never wait here. */
        if (kind == LISTEN_PLAIN && !srv->stopping) {
            const char *msg = cap_refusal(cr);
            (void)!write(fd, msg, strlen(msg));
        }
        unsigned left_out;
        if (log_limited(&srv->refused_log, &left_out))
            log_info("event=connection_refused rip=%s reason=%s "
                     "suppressed=%u", text, srv->stopping ? "shutting_down" :
                     cr == CAP_TOTAL ? "max_connections" :
                     "max_connections_per_addr", left_out);
        if (cr == CAP_OK)
            conncap_release(srv->svc.cap, text);
        evutil_closesocket(fd);
        return;
    }
    s = ab_calloc(1, sizeof(*s));
    s->srv = srv;
    s->peer = peer;
    memcpy(s->peer_text, text, sizeof(text));
    s->stream_fd = -1;
    daemon_session_id(s->sid);
    s->conn = conn_new(srv->base, fd, sa, kind == LISTEN_TLS ? srv->tls : NULL,
                       &session_ops, s);
    if (s->conn == NULL) {
        conncap_release(srv->svc.cap, text);
        free(s);
        return;
    }
    TAILQ_INSERT_TAIL(&srv->sessions, s, link);
    srv->nsessions++;
    /* Before login the deadline below rules; after it, idle_timeout. */
    conn_set_timeouts(s->conn, 0, srv->pc->idle_timeout);
    s->login_deadline = evtimer_new(srv->base, login_too_slow, s);
    struct timeval deadline = { srv->pc->login_timeout, 0 };
    evtimer_add(s->login_deadline, &deadline);
    log_debug("event=connect sid=%s rip=%s tls=%s loop=%u", s->sid, text,
              kind == LISTEN_TLS ? "implicit" : "no", srv->loop);
    greet(s);
}

void session_shutdown_all(struct server *srv)
{
    struct session *s, *next;

    for (s = TAILQ_FIRST(&srv->sessions); s; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->conn == NULL || s->state == POP3_UPDATE)
            continue;              /* an UPDATE finishes on its own */
        session_reply(s, "-ERR [SYS/TEMP] Server shutting down; nothing was "
                      "deleted. Please reconnect.");
        session_close(s, "shutdown");
    }
}
