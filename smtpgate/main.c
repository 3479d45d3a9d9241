/*
 * smtpgate: relay decisions from POP3 grants, behind four front doors
 * (an SMTP gate in front of the MTA, a Postfix policy service, WHOSON,
 * a socketmap for Postfix and Sendmail), and grants from Dovecot
 * logins (its auth policy and event posts).
 *
 * Start-up: read and check the configuration (all errors, then refuse),
 * bind, read the user file, drop privileges, connect to Redis (in the
 * background: decisions that need it answer 451 until it is there),
 * serve. SIGHUP reloads the configuration, the TLS certificate, the user
 * file and the sender map; SIGTERM stops accepting, lets commands in
 * progress (a DATA) finish, and closes every session with 421.
 */
#include "smtpgate/counters.h"
#include "smtpgate/decisions.h"
#include "smtpgate/dovecot.h"
#include "smtpgate/downstream.h"
#include "smtpgate/gate.h"
#include "smtpgate/limits.h"
#include "smtpgate/policy.h"
#include "smtpgate/reqconn.h"
#include "smtpgate/sendermap.h"
#include "smtpgate/session.h"
#include "smtpgate/socketmap.h"
#include "smtpgate/whoson.h"

#include "authbridge/auth.h"
#include "authbridge/conf.h"
#include "authbridge/daemon.h"
#include "authbridge/grant.h"
#include "authbridge/listen.h"
#include "authbridge/log.h"
#include "authbridge/notify.h"
#include "authbridge/metrics_http.h"
#include "authbridge/redis.h"
#include "authbridge/throttle.h"
#include "authbridge/tls.h"
#include "authbridge/users.h"
#include "authbridge/util.h"
#include "authbridge/version.h"
#include "authbridge/workers.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONF  "/etc/authbridge/authbridge.conf"

/* What a configuration brings besides the file: loaded and checked
 * together, swapped together. */
struct loaded {
    struct ab_conf *conf;
    SSL_CTX *tls;
    struct sendermap *sendermap;
};

static void loaded_free(struct loaded *l)
{
    if (l->tls)
        SSL_CTX_free(l->tls);
    sendermap_free(l->sendermap);
    conf_free(l->conf);
    memset(l, 0, sizeof(*l));
}

static enum log_dest log_dest_of(const struct smtpgate_conf *sc)
{
    return sc->d.log == LOGTARGET_SYSLOG ? LOG_DEST_SYSLOG : LOG_DEST_STDERR;
}

/* ---- configuration ------------------------------------------------------ */

static void check_users(const struct ab_conf *c, struct conf_errors *errs)
{
    const char *users = c->smtpgate.d.users;
    char err[512];
    struct userdb *db;

    if (users[0] == '\0')
        return;
    if (daemon_check_secret_file(users, err, sizeof(err)) < 0)
        conf_errors_add(errs, "%s: [smtpgate] users: %s", c->path, err);
    else if ((db = userdb_load(users, errs)) != NULL)
        userdb_unref(db);
}

static void check_tls(const struct ab_conf *c, struct conf_errors *errs,
                      SSL_CTX **tls)
{
    const struct daemon_conf *d = &c->smtpgate.d;
    char err[512];

    if (d->tls_cert[0] == '\0')
        return;
    if (daemon_check_secret_file(d->tls_key, err, sizeof(err)) < 0) {
        conf_errors_add(errs, "%s: [smtpgate] tls_key: %s", c->path, err);
        return;
    }
    *tls = tls_server_ctx(d->tls_cert, d->tls_key, err, sizeof(err));
    if (*tls == NULL)
        conf_errors_add(errs, "%s: [smtpgate] TLS: %s", c->path, err);
}

/* The file, then everything it names: users, certificate, sender map. */
static int load_checked(const char *path, struct loaded *l,
                        struct conf_errors *errs)
{
    const struct smtpgate_conf *sc;

    memset(l, 0, sizeof(*l));
    l->conf = conf_load(path, errs);
    if (l->conf == NULL)
        return -1;
    sc = &l->conf->smtpgate;
    conf_require_smtpgate(l->conf, errs);
    if (errs->n == 0) {
        check_users(l->conf, errs);
        check_tls(l->conf, errs, &l->tls);
        if (sc->sender_map[0] != '\0')
            l->sendermap = sendermap_load(sc->sender_map, errs);
    }
    if (errs->n == 0)
        return 0;
    loaded_free(l);
    return -1;
}

/* ---- signals ------------------------------------------------------------- */

