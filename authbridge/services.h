/*
 * What pop3d and smtpgate both run on: the Redis connection, the grant
 * store, the failed-login throttle, the connection caps, and, with a user
 * file, the password workers and the user database. One set of calls
 * starts, reconfigures (SIGHUP) and ends them in the same order in both.
 */
#ifndef AB_SERVICES_H
#define AB_SERVICES_H

struct ab_conf;
struct auth;
struct conncap;
struct daemon_conf;
struct event_base;
struct grant_store;
struct rconn;
struct throttle;
struct workers;

struct services {
    struct rconn *redis;
    struct grant_store *grants;
    struct throttle *throttle;
    struct conncap *cap;
    struct auth *auth;             /* NULL without a user file */
    struct workers *workers;       /* NULL without a user file */
};

/* Before dropping privileges (the user file may be root's only): load
 * d->users, if set. -1 with the errors logged. */
int services_load_users(struct services *sv, struct event_base *base,
                        const struct daemon_conf *d);

/* After dropping privileges: everything else. */
void services_start(struct services *sv, struct event_base *base,
                    const struct ab_conf *c, const struct daemon_conf *d);

/* SIGHUP, with the new configuration already checked: caps, throttle
 * thresholds, the credential cache's lifetime. */
void services_reconfigure(struct services *sv, const struct ab_conf *c,
                          const struct daemon_conf *d);

/* At exit, in two steps: first the sources of callbacks (workers, then
 * Redis, which completes its pending calls), while their receivers still
 * exist; then what those callbacks used. */
void services_stop(struct services *sv);
void services_free(struct services *sv);

#endif
