/*
 * SMTP AUTH (RFC 4954), mechanisms PLAIN (RFC 4616) and LOGIN, against
 * the same user file as pop3d, checked on the worker pool.
 *
 * Offered only over TLS or to trusted_networks: a password sent in clear
 * over the Internet is a password given away (RFC 4954 section 4, 538).
 * Failures are throttled with pop3d's logins (throttle.h, in Redis, per
 * address and per user across hosts); each costs auth_fail_delay_ms
 * before the 535, and SMTP_AUTH_FAILS_MAX of them close the connection. Passwords never reach a log; decoded
 * responses are wiped once used.
 */
#include "smtpgate/session.h"
#include "smtpgate/counters.h"
#include "smtpgate/gate.h"
#include "authbridge/sasl.h"

#include "authbridge/auth.h"
#include "authbridge/conf.h"
#include "authbridge/daemon.h"
#include "authbridge/conn.h"
#include "authbridge/log.h"
#include "authbridge/throttle.h"
#include "authbridge/users.h"
#include "authbridge/util.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* Decoded responses are at most 3/4 of the longest AUTH line. */
#define AUTH_DECODED_MAX (SMTP_AUTH_LINE_MAX / 4 * 3)

bool smtp_auth_offered(const struct smtp_session *s)
{
    return s->g->svc.auth != NULL && s->conn != NULL &&
           (conn_is_tls(s->conn) || s->trusted);
}

/* "MECH" or "MECH initial-response": the mechanism's length, the
 * response in *ir (NULL if none). */
static size_t split_auth(const struct smtp_cmd *c, const char **ir, size_t *irlen)
{
    const char *sp = memchr(c->args, ' ', c->argslen);
    size_t mlen = sp ? (size_t)(sp - c->args) : c->argslen;

    *ir = sp ? sp + 1 : NULL;
    *irlen = sp ? c->argslen - mlen - 1 : 0;
    return mlen;
}

static bool mech_is(const struct smtp_cmd *c, size_t mlen, const char *name)
{
    return mlen == strlen(name) && ab_strncaseeq(c->args, name, mlen);
}

const char *smtp_check_auth(struct smtp_session *s, const struct smtp_cmd *c)
{
    const char *ir;
    size_t irlen, mlen = split_auth(c, &ir, &irlen);

    if (s->g->svc.auth == NULL)
        return "503 5.5.1 AUTH is not offered here";
    if (!smtp_auth_offered(s))
        return "538 5.7.11 Encryption required for requested authentication "
               "mechanism (use STARTTLS)";
    if (s->auth_user != NULL)
        return "503 5.5.1 Already authenticated";
    if (mlen == 0 || (ir != NULL && (irlen == 0 || memchr(ir, ' ', irlen))))
        return "501 5.5.4 Syntax: AUTH mechanism [initial-response]";
    if (!mech_is(c, mlen, "PLAIN") && !mech_is(c, mlen, "LOGIN"))
        return "504 5.5.4 Unrecognized authentication type";
    return NULL;
}

/* The session's one timer, for whichever wait comes (tarpit, delay). */
static void arm_timer(struct smtp_session *s, unsigned ms,
                      void (*fn)(evutil_socket_t, short, void *))
{
    if (s->timer == NULL)
        s->timer = evtimer_new(s->g->base, fn, s);
    else
        evtimer_assign(s->timer, s->g->base, fn, s);
    daemon_delay(s->g->base, s->timer, ms);
}

void smtp_auth_forget(struct smtp_session *s)
{
    if (s->auth_secret == NULL)
        return;
    explicit_bzero(s->auth_secret, s->auth_secretlen);
    free(s->auth_secret);
    s->auth_secret = NULL;
    s->auth_secretlen = 0;
}

static void auth_fail_reply(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;

    (void)fd;
    (void)what;
    if (s->auth_fails >= SMTP_AUTH_FAILS_MAX) {
        smtp_reply(s, "421 4.7.0 %s Too many failed authentications, closing "
                   "connection", s->g->sc->hostname);
        smtp_close(s, "AUTH failures");
        return;
    }
    smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
    smtp_set_busy(s, false);
}

