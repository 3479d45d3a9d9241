/*
 * One ESMTP session of the gate (RFC 5321), in front of the provider's MTA.
 *
 *   session.c       life cycle, the command loop and table, replies, and
 *                   the commands outside a transaction (EHLO, RSET, ...)
 *   session_tx.c    MAIL, RCPT (the relay decision, the MTA's answer), DATA
 *   session_data.c  the message body: streaming, smuggling, size, the end
 *   session_from.c  header_from_check: the From:/Sender: of relayed mail
 *   session_auth.c  AUTH PLAIN / LOGIN (RFC 4954)
 *
 * Commands are processed strictly in order: a command that waits (Redis,
 * the MTA, the password check) marks the session busy and no further line
 * is read until it is answered, so pipelined replies keep their order.
 * A session whose connection ended stays allocated until its last pending
 * callback (Redis lookup, password check) came back.
 */
#ifndef SMTPGATE_SESSION_H
#define SMTPGATE_SESSION_H

#include <event2/util.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "authbridge/addr.h"
#include "smtpgate/datascan.h"
#include "smtpgate/limits.h"
#include "smtpgate/rcpt.h"
#include "smtpgate/relay.h"
#include "smtpgate/smtp_parse.h"

struct gate;
struct conn;
struct ds;
struct ds_reply;
struct event;
struct smtp_from;

enum smtp_state {
    SMTP_INIT,          /* greeted; waiting for EHLO/HELO */
    SMTP_HELO,          /* no transaction */
    SMTP_MAIL,          /* MAIL accepted, no recipient yet */
    SMTP_RCPT,          /* at least one recipient accepted by the MTA */
    SMTP_DATA,          /* reading the message */
    SMTP_AUTH,          /* inside an AUTH exchange (334 sent) */
    SMTP_QUIT,          /* closing */
};

/* Where the MTA side of the transaction stands. */
enum ds_mail_state {
    DSMAIL_NONE,        /* no MAIL sent for this transaction */
    DSMAIL_SENT,
    DSMAIL_OK,
    DSMAIL_FAILED,      /* the MTA refused MAIL: every RCPT hears why */
};

/* One mail transaction (MAIL to the end of DATA): RSET frees it. */
struct smtp_tx {
    struct smtp_path sender;
    struct smtp_mail_params mp;
    unsigned nrcpt;                 /* accepted by the MTA */
    unsigned nrcpt_tried;           /* every RCPT command, for the cap */
    enum ds_mail_state ds_mail;
    char mail_fail[SMTP_LINE_MAX];  /* the MTA's MAIL refusal, as a reply */
    bool ds_broken;                 /* the MTA went away mid-transaction */

    /* The recipient being decided. */
    struct smtp_path rcpt;
    bool rcpt_local;
    const char *rcpt_why;

    /* Who relays (session_from.c): set by the first relayed recipient
     * the relay decision allowed; relayed once the MTA accepted one. */
    bool bind_noted;
    bool relayed;
    char *bind_user;                /* NULL: a trusted network, no login */
    char relay_rcpt[SMTP_PATH_MAX + 1];

    /* DATA */
    struct datascan scan;
    struct smtp_from *from;         /* the header check, when it applies */
    bool stop_forwarding;
    bool too_big;
    uint64_t data_start_ms;
};

enum smtp_auth_step {
    AUTH_STEP_NONE,
    AUTH_STEP_PLAIN,                /* "334 " sent, PLAIN response due */
    AUTH_STEP_LOGIN_USER,
    AUTH_STEP_LOGIN_PASS,
};

struct smtp_session {
    TAILQ_ENTRY(smtp_session) link;
    struct gate *g;
    struct conn *conn;              /* NULL once the connection ended */
    struct ab_addr peer;
    char peer_text[ADDR_TEXT_MAX];
    unsigned peer_port;             /* the client's TCP port */
    char sid[17];
    enum smtp_state state;
    char helo[SMTP_HELO_MAX + 1];
    bool esmtp;
    bool trusted;                   /* peer in trusted_networks */
    char *auth_user;                /* after a successful AUTH */

    enum smtp_auth_step auth_step;
    const char *auth_mech;
    char auth_login[256];           /* AUTH LOGIN: the user, until the password */
    char *auth_secret;              /* held (then wiped) across the throttle */
    size_t auth_secretlen;
    bool auth_counted;              /* the throttle counted the attempt */

