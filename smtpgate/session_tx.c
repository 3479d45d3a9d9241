/*
 * The mail transaction: MAIL, RCPT and DATA's first step.
 *
 * MAIL is answered here and kept; the MTA hears it only with the first
 * recipient the relay decision allows, so clients with no relay right
 * never cost an MTA connection. Each allowed RCPT goes to the MTA and the
 * client gets the MTA's own answer: the gate may allow what the MTA still
 * refuses (unknown user, full mailbox).
 */
#include "smtpgate/session.h"
#include "smtpgate/downstream.h"
#include "smtpgate/gate.h"

#include "authbridge/conf.h"
#include "authbridge/grant.h"
#include "authbridge/log.h"
#include "authbridge/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- MAIL -------------------------------------------------------------- */

const char *smtp_check_mail(struct smtp_session *s, const struct smtp_cmd *c)
{
    const char *err = smtp_parse_mail(c->args, c->argslen, &s->parsed.path,
                                      &s->parsed.mp);

    if (err != NULL)
        return err;
    /* RFC 1870: refuse at MAIL what could never be accepted at the end. */
    if (s->parsed.mp.has_size &&
        s->parsed.mp.size > s->g->sc->max_message_size)
        return "552 5.3.4 Message size exceeds fixed maximum message size";
    return NULL;
}

void smtp_proceed_mail(struct smtp_session *s, const struct smtp_cmd *c)
{
    struct smtp_tx *tx = ab_calloc(1, sizeof(*tx));

    (void)c;
    tx->sender = s->parsed.path;
    tx->mp = s->parsed.mp;
    s->tx = tx;
    smtp_enter_state(s, SMTP_MAIL);
    log_debug("event=mail sid=%s sender=%s", s->sid,
              log_esc(tx->sender.mailbox));
    smtp_reply(s, "250 2.1.0 Ok");
}

/* ---- RCPT: syntax, then the relay decision ----------------------------- */

const char *smtp_check_rcpt(struct smtp_session *s, const struct smtp_cmd *c)
{
    const char *err = smtp_parse_rcpt(c->args, c->argslen, &s->parsed.path);

    if (err != NULL)
        return err;
    /* RFC 5321 4.5.3.1.10: 452 and the client sends the rest later. */
    if (s->tx->nrcpt >= s->g->sc->max_recipients)
        return "452 4.5.3 Too many recipients";
    return NULL;
}

static struct relay_query rcpt_query(const struct smtp_session *s)
{
    struct relay_query q = {
        .via = "smtp", .sid = s->sid, .client = &s->peer,
        .client_text = s->peer_text, .client_port = s->peer_port,
        .helo = s->helo,
        .sender = s->tx->sender.mailbox, .rcpt = s->tx->rcpt.mailbox,
        .rcpt_local = s->tx->rcpt_local, .why = s->tx->rcpt_why,
        .auth_user = s->auth_user,
    };
    return q;
}

static void rcpt_forward(struct smtp_session *s);

static void rcpt_refuse(struct smtp_session *s, enum relay_path path,
                        const char *user)
{
    const struct smtp_tx *tx = s->tx;
    char own[SMTP_PATH_MAX + 32];

    switch (path) {
    case RELAY_TEMPFAIL:
        smtp_reply(s, "451 4.3.0 <%s>: Relay permission cannot be checked "
                   "right now, try again later", tx->rcpt.mailbox);
        break;
    case RELAY_SENDER_MISMATCH:
        relay_own_address(s->g->sc, user, own, sizeof(own));
        smtp_reply(s, "553 5.7.1 <%s>: Sender address must be your own "
                   "address (you may not send as %s; use %s)",
                   tx->sender.mailbox, tx->sender.mailbox, own);
        break;
    default:
        smtp_reply(s, "550 5.7.1 <%s>: %s", tx->rcpt.mailbox,
                   s->g->sc->deny_message);
        break;
    }
    if (path != RELAY_TEMPFAIL)
        smtp_count_error(s);
}

static void rcpt_decided(struct smtp_session *s, enum relay_path path,
                         const char *user)
{
    struct relay_query q = rcpt_query(s);

    relay_record(s->g, &q, path, user, LOG_INFO);
    if (relay_allowed(path)) {
        if (path != RELAY_LOCAL)
            smtp_from_note_relay(s, user ? user : s->auth_user);
        rcpt_forward(s);
        return;
    }
    rcpt_refuse(s, path, user ? user : s->auth_user);
    smtp_set_busy(s, false);
}

static void rcpt_grant_cb(enum grant_status st, const char *user,
                          long long ttl, void *arg)
{
    struct smtp_session *s = arg;

    (void)ttl;
    if (!smtp_release(s))
        return;
    rcpt_decided(s, relay_grant_outcome(s->g->sc, s->g->sendermap, st, user,
                                        s->tx->sender.mailbox), user);
}