/* The throttle's books, whether the client is still there or not. */
static void auth_count(struct smtp_session *s, enum auth_result r)
{
    struct throttle *t = s->g->svc.throttle;

    if (r == AUTH_TEMPFAIL)
        throttle_unchecked(t, &s->peer, s->auth_login, s->auth_counted);
    else if (r == AUTH_OK)
        throttle_succeeded(t, &s->peer, s->auth_login);
    else
        throttle_failed(t, &s->peer, s->auth_login, s->auth_counted);
}

static void auth_done(enum auth_result r, const struct auth_user *u, void *arg)
{
    struct smtp_session *s = arg;

    auth_count(s, r);
    metric_inc(&gate_logins, s->auth_mech, r == AUTH_OK ? "ok" :
               r == AUTH_TEMPFAIL ? "tempfail" : "failed");
    if (!smtp_release(s))
        return;
    log_info("event=auth sid=%s client=%s mech=%s user=%s result=%s", s->sid,
             s->peer_text, s->auth_mech, log_esc(u ? u->name : s->auth_login),
             r == AUTH_OK ? "ok" : r == AUTH_BAD ? "failed" : "tempfail");
    switch (r) {
    case AUTH_OK:
        s->auth_user = ab_strdup(u->name);
        smtp_drop_downstream(s);   /* XCLIENT LOGIN= must say who */
        smtp_reply(s, "235 2.7.0 Authentication successful");
        break;
    case AUTH_TEMPFAIL:
        smtp_reply(s, "454 4.7.0 Temporary authentication failure, try again "
                   "later");
        break;
    case AUTH_BAD:
        s->auth_fails++;
        arm_timer(s, s->g->sc->auth_fail_delay_ms, auth_fail_reply);
        return;                    /* still busy: the delayed 535 */
    }
    smtp_set_busy(s, false);
}

/* The throttle let the attempt through (at once or after its tarpit). */
static void check_password(struct smtp_session *s)
{
    s->pending++;
    auth_check_pass(s->g->svc.auth, s->g->svc.port, s->auth_login,
                    s->auth_secret, s->auth_secretlen, NULL, NULL, auth_done,
                    s);
    smtp_auth_forget(s);
}

static void tarpit_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    check_password(arg);
}

static void throttled(enum throttle_verdict v, unsigned delay_ms,
                      bool counted, void *arg)
{
    struct smtp_session *s = arg;

    if (!smtp_release(s))
        return;
    s->auth_counted = counted;
    if (v == THROTTLE_BLOCK_ADDR || v == THROTTLE_BLOCK_USER) {
        /* Refused before the password is checked: a guesser learns
         * nothing and costs no hashing. */
        metric_inc(&gate_logins, s->auth_mech, "blocked");
        log_info("event=auth_blocked sid=%s client=%s user=%s reason=%s",
                 s->sid, s->peer_text, log_esc(s->auth_login),
                 v == THROTTLE_BLOCK_ADDR ? "address" : "user");
        smtp_auth_forget(s);
        smtp_reply(s, "454 4.7.0 Too many failed logins, try again later");
        smtp_close(s, "AUTH blocked");
    } else if (v == THROTTLE_DELAY) {
        arm_timer(s, delay_ms, tarpit_done);
    } else {
        check_password(s);
    }
}

/*
 * Every attempt goes the same way as a pop3d login: the shared throttle
 * (Redis: failures per address and per user, from every host), maybe a
 * tarpit, the password on the worker pool, then 235 or a delayed 535.
 */
static void auth_check(struct smtp_session *s, const char *user,
                       const char *pass, size_t passlen)
{
    snprintf(s->auth_login, sizeof(s->auth_login), "%s", user);
    s->auth_secret = ab_strndup(pass, passlen);
    s->auth_secretlen = passlen;
    s->auth_step = AUTH_STEP_NONE;
    smtp_enter_state(s, SMTP_HELO);
    s->pending++;
    smtp_set_busy(s, true);
    throttle_check(s->g->svc.throttle, &s->peer, user, throttled, s);
}

