/*
 * pop3d sessions: life cycle, the command loop, AUTHORIZATION state.
 *
 * Every command is one line; replies go out in order. A command that
 * waits (password check on the worker pool, the grant in Redis, UPDATE,
 * message streaming) marks the session busy: no further line is read
 * until it is done, so pipelined commands keep their order. A session
 * whose connection died stays allocated until its last pending callback
 * came back (s->pending), then is freed.
 */
#include "pop3d/session.h"
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

struct cmd_def {
    const char *keyword;
    void (*fn)(struct session *s, struct pop3_cmd *c);
    int max_args;                  /* -1: the raw rest of the line */
};

/* An in-flight login: what the worker needs, and what it found. */
struct login {
    struct session *s;
    char *lock_name;
    const char *method;
    enum mbox_status st;
    struct mailbox *mb;
    char err[256];
};

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
static void session_maybe_free(struct session *s);

static const char *state_name(enum pop3_state st)
{
    switch (st) {
    case POP3_AUTHORIZATION: return "AUTHORIZATION";
    case POP3_TRANSACTION:   return "TRANSACTION";
    case POP3_UPDATE:        return "UPDATE";
    }
    return "?";
}

static void enter_state(struct session *s, enum pop3_state st)
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

void session_set_busy(struct session *s, bool busy)
{
    s->busy = busy;
    if (s->conn == NULL)
        return;
    if (busy) {
        conn_pause(s->conn);
    } else {
        conn_resume(s->conn);
        session_process(s);        /* pipelined commands already here */
    }
}

static bool plaintext_allowed(const struct session *s)
{
    switch ((enum plaintext_auth)s->srv->pc->plaintext_auth) {
    case PLAINTEXT_ALWAYS:
        return true;
    case PLAINTEXT_NEVER:
        return false;
    case PLAINTEXT_TLS_OR_TRUSTED:
        break;
    }
    return conn_is_tls(s->conn) ||
           cidr_list_match(&s->srv->pc->d.trusted_networks, &s->peer);
}

static void refuse_plaintext(struct session *s)
{
    if (s->srv->pc->plaintext_auth == PLAINTEXT_NEVER)
        session_reply(s, "-ERR [AUTH] Plaintext passwords are disabled on this "
                      "server; use APOP.");
    else
        session_reply(s, "-ERR [AUTH] Plaintext passwords need TLS here: use "
                      "STLS%s.", s->srv->tls ? " or POP3S (port 995)" : "");
}

static bool valid_user_name(const char *u)
{
    size_t n = strlen(u);

    if (n == 0 || n > POP3_USER_MAX)
        return false;
    for (; *u; u++)
        if ((unsigned char)*u <= ' ' || *u == 0x7f || *u == ':')
            return false;
    return true;
}

/* ---- login ---------------------------------------------------------------- */

static void login_enter(struct session *s, const char *user, const char *method,
                        struct mailbox *mb);

/* Worker thread: the password was right; open the mailbox. */
static void login_then(const struct auth_user *u, void *arg)
{
    struct login *l = arg;
    char maildir[4096];

    if (u->home[0] == '\0') {
        l->st = MBOX_ERROR;
        snprintf(l->err, sizeof(l->err), "user has no home folder in the "
                 "user file");
        return;
    }
    snprintf(maildir, sizeof(maildir), "%s/Maildir", u->home);
    l->st = maildir_open(maildir, l->lock_name, &l->mb, l->err, sizeof(l->err));
}

static void release_mailbox(struct session *s, struct mailbox *mb);

static void auth_fail_reply(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void)fd;
    (void)what;
    s->pending--;
    if (s->dead) {
        session_maybe_free(s);
        return;
    }
    if (s->auth_fails >= POP3_AUTH_FAILS_MAX) {
        session_reply(s, "-ERR [AUTH] Authentication failed; too many "
                      "failures, closing connection.");
        session_close(s, "auth failures");
        return;
    }
    session_reply(s, "-ERR [AUTH] Authentication failed.");
    session_set_busy(s, false);
}

static void login_failed(struct session *s, const char *user, const char *method)
{
    unsigned ms = s->srv->pc->auth_fail_delay_ms;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    s->auth_fails++;
    log_info("event=auth_failed sid=%s user=%s rip=%s method=%s fails=%u",
             s->sid, log_esc(user), s->peer_text, method, s->auth_fails);
    /* The delay costs a guesser time, not us: a timer, not a sleep. */
    if (s->timer == NULL)
        s->timer = evtimer_new(s->srv->base, auth_fail_reply, s);
    s->pending++;
    evtimer_add(s->timer, &tv);
}

