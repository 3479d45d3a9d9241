/*
 * The SMTP client side: one connection to the provider's MTA
 * (`downstream`) per gate session, opened when the session's first
 * recipient is allowed, kept for further transactions, QUIT at the end.
 *
 * Handshake, on its own: greeting (220), EHLO with our hostname (HELO if
 * EHLO is refused); if the MTA offers XCLIENT, "XCLIENT ADDR= NAME=
 * HELO= PROTO= [LOGIN=]" (only the attributes it lists; IPv6 as
 * "IPV6:...", values in xtext) and EHLO again after its 220; else, if it
 * offers XFORWARD, "XFORWARD ..." before every MAIL (Postfix forgets
 * XFORWARD attributes after each transaction).
 *
 * Commands queue while the handshake runs and go out in order; with the
 * MTA's PIPELINING they go out together (RFC 2920), otherwise one at a
 * time. Every command's callback runs exactly once, never from inside
 * the call that queued it, with the MTA's reply or, when the MTA is
 * unreachable, times out (downstream_timeout), breaks the protocol or
 * goes away, with a reply made here: 451 4.4.x. A 421 from the MTA
 * becomes 451 too (the MTA closes; the client's session goes on).
 *
 * After ds_abort() or ds_quit() no callback runs any more.
 */
#ifndef SMTPGATE_DOWNSTREAM_H
#define SMTPGATE_DOWNSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "authbridge/addr.h"
#include "smtpgate/limits.h"
#include "smtpgate/smtp_parse.h"

struct event_base;
struct evbuffer;
struct smtpgate_conf;
struct ds;

struct ds_reply {
    int code;
    bool local;                     /* made here: the MTA failed */
    unsigned nlines;
    size_t len;
    char text[DS_REPLY_TEXT_MAX];   /* each line's text + '\n' */
};

typedef void ds_reply_cb(const struct ds_reply *r, void *arg);
typedef void ds_drain_cb(void *arg);

/* Who the MTA should think the client is (XCLIENT / XFORWARD). */
struct ds_client {
    const char *sid;
    const struct ab_addr *addr;
    const char *addr_text;
    unsigned port;                  /* the client's TCP port, 0 if none */
    const char *helo;               /* "" if none */
    bool esmtp;                     /* EHLO rather than HELO */
    const char *login;              /* SMTP AUTH user, or NULL */
};

/* A pooled connection to the same MTA (see ds_release), or a new one,
 * connecting; copies what it needs from sc and client. */
struct ds *ds_new(struct event_base *base, const struct smtpgate_conf *sc,
                  const struct ds_client *client);

/* False once the connection failed, closed or broke the protocol. */
bool ds_usable(const struct ds *ds);

/* MAIL FROM:<sender> with the parameters the MTA advertised (SIZE,
 * BODY=8BITMIME); the line is made when the handshake has told us. */
void ds_mail(struct ds *ds, const char *sender,
             const struct smtp_mail_params *mp, ds_reply_cb *cb, void *arg);
void ds_rcpt(struct ds *ds, const char *rcpt, ds_reply_cb *cb, void *arg);
/* RSET; its reply only matters if it fails (then ds_usable() is false). */
void ds_rset(struct ds *ds);

/*
 * DATA: cb gets the reply; on 354 the connection is in body mode: move
 * the message, terminating ".\r\n" included, with ds_body_move() and
 * then call ds_data_end() for the final reply. A reply the MTA sends before that
 * (some give up early) makes the connection unusable; ds_data_end() then
 * answers with it if it was 4xx/5xx, else with 451.
 */
void ds_data(struct ds *ds, ds_reply_cb *cb, void *arg);
/* Move n octets from src to the MTA (evbuffer chains move, not copy);
 * they are dropped if the connection has failed. */
void ds_body_move(struct ds *ds, struct evbuffer *src, size_t n);
void ds_data_end(struct ds *ds, ds_reply_cb *cb, void *arg);

/* Body back-pressure: cb once the output is at or below low, or once
 * the connection failed (check ds_usable()). One at a time. */
void ds_when_drained(struct ds *ds, size_t low, ds_drain_cb *cb, void *arg);
size_t ds_body_pending(const struct ds *ds);

/* Close at once, sending nothing more: a message in DATA is never
 * terminated, so the MTA discards it. Frees ds. */
void ds_abort(struct ds *ds);

/* Polite end: QUIT, wait briefly for its reply, close. ds then lives on
 * by itself and frees itself; the caller forgets it. */
void ds_quit(struct ds *ds);

/*
 * The session is done with it: keep it, idle, for the next session's
 * ds_new() when it can be reused (healthy, no open transaction, and no
 * XCLIENT: that gives the connection one client's identity), else
 * ds_quit(). Pooled connections are closed after DS_POOL_IDLE_S, or as
 * soon as the MTA closes or says anything. The caller forgets ds.
 */
void ds_release(struct ds *ds);

/* At exit: free every connection still closing by itself. */
void ds_free_all(void);

#endif
