/*
 * The one relay decision, shared by every front door (SMTP gate, policy
 * service). Per recipient, in this order:
 *
 *   1. local recipient (rcpt.h: local domain, no hidden routing)  LOCAL
 *   2. client address in trusted_networks                          TRUSTED
 *   3. SMTP AUTH on this session                                   AUTH
 *   4. a live grant for the client address in Redis                GRANT
 *   else                                                           DENIED
 *
 * sender_binding then may turn an allowed relay into SENDER_MISMATCH
 * (relay_bind): "grant" binds path 4, "all" paths 2-4; local mail is
 * never bound. The rule (relay_sender_allowed): with a known user (the
 * grant's, or the SMTP AUTH login, also on a trusted network) the sender
 * must be one of that user's addresses; from a trusted network without
 * a login, its domain must be ours (local_domains or sender_map).
 * header_from_check applies the same rule to the From:/Sender: header
 * addresses of relayed messages (session_from.c).
 *
 * Redis not answering within redis.timeout_ms for a recipient that needs
 * a grant is TEMPFAIL (451 4.3.0): never an allow, never a 5xx.
 *
 * The decision is split where the I/O is: relay_decide_now() answers
 * 1-3 without I/O (or says NEED_GRANT); the caller asks Redis itself
 * (grant_store_lookup, so it owns the callback's lifetime) and hands the
 * answer to relay_grant_outcome(). Both are pure and unit-tested.
 * relay_record() logs the decision once and appends it to the Redis
 * decisions stream (relay-allowed / relay-denied / relay-tempfail).
 */
#ifndef SMTPGATE_RELAY_H
#define SMTPGATE_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "authbridge/addr.h"
#include "authbridge/conf.h"
#include "authbridge/grant.h"

struct gate;
struct sendermap;

enum relay_path {
    RELAY_LOCAL,
    RELAY_TRUSTED,
    RELAY_AUTH,
    RELAY_GRANT,
    RELAY_DENIED,
    RELAY_TEMPFAIL,
    RELAY_SENDER_MISMATCH,
    RELAY_NEED_GRANT,             /* relay_decide_now() only */
};

struct relay_query {
    const char *via;              /* "smtp" or "policy" */
    const char *sid;
    const struct ab_addr *client;
    const char *client_text;
    unsigned client_port;         /* 0 when not known */
    const char *helo;
    const char *sender;           /* mailbox; "" for <> */
    const char *rcpt;
    bool rcpt_local;              /* rcpt_classify() said RCPT_LOCAL */
    const char *why;              /* its reason ("percent"...), or NULL */
    const char *auth_user;        /* NULL unless SMTP AUTH succeeded */
    /* SENDER_MISMATCH only: which check refused ("envelope", the
     * default, or "header") and, for the header, the address refused. */
    const char *check;
    const char *header_addr;
};

/* Paths 1-3, or RELAY_NEED_GRANT. */
enum relay_path relay_decide_now(const struct smtpgate_conf *sc,
                                 const struct relay_query *q);

/* Path 4 from the lookup's answer: GRANT, DENIED, TEMPFAIL or
 * SENDER_MISMATCH (relay_bind applied). */
enum relay_path relay_grant_outcome(const struct smtpgate_conf *sc,
                                    const struct sendermap *map,
                                    enum grant_status st, const char *user,
                                    const char *sender);

/*
 * sender_binding: is sender an address of login? True for
 * login@<a local domain> (local part compared case-insensitively), for the
 * login itself when it is a whole address, and for what the sender map
 * gives the login. Never for the null sender "<>": a bounce is nobody's
 * address, and binding exists so a shared address cannot send as anyone.
 */
bool relay_sender_owned(const struct strlist *local_domains,
                        const struct sendermap *map, const char *sender,
                        const char *login);

/*
 * sender_binding on a decided path: path itself, or SENDER_MISMATCH when
 * the mode binds that path and sender is not allowed. user: the grant's
 * user for GRANT, the SMTP AUTH login (or NULL) for TRUSTED and AUTH.
 */
enum relay_path relay_bind(const struct smtpgate_conf *sc,
                           const struct sendermap *map, enum relay_path path,
                           const char *user, const char *sender);

/*
 * The rule itself: user known, relay_sender_owned(); user NULL (a trusted
 * network, no login), the domain is one of local_domains or the address
 * or its @domain is in the map. The null sender "<>" passes from a
 * trusted network (bounces of the provider's own servers), never for a
 * user.
 */
bool relay_sender_allowed(const struct smtpgate_conf *sc,
                          const struct sendermap *map, const char *user,
                          const char *sender);

/* What the user may use instead, for a refusal's text: "alice@example.net"
 * (the login, or login@<first local domain>), "an address @example.net"
 * without a user, or "your own address"; printable ASCII only. */
void relay_own_address(const struct smtpgate_conf *sc, const char *user,
                       char *buf, size_t size);

bool relay_allowed(enum relay_path p);
const char *relay_path_name(enum relay_path p);

/* One log line ("event=rcpt ... path=...") at prio, and for relays (not
 * local deliveries) an entry in the Redis decisions stream (refusals
 * sampled per address: decisions.h). user may be NULL. */
void relay_record(struct gate *g, const struct relay_query *q,
                  enum relay_path path, const char *user, int prio);

#endif