static void login_done(enum auth_result r, const struct auth_user *u, void *arg)
{
    struct login *l = arg;
    struct session *s = l->s;

    s->pending--;
    if (s->dead) {
        if (l->mb)
            release_mailbox(s, l->mb);
        session_maybe_free(s);
    } else if (r == AUTH_TEMPFAIL) {
        session_reply(s, "-ERR [SYS/TEMP] Cannot check passwords right now; "
                      "try again later.");
        session_set_busy(s, false);
    } else if (r != AUTH_OK) {
        login_failed(s, s->user_arg ? s->user_arg : "", l->method);
    } else if (l->st == MBOX_IN_USE) {
        log_info("event=mailbox_in_use sid=%s user=%s rip=%s", s->sid,
                 log_esc(u->name), s->peer_text);
        session_reply(s, "-ERR [IN-USE] Mailbox is locked by another POP3 "
                      "session; try again later.");
        session_set_busy(s, false);
    } else if (l->st == MBOX_ERROR) {
        log_err("event=mailbox_error sid=%s user=%s rip=%s error=%s", s->sid,
                log_esc(u->name), s->peer_text, log_esc(l->err));
        session_reply(s, "-ERR [SYS/TEMP] Cannot open your mailbox; try again "
                      "later.");
        session_set_busy(s, false);
    } else {
        login_enter(s, u->name, l->method, l->mb);
    }
    free(l->lock_name);
    free(l);
}

/* Everything a login needs; the caller then asks auth_check_*(). */
static struct login *login_new(struct session *s, const char *method)
{
    struct login *l = ab_calloc(1, sizeof(*l));

    l->s = s;
    l->method = method;
    l->lock_name = ab_strdup(s->srv->pc->lock_name);
    s->pending++;
    session_set_busy(s, true);
    return l;
}

static void lock_refresh(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void)fd;
    (void)what;
    if (s->mb != NULL)
        maildir_touch_lock(s->mb);
}

static void grant_done(enum grant_status st, void *arg)
{
    struct session *s = arg;
    struct grant_info g = { s->peer, s->user, s->method, false };
    char tls[96];

    s->pending--;
    s->grant_ok = st == GRANT_OK;
    if (!s->grant_ok) {
        /* Mail access does not depend on Redis: log in anyway, and keep
         * trying to record the grant in the background. */
        g.tls = s->conn != NULL && conn_is_tls(s->conn);
        grant_store_retry_later(s->srv->grants, &g);
    }
    if (s->dead) {
        session_maybe_free(s);
        return;
    }
    log_info("event=login sid=%s user=%s rip=%s method=%s tls=%s grant=%s "
             "msgs=%zu octets=%llu", s->sid, log_esc(s->user), s->peer_text,
             s->method, conn_tls_desc(s->conn, tls, sizeof(tls)),
             s->grant_ok ? "ok" : "failed", s->mb->count,
             (unsigned long long)s->mb->total);
    session_reply(s, "+OK Logged in, %zu message%s (%llu octets).",
                  s->mb->count, s->mb->count == 1 ? "" : "s",
                  (unsigned long long)s->mb->total);
    session_set_busy(s, false);
}

/*
 * The password was right and the mailbox is ours: write the grant, and
 * answer +OK only once Redis has it (or has failed to take it), so a
 * client that sends mail right after checking it is never refused.
 */
static void login_enter(struct session *s, const char *user, const char *method,
                        struct mailbox *mb)
{
    unsigned idle = s->srv->pc->idle_timeout;
    struct timeval every = { POP3_LOCK_REFRESH, 0 };
    struct grant_info g;

    free(s->user_arg);
    s->user_arg = NULL;
    s->user = ab_strdup(user);
    s->method = method;
    s->mb = mb;
    s->bad_cmds = 0;
    enter_state(s, POP3_TRANSACTION);
    conn_set_timeouts(s->conn, idle, idle);
    s->timer_lock = event_new(s->srv->base, -1, EV_PERSIST, lock_refresh, s);
    evtimer_add(s->timer_lock, &every);
    g = (struct grant_info){ s->peer, s->user, method, conn_is_tls(s->conn) };
    s->pending++;
    grant_store_put(s->srv->grants, &g, grant_done, s);
}

/* ---- AUTHORIZATION commands ------------------------------------------------ */

static void cmd_capa(struct session *s, struct pop3_cmd *c)
{
    bool auth = s->state == POP3_AUTHORIZATION;

    (void)c;
    session_reply(s, "+OK Capability list follows");
    session_reply(s, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
                  "PIPELINING\r\nEXPIRE NEVER");
    if (auth && plaintext_allowed(s))
        session_reply(s, "USER\r\nSASL PLAIN");
    if (auth && s->srv->tls != NULL && !conn_is_tls(s->conn))
        session_reply(s, "STLS");
    session_reply(s, "IMPLEMENTATION authbridge-pop3d\r\n.");
}

