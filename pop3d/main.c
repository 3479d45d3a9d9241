/*
 * pop3d: the POP3 server whose logins grant relay rights.
 *
 * Start-up: read and check the configuration (all errors, then refuse),
 * bind, drop privileges, connect to Redis (in the background: logins do
 * not wait for it), serve. SIGHUP reloads the configuration, the TLS
 * certificate and the user file; SIGTERM stops accepting, lets UPDATEs in
 * progress finish and closes the other sessions without deleting anything.
 */
#include "pop3d/counters.h"
#include "pop3d/maildir.h"
#include "pop3d/server.h"
#include "pop3d/session.h"

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
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONF   "/etc/authbridge/authbridge.conf"
#define STOP_GRACE_MS  10000   /* UPDATEs in progress get this long */

static enum log_dest log_dest_of(const struct pop3d_conf *pc)
{
    return pc->d.log == LOGTARGET_SYSLOG ? LOG_DEST_SYSLOG : LOG_DEST_STDERR;
}

/* Everything -t checks beyond the file's syntax: the files it names. */
static void check_files(const struct ab_conf *c, struct conf_errors *errs,
                        SSL_CTX **tls_out)
{
    const struct daemon_conf *d = &c->pop3d.d;
    char err[512];
    struct userdb *db;

    conf_require_pop3d(c, errs);
    if (errs->n > 0)
        return;
    if (daemon_check_secret_file(d->users, err, sizeof(err)) < 0)
        conf_errors_add(errs, "%s: [pop3d] users: %s", c->path, err);
    else if ((db = userdb_load(d->users, errs)) != NULL)
        userdb_unref(db);
    if (d->tls_cert[0] == '\0')
        return;
    if (daemon_check_secret_file(d->tls_key, err, sizeof(err)) < 0) {
        conf_errors_add(errs, "%s: [pop3d] tls_key: %s", c->path, err);
        return;
    }
    *tls_out = tls_server_ctx(d->tls_cert, d->tls_key, err, sizeof(err));
    if (*tls_out == NULL)
        conf_errors_add(errs, "%s: [pop3d] TLS: %s", c->path, err);
}

static struct ab_conf *load_checked(const char *path, SSL_CTX **tls,
                                    struct conf_errors *errs)
{
    struct ab_conf *c = conf_load(path, errs);

    *tls = NULL;
    if (c == NULL)
        return NULL;
    check_files(c, errs, tls);
    if (errs->n == 0)
        return c;
    if (*tls)
        SSL_CTX_free(*tls);
    *tls = NULL;
    conf_free(c);
    return NULL;
}

static void warn_short_idle(const struct pop3d_conf *pc)
{
    if (pc->idle_timeout < POP3_IDLE_RFC_MIN)
        log_warn("event=config_warning msg=\"idle_timeout %u is below RFC "
                 "1939's 10 minutes\"", pc->idle_timeout);
}

/* ---- signals ----------------------------------------------------------- */

static void reload(struct server *srv)
{
    struct conf_errors errs = { 0 };
    SSL_CTX *tls;
    struct ab_conf *c;

    notify_reloading(srv->notify);
    c = load_checked(srv->conf_path, &tls, &errs);
    if (c == NULL || auth_load(srv->svc.auth, c->pop3d.d.users, &errs) < 0) {
        conf_errors_log(&errs);
        log_err("event=reload_failed keeping=previous");
        metrics_reloaded(false);
        conf_errors_free(&errs);
        if (tls)
            SSL_CTX_free(tls);
        conf_free(c);
        notify_reloaded(srv->notify, false);
        return;
    }
    /* Sessions read the configuration through srv at each use and
     * running TLS connections hold their own reference to the old
     * context, so both can be swapped now. */
    if (srv->tls)
        SSL_CTX_free(srv->tls);
    srv->tls = tls;
    conf_free(srv->conf);
    srv->conf = c;
    srv->pc = &c->pop3d;
    services_reconfigure(&srv->svc, c, &srv->pc->d);
    log_set_dest(log_dest_of(srv->pc));
    warn_short_idle(srv->pc);
    metrics_reloaded(true);
    log_info("event=reloaded conf=%s (listen, redis and grant settings need a "
             "restart)", log_esc(srv->conf_path));
    notify_reloaded(srv->notify, true);
}

/* STATUS= for the service manager. */
static void status_figures(void *arg, char *buf, size_t len)
{
    const struct server *srv = arg;

    snprintf(buf, len, "%u session%s", srv->nsessions,
             srv->nsessions == 1 ? "" : "s");
}

static bool all_done(void *arg)
{
    const struct server *srv = arg;

    return srv->nsessions == 0 && workers_busy(srv->svc.workers) == 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;

    (void)what;
    if (sig == SIGHUP) {
        reload(srv);
        return;
    }
    if (srv->stopping)
        return;
    log_info("event=stopping signal=%d sessions=%u", (int)sig, srv->nsessions);
    srv->stopping = true;
    notify_stopping(srv->notify);
    listeners_free(srv->listeners);
    srv->listeners = NULL;
    metrics_http_free(srv->metrics);
    srv->metrics = NULL;
    session_shutdown_all(srv);
    srv->stop = daemon_stop_when_idle(srv->base, STOP_GRACE_MS, all_done, srv);
}

