/*
 * pop3d: the POP3 server whose logins grant relay rights.
 *
 * Start-up: read and check the configuration (all errors, then refuse),
 * bind (every loop its own listeners), drop privileges, connect to Redis
 * (in the background: logins do not wait for it), serve on [pop3d] loops
 * event loops. SIGHUP reloads the configuration, the TLS certificate and
 * the user file in every loop; SIGTERM stops accepting, lets UPDATEs in
 * progress finish and closes the other sessions without deleting
 * anything. Loop 0, on the main thread, handles the signals and the
 * service manager and tells the others.
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
#include "authbridge/loops.h"
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
#include <pthread.h>
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

/* ---- what the loops share ----------------------------------------------- */

/* A configuration and what it brings, shared by the loops that use it. */
struct pop3d_bundle {
    atomic_int refs;
    struct ab_conf *conf;
    SSL_CTX *tls;
};

struct pop3d_proc {
    const char *conf_path;
    struct loops *loops;
    struct server *srv;            /* one per loop */
    unsigned n;
    struct services_shared sh;     /* users, workers, caps */
    pthread_mutex_t lock;          /* current */
    struct pop3d_bundle *current;  /* what a reload brought last */
    struct notify *notify;         /* NULL unless under systemd */
    struct metrics_http *metrics;  /* loop 0's; NULL without metrics_listen */
    struct daemon_signals *sigs;
};

static struct pop3d_bundle *bundle_new(struct ab_conf *conf, SSL_CTX *tls)
{
    struct pop3d_bundle *b = ab_calloc(1, sizeof(*b));

    atomic_init(&b->refs, 1);
    b->conf = conf;
    b->tls = tls;
    return b;
}

static struct pop3d_bundle *bundle_ref(struct pop3d_bundle *b)
{
    atomic_fetch_add(&b->refs, 1);
    return b;
}

static void bundle_unref(struct pop3d_bundle *b)
{
    if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    if (b->tls)
        SSL_CTX_free(b->tls);
    conf_free(b->conf);
    free(b);
}

/* A loop takes the configuration now in force (on its own thread:
 * sessions read it through srv at each use, and running TLS connections
 * hold their own reference to the old context). */
static void take_current(struct server *srv)
{
    struct pop3d_proc *proc = srv->proc;
    struct pop3d_bundle *old = srv->bundle;

    pthread_mutex_lock(&proc->lock);
    srv->bundle = bundle_ref(proc->current);
    pthread_mutex_unlock(&proc->lock);
    srv->conf = srv->bundle->conf;
    srv->pc = &srv->conf->pop3d;
    srv->tls = srv->bundle->tls;
    bundle_unref(old);
}

/* ---- signals ----------------------------------------------------------- */

static void reload(struct pop3d_proc *proc)
{
    struct server *srv0 = &proc->srv[0];
    struct conf_errors errs = { 0 };
    struct pop3d_bundle *old;
    SSL_CTX *tls;
    struct ab_conf *c;

    notify_reloading(proc->notify);
    c = load_checked(proc->conf_path, &tls, &errs);
    if (c == NULL || auth_load(proc->sh.auth, c->pop3d.d.users, &errs,
                               srv0->svc.port) < 0) {
        conf_errors_log(&errs);
        log_err("event=reload_failed keeping=previous");
        metrics_reloaded(false);
        conf_errors_free(&errs);
        if (tls)
            SSL_CTX_free(tls);
        conf_free(c);
        notify_reloaded(proc->notify, false);
        return;
    }
    pthread_mutex_lock(&proc->lock);
    old = proc->current;
    proc->current = bundle_new(c, tls);
    pthread_mutex_unlock(&proc->lock);
    bundle_unref(old);
    services_reconfigure_shared(&proc->sh, &c->pop3d.d);
    take_current(srv0);
    services_reconfigure(&srv0->svc, srv0->conf);
    loops_broadcast(proc->loops, LOOP_RELOAD);
    log_set_dest(log_dest_of(&c->pop3d));
    warn_short_idle(&c->pop3d);
    metrics_reloaded(true);
    log_info("event=reloaded conf=%s loops=%u (listen, loops, redis and grant "
             "settings need a restart)", log_esc(proc->conf_path), proc->n);
    notify_reloaded(proc->notify, true);
}

