#include "services.h"
#include "auth.h"
#include "conf.h"
#include "grant.h"
#include "listen.h"
#include "log.h"
#include "redis.h"
#include "throttle.h"
#include "workers.h"

#include <stddef.h>

int services_load_users(struct services_shared *sh,
                        const struct daemon_conf *d)
{
    struct conf_errors errs = { 0 };

    if (d->users[0] == '\0')
        return 0;
    sh->auth = auth_new(d->auth_cache_ttl);
    if (auth_load(sh->auth, d->users, &errs, NULL) == 0)
        return 0;
    conf_errors_log(&errs);
    conf_errors_free(&errs);
    return -1;
}

void services_start_shared(struct services_shared *sh,
                           const struct daemon_conf *d)
{
    if (sh->auth != NULL)
        sh->workers = workers_new(d->worker_threads);
    sh->cap = conncap_new(d->max_connections, d->max_connections_per_addr);
}

void services_start(struct services *sv, struct services_shared *sh,
                    struct event_base *base, const struct ab_conf *c,
                    const struct daemon_conf *d)
{
    struct grant_settings gs = {
        .prefix = c->redis.prefix, .node = d->node, .ttl = c->grant.ttl,
        .ipv6_prefix = c->grant.ipv6_prefix, .log_maxlen = c->redis.log_maxlen,
        .decisions_maxlen = c->redis.decisions_maxlen,
        .replicas = c->grant.replicas, .timeout_ms = c->redis.timeout_ms,
    };

    sv->redis = rconn_new(base, &c->redis);
    sv->grants = grant_store_new(sv->redis, &gs);
    sv->throttle = throttle_new(sv->redis, c->redis.prefix, &c->throttle);
    if (sh->workers != NULL)
        sv->port = workers_port_new(sh->workers, base);
    sv->auth = sh->auth;
    sv->cap = sh->cap;
}

void services_reconfigure_shared(struct services_shared *sh,
                                 const struct daemon_conf *d)
{
    conncap_set_limits(sh->cap, d->max_connections,
                       d->max_connections_per_addr);
    if (sh->auth != NULL)
        auth_set_cache_ttl(sh->auth, d->auth_cache_ttl);
}

void services_reconfigure(struct services *sv, const struct ab_conf *c)
{
    throttle_set_conf(sv->throttle, &c->throttle);
}

void services_stop(struct services *sv)
{
    workers_port_free(sv->port);
    sv->port = NULL;
    rconn_free(sv->redis);
    sv->redis = NULL;
    grant_store_stop(sv->grants);
}

void services_free(struct services *sv)
{
    grant_store_free(sv->grants);
    throttle_free(sv->throttle);
    sv->grants = NULL;
    sv->throttle = NULL;
}

void services_free_shared(struct services_shared *sh)
{
    workers_free(sh->workers);
    auth_free(sh->auth);
    conncap_free(sh->cap);
    sh->workers = NULL;
    sh->auth = NULL;
    sh->cap = NULL;
}
