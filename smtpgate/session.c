/*
 * Gate sessions: life cycle, the command loop and table, replies, and the
 * commands that live outside a mail transaction.
 *
 * Every verb is a check (state and syntax; on failure it returns the reply
 * line) and a proceed (does it). One table holds them all with the states
 * each verb is valid in: SMTP verbs are valid in most states, so a mask per
 * verb reads better than one table per state repeating them.
 */
#include "smtpgate/session.h"
#include "smtpgate/counters.h"
#include "smtpgate/downstream.h"
#include "smtpgate/gate.h"

#include "authbridge/conf.h"
#include "authbridge/conn.h"
#include "authbridge/daemon.h"
#include "authbridge/listen.h"
#include "authbridge/log.h"
#include "authbridge/util.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ST(x) (1u << (x))
#define ST_OUTSIDE_DATA (ST(SMTP_INIT) | ST(SMTP_HELO) | ST(SMTP_MAIL) | \
                         ST(SMTP_RCPT))

struct smtp_verb {
    const char *verb;
    unsigned states;                /* where it is valid */
    const char *(*check)(struct smtp_session *s, const struct smtp_cmd *c);
    void (*proceed)(struct smtp_session *s, const struct smtp_cmd *c);
    const char *out_of_sequence;    /* the reply elsewhere (after EHLO) */
};

static void smtp_process(struct smtp_session *s);

static const char *state_name(enum smtp_state st)
{
    static const char *const names[] = {
        "INIT", "HELO", "MAIL", "RCPT", "DATA", "AUTH", "QUIT",
    };
    return names[st];
}

static void apply_timeouts(struct smtp_session *s);

void smtp_enter_state(struct smtp_session *s, enum smtp_state st)
{
    bool data_changed = (st == SMTP_DATA) != (s->state == SMTP_DATA);

    log_debug("event=state sid=%s from=%s to=%s", s->sid,
              state_name(s->state), state_name(st));
    s->state = st;
    if (data_changed && s->conn != NULL)
        apply_timeouts(s);         /* data_timeout in DATA, else command */
}

/* ---- replies ----------------------------------------------------------- */

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
    struct evbuffer *out;
    va_list ap;

    if (s->conn == NULL)
        return;
    out = conn_output(s->conn);
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
}

void smtp_reply_ds(struct smtp_session *s, const struct ds_reply *r,
                   const char *default_enh)
{
    const char *line = r->text, *nl;
    char enh[16];

    /* RFC 2034: every reply carries an enhanced code once advertised. */
    if (default_enh[0] - '0' == r->code / 100)
        snprintf(enh, sizeof(enh), "%s", default_enh);
    else
        snprintf(enh, sizeof(enh), "%d.0.0", r->code / 100);
    for (unsigned i = 0; (nl = strchr(line, '\n')) != NULL; i++) {
        size_t n = (size_t)(nl - line);
        char sep = i + 1 == r->nlines ? ' ' : '-';
        if (smtp_enhanced_len(line, n, r->code) > 0)
            smtp_reply(s, "%d%c%.*s", r->code, sep, (int)n, line);
        else
            smtp_reply(s, "%d%c%s %.*s", r->code, sep, enh, (int)n, line);
        line = nl + 1;
    }
}

void smtp_close(struct smtp_session *s, const char *why)
{
    if (s->conn == NULL || s->state == SMTP_QUIT)
        return;
    log_debug("event=closing sid=%s reason=%s", s->sid, why);
    smtp_enter_state(s, SMTP_QUIT);
    conn_close_after_flush(s->conn);
}

static void too_many_errors(struct smtp_session *s, const char *what)
{
    smtp_reply(s, "421 4.7.0 %s Too many errors, closing connection",
               s->g->sc->hostname);
    log_info("event=too_many_errors sid=%s client=%s bad_commands=%u "
             "errors=%u limit=%s", s->sid, s->peer_text, s->bad_cmds,
             s->errors, what);
    smtp_close(s, "too many errors");
}