static void cmd_user(struct session *s, struct pop3_cmd *c)
{
    if (c->argc != 1 || !valid_user_name(c->argv[0])) {
        session_bad_command(s, "-ERR Usage: USER name");
        return;
    }
    if (!plaintext_allowed(s)) {
        refuse_plaintext(s);
        return;
    }
    free(s->user_arg);
    s->user_arg = ab_strdup(c->argv[0]);
    session_reply(s, "+OK");
}

static void cmd_pass(struct session *s, struct pop3_cmd *c)
{
    struct login *l;

    if (!plaintext_allowed(s)) {
        refuse_plaintext(s);
        return;
    }
    if (s->user_arg == NULL) {
        session_bad_command(s, "-ERR USER first.");
        return;
    }
    l = login_new(s, "USER");
    auth_check_pass(s->srv->auth, s->user_arg, c->rest, strlen(c->rest),
                    login_then, l, login_done, l);
}

static void cmd_apop(struct session *s, struct pop3_cmd *c)
{
    struct login *l;

    if (c->argc != 2 || !valid_user_name(c->argv[0]) ||
        strlen(c->argv[1]) != 32) {
        session_bad_command(s, "-ERR Usage: APOP name digest");
        return;
    }
    free(s->user_arg);
    s->user_arg = ab_strdup(c->argv[0]);
    l = login_new(s, "APOP");
    auth_check_apop(s->srv->auth, c->argv[0], s->stamp, c->argv[1],
                    login_then, l, login_done, l);
}

/* RFC 4616: [authzid] NUL authcid NUL passwd; we log in as authcid only. */
static void sasl_plain(struct session *s, const char *b64)
{
    unsigned char buf[POP3_SASL_LINE_MAX];
    const char *authzid, *authcid, *pass, *end;
    long n = strcmp(b64, "=") == 0 ? 0 :
             pop3_base64_decode(b64, buf, sizeof(buf) - 1);
    struct login *l;

    if (n < 0) {
        session_bad_command(s, "-ERR [AUTH] Invalid base64 data.");
        return;
    }
    buf[n] = '\0';
    end = (const char *)buf + n;
    authzid = (const char *)buf;
    authcid = memchr(authzid, '\0', (size_t)n);
    pass = authcid ? memchr(authcid + 1, '\0', (size_t)(end - authcid - 1)) : NULL;
    if (pass == NULL || memchr(pass + 1, '\0', (size_t)(end - pass - 1)) != NULL ||
        !valid_user_name(++authcid) ||
        (authzid[0] != '\0' && strcmp(authzid, authcid) != 0)) {
        explicit_bzero(buf, sizeof(buf));
        session_bad_command(s, "-ERR [AUTH] Malformed PLAIN response.");
        return;
    }
    pass++;
    free(s->user_arg);
    s->user_arg = ab_strdup(authcid);
    l = login_new(s, "SASL-PLAIN");
    auth_check_pass(s->srv->auth, authcid, pass, (size_t)(end - pass),
                    login_then, l, login_done, l);
    explicit_bzero(buf, sizeof(buf));
}

static void sasl_response(struct session *s, const char *line)
{
    s->sasl = SASL_NONE;
    if (strcmp(line, "*") == 0) {
        session_reply(s, "-ERR [AUTH] Authentication cancelled.");
        return;
    }
    sasl_plain(s, line);
}

static void cmd_auth(struct session *s, struct pop3_cmd *c)
{
    bool plain_ok = plaintext_allowed(s);

    if (c->argc == 0) {            /* RFC 1734 style: list mechanisms */
        session_reply(s, "+OK%s\r\n.", plain_ok ? "\r\nPLAIN" : "");
        return;
    }
    if (c->argc > 2 || !ab_strcaseeq(c->argv[0], "PLAIN")) {
        session_bad_command(s, "-ERR [AUTH] Unsupported SASL mechanism.");
        return;
    }
    if (!plain_ok) {
        refuse_plaintext(s);
        return;
    }
    if (c->argc == 2) {
        sasl_plain(s, c->argv[1]);
        return;
    }
    s->sasl = SASL_PLAIN_RESPONSE;
    session_reply(s, "+ ");
}

static void cmd_stls(struct session *s, struct pop3_cmd *c)
{
    (void)c;
    if (s->srv->tls == NULL) {
        session_bad_command(s, "-ERR STLS is not available here.");
        return;
    }
    if (conn_is_tls(s->conn)) {
        session_bad_command(s, "-ERR TLS is already active.");
        return;
    }
    /* Nothing learned before TLS carries over (RFC 2595 section 4). */
    free(s->user_arg);
    s->user_arg = NULL;
    session_reply(s, "+OK Begin TLS negotiation now.");
    conn_starttls(s->conn, s->srv->tls);
}

static void cmd_quit_auth(struct session *s, struct pop3_cmd *c)
{
    (void)c;
    session_reply(s, "+OK Bye.");
    session_close(s, "quit");
}