/* STATUS= for the service manager: every loop's sessions. */
static void status_figures(void *arg, char *buf, size_t len)
{
    const struct pop3d_proc *proc = arg;
    unsigned n = 0;

    for (unsigned i = 0; i < proc->n; i++)
        n += atomic_load(&proc->srv[i].nsessions);
    snprintf(buf, len, "%u session%s", n, n == 1 ? "" : "s");
}

static bool all_done(void *arg)
{
    const struct server *srv = arg;

    return atomic_load(&srv->nsessions) == 0 &&
           workers_busy(srv->svc.port) == 0;
}

/* One loop stops: no more connections, UPDATEs in progress finish. */
static void loop_stop(struct server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    listeners_free(srv->listeners);
    srv->listeners = NULL;
    session_shutdown_all(srv);
    srv->stop = daemon_stop_when_idle(srv->base, STOP_GRACE_MS, all_done, srv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct pop3d_proc *proc = arg;
    unsigned n = 0;

    (void)what;
    if (sig == SIGHUP) {
        reload(proc);
        return;
    }
    if (proc->srv[0].stopping)
        return;
    for (unsigned i = 0; i < proc->n; i++)
        n += atomic_load(&proc->srv[i].nsessions);
    log_info("event=stopping signal=%d sessions=%u", (int)sig, n);
    notify_stopping(proc->notify);
    metrics_http_free(proc->metrics);
    proc->metrics = NULL;
    loops_broadcast(proc->loops, LOOP_STOP);
    loop_stop(&proc->srv[0]);
}

/* ---- the loops ------------------------------------------------------------ */

static void loop_start(void *ctx)
{
    struct server *srv = ctx;

    log_attach_loop(srv->base);
}

static void loop_command(void *ctx, enum loop_cmd cmd)
{
    struct server *srv = ctx;

    if (cmd == LOOP_RELOAD) {
        take_current(srv);
        services_reconfigure(&srv->svc, srv->conf);
    } else if (cmd == LOOP_STOP) {
        loop_stop(srv);
    }
}

/* On the loop's thread, its loop over: everything it owns. */
static void loop_finish(void *ctx)
{
    struct server *srv = ctx;
    struct pop3d_proc *proc = srv->proc;

    if (srv->loop == 0) {
        notify_free(proc->notify);         /* before its Redis connection */
        proc->notify = NULL;
        metrics_http_free(proc->metrics);
        proc->metrics = NULL;
    }
    daemon_stop_free(srv->stop);
    listeners_free(srv->listeners);
    services_stop(&srv->svc);
    services_free(&srv->svc);
    bundle_unref(srv->bundle);
    srv->bundle = NULL;
    log_detach_loop();
}

static const struct loop_ops pop3d_loop_ops = {
    loop_start, loop_command, loop_finish
};

/* ---- start-up ------------------------------------------------------------ */

static int open_listeners(struct server *srv, enum listen_share share)
{
    const struct daemon_conf *d = &srv->pc->d;
    char err[256];

    srv->listeners = listeners_new(srv->base, share);
    for (size_t i = 0; i < d->listen.n; i++)
        if (listeners_add(srv->listeners, &d->listen.v[i], LISTEN_PLAIN,
                          session_accept, srv, err, sizeof(err)) < 0)
            goto fail;
    for (size_t i = 0; i < d->listen_tls.n; i++)
        if (listeners_add(srv->listeners, &d->listen_tls.v[i], LISTEN_TLS,
                          session_accept, srv, err, sizeof(err)) < 0)
            goto fail;
    return 0;
fail:
    log_err("event=startup_failed error=%s", log_esc(err));
    return -1;
}

static int open_metrics(struct pop3d_proc *proc)
{
    const struct daemon_conf *d = &proc->current->conf->pop3d.d;
    char err[256];

    if (d->metrics_listen.n == 0)
        return 0;
    proc->metrics = metrics_http_new(proc->srv[0].base, &d->metrics_listen,
                                     pop3_metrics, pop3_metrics_n, err,
                                     sizeof(err));
    if (proc->metrics != NULL)
        return 0;
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

/* Every loop's own state and listeners, bound before privileges go. */
static int setup_loops(struct pop3d_proc *proc, const char *hostname)
{
    for (unsigned i = 0; i < proc->n; i++) {
        struct server *srv = &proc->srv[i];
        enum listen_share share = proc->n == 1 ? LISTEN_ALONE :
                                  i == 0 ? LISTEN_SHARED_FIRST : LISTEN_SHARED;
        srv->proc = proc;
        srv->loop = i;
        srv->base = loops_base(proc->loops, i);
        TAILQ_INIT(&srv->sessions);
        atomic_init(&srv->nsessions, 0);
        snprintf(srv->hostname, sizeof(srv->hostname), "%s", hostname);
        srv->pid = (long)getpid();
        take_current(srv);
        loops_set(proc->loops, i, &pop3d_loop_ops, srv);
        if (open_listeners(srv, share) < 0)
            return -1;
    }
    return open_metrics(proc);
}

static void start_services(struct pop3d_proc *proc)
{
    const struct ab_conf *c = proc->current->conf;

    services_start_shared(&proc->sh, &c->pop3d.d);
    for (unsigned i = 0; i < proc->n; i++)
        services_start(&proc->srv[i].svc, &proc->sh, proc->srv[i].base, c,
                       &c->pop3d.d);
}

static void proc_free(struct pop3d_proc *proc)
{
    daemon_signals_free(proc->sigs);
    services_free_shared(&proc->sh);
    bundle_unref(proc->current);
    loops_free(proc->loops);
    pthread_mutex_destroy(&proc->lock);
    free(proc->srv);
}

int main(int argc, char **argv)
{
    struct daemon_opts o;
    struct conf_errors errs = { 0 };
    struct pop3d_proc proc;
    const struct pop3d_conf *pc;
    struct ab_conf *conf;
    SSL_CTX *tls;
    char err[256], listening[512], hostname[256];

    daemon_parse_args(argc, argv, "pop3d", DEFAULT_CONF, &o);
    log_init("pop3d", LOG_DEST_STDERR, o.verbose);
    conf = load_checked(o.conf_path, &tls, &errs);
    if (conf == NULL) {
        conf_errors_print(&errs);
        conf_errors_free(&errs);
        return 1;
    }
    if (o.test_only) {
        printf("%s: configuration OK\n", o.conf_path);
        if (tls)
            SSL_CTX_free(tls);
        conf_free(conf);
        return 0;
    }
    pc = &conf->pop3d;
    if (o.detach) {
        daemon_detach();
        log_set_dest(LOG_DEST_SYSLOG);
    } else {
        log_set_dest(log_dest_of(pc));
    }
    daemon_raise_nofile();
    daemon_tune_malloc();
    if (gethostname(hostname, sizeof(hostname) - 1) < 0)
        strcpy(hostname, "localhost");
    hostname[sizeof(hostname) - 1] = '\0';
    maildir_set_hostname(hostname);

    memset(&proc, 0, sizeof(proc));
    pthread_mutex_init(&proc.lock, NULL);
    proc.conf_path = o.conf_path;
    proc.current = bundle_new(conf, tls);
    proc.n = loops_count(pc->d.loops);
    proc.loops = loops_new(proc.n);
    proc.srv = ab_calloc(proc.n, sizeof(*proc.srv));
    /* Signals first: one sent as soon as a port accepts is handled. */
    proc.sigs = daemon_signals_new(loops_base(proc.loops, 0), on_signal, &proc);
    if (setup_loops(&proc, hostname) < 0 ||
        services_load_users(&proc.sh, &pc->d) < 0)
        return 1;
    if (daemon_drop_privileges(pc->d.user, err, sizeof(err)) < 0) {
        log_err("event=startup_failed error=%s", log_esc(err));
        return 1;
    }
    start_services(&proc);
    metric_set(&pop3_build_info, 1, "pop3d", AB_VERSION);
    metrics_started();
    warn_short_idle(pc);
    listen_text(&pc->d, listening, sizeof(listening));
    log_info("event=started listen=%s users=%s redis=%s loops=%u", listening,
             log_esc(pc->d.users), conf->redis.sentinels.n ? "sentinel" :
             conf->redis.address.text, proc.n);
    proc.notify = notify_new(proc.srv[0].base, status_figures, &proc);
    notify_ready_when_known(proc.notify, proc.srv[0].svc.redis);
    loops_run(proc.loops);

    log_info("event=stopped");
    proc_free(&proc);
    return 0;
}