void smtp_bad_command(struct smtp_session *s, const char *reply)
{
    s->errors++;
    if (++s->bad_cmds >= SMTP_BAD_CMDS_MAX)
        too_many_errors(s, "bad_commands");
    else if (s->errors >= SMTP_HARD_ERRORS_MAX)
        too_many_errors(s, "errors");
    else
        smtp_reply(s, "%s", reply);
}

void smtp_count_error(struct smtp_session *s)
{
    if (++s->errors >= SMTP_HARD_ERRORS_MAX)
        too_many_errors(s, "errors");
}

/* Syntax and sequence errors count against the client; refusals of a
 * well-formed request (a relay, a size, a recipient count) do not. */
static void smtp_refuse(struct smtp_session *s, const char *reply)
{
    if (strncmp(reply, "50", 2) == 0 || strncmp(reply, "555", 3) == 0)
        smtp_bad_command(s, reply);
    else
        smtp_reply(s, "%s", reply);
}

static void apply_timeouts(struct smtp_session *s)
{
    const struct smtpgate_conf *sc = s->g->sc;
    unsigned rd = s->state == SMTP_DATA ? sc->data_timeout : sc->command_timeout;

    /* RFC 5321 4.5.3.2: while we wait for Redis or the MTA, the client
     * waits for us; its idle clock only runs when it is its turn. */
    conn_set_timeouts(s->conn, s->busy ? 0 : rd, sc->command_timeout);
}

void smtp_set_busy(struct smtp_session *s, bool busy)
{
    if (s->busy == busy || s->conn == NULL)
        return;
    s->busy = busy;
    apply_timeouts(s);
    if (!busy)
        smtp_process(s);           /* pipelined commands already here */
}

void smtp_resume(struct smtp_session *s)
{
    if (s->conn != NULL && !s->busy)
        smtp_process(s);
}

/* ---- the MTA connection ------------------------------------------------ */

struct ds *smtp_downstream(struct smtp_session *s)
{
    struct ds_client ci = {
        .sid = s->sid, .addr = &s->peer, .addr_text = s->peer_text,
        .port = s->peer_port, .helo = s->helo, .esmtp = s->esmtp, .login = s->auth_user,
    };

    if (s->ds != NULL && !ds_usable(s->ds)) {
        ds_abort(s->ds);
        s->ds = NULL;
    }
    if (s->ds == NULL)
        s->ds = ds_new(s->g->base, s->g->sc, &ci);
    return s->ds;
}

void smtp_drop_downstream(struct smtp_session *s)
{
    if (s->ds == NULL)
        return;
    if (s->state == SMTP_DATA)
        ds_abort(s->ds);           /* never end a message we did not finish */
    else
        ds_release(s->ds);
    s->ds = NULL;
}

void smtp_tx_free(struct smtp_session *s)
{
    if (s->tx != NULL)
        smtp_from_free(s->tx);
    free(s->tx);
    s->tx = NULL;
}

/* ---- commands outside a transaction ------------------------------------ */

static const char *check_helo(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)s;
    if (c->argslen == 0)
        return "501 5.5.4 Syntax: EHLO hostname";
    if (!smtp_helo_valid(c->args, c->argslen))
        return "501 5.5.4 Invalid EHLO/HELO name (printable ASCII, no spaces, "
               "at most 255 octets)";
    return NULL;
}

/* RFC 5321 4.1.4: EHLO/HELO in a transaction resets it. */
static void greeted(struct smtp_session *s, const struct smtp_cmd *c, bool esmtp)
{
    if (s->tx != NULL || s->helo[0] != '\0')
        smtp_drop_downstream(s);
    smtp_tx_free(s);
    memcpy(s->helo, c->args, c->argslen);
    s->helo[c->argslen] = '\0';
    s->esmtp = esmtp;
    smtp_enter_state(s, SMTP_HELO);
    log_debug("event=helo sid=%s helo=%s esmtp=%d", s->sid, log_esc(s->helo),
              esmtp);
}

