/*
 * pop3d's AUTHORIZATION state (RFC 1939 section 4, RFC 2449, RFC 2595,
 * RFC 5034): USER/PASS, APOP, AUTH PLAIN, STLS, CAPA, and the login that
 * follows a right password: open the mailbox on the worker, write the
 * grant, answer +OK only then.
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
#include "authbridge/log.h"
#include "authbridge/sasl.h"
#include "authbridge/throttle.h"
#include "authbridge/users.h"
#include "authbridge/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cmd_def {
    const char *keyword;
    void (*fn)(struct session *s, struct pop3_cmd *c);
    int max_args;                  /* -1: the raw rest of the line */
};

/*
 * An in-flight login: the credentials (until checked), what the worker
 * needs, and what it found. It holds one of the session's pending
 * references from login_start() to its end.
 */
struct login {
    struct session *s;
    const char *method;
    char *user;
    char *secret;                  /* password, or APOP digest */
    size_t secretlen;
    bool counted;                  /* the throttle counted this attempt */
    struct event *tarpit;
    char *lock_name;
    enum mbox_status st;
    struct mailbox *mb;
    char err[256];
};

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

static void auth_fail_reply(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void)fd;
    (void)what;
    s->pending--;
    if (s->dead) {
        session_unref_dead(s);
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
    s->auth_fails++;
    log_info("event=auth_failed sid=%s user=%s rip=%s method=%s fails=%u",
             s->sid, log_esc(user), s->peer_text, method, s->auth_fails);
    /* The delay costs a guesser time, not us: a timer, not a sleep. */
    if (s->timer == NULL)
        s->timer = evtimer_new(s->srv->base, auth_fail_reply, s);
    s->pending++;
    daemon_delay(s->srv->base, s->timer, s->srv->pc->auth_fail_delay_ms);
}

static void login_free(struct login *l)
{
    if (l->secret) {
        explicit_bzero(l->secret, l->secretlen);
        free(l->secret);
    }
    if (l->tarpit)
        event_free(l->tarpit);
    free(l->user);
    free(l->lock_name);
    free(l);
}

/* The chain ended: give back the session's reference. */
static void login_end(struct login *l)
{
    struct session *s = l->s;

    login_free(l);
    s->pending--;
    if (s->dead)
        session_unref_dead(s);
}

/* What the mailbox held that is not mail, once per login (whoever can
 * write the Maildir may plant links and FIFOs: they are never opened). */
static void log_odd_files(const struct session *s, const char *user,
                          const struct mailbox *mb)
{
    if (mb->skipped > 0)
        log_warn("event=maildir_skipped sid=%s user=%s count=%u first=%s",
                 s->sid, log_esc(user), mb->skipped,
                 log_esc(mb->skipped_first));
    if (mb->renamed > 0)
        log_warn("event=maildir_collision sid=%s user=%s renamed=%u "
                 "reason=\"a new/ message's cur/ name was taken; both kept\"",
                 s->sid, log_esc(user), mb->renamed);
}

/* The password was right: what the mailbox said. */
static void login_opened(struct session *s, struct login *l,
                         const struct auth_user *u)
{
    if (l->st == MBOX_IN_USE) {
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
        s->auth_cached = u->cached;
        log_odd_files(s, u->name, l->mb);
        login_enter(s, u->name, l->method, l->mb);
    }
}

/* The throttle's books, whether the client is still there or not. */
static void login_count(struct login *l, enum auth_result r)
{
    struct session *s = l->s;
    struct throttle *t = s->srv->svc.throttle;

    if (r == AUTH_TEMPFAIL)
        throttle_unchecked(t, &s->peer, l->user, l->counted);
    else if (r == AUTH_OK)
        throttle_succeeded(t, &s->peer, l->user);
    else
        throttle_failed(t, &s->peer, l->user, l->counted);
}

static void login_done(enum auth_result r, const struct auth_user *u, void *arg)
{
    struct login *l = arg;
    struct session *s = l->s;

    login_count(l, r);
    metric_inc(&pop3_logins, l->method, r == AUTH_OK ? "ok" :
               r == AUTH_TEMPFAIL ? "tempfail" : "failed");
    if (s->dead) {
        if (l->mb)
            session_release_mailbox(s, l->mb);
    } else if (r == AUTH_TEMPFAIL) {
        session_reply(s, "-ERR [SYS/TEMP] Cannot check passwords right now; "
                      "try again later.");
        session_set_busy(s, false);
    } else if (r != AUTH_OK) {
        login_failed(s, l->user, l->method);
    } else {
        login_opened(s, l, u);
    }
    login_end(l);
}


/* The throttle let this attempt through: now check the password. */
static void login_check(struct login *l)
{
    struct services *sv = &l->s->srv->svc;

    if (strcmp(l->method, "APOP") == 0)
        auth_check_apop(sv->auth, sv->port, l->user, l->s->stamp, l->secret,
                        login_then, l, login_done, l);
    else
        auth_check_pass(sv->auth, sv->port, l->user, l->secret, l->secretlen,
                        login_then, l, login_done, l);
    explicit_bzero(l->secret, l->secretlen);
}

static void tarpit_done(evutil_socket_t fd, short what, void *arg)
{
    struct login *l = arg;

    (void)fd;
    (void)what;
    if (l->s->dead)
        login_end(l);
    else
        login_check(l);
}

