/*
 * What pop3d and smtpgate both run on: the Redis connection, the grant
 * store, the failed-login throttle, the connection caps, and, with a user
 * file, the password workers and the user database. One set of calls
 * starts, reconfigures (SIGHUP) and ends them in the same order in both.
 *
 * A process has one shared set (the user file and its credential cache,
 * the worker pool, the connection caps: exact across loops) and, per
 * event loop, its own Redis connection, grant store and throttle, and
 * its port into the workers.
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
struct workers_port;

struct services_shared {
    struct auth *auth;             /* NULL without a user file */
    struct workers *workers;       /* NULL without a user file */
    struct conncap *cap;
};

/* One loop's. The shared ones are borrowed. */
struct services {
    struct rconn *redis;
    struct grant_store *grants;
    struct throttle *throttle;
    struct workers_port *port;     /* NULL without a user file */
    struct auth *auth;             /* = the shared set's */
    struct conncap *cap;           /* = the shared set's */
};

/* Before dropping privileges (the user file may be root's only): load
 * d->users, if set. -1 with the errors logged. */
int services_load_users(struct services_shared *sh,
                        const struct daemon_conf *d);

/* After dropping privileges: the workers and the caps. */
void services_start_shared(struct services_shared *sh,
                           const struct daemon_conf *d);

/* One loop's, on its base (from any thread, before the loop runs). */
void services_start(struct services *sv, struct services_shared *sh,
                    struct event_base *base, const struct ab_conf *c,
                    const struct daemon_conf *d);

/* SIGHUP, with the new configuration already checked: the caps and the
 * credential cache's lifetime (once), the throttle (each loop). */
void services_reconfigure_shared(struct services_shared *sh,
                                 const struct daemon_conf *d);
void services_reconfigure(struct services *sv, const struct ab_conf *c);

/* At a loop's end, on its thread, in two steps: first the sources of
 * callbacks (its workers' port, then Redis, which completes its pending
 * calls), while their receivers still exist; then what those callbacks
 * used. */
void services_stop(struct services *sv);
void services_free(struct services *sv);

/* After every loop's end. */
void services_free_shared(struct services_shared *sh);

#endif