static void proceed_ehlo(struct smtp_session *s, const struct smtp_cmd *c)
{
    const struct smtpgate_conf *sc = s->g->sc;
    const char *lines[8];
    char size[40];
    int n = 0;

    greeted(s, c, true);
    snprintf(size, sizeof(size), "SIZE %u", sc->max_message_size);
    lines[n++] = "PIPELINING";
    lines[n++] = size;
    lines[n++] = "8BITMIME";
    lines[n++] = "ENHANCEDSTATUSCODES";
    if (s->g->tls != NULL && !conn_is_tls(s->conn))
        lines[n++] = "STARTTLS";
    if (smtp_auth_offered(s))
        lines[n++] = "AUTH PLAIN LOGIN";
    /* RFC 2034: no enhanced codes on the EHLO reply itself. */
    smtp_reply(s, "250-%s", sc->hostname);
    for (int i = 0; i < n; i++)
        smtp_reply(s, "250%c%s", i + 1 == n ? ' ' : '-', lines[i]);
}

static void proceed_helo(struct smtp_session *s, const struct smtp_cmd *c)
{
    greeted(s, c, false);
    smtp_reply(s, "250 %s", s->g->sc->hostname);
}

static const char *check_no_args(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)s;
    return c->argslen > 0 ? "501 5.5.4 This command takes no arguments" : NULL;
}

static void proceed_rset(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)c;
    if (s->tx != NULL && s->ds != NULL && s->tx->ds_mail != DSMAIL_NONE &&
        ds_usable(s->ds))
        ds_rset(s->ds);
    smtp_tx_free(s);
    if (s->state == SMTP_MAIL || s->state == SMTP_RCPT)
        smtp_enter_state(s, SMTP_HELO);
    smtp_reply(s, "250 2.0.0 Ok");
}

static void proceed_noop(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)c;
    smtp_reply(s, "250 2.0.0 Ok");
}

static void proceed_quit(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)c;
    smtp_reply(s, "221 2.0.0 %s Bye", s->g->sc->hostname);
    smtp_close(s, "QUIT");
}

static const char *check_vrfy(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)s;
    return c->argslen == 0 ? "501 5.5.4 Syntax: VRFY address" : NULL;
}

static void proceed_vrfy(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)c;
    /* RFC 5321 3.5.3: 252 when we will not say. */
    smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and "
               "attempt delivery");
}

static void proceed_help(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)c;
    smtp_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT "
               "VRFY HELP%s%s", s->g->tls ? " STARTTLS" : "",
               smtp_auth_offered(s) ? " AUTH" : "");
}

static void proceed_expn(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)c;
    smtp_bad_command(s, "502 5.5.1 EXPN is not supported");
}

static const char *check_starttls(struct smtp_session *s,
                                  const struct smtp_cmd *c)
{
    if (s->g->tls == NULL)
        return "502 5.5.1 STARTTLS is not offered here";
    if (conn_is_tls(s->conn))
        return "503 5.5.1 TLS is already active";
    return c->argslen > 0 ? "501 5.5.4 Syntax: STARTTLS" : NULL;
}

/* RFC 3207 4.2: after TLS starts, everything learned before is forgotten. */
static void proceed_starttls(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)c;
    smtp_reply(s, "220 2.0.0 Ready to start TLS");
    conn_starttls(s->conn, s->g->tls);
    smtp_drop_downstream(s);
    smtp_tx_free(s);
    free(s->auth_user);
    s->auth_user = NULL;
    s->helo[0] = '\0';
    s->esmtp = false;
    smtp_enter_state(s, SMTP_INIT);
    log_debug("event=starttls sid=%s", s->sid);
}

/* A web client or proxy probe talking to port 25 (cross-protocol
 * attacks): there is nothing to say to it. */
static void proceed_http(struct smtp_session *s, const struct smtp_cmd *c)
{
    log_info("event=http_command sid=%s client=%s verb=%s", s->sid,
             s->peer_text, c->verb);
    smtp_reply(s, "421 4.7.0 %s This is an SMTP server; closing connection",
               s->g->sc->hostname);
    smtp_close(s, "HTTP command");
}