void smtp_proceed_rcpt(struct smtp_session *s, const struct smtp_cmd *c)
{
    struct smtp_tx *tx = s->tx;
    struct relay_query q;
    enum relay_path path;

    (void)c;
    tx->rcpt = s->parsed.path;
    tx->nrcpt_tried++;
    tx->rcpt_local = rcpt_classify(&tx->rcpt, &s->g->sc->local_domains,
                                   &tx->rcpt_why) == RCPT_LOCAL;
    q = rcpt_query(s);
    path = relay_decide_now(s->g->sc, &q);
    if (path != RELAY_NEED_GRANT) {
        path = relay_bind(s->g->sc, s->g->sendermap, path, s->auth_user,
                          tx->sender.mailbox);
        rcpt_decided(s, path, NULL);
        return;
    }
    s->pending++;
    smtp_set_busy(s, true);
    grant_store_lookup(s->g->svc.grants, &s->peer, rcpt_grant_cb, s);
}

/* ---- RCPT: the MTA's answer -------------------------------------------- */

/* The first line of an MTA reply, as one of our reply lines. */
static void first_line(const struct ds_reply *r, char *out, size_t outlen)
{
    size_t n = strcspn(r->text, "\n");

    if (smtp_enhanced_len(r->text, n, r->code) > 0)
        snprintf(out, outlen, "%d %.*s", r->code, (int)n, r->text);
    else
        snprintf(out, outlen, "%d %d.0.0 %.*s", r->code, r->code / 100,
                 (int)n, r->text);
}

static void mail_ds_cb(const struct ds_reply *r, void *arg)
{
    struct smtp_session *s = arg;
    struct smtp_tx *tx = s->tx;

    if (r->code / 100 == 2) {
        tx->ds_mail = DSMAIL_OK;
        return;
    }
    tx->ds_mail = DSMAIL_FAILED;
    first_line(r, tx->mail_fail, sizeof(tx->mail_fail));
    log_info("event=mail_refused_by_mta sid=%s sender=%s reply=%s", s->sid,
             log_esc(tx->sender.mailbox), log_esc(tx->mail_fail));
}

static void rcpt_ds_cb(const struct ds_reply *r, void *arg)
{
    struct smtp_session *s = arg;
    struct smtp_tx *tx = s->tx;

    if (tx->ds_mail == DSMAIL_FAILED) {
        smtp_reply(s, "%s", tx->mail_fail);
    } else {
        smtp_reply_ds(s, r, "2.1.5");
        if (r->code / 100 == 2) {
            tx->nrcpt++;
            smtp_from_rcpt_accepted(s);
            if (s->state == SMTP_MAIL)
                smtp_enter_state(s, SMTP_RCPT);
        } else {
            log_info("event=rcpt_refused_by_mta sid=%s rcpt=%s code=%d",
                     s->sid, log_esc(tx->rcpt.mailbox), r->code);
        }
    }
    smtp_set_busy(s, false);
}

/* The MTA connection broke after MAIL went out: what it had accepted is
 * gone, so this transaction cannot be completed (RSET starts afresh). */
static bool tx_broken(const struct smtp_session *s)
{
    return s->tx->ds_mail != DSMAIL_NONE &&
           (s->ds == NULL || !ds_usable(s->ds));
}

static void rcpt_forward(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;
    struct ds *ds;

    if (tx->ds_mail == DSMAIL_FAILED || tx_broken(s)) {
        if (tx->ds_mail == DSMAIL_FAILED)
            smtp_reply(s, "%s", tx->mail_fail);
        else
            smtp_reply(s, "451 4.4.2 <%s>: Connection to the mail server was "
                       "lost in this transaction; RSET and try again",
                       tx->rcpt.mailbox);
        smtp_set_busy(s, false);
        return;
    }
    ds = smtp_downstream(s);
    if (tx->ds_mail == DSMAIL_NONE) {
        ds_mail(ds, tx->sender.mailbox, &tx->mp, mail_ds_cb, s);
        tx->ds_mail = DSMAIL_SENT;
    }
    ds_rcpt(ds, tx->rcpt.mailbox, rcpt_ds_cb, s);
    smtp_set_busy(s, true);
}

/* ---- DATA -------------------------------------------------------------- */

const char *smtp_check_data(struct smtp_session *s, const struct smtp_cmd *c)
{
    if (c->argslen > 0)
        return "501 5.5.4 Syntax: DATA";
    /* RFC 5321 3.3: no recipient was accepted. */
    if (s->state == SMTP_MAIL)
        return "554 5.5.1 No valid recipients";
    if (tx_broken(s))
        return "451 4.4.2 Connection to the mail server was lost in this "
               "transaction; RSET and try again";
    return NULL;
}

static void data_ds_cb(const struct ds_reply *r, void *arg)
{
    struct smtp_session *s = arg;

    if (r->code == 354) {
        smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
        smtp_data_begin(s);
    } else {
        smtp_reply_ds(s, r, "5.0.0");
    }
    smtp_set_busy(s, false);
}

void smtp_proceed_data(struct smtp_session *s, const struct smtp_cmd *c)
{
    (void)c;
    smtp_set_busy(s, true);
    ds_data(s->ds, data_ds_cb, s);
}