/* ---- start-up ------------------------------------------------------------ */

static int open_listeners(struct server *srv)
{
    const struct daemon_conf *d = &srv->pc->d;
    char err[256];

    srv->listeners = listeners_new(srv->base);
    for (size_t i = 0; i < d->listen.n; i++)
        if (listeners_add(srv->listeners, &d->listen.v[i], LISTEN_PLAIN,
                          session_accept, srv, err, sizeof(err)) < 0)
            goto fail;
    for (size_t i = 0; i < d->listen_tls.n; i++)
        if (listeners_add(srv->listeners, &d->listen_tls.v[i], LISTEN_TLS,
                          session_accept, srv, err, sizeof(err)) < 0)
            goto fail;
    if (d->metrics_listen.n > 0 &&
        (srv->metrics = metrics_http_new(srv->base, &d->metrics_listen,
                                         pop3_metrics, pop3_metrics_n, err,
                                         sizeof(err))) == NULL)
        goto fail;
    return 0;
fail:
    log_err("event=startup_failed error=%s", log_esc(err));
    return -1;
}

static void listen_text(const struct daemon_conf *d, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < d->listen.n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? "," : "",
                              d->listen.v[i].text);
    for (size_t i = 0; i < d->listen_tls.n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s(tls)", o ? "," : "",
                              d->listen_tls.v[i].text);
    for (size_t i = 0; i < d->metrics_listen.n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s(metrics)", o ? "," : "",
                              d->metrics_listen.v[i].text);
}

int main(int argc, char **argv)
{
    struct daemon_opts o;
    struct conf_errors errs = { 0 };
    struct server srv;
    struct daemon_signals *sigs;
    char err[256], listening[512];

    daemon_parse_args(argc, argv, "pop3d", DEFAULT_CONF, &o);
    log_init("pop3d", LOG_DEST_STDERR, o.verbose);
    memset(&srv, 0, sizeof(srv));
    TAILQ_INIT(&srv.sessions);
    srv.conf_path = o.conf_path;
    srv.conf = load_checked(o.conf_path, &srv.tls, &errs);
    if (srv.conf == NULL) {
        conf_errors_print(&errs);
        conf_errors_free(&errs);
        return 1;
    }
    if (o.test_only) {
        printf("%s: configuration OK\n", o.conf_path);
        if (srv.tls)
            SSL_CTX_free(srv.tls);
        conf_free(srv.conf);
        return 0;
    }
    srv.pc = &srv.conf->pop3d;
    if (o.detach) {
        daemon_detach();
        log_set_dest(LOG_DEST_SYSLOG);
    } else {
        log_set_dest(log_dest_of(srv.pc));
    }
    daemon_raise_nofile();
    daemon_tune_malloc();
    if (gethostname(srv.hostname, sizeof(srv.hostname) - 1) < 0)
        strcpy(srv.hostname, "localhost");
    maildir_set_hostname(srv.hostname);
    srv.pid = (long)getpid();
    srv.base = event_base_new();
    if (srv.base == NULL)
        return 1;
    sigs = daemon_signals_new(srv.base, on_signal, &srv);
    if (open_listeners(&srv) < 0 ||
        services_load_users(&srv.svc, srv.base, &srv.pc->d) < 0)
        return 1;
    log_attach_loop(srv.base);
    if (daemon_drop_privileges(srv.pc->d.user, err, sizeof(err)) < 0) {
        log_err("event=startup_failed error=%s", log_esc(err));
        return 1;
    }
    services_start(&srv.svc, srv.base, srv.conf, &srv.pc->d);
    metric_set(&pop3_build_info, 1, "pop3d", AB_VERSION);
    metrics_started();
    warn_short_idle(srv.pc);
    listen_text(&srv.pc->d, listening, sizeof(listening));
    log_info("event=started listen=%s users=%s redis=%s", listening,
             log_esc(srv.pc->d.users), srv.conf->redis.sentinels.n ?
             "sentinel" : srv.conf->redis.address.text);
    srv.notify = notify_new(srv.base, status_figures, &srv);
    notify_ready_when_known(srv.notify, srv.svc.redis);
    event_base_dispatch(srv.base);

    log_info("event=stopped");
    notify_free(srv.notify);
    daemon_signals_free(sigs);
    daemon_stop_free(srv.stop);
    listeners_free(srv.listeners);
    metrics_http_free(srv.metrics);
    services_stop(&srv.svc);
    services_free(&srv.svc);
    if (srv.tls)
        SSL_CTX_free(srv.tls);
    conf_free(srv.conf);
    log_detach_loop();
    event_base_free(srv.base);
    return 0;
}