static const struct smtp_verb verbs[] = {
    { "EHLO", ST_OUTSIDE_DATA, check_helo, proceed_ehlo, NULL },
    { "HELO", ST_OUTSIDE_DATA, check_helo, proceed_helo, NULL },
    { "MAIL", ST(SMTP_HELO), smtp_check_mail, smtp_proceed_mail,
      "503 5.5.1 Nested MAIL command (RSET first)" },
    { "RCPT", ST(SMTP_MAIL) | ST(SMTP_RCPT), smtp_check_rcpt,
      smtp_proceed_rcpt, "503 5.5.1 Need MAIL before RCPT" },
    { "DATA", ST(SMTP_MAIL) | ST(SMTP_RCPT), smtp_check_data,
      smtp_proceed_data, "503 5.5.1 Need MAIL and RCPT before DATA" },
    { "RSET", ST_OUTSIDE_DATA, check_no_args, proceed_rset, NULL },
    { "NOOP", ST_OUTSIDE_DATA, NULL, proceed_noop, NULL },
    { "QUIT", ST_OUTSIDE_DATA, NULL, proceed_quit, NULL },
    { "VRFY", ST_OUTSIDE_DATA, check_vrfy, proceed_vrfy, NULL },
    { "HELP", ST_OUTSIDE_DATA, NULL, proceed_help, NULL },
    { "EXPN", ST_OUTSIDE_DATA, NULL, proceed_expn, NULL },
    { "STARTTLS", ST(SMTP_INIT) | ST(SMTP_HELO), check_starttls,
      proceed_starttls, "503 5.5.1 STARTTLS is not allowed in a mail "
      "transaction" },
    { "AUTH", ST(SMTP_HELO), smtp_check_auth, smtp_proceed_auth,
      "503 5.5.1 AUTH is not allowed in a mail transaction" },
    { "GET", ST_OUTSIDE_DATA, NULL, proceed_http, NULL },
    { "POST", ST_OUTSIDE_DATA, NULL, proceed_http, NULL },
    { "HEAD", ST_OUTSIDE_DATA, NULL, proceed_http, NULL },
    { "PUT", ST_OUTSIDE_DATA, NULL, proceed_http, NULL },
    { "CONNECT", ST_OUTSIDE_DATA, NULL, proceed_http, NULL },
};

/* ---- the command loop -------------------------------------------------- */

static const struct smtp_verb *find_verb(const char *verb)
{
    for (size_t i = 0; i < AB_ARRAY_LEN(verbs); i++)
        if (strcmp(verbs[i].verb, verb) == 0)
            return &verbs[i];
    return NULL;
}

static void smtp_dispatch(struct smtp_session *s, const char *line, size_t len)
{
    const struct smtp_verb *v;
    struct smtp_cmd cmd;
    const char *err;

    if (smtp_cmd_split(line, len, &cmd) < 0 ||
        (v = find_verb(cmd.verb)) == NULL) {
        smtp_bad_command(s, "500 5.5.2 Command unrecognized");
        return;
    }
    if (!(v->states & ST(s->state))) {
        smtp_bad_command(s, s->state == SMTP_INIT ?
                         "503 5.5.1 Send EHLO or HELO first" :
                         v->out_of_sequence);
        return;
    }
    if (v->check != NULL && (err = v->check(s, &cmd)) != NULL) {
        smtp_refuse(s, err);
        return;
    }
    v->proceed(s, &cmd);
}

static void line_too_long(struct smtp_session *s)
{
    smtp_reply(s, "500 5.5.6 Line too long (at most %d octets with CRLF, RFC "
               "5321 4.5.3.1.4)", SMTP_LINE_MAX);
    log_info("event=line_too_long sid=%s client=%s", s->sid, s->peer_text);
    smtp_close(s, "line too long");
}

/* Only AUTH (the command and its responses) may exceed 512 octets. */
static bool long_line_allowed(const struct smtp_session *s, const char *line)
{
    return s->state == SMTP_AUTH || ab_strncaseeq(line, "AUTH ", 5);
}