static void reload(struct gate *g)
{
    struct conf_errors errs = { 0 };
    struct loaded l;
    const char *users;

    notify_reloading(g->notify);
    if (load_checked(g->conf_path, &l, &errs) == 0) {
        users = l.conf->smtpgate.d.users;
        if (users[0] != '\0' && g->svc.auth == NULL)
            conf_errors_add(&errs, "%s: [smtpgate] users was added: restart "
                            "to enable SMTP AUTH", g->conf_path);
        else if (g->svc.auth != NULL && users[0] != '\0')
            auth_load(g->svc.auth, users, &errs);
    }
    if (errs.n > 0) {
        conf_errors_log(&errs);
        log_err("event=reload_failed keeping=previous");
        metrics_reloaded(false);
        conf_errors_free(&errs);
        loaded_free(&l);
        notify_reloaded(g->notify, false);
        return;
    }
    /* Sessions read the configuration through g at each use, running TLS
     * connections hold their own reference to the old context, and the
     * sender map is only read during a call: all three swap now. */
    if (g->tls)
        SSL_CTX_free(g->tls);
    g->tls = l.tls;
    sendermap_free(g->sendermap);
    g->sendermap = l.sendermap;
    conf_free(g->conf);
    g->conf = l.conf;
    g->sc = &l.conf->smtpgate;
    grant_store_cache_clear(g->svc.grants);
    services_reconfigure(&g->svc, g->conf, &g->sc->d);
    log_set_dest(log_dest_of(g->sc));
    metrics_reloaded(true);
    log_info("event=reloaded conf=%s (listen, redis and grant settings need a "
             "restart)", log_esc(g->conf_path));
    notify_reloaded(g->notify, true);
}

/* STATUS= for the service manager. */
static void status_figures(void *arg, char *buf, size_t len)
{
    const struct gate *g = arg;

    snprintf(buf, len, "%u SMTP session%s, %u policy and %u WHOSON "
             "connections", g->nsessions, g->nsessions == 1 ? "" : "s",
             reqdoor_count(g->policy_door), reqdoor_count(g->whoson_door));
}

static bool all_done(void *arg)
{
    const struct gate *g = arg;

    /* Including what goes to Redis (the last decisions, grants). */
    return g->nsessions == 0 &&
           (g->svc.workers == NULL || workers_busy(g->svc.workers) == 0) &&
           rconn_pending(g->svc.redis) == 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct gate *g = arg;

    (void)what;
    if (sig == SIGHUP) {
        reload(g);
        return;
    }
    if (g->stopping)
        return;
    log_info("event=stopping signal=%d sessions=%u", (int)sig, g->nsessions);
    g->stopping = true;
    notify_stopping(g->notify);
    listeners_free(g->listeners);
    g->listeners = NULL;
    metrics_http_free(g->metrics);
    g->metrics = NULL;
    smtp_session_shutdown_all(g);
    decisions_flush(g->decisions);
    g->stop = daemon_stop_when_idle(g->base, SMTP_SHUTDOWN_GRACE_S * 1000,
                                    all_done, g);
}

/* ---- start-up -------------------------------------------------------------- */

static int add_list(struct gate *g, const struct endpoint_list *l, int kind,
                    listen_accept_fn *fn)
{
    char err[256];

    for (size_t i = 0; i < l->n; i++)
        if (listeners_add(g->listeners, &l->v[i], kind, fn, g, err,
                          sizeof(err)) < 0) {
            log_err("event=startup_failed error=%s", log_esc(err));
            return -1;
        }
    return 0;
}

static int open_metrics(struct gate *g)
{
    const struct endpoint_list *l = &g->sc->d.metrics_listen;
    char err[256];

    if (l->n == 0)
        return 0;
    g->metrics = metrics_http_new(g->base, l, gate_metrics, gate_metrics_n,
                                  err, sizeof(err));
    if (g->metrics != NULL)
        return 0;
    log_err("event=startup_failed error=%s", log_esc(err));
    return -1;
}

static int open_listeners(struct gate *g)
{
    const struct smtpgate_conf *sc = g->sc;

    g->listeners = listeners_new(g->base);
    if (sc->socketmap_listen.n > 0 && sc->sender_binding)
        log_warn("event=socketmap_without_sender_binding (sender_binding "
                 "is on, and a socketmap lookup carries no sender: every "
                 "grant answers NOTFOUND; use policy_listen or the SMTP gate)");
    return open_metrics(g) | add_list(g, &sc->d.listen, GATE_LISTEN_SMTP, smtp_session_accept) |
           add_list(g, &sc->d.listen_tls, GATE_LISTEN_SMTPS,
                    smtp_session_accept) |
           add_list(g, &sc->policy_listen, GATE_LISTEN_POLICY, policy_accept) |
           add_list(g, &sc->whoson_listen, GATE_LISTEN_WHOSON, whoson_accept) |
           add_list(g, &sc->dovecot_listen, GATE_LISTEN_DOVECOT,
                    dovecot_accept) |
           add_list(g, &sc->socketmap_listen, GATE_LISTEN_SOCKETMAP,
                    socketmap_accept);
}

