/*
 * header_from_check: the addresses in a relayed message's From: and
 * Sender: header must be the relaying user's own (relay.h's rule), as
 * the envelope's must with sender_binding. Mail to local recipients only
 * is inbound and never checked.
 *
 * The header block is scanned as DATA streams (hdrfrom.h) and streams on
 * to the MTA as it arrives: nothing is held. The decision falls at the
 * end of the header block, which comes before the client's final dot
 * (the dot line itself ends a message without a body), so the dot is
 * never forwarded before the check has passed. A refusal closes the MTA
 * connection at once: in DATA nothing can be taken back (an RSET would
 * be message text), and an MTA that loses its client before the final
 * dot discards the message (RFC 5321 4.1.1.4: only the dot commits it).
 * The client hears the refusal after its own final dot.
 */
#include "smtpgate/session.h"
#include "smtpgate/gate.h"
#include "smtpgate/hdrfrom.h"

#include "authbridge/conf.h"
#include "authbridge/log.h"
#include "authbridge/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct smtp_from {
    struct hdrscan scan;
    bool decided;
    struct hdrfrom_result result;   /* once decided */
};

/* ---- who relays ---------------------------------------------------------- */

void smtp_from_note_relay(struct smtp_session *s, const char *user)
{
    struct smtp_tx *tx = s->tx;

    if (tx->bind_noted)
        return;
    tx->bind_noted = true;
    tx->bind_user = user ? ab_strdup(user) : NULL;
    snprintf(tx->relay_rcpt, sizeof(tx->relay_rcpt), "%s", tx->rcpt.mailbox);
}

void smtp_from_rcpt_accepted(struct smtp_session *s)
{
    if (!s->tx->rcpt_local)
        s->tx->relayed = true;
}

/* ---- the header --------------------------------------------------------- */

void smtp_from_begin(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;

    if (!s->g->sc->header_from_check || !tx->relayed || tx->from != NULL)
        return;
    tx->from = ab_malloc(sizeof(*tx->from));
    hdrscan_init(&tx->from->scan);
    tx->from->decided = false;
}

static bool owned(const char *addr, void *arg)
{
    struct smtp_session *s = arg;

    return relay_sender_allowed(s->g->sc, s->g->sendermap, s->tx->bind_user,
                                addr);
}

static void log_refusal(struct smtp_session *s, const struct hdrfrom_result *r)
{
    struct smtp_tx *tx = s->tx;
    struct relay_query q = {
        .via = "smtp", .sid = s->sid, .client = &s->peer,
        .client_text = s->peer_text, .helo = s->helo,
        .sender = tx->sender.mailbox, .rcpt = tx->relay_rcpt,
        .why = hdrfrom_verdict_name(r->verdict), .auth_user = s->auth_user,
        .check = "header",
        .header_addr = r->verdict == HDRFROM_FOREIGN ? r->addr : NULL,
    };

    relay_record(s->g, &q, RELAY_SENDER_MISMATCH, tx->bind_user, LOG_INFO);
}

static void decide(struct smtp_session *s)
{
    struct smtp_from *f = s->tx->from;

    f->decided = true;
    hdrfrom_judge(&f->scan, owned, s, &f->result);
    log_debug("event=header_from sid=%s verdict=%s fields=%u octets=%zu",
              s->sid, hdrfrom_verdict_name(f->result.verdict), f->scan.fields,
              f->scan.octets);
    if (f->result.verdict == HDRFROM_OK)
        return;
    log_refusal(s, &f->result);
    /* The MTA has part of the header: closing is the only way to make it
     * drop the message (see the top of this file). */
    smtp_drop_downstream(s);
}

void smtp_from_feed(struct smtp_session *s, const char *p, size_t n)
{
    struct smtp_from *f = s->tx->from;

    /* A message already refused for something else is not judged. */
    if (f == NULL || f->decided || s->tx->stop_forwarding)
        return;
    if (hdrscan_feed(&f->scan, p, n) != HDRSCAN_MORE)
        decide(s);
}

bool smtp_from_refused(const struct smtp_session *s)
{
    const struct smtp_from *f = s->tx->from;

    return f != NULL && f->decided && f->result.verdict != HDRFROM_OK;
}

/* An address from the message, made safe for a reply line (a quoted
 * local part may hold anything). */
static const char *printable(const char *in, char *buf, size_t size)
{
    size_t i = 0;

    for (; in[i] != '\0' && i + 1 < size; i++)
        buf[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
    buf[i] = '\0';
    return buf;
}

void smtp_from_reply(struct smtp_session *s)
{
    const struct hdrfrom_result *r = &s->tx->from->result;
    const char *field = r->field ? r->field : "From";
    char own[SMTP_PATH_MAX + 32], addr[HDRADDR_MAX + 1];

    relay_own_address(s->g->sc, s->tx->bind_user, own, sizeof(own));
    switch (r->verdict) {
    case HDRFROM_FOREIGN:
        smtp_reply(s, "550 5.7.1 %s: header must be your own address (you may "
                   "not send as %s; use %s)", field,
                   printable(r->addr, addr, sizeof(addr)), own);
        break;
    case HDRFROM_NO_FROM:
        smtp_reply(s, "550 5.6.0 Message has no From: header naming its author "
                   "(RFC 5322 3.6.2); it must be your own address (%s)", own);
        break;
    case HDRFROM_UNPARSABLE:
        smtp_reply(s, "550 5.6.0 %s: header is not a valid address list "
                   "(RFC 5322 3.4); it must be your own address (%s)", field, own);
        break;
    case HDRFROM_DUPLICATE:
        smtp_reply(s, "550 5.6.0 Message has more than one %s: header "
                   "(RFC 5322 3.6)", field);
        break;
    case HDRFROM_MALFORMED:
        smtp_reply(s, "550 5.6.0 Message header has a line that is not a header "
                   "field (RFC 5322 2.2); its From: cannot be checked");
        break;
    case HDRFROM_TOO_BIG:
        if (r->field != NULL)
            smtp_reply(s, "550 5.6.0 %s: header longer than %d octets; it "
                       "cannot be checked", field, SMTP_HEADER_FIELD_MAX);
        else
            smtp_reply(s, "550 5.6.0 Message header longer than %d octets; "
                       "its From: cannot be checked", SMTP_HEADER_BLOCK_MAX);
        break;
    case HDRFROM_OK:
        fatalx("smtp_from_reply: message %s was not refused", s->sid);
    }
}

void smtp_from_free(struct smtp_tx *tx)
{
    free(tx->from);
    free(tx->bind_user);
}