static void smtp_line(struct smtp_session *s, char *line, size_t len)
{
    if (len + 2 > SMTP_LINE_MAX && !long_line_allowed(s, line)) {
        line_too_long(s);
        return;
    }
    s->ncmds++;
    if (s->state == SMTP_AUTH) {
        smtp_auth_response(s, line, len);
        return;
    }
    smtp_dispatch(s, line, len);
    if (ab_strncaseeq(line, "AUTH ", 5))
        explicit_bzero(line, len);    /* an initial response: credentials */
}

static void shutting_down(struct smtp_session *s)
{
    smtp_reply(s, "421 4.3.2 %s Service shutting down, try again later",
               s->g->sc->hostname);
    smtp_close(s, "shutdown");
}

static void smtp_process(struct smtp_session *s)
{
    char line[SMTP_AUTH_LINE_MAX];
    size_t len;

    while (s->conn != NULL && !s->busy && !s->paused &&
           s->state != SMTP_QUIT) {
        if (s->state == SMTP_DATA) {
            smtp_data_input(s);
            if (s->state == SMTP_DATA)
                return;
            continue;
        }
        if (s->g->stopping && s->state != SMTP_AUTH) {
            shutting_down(s);
            return;
        }
        /* A client that pipelines faster than it reads waits for us. */
        if (conn_output_len(s->conn) > SMTP_OUTPUT_HIGH) {
            s->output_wait = true;
            conn_want_drain(s->conn, SMTP_OUTPUT_LOW);
            return;
        }
        switch (conn_readline(s->conn, line, sizeof(line) - 2, &len)) {
        case LINE_MORE:
            return;
        case LINE_TOO_LONG:
            line_too_long(s);
            return;
        case LINE_BAD:
            smtp_bad_command(s, "500 5.5.2 NUL or bare CR in a command line");
            break;
        case LINE_OK:
            smtp_line(s, line, len);
            break;
        }
    }
}

/* ---- life cycle -------------------------------------------------------- */

static void session_free(struct smtp_session *s)
{
    if (s->timer)
        event_free(s->timer);
    smtp_auth_forget(s);
    free(s->auth_user);
    free(s->tx);
    free(s);
}

bool smtp_release(struct smtp_session *s)
{
    s->pending--;
    if (s->conn == NULL) {
        if (s->pending == 0)
            session_free(s);
        return false;
    }
    return s->state != SMTP_QUIT;
}

static const char *end_reason(enum conn_end why)
{
    switch (why) {
    case CONN_EOF:     return "eof";
    case CONN_ERROR:   return "error";
    case CONN_TIMEOUT: return "timeout";
    case CONN_DONE:    return "closed";
    }
    return "?";
}

static void on_input(struct conn *c, void *arg)
{
    (void)c;
    smtp_process(arg);
}

static void on_drain(struct conn *c, void *arg)
{
    struct smtp_session *s = arg;

    if (!s->output_wait)
        return;
    s->output_wait = false;
    conn_want_drain(c, 0);
    smtp_resume(s);
}

static void on_end(struct conn *c, enum conn_end why, void *arg)
{
    struct smtp_session *s = arg;
    struct gate *g = s->g;

    char tls[96];

    /* The one info line per session (connect is debug): all it did. */
    log_info("event=disconnect sid=%s client=%s reason=%s state=%s tls=%s "
             "user=%s commands=%u messages=%u ms=%llu", s->sid, s->peer_text,
             end_reason(why), state_name(s->state),
             conn_tls_desc(c, tls, sizeof(tls)), log_esc(s->auth_user),
             s->ncmds, s->nmsgs,
             (unsigned long long)(ab_now_ms() - s->started_ms));
    smtp_drop_downstream(s);
    smtp_tx_free(s);
    if (s->timer)
        event_del(s->timer);
    conncap_release(g->svc.cap, s->peer_text);
    TAILQ_REMOVE(&g->sessions, s, link);
    g->nsessions--;
    conn_free(c);
    s->conn = NULL;
    if (s->pending == 0)
        session_free(s);
}

/* RFC 5321 4.5.3.2: a server that times out should say 421 first. */
static void on_timeout(struct conn *c, void *arg)
{
    struct smtp_session *s = arg;

    (void)c;
    smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->g->sc->hostname);
}

