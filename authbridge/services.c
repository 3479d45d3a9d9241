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

int services_load_users(struct services *sv, struct event_base *base,
                        const struct daemon_conf *d)
{
    struct conf_errors errs = { 0 };

    if (d->users[0] == '\0')
        return 0;
    sv->auth = auth_new(base, d->auth_cache_ttl);
    if (auth_load(sv->auth, d->users, &errs) == 0)
        return 0;
    conf_errors_log(&errs);
    conf_errors_free(&errs);
    return -1;
}

void services_start(struct services *sv, struct event_base *base,
                    const struct ab_conf *c, const struct daemon_conf *d)
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
    if (sv->auth != NULL) {
        sv->workers = workers_new(base, d->worker_threads);
        auth_set_workers(sv->auth, sv->workers);
    }
    sv->cap = conncap_new(d->max_connections, d->max_connections_per_addr);
}

void services_reconfigure(struct services *sv, const struct ab_conf *c,
                          const struct daemon_conf *d)
{
    conncap_set_limits(sv->cap, d->max_connections,
                       d->max_connections_per_addr);
    throttle_set_conf(sv->throttle, &c->throttle);
    if (sv->auth != NULL)
        auth_set_cache_ttl(sv->auth, d->auth_cache_ttl);
}

void services_stop(struct services *sv)
{
    workers_free(sv->workers);
    sv->workers = NULL;
    rconn_free(sv->redis);
    sv->redis = NULL;
    grant_store_stop(sv->grants);
}

void services_free(struct services *sv)
{
    auth_free(sv->auth);
    grant_store_free(sv->grants);
    throttle_free(sv->throttle);
    conncap_free(sv->cap);
    sv->auth = NULL;
    sv->grants = NULL;
    sv->throttle = NULL;
    sv->cap = NULL;
}
