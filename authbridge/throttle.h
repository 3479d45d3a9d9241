/*
 * Failed-login throttling shared by every host, pop3d and smtpgate's AUTH,
 * through Redis:
 *
 *   <prefix>fail:<addr>             failures from that address (IPv6: its /64)
 *   <prefix>failuser:<user>         failures against that user, from anywhere
 *   <prefix>failpair:<addr>:<user>  failures against that user from there
 *
 * all with TTL [throttle] window, renewed by each failure. An attempt is
 * counted (one script, one round trip) before its password is checked
 * and judged on the counts that include it, so parallel guesses cannot
 * overshoot the limits. Past
 * delay_after failures an address's answers are delayed (delay_ms,
 * doubling, at most max_delay_ms); at block_after the address is refused
 * outright (-ERR [LOGIN-DELAY], 454 4.7.0) without its password being
 * checked; at user_block_after the user is refused the same way from
 * anywhere (distributed guessing). A right password takes back the
 * failures against that user from that address (and its own attempt),
 * never failures against other users: an attacker's own account cannot
 * reset the count of its guesses. Without Redis nothing is known and
 * nothing is refused.
 */
#ifndef AB_THROTTLE_H
#define AB_THROTTLE_H

#include <stdbool.h>

#include "addr.h"

struct rconn;
struct throttle_conf;
struct throttle;

enum throttle_verdict {
    THROTTLE_OK,
    THROTTLE_DELAY,        /* answer after delay_ms */
    THROTTLE_BLOCK_ADDR,   /* too many failures from this address */
    THROTTLE_BLOCK_USER,   /* too many failures against this user */
};

/* counted: the attempt was counted (false: Redis unavailable). */
typedef void throttle_cb(enum throttle_verdict v, unsigned delay_ms,
                         bool counted, void *arg);

struct throttle *throttle_new(struct rconn *rc, const char *prefix,
                              const struct throttle_conf *tc);
void throttle_set_conf(struct throttle *t, const struct throttle_conf *tc);
void throttle_free(struct throttle *t);

/* Count the attempt and judge it: one round trip; cb always runs, later,
 * on the loop. */
void throttle_check(struct throttle *t, const struct ab_addr *a,
                    const char *user, throttle_cb *cb, void *arg);
/* A wrong password: already counted, unless the check could not count
 * it (fire and forget). */
void throttle_failed(struct throttle *t, const struct ab_addr *a,
                     const char *user, bool counted);
/* A right password: forgive the failures against that user from that
 * address, this attempt's included (fire and forget). */
void throttle_succeeded(struct throttle *t, const struct ab_addr *a,
                        const char *user);
/* The password could not be checked (a temporary failure): take back
 * this attempt only. */
void throttle_unchecked(struct throttle *t, const struct ab_addr *a,
                        const char *user, bool counted);

/* An IPv6 address is counted with its whole /64: one customer's network. */
#define THROTTLE_V6_PREFIX 64

/* The keys of an address's and a user's counts (the admin command reads
 * them): "<prefix>fail:<addr, IPv6 its /64>", "<prefix>failuser:<user>". */
void throttle_addr_key(const char *prefix, const struct ab_addr *a,
                       char *out, size_t len);
void throttle_user_key(const char *prefix, const char *user, char *out,
                       size_t len);

/* The rule itself (pure, unit-tested), on the failures counted before
 * the attempt at hand. */
enum throttle_verdict throttle_decide(const struct throttle_conf *tc,
                                      long long addr_fails,
                                      long long user_fails,
                                      unsigned *delay_ms);

#endif
