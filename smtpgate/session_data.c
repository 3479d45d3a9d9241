/*
 * The message body: scanned in place (datascan.h), moved to the MTA chain
 * by chain (no copy), size counted as it streams, the client paused while
 * the MTA side has too much to write.
 *
 * Four ways a message ends without reaching the MTA, all answered only
 * after the client's CRLF.CRLF (it does not read replies mid-message),
 * and none ever writing the end-of-data dot, so the MTA discards what it
 * has: a bare CR or LF (550 5.6.0, SMTP smuggling), too large
 * (552 5.3.4), the From: header check refusing it (session_from.c), the
 * MTA gone or giving up mid-message (its own 4xx/5xx if it gave one,
 * else 451 4.4.2).
 */
#include "smtpgate/session.h"
#include "smtpgate/downstream.h"
#include "smtpgate/gate.h"

#include "authbridge/conf.h"
#include "authbridge/conn.h"
#include "authbridge/log.h"
#include "authbridge/util.h"

#include <event2/buffer.h>
#include <string.h>

/* Chains looked at per pass: input arrives in 4 KB-16 KB chains. */
#define DATA_IOV 16

void smtp_data_begin(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;

    datascan_init(&tx->scan);
    tx->stop_forwarding = false;
    tx->too_big = false;
    smtp_from_begin(s);
    tx->data_start_ms = ab_now_ms();
    smtp_enter_state(s, SMTP_DATA);
}

static uint64_t size_so_far(const struct smtp_tx *tx)
{
    return datascan_size(&tx->scan);
}

/* After each pass: anything that means "forward no more"? */
static void check_stream(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;

    if (tx->stop_forwarding)
        return;
    if (tx->scan.bad) {
        log_warn("event=data_bare_cr_lf sid=%s client=%s offset=%llu "
                 "action=refuse", s->sid, s->peer_text,
                 (unsigned long long)tx->scan.clean);
        tx->stop_forwarding = true;
    } else if (size_so_far(tx) > s->g->sc->max_message_size) {
        tx->too_big = true;
        tx->stop_forwarding = true;
    } else if (smtp_from_refused(s)) {
        tx->stop_forwarding = true;       /* the MTA side is closed already */
    } else if (s->ds == NULL || !ds_usable(s->ds)) {
        tx->stop_forwarding = true;
    }
}

/* Scan what the input holds (up to DATA_IOV chains) and pass it on. */
static void data_pass(struct smtp_session *s, struct evbuffer *in)
{
    struct smtp_tx *tx = s->tx;
    struct evbuffer_iovec v[DATA_IOV];
    int n = evbuffer_peek(in, -1, NULL, v, DATA_IOV);
    size_t used = 0, clean;

    if (n > DATA_IOV)
        n = DATA_IOV;
    for (int i = 0; i < n && !tx->scan.done; i++) {
        size_t u = datascan_feed(&tx->scan, v[i].iov_base, v[i].iov_len,
                                 &clean);
        /* The header check decides before this pass moves on, so the
         * final dot never reaches the MTA ahead of the decision. */
        smtp_from_feed(s, v[i].iov_base, u);
        used += u;
    }
    check_stream(s);
    /* Clean and allowed: everything used is clean (a bare CR/LF or the
     * size stops forwarding for the whole pass: the MTA side is aborted
     * anyway, so what it already has does not matter). */
    if (!tx->stop_forwarding)
        ds_body_move(s->ds, in, used);
    else
        evbuffer_drain(in, used);
}

static void data_drained(void *arg)
{
    struct smtp_session *s = arg;

    s->paused = false;
    conn_resume(s->conn);
    smtp_resume(s);
}

static bool back_pressure(struct smtp_session *s)
{
    if (s->tx->stop_forwarding ||
        ds_body_pending(s->ds) <= SMTP_DS_OUTPUT_HIGH)
        return false;
    s->paused = true;
    log_debug("event=data_paused sid=%s mta_pending=%zu", s->sid,
              ds_body_pending(s->ds));
    conn_pause(s->conn);
    ds_when_drained(s->ds, SMTP_DS_OUTPUT_LOW, data_drained, s);
    return true;
}

static void end_message(struct smtp_session *s, const char *result, int code)
{
    struct smtp_tx *tx = s->tx;

    log_info("event=message sid=%s client=%s sender=%s rcpts=%u size=%llu "
             "result=%s code=%d ms=%llu", s->sid, s->peer_text,
             log_esc(tx->sender.mailbox), tx->nrcpt,
             (unsigned long long)size_so_far(tx), result, code,
             (unsigned long long)(ab_now_ms() - tx->data_start_ms));
    if (code / 100 == 2)
        s->nmsgs++;
    smtp_tx_free(s);
    smtp_enter_state(s, SMTP_HELO);
}

static void final_cb(const struct ds_reply *r, void *arg)
{
    struct smtp_session *s = arg;

    smtp_reply_ds(s, r, "2.0.0");
    end_message(s, r->local ? "mta_failed" : r->code / 100 == 2 ? "accepted" :
                "refused_by_mta", r->code);
    smtp_set_busy(s, false);
}

/*
 * The client's CRLF.CRLF is in: refuse the message ourselves, or let the
 * MTA answer. A connection that failed or gave up mid-message answers
 * too (ds_data_end: the MTA's early 4xx/5xx, or 451 4.4.x), without a
 * dot ever written to it.
 */
static void data_finish(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;

    if (!tx->scan.bad && !tx->too_big && !smtp_from_refused(s)) {
        smtp_set_busy(s, true);
        ds_data_end(s->ds, final_cb, s);
        return;
    }
    /* Drop the MTA side before anything else: it must never see a dot. */
    smtp_drop_downstream(s);
    if (smtp_from_refused(s) && !tx->scan.bad && !tx->too_big) {
        smtp_from_reply(s);
        end_message(s, "sender_mismatch", 550);
    } else if (tx->scan.bad) {
        smtp_reply(s, "550 5.6.0 Message refused: it contains a bare CR or "
                   "LF; lines must end with CRLF (RFC 5321 2.3.8)");
        end_message(s, "bare_cr_lf", 550);
    } else {
        smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message "
                   "size (%u octets)", s->g->sc->max_message_size);
        end_message(s, "too_big", 552);
    }
}

void smtp_data_input(struct smtp_session *s)
{
    struct evbuffer *in = conn_input(s->conn);

    while (!s->tx->scan.done && evbuffer_get_length(in) > 0) {
        data_pass(s, in);
        if (back_pressure(s))
            return;
    }
    if (s->tx->scan.done)
        data_finish(s);
}
