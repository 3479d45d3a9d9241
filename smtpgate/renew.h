/*
 * When an IMAP session's grant is due for renewal: a fixed-size table of
 * client addresses and the time each was last renewed, so that a session
 * posting an event for every command costs one grant write per interval,
 * not one per command. Bounded: RENEW_SLOTS entries, four probes each; a
 * full neighbourhood forgets its oldest entry, which only makes that
 * address's next renewal early. Pure (the caller passes the time).
 */
#ifndef SMTPGATE_RENEW_H
#define SMTPGATE_RENEW_H

#include <stdbool.h>
#include <stdint.h>

#include "authbridge/addr.h"

struct renew_table;

struct renew_table *renew_table_new(void);
void renew_table_free(struct renew_table *t);

/* True when a was not renewed in the last every_ms: it is then recorded
 * as renewed at now_ms. */
bool renew_due(struct renew_table *t, const struct ab_addr *a,
               uint64_t now_ms, uint64_t every_ms);

/* A renewal that did not happen (Redis unavailable): the next event for
 * a tries again. */
void renew_forget(struct renew_table *t, const struct ab_addr *a);

/* The interval for a grant lifetime: a minute, or ttl/3 when shorter. */
uint64_t renew_every_ms(unsigned ttl_s);

#endif