static void free_all(struct gate *g)
{
    /* Order matters: sessions first (those with a pending callback stay
     * until it comes), then the sources of callbacks (workers, Redis),
     * then what the callbacks used. */
    smtp_session_close_all(g);
    listeners_free(g->listeners);
    metrics_http_free(g->metrics);
    services_stop(&g->svc);           /* pending calls end: their owners */
    reqdoor_free(g->policy_door);     /* must still be there */
    reqdoor_free(g->whoson_door);
    socketmap_free(g->socketmap);
    decisions_free(g->decisions);
    dovecot_free(g->dovecot);
    ds_free_all();
    services_free(&g->svc);
    if (g->tls)
        SSL_CTX_free(g->tls);
    sendermap_free(g->sendermap);
    conf_free(g->conf);
    daemon_stop_free(g->stop);
    daemon_signals_free(g->signals);
    log_detach_loop();
    event_base_free(g->base);
}

static int setup(struct gate *g, const struct daemon_opts *o)
{
    char err[256];

    if (o->detach) {
        daemon_detach();
        log_set_dest(LOG_DEST_SYSLOG);
    } else {
        log_set_dest(log_dest_of(g->sc));
    }
    daemon_raise_nofile();
    daemon_tune_malloc();
    g->base = event_base_new();
    if (g->base == NULL)
        return -1;
    log_attach_loop(g->base);
    g->signals = daemon_signals_new(g->base, on_signal, g);
    g->policy_door = policy_door_new();
    g->whoson_door = whoson_door_new();
    if (g->sc->dovecot_listen.n > 0)
        g->dovecot = dovecot_new(g);
    g->socketmap = socketmap_new();
    if (open_listeners(g) < 0 ||
        services_load_users(&g->svc, g->base, &g->sc->d) < 0)
        return -1;
    if (daemon_drop_privileges(g->sc->d.user, err, sizeof(err)) < 0) {
        log_err("event=startup_failed error=%s", log_esc(err));
        return -1;
    }
    services_start(&g->svc, g->base, g->conf, &g->sc->d);
    grant_store_cache(g->svc.grants);
    g->decisions = decisions_new(g->base, g->svc.grants);
    metric_set(&gate_build_info, 1, "smtpgate", AB_VERSION);
    metrics_started();
    return 0;
}

int main(int argc, char **argv)
{
    struct daemon_opts o;
    struct conf_errors errs = { 0 };
    struct gate g;
    struct loaded l;

    daemon_parse_args(argc, argv, "smtpgate", DEFAULT_CONF, &o);
    log_init("smtpgate", LOG_DEST_STDERR, o.verbose);
    if (load_checked(o.conf_path, &l, &errs) < 0) {
        conf_errors_print(&errs);
        conf_errors_free(&errs);
        return 1;
    }
    if (o.test_only) {
        printf("%s: configuration OK\n", o.conf_path);
        loaded_free(&l);
        return 0;
    }
    memset(&g, 0, sizeof(g));
    TAILQ_INIT(&g.sessions);
    g.conf_path = o.conf_path;
    g.conf = l.conf;
    g.sc = &l.conf->smtpgate;
    g.tls = l.tls;
    g.sendermap = l.sendermap;
    if (setup(&g, &o) < 0)
        return 1;
    log_info("event=started smtp=%zu smtps=%zu policy=%zu whoson=%zu "
             "dovecot=%zu metrics=%zu socketmap=%zu downstream=%s redis=%s",
             g.sc->d.listen.n, g.sc->d.listen_tls.n, g.sc->policy_listen.n,
             g.sc->whoson_listen.n, g.sc->dovecot_listen.n,
             g.sc->d.metrics_listen.n, g.sc->socketmap_listen.n,
             g.sc->downstream.family ? g.sc->downstream.text : "none",
             g.conf->redis.sentinels.n ? "sentinel" :
             g.conf->redis.address.text);
    g.notify = notify_new(g.base, status_figures, &g);
    notify_ready_when_known(g.notify, g.svc.redis);
    event_base_dispatch(g.base);
    notify_free(g.notify);
    policy_log_summary();
    socketmap_log_summary(g.socketmap);
    log_info("event=stopped");
    free_all(&g);
    return 0;
}