    /* What a command's check parsed, for its proceed. */
    struct {
        struct smtp_path path;
        struct smtp_mail_params mp;
    } parsed;

    struct smtp_tx *tx;
    struct ds *ds;                  /* the MTA connection, when open */

    unsigned bad_cmds, auth_fails;
    unsigned errors;                /* bad commands + refused recipients */
    unsigned ncmds, nmsgs;
    uint64_t started_ms;
    bool busy;                      /* waiting: read no more commands */
    bool paused;                    /* DATA back-pressure from the MTA side */
    bool output_wait;               /* the client must read its replies */
    unsigned pending;               /* callbacks still to come */
    struct event *timer;            /* AUTH tarpit and failure delay */
};

/* session.c: accept callback for the SMTP listeners. */
void smtp_session_accept(evutil_socket_t fd, struct sockaddr *sa,
                         socklen_t len, int kind, void *arg);
/* SIGTERM: idle sessions get 421 now, busy ones after their command. */
void smtp_session_shutdown_all(struct gate *g);
/* At exit: end every session at once (pending callbacks still free them). */
void smtp_session_close_all(struct gate *g);

/* ---- shared by the session_*.c files ------------------------------------ */

void smtp_enter_state(struct smtp_session *s, enum smtp_state st);
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* An MTA reply, each line given an enhanced code if the MTA had none. */
void smtp_reply_ds(struct smtp_session *s, const struct ds_reply *r,
                   const char *default_enh);
/* A client error: reply, count it, 421 and close at the limit. */
void smtp_bad_command(struct smtp_session *s, const char *reply);
/* A refused request (already answered) counts toward the session's hard
 * error limit: 421 and close there. */
void smtp_count_error(struct smtp_session *s);
void smtp_set_busy(struct smtp_session *s, bool busy);
/* Go on reading commands (after back-pressure ended). */
void smtp_resume(struct smtp_session *s);
void smtp_close(struct smtp_session *s, const char *why);
/* Drop a pending-callback hold; false (and maybe freed) if the session
 * is gone, so the caller must not touch it. */
bool smtp_release(struct smtp_session *s);
void smtp_tx_free(struct smtp_session *s);
/* The MTA connection for a new transaction: the open one, or a new one. */
struct ds *smtp_downstream(struct smtp_session *s);
/* Identity changed (EHLO, AUTH, STARTTLS): the next transaction must
 * reconnect so XCLIENT tells the MTA the truth. */
void smtp_drop_downstream(struct smtp_session *s);

/* session_tx.c */
const char *smtp_check_mail(struct smtp_session *s, const struct smtp_cmd *c);
void smtp_proceed_mail(struct smtp_session *s, const struct smtp_cmd *c);
const char *smtp_check_rcpt(struct smtp_session *s, const struct smtp_cmd *c);
void smtp_proceed_rcpt(struct smtp_session *s, const struct smtp_cmd *c);
const char *smtp_check_data(struct smtp_session *s, const struct smtp_cmd *c);
void smtp_proceed_data(struct smtp_session *s, const struct smtp_cmd *c);

/* session_data.c */
void smtp_data_begin(struct smtp_session *s);
void smtp_data_input(struct smtp_session *s);

/* session_from.c */
void smtp_from_note_relay(struct smtp_session *s, const char *user);
void smtp_from_rcpt_accepted(struct smtp_session *s);
void smtp_from_begin(struct smtp_session *s);
void smtp_from_feed(struct smtp_session *s, const char *p, size_t n);
/* True once the header check refused the message (forward no more). */
bool smtp_from_refused(const struct smtp_session *s);
/* The refusal, after the client's final dot; logs and counts it. */
void smtp_from_reply(struct smtp_session *s);
void smtp_from_free(struct smtp_tx *tx);

/* session_auth.c */
const char *smtp_check_auth(struct smtp_session *s, const struct smtp_cmd *c);
void smtp_proceed_auth(struct smtp_session *s, const struct smtp_cmd *c);
void smtp_auth_response(struct smtp_session *s, char *line, size_t len);
bool smtp_auth_offered(const struct smtp_session *s);
/* Wipe and free a password held for a check. */
void smtp_auth_forget(struct smtp_session *s);

#endif