/* The exchange ends without a check: back to commands. */
static void auth_abort(struct smtp_session *s, const char *reply)
{
    s->auth_step = AUTH_STEP_NONE;
    smtp_enter_state(s, SMTP_HELO);
    smtp_bad_command(s, reply);
}

static long decode(struct smtp_session *s, const char *in, size_t len,
                   unsigned char *out, size_t outlen)
{
    long n = sasl_base64_decode(in, len, out, outlen);

    if (n < 0)
        auth_abort(s, "501 5.5.2 Cannot decode the base64 response");
    return n;
}

static void plain_response(struct smtp_session *s, const char *in, size_t len)
{
    unsigned char buf[AUTH_DECODED_MAX + 1];
    const char *user, *pass;
    size_t passlen;
    long n = decode(s, in, len, buf, AUTH_DECODED_MAX);

    if (n < 0)
        return;
    buf[n] = '\0';
    if (sasl_plain_split(buf, (size_t)n, &user, &pass, &passlen) < 0)
        auth_abort(s, "501 5.5.2 Malformed PLAIN response");
    else
        auth_check(s, user, pass, passlen);
    explicit_bzero(buf, sizeof(buf));
}

static void login_user(struct smtp_session *s, const char *in, size_t len)
{
    unsigned char buf[sizeof(s->auth_login)];
    long n = decode(s, in, len, buf, sizeof(buf) - 1);

    if (n < 0)
        return;
    buf[n] = '\0';
    if ((size_t)n != strlen((char *)buf) || !users_valid_name((char *)buf)) {
        auth_abort(s, "501 5.5.2 Malformed user name");
        return;
    }
    memcpy(s->auth_login, buf, (size_t)n + 1);
    s->auth_step = AUTH_STEP_LOGIN_PASS;
    smtp_enter_state(s, SMTP_AUTH);
    smtp_reply(s, "334 UGFzc3dvcmQ6");        /* "Password:" */
}

static void login_pass(struct smtp_session *s, const char *in, size_t len)
{
    unsigned char buf[AUTH_DECODED_MAX + 1];
    char user[sizeof(s->auth_login)];
    long n = decode(s, in, len, buf, AUTH_DECODED_MAX);

    if (n < 0)
        return;
    memcpy(user, s->auth_login, sizeof(user));
    auth_check(s, user, (const char *)buf, (size_t)n);
    explicit_bzero(buf, sizeof(buf));
}

void smtp_proceed_auth(struct smtp_session *s, const struct smtp_cmd *c)
{
    const char *ir;
    size_t irlen, mlen = split_auth(c, &ir, &irlen);
    bool plain = mech_is(c, mlen, "PLAIN");

    s->auth_mech = plain ? "PLAIN" : "LOGIN";
    s->auth_login[0] = '\0';
    if (ir != NULL) {
        if (plain)
            plain_response(s, ir, irlen);
        else
            login_user(s, ir, irlen);
        return;
    }
    s->auth_step = plain ? AUTH_STEP_PLAIN : AUTH_STEP_LOGIN_USER;
    smtp_enter_state(s, SMTP_AUTH);
    /* PLAIN: an empty challenge; LOGIN: "Username:". */
    smtp_reply(s, plain ? "334 " : "334 VXNlcm5hbWU6");
}

void smtp_auth_response(struct smtp_session *s, char *line, size_t len)
{
    if (len == 1 && line[0] == '*') {
        s->auth_step = AUTH_STEP_NONE;
        smtp_enter_state(s, SMTP_HELO);
        smtp_reply(s, "501 5.7.0 Authentication cancelled");
    } else if (s->auth_step == AUTH_STEP_PLAIN) {
        plain_response(s, line, len);
    } else if (s->auth_step == AUTH_STEP_LOGIN_USER) {
        login_user(s, line, len);
    } else {
        login_pass(s, line, len);
    }
    explicit_bzero(line, len);
}
