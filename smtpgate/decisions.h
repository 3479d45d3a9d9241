/*
 * The Redis decisions stream (<prefix>decisions): one entry per relay
 * decision of every front door, for `authbridge watch`, `stats` and the
 * helpdesk. It is apart from <prefix>log (grants and revocations), so no
 * flood of decisions can evict the audit trail of relay rights.
 *
 * Decisions are sampled: anyone can be refused as often as they like,
 * and a busy gate allows tens of thousands of relays a second, which
 * would make a capped stream a few seconds long. Per client address for
 * refusals, and per front door, client, TCP port, user and path for
 * allowed relays, the first decision in each RELAY_SAMPLE_MS is written
 * at once; later ones are counted, and once that time is up one entry
 * with the last one's details and "count=N" stands for the N of them.
 * The text log keeps every decision.
 */
#ifndef SMTPGATE_DECISIONS_H
#define SMTPGATE_DECISIONS_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct grant_store;
struct decisions;

/* One entry's fields (strings, "" when empty; check and from NULL when
 * not a sender refusal). */
struct decision {
    const char *event;            /* relay-allowed, relay-denied, ... */
    const char *via, *sid, *client, *helo, *sender, *rcpt, *path, *user;
    const char *check;            /* sender_mismatch: envelope or header */
    const char *from;             /* header refusals: the address refused */
    const char *port;             /* the client's TCP port; "" if unknown */
};

struct decisions *decisions_new(struct event_base *base,
                                struct grant_store *gs);
void decisions_free(struct decisions *d);

/* Write one decision, or count it for the entry that stands for it. */
void decisions_record(struct decisions *d, const struct decision *e);

/* Write every pending count now (SIGTERM: before the process ends). */
void decisions_flush(struct decisions *d);

/* Addresses with refusals counted and not yet written (for tests). */
size_t decisions_pending(const struct decisions *d);

#endif