static const struct cmd_def auth_cmds[] = {
    { "CAPA", cmd_capa, 0 },
    { "USER", cmd_user, 1 },
    { "PASS", cmd_pass, -1 },
    { "APOP", cmd_apop, 2 },
    { "AUTH", cmd_auth, 2 },
    { "STLS", cmd_stls, 0 },
    { "QUIT", cmd_quit_auth, 0 },
};

/* CAPA is the same in both states. */
static const struct cmd_def capa_cmd = { "CAPA", cmd_capa, 0 };

/* ---- the command loop -------------------------------------------------------- */

static const struct cmd_def *find_cmd(const struct cmd_def *t, size_t n,
                                      const char *kw)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].keyword, kw) == 0)
            return &t[i];
    return NULL;
}

static void dispatch_auth(struct session *s, struct pop3_cmd *c)
{
    const struct cmd_def *d = find_cmd(auth_cmds, AB_ARRAY_LEN(auth_cmds),
                                       c->keyword);
    bool known = false;

    if (d == NULL) {
        /* A TRANSACTION command before login is a client error. */
        static const char *const trans_only[] = {
            "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL"
        };
        for (size_t i = 0; i < AB_ARRAY_LEN(trans_only); i++)
            known |= strcmp(trans_only[i], c->keyword) == 0;
        session_bad_command(s, known ? "-ERR [AUTH] Log in first."
                                     : "-ERR Unknown command.");
        return;
    }
    if (d->max_args >= 0 && pop3_split_args(c, d->max_args) < 0) {
        session_bad_command(s, "-ERR Syntax error in arguments.");
        return;
    }
    d->fn(s, c);
}

static void dispatch(struct session *s, char *line)
{
    struct pop3_cmd c;
    bool known = false;

    if (pop3_parse(line, &c) < 0) {
        session_bad_command(s, "-ERR Unknown command.");
        return;
    }
    if (s->state == POP3_AUTHORIZATION) {
        dispatch_auth(s, &c);
        return;
    }
    if (strcmp(c.keyword, "CAPA") == 0) {
        capa_cmd.fn(s, &c);
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
            conn_pause(s->conn);
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
            sasl_response(s, line);
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
        if (!s->busy)
            conn_resume(c);
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
    conncap_release(s->srv->cap, s->peer_text);
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
        release_mailbox(s, s->mb);
        s->mb = NULL;
    }
    session_maybe_free(s);
}

static const struct conn_ops session_ops = { on_input, on_drain, on_end };

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
        session_maybe_free(s);
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
    workers_submit(s->srv->workers, &j->w);
}

static void release_mailbox(struct session *s, struct mailbox *mb)
{
    submit_mbox_job(s, mb, false);
}

void session_quit_update(struct session *s)
{
    struct mailbox *mb = s->mb;

    s->mb = NULL;                  /* the job owns it now */
    enter_state(s, POP3_UPDATE);
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
    free(s->user_arg);
    free(s->user);
    free(s);
}

static void session_maybe_free(struct session *s)
{
    if (s->dead && s->pending == 0)
        session_free(s);
}

static void greet(struct session *s)
{
    /* The APOP timestamp must be unique per greeting (RFC 1939 section 7). */
    snprintf(s->stamp, sizeof(s->stamp), "<%ld.%s.%lld@%s>", (long)getpid(),
             s->sid, (long long)time(NULL), s->srv->hostname);
    session_reply(s, "+OK authbridge POP3 server ready %s", s->stamp);
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
    if (addr_from_sockaddr(sa, &peer) < 0) {
        evutil_closesocket(fd);
        return;
    }
    addr_format(&peer, text);
    cr = conncap_acquire(srv->cap, text);
    if (cr != CAP_OK || srv->stopping) {
        /* Best effort, plaintext listeners only: a TLS client would read
         * it as garbage. The socket is non-blocking: never wait here. */
        if (kind == LISTEN_PLAIN && !srv->stopping) {
            const char *msg = cap_refusal(cr);
            evutil_make_socket_nonblocking(fd);
            (void)!write(fd, msg, strlen(msg));
        }
        log_info("event=connection_refused rip=%s reason=%s", text,
                 srv->stopping ? "shutting_down" :
                 cr == CAP_TOTAL ? "max_connections" : "max_connections_per_addr");
        if (cr == CAP_OK)
            conncap_release(srv->cap, text);
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
        conncap_release(srv->cap, text);
        free(s);
        return;
    }
    TAILQ_INSERT_TAIL(&srv->sessions, s, link);
    srv->nsessions++;
    conn_set_timeouts(s->conn, srv->pc->login_timeout, srv->pc->idle_timeout);
    log_debug("event=connect sid=%s rip=%s tls=%s", s->sid, text,
              kind == LISTEN_TLS ? "implicit" : "no");
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
