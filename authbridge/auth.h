/*
 * Asynchronous password checks for pop3d and smtpgate: the user file,
 * checked on the worker pool, optionally with a short-lived cache of
 * verified credentials.
 *
 * The cache (auth_cache_ttl > 0, off by default) remembers a successful
 * check for that many seconds under HMAC-SHA256(random per-process key,
 * user NUL password): never the password itself. Only successes are cached,
 * so a wrong guess always costs a full hash. Any reload of the user file
 * empties it.
 */
#ifndef AB_AUTH_H
#define AB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "users.h"

struct event_base;
struct conf_errors;
struct workers;
struct workers_port;
struct auth;

/* A copy of what a session needs once logged in. */
struct auth_user {
    char *name;
    char *home;
    uid_t uid;
    gid_t gid;
    bool cached;           /* the credential cache vouched, no hash ran */
};

/*
 * Runs on the worker after a successful check, with the user: for work
 * that belongs to the login (open the mailbox) and would otherwise cost a
 * second trip through the pool.
 */
typedef void auth_then_fn(const struct auth_user *u, void *then_arg);
/* Runs on the loop; u is NULL unless AUTH_OK and valid during the call. */
typedef void auth_done_cb(enum auth_result r, const struct auth_user *u,
                          void *arg);

/* One per process, shared by its loops (thread-safe). */
struct auth *auth_new(unsigned cache_ttl);
void auth_free(struct auth *a);

/* Load or reload the user file; on error the old one stays. A file with
 * a crypt class not seen before takes effect once a worker has measured
 * what it costs (the dummy check of unknown users must cost as much as
 * the costliest user's); at start-up, before the workers, that is done
 * at once. */
int auth_load(struct auth *a, const char *path, struct conf_errors *errs,
              struct workers_port *port);
/* Reload if the file changed (checked at most once a second). */
void auth_maybe_reload(struct auth *a, struct workers_port *port);
void auth_set_cache_ttl(struct auth *a, unsigned seconds);
bool auth_has_plain(struct auth *a);

/* The callback always runs, later, on the loop of port (the caller's:
 * the password is checked on the workers behind it). */
void auth_check_pass(struct auth *a, struct workers_port *port,
                     const char *user, const char *pass, size_t passlen,
                     auth_then_fn *then, void *then_arg, auth_done_cb *cb,
                     void *arg);
void auth_check_apop(struct auth *a, struct workers_port *port,
                     const char *user, const char *timestamp,
                     const char *digest, auth_then_fn *then, void *then_arg,
                     auth_done_cb *cb, void *arg);

#endif
