/*
 * Inside the MTA connection (downstream.h): the structure and what the
 * three files share. downstream.c: life cycle, failure, sending and the
 * command API; downstream_reply.c: what the MTA says (handshake, replies,
 * socket events); downstream_pool.c: idle connections kept for reuse.
 * Not for use outside these files.
 */
#ifndef SMTPGATE_DOWNSTREAM_INT_H
#define SMTPGATE_DOWNSTREAM_INT_H

#include "smtpgate/downstream.h"

#include <event2/bufferevent.h>
#include <sys/queue.h>
#include <sys/socket.h>

enum ds_state {
    DS_CONNECTING,
    DS_GREETING,      /* waiting for 220 */
    DS_EHLO,
    DS_HELO,          /* EHLO was refused */
    DS_XCLIENT,       /* waiting for the new 220 */
    DS_EHLO2,         /* EHLO after XCLIENT */
    DS_READY,         /* commands flow */
    DS_BODY,          /* after 354: message octets flow */
    DS_QUITTING,      /* orphaned, waiting for QUIT's reply */
    DS_POOLED,        /* idle, kept for the next session */
    DS_FAILED,
};

enum req_kind { REQ_XFORWARD, REQ_MAIL, REQ_RCPT, REQ_RSET, REQ_DATA, REQ_DOT };

struct ds_req {
    enum req_kind kind;
    ds_reply_cb *cb;
    void *arg;
    char text[SMTP_PATH_MAX + 1];   /* sender or recipient */
    struct smtp_mail_params mp;
};

struct ds {
    LIST_ENTRY(ds) link;            /* orphans or the pool */
    struct event_base *base;
    struct bufferevent *bev;        /* NULL once failed */
    struct event *fail_ev;
    struct event *flush_ev;         /* writes our output directly */
    bool direct;                    /* connected: flush_ev writes, not bev */
    enum ds_state state;
    unsigned timeout_s;
    bool reading_timed;             /* read timeout armed */

    char sid[17];
    char hostname[256];
    struct ab_addr addr;
    char addr_text[ADDR_TEXT_MAX];
    unsigned port;
    char helo[SMTP_HELO_MAX + 1];
    char login[256];
    bool esmtp, has_login;

    unsigned ext, xclient, xforward;
    bool xclient_used;              /* the MTA took our XCLIENT */
    bool in_tx;                     /* MAIL went out, no end yet */
    bool reused;                    /* taken from the pool... */
    bool answered;                  /* ...and the MTA answered since */
    struct sockaddr_storage peer;   /* the MTA, to match pooled ones */
    socklen_t peerlen;
    struct ds_req q[DS_QUEUE_MAX];
    unsigned qhead, qlen, qsent;

    struct ds_reply reply;          /* being read */
    unsigned lines_seen;            /* of the reply being read */
    struct ds_reply fail;           /* what every later command gets; an
                                     * early reply waits here too */
    bool has_early;                 /* the MTA answered during the body */

    ds_drain_cb *drain_cb;
    void *drain_arg;
    size_t drain_low;

    unsigned depth;                 /* inside our callbacks */
    bool freeing;
    bool orphan;
};

/* downstream.c */
const char *ds_state_name(enum ds_state st);
void ds_enter(struct ds *ds, enum ds_state st);
void ds_destroy(struct ds *ds);
void ds_leave(struct ds *ds);
void ds_fail(struct ds *ds, const char *enh_text, const char *why);
void ds_fail_protocol(struct ds *ds, const char *why);
void ds_soften_421(struct ds_reply *r);
void ds_arm_timeouts(struct ds *ds);
void ds_send_ehlo(struct ds *ds, enum ds_state next);
void ds_send_xclient(struct ds *ds);
void ds_pump(struct ds *ds);
void ds_go_direct(struct ds *ds);

/* downstream_reply.c */
void ds_read_cb(struct bufferevent *bev, void *arg);
void ds_write_cb(struct bufferevent *bev, void *arg);
void ds_event_cb(struct bufferevent *bev, short what, void *arg);

/* downstream_pool.c */
void ds_pool_remove(struct ds *ds);
struct ds *ds_pool_take(const struct smtpgate_conf *sc);
void ds_pool_free_all(void);

#endif
