/*
 * Failed-login throttling shared by every host, pop3d and smtpgate's AUTH,
 * through Redis:
 *
 *   <prefix>fail:<addr>       failures from that address (IPv6: its /64)
 *   <prefix>failuser:<user>   failures against that user, from anywhere
 *
 * both with TTL [throttle] window, renewed by each failure. Past
 * delay_after failures an address's answers are delayed (delay_ms,
 * doubling, at most max_delay_ms); at block_after the address is refused
 * outright (-ERR [LOGIN-DELAY], 454 4.7.0) without its password being
 * checked; at user_block_after the user is refused the same way from
 * anywhere (distributed guessing). A success clears its address's counter.
 * Without Redis nothing is known and nothing is refused.
 */
#ifndef AB_THROTTLE_H
#define AB_THROTTLE_H

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

/* addr_fails: failures counted for the address (-1: Redis unavailable). */
typedef void throttle_cb(enum throttle_verdict v, unsigned delay_ms,
                         long long addr_fails, void *arg);

struct throttle *throttle_new(struct rconn *rc, const char *prefix,
                              const struct throttle_conf *tc);
void throttle_set_conf(struct throttle *t, const struct throttle_conf *tc);
void throttle_free(struct throttle *t);

/* One round trip (MGET); cb always runs, later, on the loop. */
void throttle_check(struct throttle *t, const struct ab_addr *a,
                    const char *user, throttle_cb *cb, void *arg);
/* Count a failure (fire and forget). */
void throttle_failed(struct throttle *t, const struct ab_addr *a,
                     const char *user);
/* A right password: forget that address's failures. */
void throttle_succeeded(struct throttle *t, const struct ab_addr *a);

/* The rule itself (pure, unit-tested). */
enum throttle_verdict throttle_decide(const struct throttle_conf *tc,
                                      long long addr_fails,
                                      long long user_fails,
                                      unsigned *delay_ms);

#endif