static void login_throttled(enum throttle_verdict v, unsigned delay_ms,
                            bool counted, void *arg)
{
    struct login *l = arg;
    struct session *s = l->s;

    l->counted = counted;
    if (s->dead) {
        login_end(l);
    } else if (v == THROTTLE_BLOCK_ADDR || v == THROTTLE_BLOCK_USER) {
        /* Refused before any password is checked: a guesser learns
         * nothing and costs us no hashing. */
        metric_inc(&pop3_logins, l->method, "blocked");
        log_info("event=login_blocked sid=%s user=%s rip=%s reason=%s",
                 s->sid, log_esc(l->user), s->peer_text,
                 v == THROTTLE_BLOCK_ADDR ? "address" : "user");
        session_reply(s, "-ERR [LOGIN-DELAY] Too many failed logins; try "
                      "again later.");
        session_close(s, "login blocked");
        login_end(l);
    } else if (v == THROTTLE_DELAY) {
        l->tarpit = evtimer_new(s->srv->base, tarpit_done, l);
        daemon_delay(s->srv->base, l->tarpit, delay_ms);
    } else {
        login_check(l);
    }
}

/*
 * Every login goes the same way: the throttle (Redis), maybe a tarpit
 * delay, the password on the worker pool (which then opens the mailbox),
 * the grant, +OK.
 */
static void login_start(struct session *s, const char *method,
                        const char *user, const char *secret, size_t len)
{
    struct login *l = ab_calloc(1, sizeof(*l));

    l->s = s;
    l->method = method;
    l->user = ab_strdup(user);
    l->secret = ab_strndup(secret, len);
    l->secretlen = len;
    l->lock_name = ab_strdup(s->srv->pc->lock_name);
    s->pending++;
    session_set_busy(s, true);
    throttle_check(s->srv->svc.throttle, &s->peer, user, login_throttled, l);
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
    struct grant_info g = { s->peer, s->user, s->method, false, NULL };
    char tls[96];

    s->pending--;
    s->grant_ok = st == GRANT_OK;
    if (!s->grant_ok) {
        /* Mail access does not depend on Redis: log in anyway, and keep
         * trying to record the grant in the background. */
        g.tls = s->conn != NULL && conn_is_tls(s->conn);
        grant_store_retry_later(s->srv->svc.grants, &g);
    }
    if (s->dead) {
        session_unref_dead(s);
        return;
    }
    log_info("event=login sid=%s user=%s rip=%s method=%s tls=%s grant=%s "
             "msgs=%zu octets=%llu auth=%s", s->sid, log_esc(s->user),
             s->peer_text, s->method, conn_tls_desc(s->conn, tls, sizeof(tls)),
             s->grant_ok ? "ok" : "failed", s->mb->count,
             (unsigned long long)s->mb->total, s->auth_cached ? "cache" : "check");
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
    session_enter_state(s, POP3_TRANSACTION);
    conn_set_timeouts(s->conn, idle, idle);
    evtimer_del(s->login_deadline);
    s->timer_lock = event_new(s->srv->base, -1, EV_PERSIST, lock_refresh, s);
    evtimer_add(s->timer_lock, &every);
    g = (struct grant_info){ s->peer, s->user, method, conn_is_tls(s->conn),
                             NULL };
    s->pending++;
    grant_store_put(s->srv->svc.grants, &g, grant_done, s);
}

/* ---- AUTHORIZATION commands ------------------------------------------------ */

void login_capa(struct session *s)
{
    bool auth = s->state == POP3_AUTHORIZATION;

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
    if (c->argc != 1 || !users_valid_name(c->argv[0])) {
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

    if (!plaintext_allowed(s)) {
        refuse_plaintext(s);
        return;
    }
    if (s->user_arg == NULL) {
        session_bad_command(s, "-ERR USER first.");
        return;
    }
    login_start(s, "USER", s->user_arg, c->rest, strlen(c->rest));
}

static void cmd_apop(struct session *s, struct pop3_cmd *c)
{

    if (c->argc != 2 || !users_valid_name(c->argv[0]) ||
        strlen(c->argv[1]) != 32) {
        session_bad_command(s, "-ERR Usage: APOP name digest");
        return;
    }
    login_start(s, "APOP", c->argv[0], c->argv[1], strlen(c->argv[1]));
}

/* RFC 4616: [authzid] NUL authcid NUL passwd; we log in as authcid only. */
static void sasl_plain(struct session *s, const char *b64)
{
    unsigned char buf[POP3_SASL_LINE_MAX];
    const char *user, *pass;
    size_t passlen;
    long n = sasl_base64_decode(b64, strlen(b64), buf, sizeof(buf));

    if (n < 0) {
        session_bad_command(s, "-ERR [AUTH] Invalid base64 data.");
        return;
    }
    if (sasl_plain_split(buf, (size_t)n, &user, &pass, &passlen) < 0)
        session_bad_command(s, "-ERR [AUTH] Malformed PLAIN response.");
    else
        login_start(s, "SASL-PLAIN", user, pass, passlen);
    explicit_bzero(buf, sizeof(buf));
}

void login_sasl_response(struct session *s, const char *line)
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

static void cmd_capa(struct session *s, struct pop3_cmd *c)
{
    (void)c;
    login_capa(s);
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


static const struct cmd_def *find_cmd(const struct cmd_def *t, size_t n,
                                      const char *kw)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].keyword, kw) == 0)
            return &t[i];
    return NULL;
}

void login_dispatch(struct session *s, struct pop3_cmd *c)
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

