/*
 * relay_record() (relay.h): the decision's log line, its counter and its
 * entry in the Redis decisions stream. Apart from the pure decision in
 * relay.c, which the admin command links too (`authbridge why`): this
 * needs the daemon's async grant store, and with it libevent and
 * libcrypto, which every run of `authbridge checkrelay` (once per SMTP
 * connection) would then pay to load.
 */
#include "smtpgate/relay.h"
#include "smtpgate/counters.h"
#include "smtpgate/decisions.h"
#include "smtpgate/gate.h"

#include "authbridge/log.h"

#include <stdio.h>
#include <string.h>

/* The stream's event name: what `authbridge stats` counts. */
static const char *stream_event(enum relay_path p)
{
    if (relay_allowed(p))
        return "relay-allowed";
    return p == RELAY_TEMPFAIL ? "relay-tempfail" : "relay-denied";
}

void relay_record(struct gate *g, const struct relay_query *q,
                  enum relay_path path, const char *user, int prio)
{
    const char *u = user ? user : q->auth_user;
    const char *check = path != RELAY_SENDER_MISMATCH ? NULL :
                        q->check ? q->check : "envelope";

    metric_inc(&gate_decisions, q->via, relay_path_name(path));
    log_msg(prio, "event=rcpt via=%s sid=%s client=%s helo=%s sender=%s rcpt=%s "
            "path=%s user=%s why=%s%s%s%s%s", q->via, q->sid, q->client_text,
            log_esc(q->helo), log_esc(q->sender), log_esc(q->rcpt),
            relay_path_name(path), log_esc(u ? u : ""), q->why ? q->why : "-",
            check ? " check=" : "", check ? check : "",
            q->header_addr ? " from=" : "",
            q->header_addr ? log_esc(q->header_addr) : "");
    /* Local deliveries are inbound mail, not relays: the log line only. */
    if (path == RELAY_LOCAL)
        return;
    char port[12] = "";
    if (q->client_port != 0)
        snprintf(port, sizeof(port), "%u", q->client_port);
    const struct decision d = {
        .event = stream_event(path), .via = q->via, .sid = q->sid,
        .client = q->client_text, .helo = q->helo, .sender = q->sender,
        .rcpt = q->rcpt, .path = relay_path_name(path), .user = u ? u : "",
        .check = check, .from = q->header_addr, .port = port,
    };
    /* Sampled: no flood of decisions makes the stream seconds long. */
    decisions_record(g->decisions, &d);
}
