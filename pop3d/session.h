/*
 * One POP3 session (RFC 1939): AUTHORIZATION -> TRANSACTION -> UPDATE.
 * session.c holds the life cycle, the command loop and login; trans.c the
 * TRANSACTION commands and message streaming.
 */
#ifndef POP3D_SESSION_H
#define POP3D_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "authbridge/addr.h"
#include "pop3d/command.h"
#include "pop3d/limits.h"
#include "pop3d/msgstream.h"

struct server;
struct conn;
struct mailbox;
struct event;

enum pop3_state {
    POP3_AUTHORIZATION,
    POP3_TRANSACTION,
    POP3_UPDATE,
};

enum sasl_step {
    SASL_NONE,
    SASL_PLAIN_RESPONSE,           /* sent "+ ", waiting for the response */
};

struct session {
    TAILQ_ENTRY(session) link;
    struct server *srv;
    struct conn *conn;             /* NULL once the connection ended */
    struct ab_addr peer;
    char peer_text[ADDR_TEXT_MAX];
    char sid[17];
    char stamp[320];               /* APOP timestamp from the greeting */
    enum pop3_state state;
    enum sasl_step sasl;
    char *user_arg;                /* from USER, until PASS */
    unsigned bad_cmds, auth_fails;
    bool busy;                     /* waiting: read no more commands */
    bool in_process;               /* inside the command loop */
    bool dead;                     /* connection gone */
    unsigned pending;              /* callbacks still to come */
    struct event *timer;           /* failed-login delay */
    struct event *timer_lock;      /* lock refresh, after login */
    struct event *login_deadline;  /* before login: absolute, not idle */
    bool output_wait;              /* paused until the client reads */

    /* After login. */
    char *user;
    const char *method;
    struct mailbox *mb;
    bool grant_ok;
    bool auth_cached;              /* the credential cache vouched */
    unsigned retr, dele;
    uint64_t bytes;

    /* RETR/TOP in progress. */
    int stream_fd;
    struct msgstream ms;
};

/* trans.c: false when the keyword is not a TRANSACTION command. */
bool trans_dispatch(struct session *s, struct pop3_cmd *cmd, bool *known);
void trans_stream_more(struct session *s);
void trans_update_done(struct session *s, int rc, unsigned removed,
                       const char *err);

/* login.c */
void login_dispatch(struct session *s, struct pop3_cmd *c);
void login_sasl_response(struct session *s, const char *line);
void login_capa(struct session *s);

/* session.c, for login.c and trans.c */
/* The one place the state changes (and is logged, at debug level). */
void session_enter_state(struct session *s, enum pop3_state st);
void session_reply(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void session_bad_command(struct session *s, const char *reply);
void session_set_busy(struct session *s, bool busy);
void session_close(struct session *s, const char *why);
void session_quit_update(struct session *s);
void session_release_mailbox(struct session *s, struct mailbox *mb);
/* After a callback: free the session if it is dead and nothing pends. */
void session_unref_dead(struct session *s);

#endif