static const struct conn_ops session_ops = {
    on_input, on_drain, on_end, on_timeout
};

/* Over a cap: say so in plain text (not on the TLS port) and close. */
static void refuse_connection(struct gate *g, evutil_socket_t fd, int kind,
                              enum cap_result cap, const char *peer)
{
    char msg[320];
    unsigned left_out;
    int n;

    if (log_limited(&g->refused_log, &left_out))
        log_info("event=connection_refused client=%s reason=%s suppressed=%u",
                 peer, cap == CAP_TOTAL ? "max_connections" :
                 "max_connections_per_addr", left_out);
    if (kind == GATE_LISTEN_SMTP) {
        n = snprintf(msg, sizeof(msg), "421 4.7.0 %s Too many connections%s, "
                     "try again later\r\n", g->sc->hostname,
                     cap == CAP_PER_ADDR ? " from your address" : "");
        if (send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            log_debug("event=refusal_not_sent client=%s", peer);
    }
    close(fd);
}

static struct smtp_session *session_new(struct gate *g, const struct ab_addr *peer,
                                        const char *peer_text)
{
    struct smtp_session *s = ab_calloc(1, sizeof(*s));

    s->g = g;
    s->peer = *peer;
    snprintf(s->peer_text, sizeof(s->peer_text), "%s", peer_text);
    daemon_session_id(s->sid);
    s->trusted = cidr_list_match(&g->sc->d.trusted_networks, peer);
    s->state = SMTP_INIT;
    s->started_ms = ab_now_ms();
    return s;
}

void smtp_session_accept(evutil_socket_t fd, struct sockaddr *sa,
                         socklen_t len, int kind, void *arg)
{
    struct gate *g = arg;
    struct smtp_session *s;
    struct ab_addr peer;
    char text[ADDR_TEXT_MAX];
    enum cap_result cap;

    (void)len;
    metric_inc(&gate_connections, kind == GATE_LISTEN_SMTPS ? "smtps" : "smtp",
               NULL);
    if (g->stopping || addr_from_sockaddr(sa, &peer) < 0) {
        close(fd);
        return;
    }
    addr_format(&peer, text);
    if ((cap = conncap_acquire(g->svc.cap, text)) != CAP_OK) {
        refuse_connection(g, fd, kind, cap, text);
        return;
    }
    /* conn_new turns Nagle off: pipelined replies are small writes. */
    s = session_new(g, &peer, text);
    s->peer_port = sa->sa_family == AF_INET6 ?
        ntohs(((const struct sockaddr_in6 *)sa)->sin6_port) :
        sa->sa_family == AF_INET ?
        ntohs(((const struct sockaddr_in *)sa)->sin_port) : 0;
    s->conn = conn_new(g->base, fd, sa, kind == GATE_LISTEN_SMTPS ? g->tls : NULL,
                       &session_ops, s);
    if (s->conn == NULL) {
        conncap_release(g->svc.cap, text);
        session_free(s);
        return;
    }
    TAILQ_INSERT_TAIL(&g->sessions, s, link);
    g->nsessions++;
    apply_timeouts(s);
    log_debug("event=connect sid=%s client=%s tls=%s loop=%u", s->sid,
              s->peer_text, kind == GATE_LISTEN_SMTPS ? "implicit" : "no",
              g->loop);
    /* RFC 2034: no enhanced code on the greeting. */
    smtp_reply(s, "220 %s ESMTP authbridge smtpgate", g->sc->hostname);
}

void smtp_session_shutdown_all(struct gate *g)
{
    struct smtp_session *s;

    TAILQ_FOREACH(s, &g->sessions, link)
        if (!s->busy && s->state != SMTP_DATA && s->state != SMTP_QUIT)
            shutting_down(s);
}

void smtp_session_close_all(struct gate *g)
{
    struct smtp_session *s;

    while ((s = TAILQ_FIRST(&g->sessions)) != NULL)
        on_end(s->conn, CONN_DONE, s);
}
