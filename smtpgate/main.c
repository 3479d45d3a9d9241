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
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONF  "/etc/authbridge/authbridge.conf"

/* What a configuration brings besides the file: loaded and checked
 * together, swapped together, shared by the loops that use it. */
struct loaded {
    struct ab_conf *conf;
    SSL_CTX *tls;
    struct sendermap *sendermap;
};

struct gate_bundle {
    atomic_int refs;
    struct loaded l;
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

/* ---- what the loops share ----------------------------------------------- */

struct gate_proc {
    const char *conf_path;
    struct loops *loops;
    struct gate *g;                    /* one per loop */
    unsigned n;
    struct services_shared sh;         /* users, workers, SMTP caps */
    /* Each door's caps, shared by its instance on every loop. */
    struct conncap *policy_cap, *whoson_cap, *socketmap_cap, *dovecot_cap;
    pthread_mutex_t lock;              /* current */
    struct gate_bundle *current;       /* what a reload brought last */
    struct notify *notify;             /* NULL unless under systemd */
    struct metrics_http *metrics;      /* loop 0's; NULL without metrics_listen */
    struct daemon_signals *sigs;
};

static struct gate_bundle *bundle_new(const struct loaded *l)
{
    struct gate_bundle *b = ab_calloc(1, sizeof(*b));

    atomic_init(&b->refs, 1);
    b->l = *l;
    return b;
}

static struct gate_bundle *bundle_ref(struct gate_bundle *b)
{
    atomic_fetch_add(&b->refs, 1);
    return b;
}

static void bundle_unref(struct gate_bundle *b)
{
    if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    loaded_free(&b->l);
    free(b);
}

/* A loop takes the configuration now in force (on its own thread:
 * sessions read it through g at each use, running TLS connections hold
 * their own reference to the old context, and the sender map is only
 * read during a call). */
static void take_current(struct gate *g)
{
    struct gate_proc *proc = g->proc;
    struct gate_bundle *old = g->bundle;

    pthread_mutex_lock(&proc->lock);
    g->bundle = bundle_ref(proc->current);
    pthread_mutex_unlock(&proc->lock);
    g->conf = g->bundle->l.conf;
    g->sc = &g->conf->smtpgate;
    g->tls = g->bundle->l.tls;
    g->sendermap = g->bundle->l.sendermap;
    bundle_unref(old);
}

/* A loop applies a reload: the configuration, its throttle, its cache. */
static void loop_reloaded(struct gate *g)
{
    take_current(g);
    grant_store_cache_clear(g->svc.grants);
    services_reconfigure(&g->svc, g->conf);
}

/* ---- signals ------------------------------------------------------------- */

static void reload(struct gate_proc *proc)
{
    struct gate *g0 = &proc->g[0];
    struct conf_errors errs = { 0 };
    struct gate_bundle *old;
    struct loaded l;
    const char *users;

    notify_reloading(proc->notify);
    if (load_checked(proc->conf_path, &l, &errs) == 0) {
        users = l.conf->smtpgate.d.users;
        if (users[0] != '\0' && proc->sh.auth == NULL)
            conf_errors_add(&errs, "%s: [smtpgate] users was added: restart "
                            "to enable SMTP AUTH", proc->conf_path);
        else if (proc->sh.auth != NULL && users[0] != '\0')
            auth_load(proc->sh.auth, users, &errs, g0->svc.port);
    }
    if (errs.n > 0) {
        conf_errors_log(&errs);
        log_err("event=reload_failed keeping=previous");
        metrics_reloaded(false);
        conf_errors_free(&errs);
        loaded_free(&l);
        notify_reloaded(proc->notify, false);
        return;
    }
    pthread_mutex_lock(&proc->lock);
    old = proc->current;
    proc->current = bundle_new(&l);
    pthread_mutex_unlock(&proc->lock);
    bundle_unref(old);
    services_reconfigure_shared(&proc->sh, &l.conf->smtpgate.d);
    loop_reloaded(g0);
    loops_broadcast(proc->loops, LOOP_RELOAD);
    log_set_dest(log_dest_of(g0->sc));
    metrics_reloaded(true);
    log_info("event=reloaded conf=%s loops=%u (listen, loops, redis and grant "
             "settings need a restart)", log_esc(proc->conf_path), proc->n);
    notify_reloaded(proc->notify, true);
}

static unsigned sessions_of(const struct gate_proc *proc)
{
    unsigned n = 0;

    for (unsigned i = 0; i < proc->n; i++)
        n += atomic_load(&proc->g[i].nsessions);
    return n;
}

/* STATUS= for the service manager: every loop's. */
static void status_figures(void *arg, char *buf, size_t len)
{
    const struct gate_proc *proc = arg;
    unsigned n = sessions_of(proc);

    snprintf(buf, len, "%u SMTP session%s, %u policy and %u WHOSON "
             "connections", n, n == 1 ? "" : "s",
             conncap_total(proc->policy_cap), conncap_total(proc->whoson_cap));
}

static bool all_done(void *arg)
{
    const struct gate *g = arg;

    /* Including what goes to Redis (the last decisions, grants). */
    return atomic_load(&g->nsessions) == 0 &&
           workers_busy(g->svc.port) == 0 &&
           rconn_pending(g->svc.redis) == 0;
}

/* One loop stops: no more connections, commands in progress (a DATA)
 * finish, every session gets 421, the last decisions are written. */
static void loop_stop(struct gate *g)
{
    if (g->stopping)
        return;
    g->stopping = true;
    listeners_free(g->listeners);
    g->listeners = NULL;
    smtp_session_shutdown_all(g);
    decisions_flush(g->decisions);
    g->stop = daemon_stop_when_idle(g->base, SMTP_SHUTDOWN_GRACE_S * 1000,
                                    all_done, g);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct gate_proc *proc = arg;

    (void)what;
    if (sig == SIGHUP) {
        reload(proc);
        return;
    }
    if (proc->g[0].stopping)
        return;
    log_info("event=stopping signal=%d sessions=%u", (int)sig,
             sessions_of(proc));
    notify_stopping(proc->notify);
    metrics_http_free(proc->metrics);
    proc->metrics = NULL;
    loops_broadcast(proc->loops, LOOP_STOP);
    loop_stop(&proc->g[0]);
}

/* ---- the loops ------------------------------------------------------------ */

static void loop_start(void *ctx)
{
    struct gate *g = ctx;

    log_attach_loop(g->base);
}

static void loop_command(void *ctx, enum loop_cmd cmd)
{
    struct gate *g = ctx;

    if (cmd == LOOP_RELOAD)
        loop_reloaded(g);
    else if (cmd == LOOP_STOP)
        loop_stop(g);
}

/* On the loop's thread, its loop over: everything it owns. Order
 * matters: sessions first (those with a pending callback stay until it
 * comes), then the sources of callbacks (workers, Redis), then what the
 * callbacks used. */
static void loop_finish(void *ctx)
{
    struct gate *g = ctx;
    struct gate_proc *proc = g->proc;

    if (g->loop == 0) {
        notify_free(proc->notify);         /* before its Redis connection */
        proc->notify = NULL;
        metrics_http_free(proc->metrics);
        proc->metrics = NULL;
    }
    policy_log_summary();
    socketmap_log_summary(g->socketmap);
    smtp_session_close_all(g);
    listeners_free(g->listeners);
    g->listeners = NULL;
    services_stop(&g->svc);            /* pending calls end: their owners */
    reqdoor_free(g->policy_door);      /* must still be there */
    reqdoor_free(g->whoson_door);
    socketmap_free(g->socketmap);
    decisions_free(g->decisions);
    dovecot_free(g->dovecot);
    ds_free_all();
    services_free(&g->svc);
    daemon_stop_free(g->stop);
    bundle_unref(g->bundle);
    g->bundle = NULL;
    log_detach_loop();
}

static const struct loop_ops gate_loop_ops = {
    loop_start, loop_command, loop_finish
};

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

static int open_metrics(struct gate_proc *proc)
{
    const struct endpoint_list *l = &proc->g[0].sc->d.metrics_listen;
    char err[256];

    if (l->n == 0)
        return 0;
    proc->metrics = metrics_http_new(proc->g[0].base, l, gate_metrics,
                                     gate_metrics_n, err, sizeof(err));
    if (proc->metrics != NULL)
        return 0;
    log_err("event=startup_failed error=%s", log_esc(err));
    return -1;
}

static int open_listeners(struct gate *g, enum listen_share share)
{
    const struct smtpgate_conf *sc = g->sc;

    g->listeners = listeners_new(g->base, share);
    return add_list(g, &sc->d.listen, GATE_LISTEN_SMTP, smtp_session_accept) |
           add_list(g, &sc->d.listen_tls, GATE_LISTEN_SMTPS,
                    smtp_session_accept) |
           add_list(g, &sc->policy_listen, GATE_LISTEN_POLICY, policy_accept) |
           add_list(g, &sc->whoson_listen, GATE_LISTEN_WHOSON, whoson_accept) |
           add_list(g, &sc->dovecot_listen, GATE_LISTEN_DOVECOT,
                    dovecot_accept) |
           add_list(g, &sc->socketmap_listen, GATE_LISTEN_SOCKETMAP,
                    socketmap_accept);
}

/* Every loop's own state, doors and listeners, bound before privileges
 * go. */
static int setup_loops(struct gate_proc *proc)
{
    for (unsigned i = 0; i < proc->n; i++) {
        struct gate *g = &proc->g[i];
        enum listen_share share = proc->n == 1 ? LISTEN_ALONE :
                                  i == 0 ? LISTEN_SHARED_FIRST : LISTEN_SHARED;
        g->proc = proc;
        g->loop = i;
        g->base = loops_base(proc->loops, i);
        TAILQ_INIT(&g->sessions);
        atomic_init(&g->nsessions, 0);
        take_current(g);
        g->policy_door = policy_door_new(proc->policy_cap);
        g->whoson_door = whoson_door_new(proc->whoson_cap);
        if (g->sc->dovecot_listen.n > 0)
            g->dovecot = dovecot_new(g, proc->dovecot_cap);
        g->socketmap = socketmap_new(proc->socketmap_cap);
        loops_set(proc->loops, i, &gate_loop_ops, g);
        if (open_listeners(g, share) < 0)
            return -1;
    }
    return open_metrics(proc);
}

static void door_caps_new(struct gate_proc *proc)
{
    proc->policy_cap = conncap_new(POLICY_CONNS_MAX,
                                   POLICY_CONNS_PER_ADDR_MAX);
    proc->whoson_cap = conncap_new(WHOSON_CONNS_MAX,
                                   WHOSON_CONNS_PER_ADDR_MAX);
    proc->socketmap_cap = conncap_new(SOCKETMAP_CONNS_MAX,
                                      SOCKETMAP_CONNS_PER_ADDR_MAX);
    proc->dovecot_cap = conncap_new(DOVECOT_CONNS_MAX,
                                    DOVECOT_CONNS_PER_ADDR_MAX);
}

static void start_services(struct gate_proc *proc)
{
    const struct ab_conf *c = proc->current->l.conf;

    services_start_shared(&proc->sh, &c->smtpgate.d);
    for (unsigned i = 0; i < proc->n; i++) {
        struct gate *g = &proc->g[i];
        services_start(&g->svc, &proc->sh, g->base, c, &c->smtpgate.d);
        grant_store_cache(g->svc.grants);
        g->decisions = decisions_new(g->base, g->svc.grants);
    }
}

static void proc_free(struct gate_proc *proc)
{
    daemon_signals_free(proc->sigs);
    services_free_shared(&proc->sh);
    conncap_free(proc->policy_cap);
    conncap_free(proc->whoson_cap);
    conncap_free(proc->socketmap_cap);
    conncap_free(proc->dovecot_cap);
    bundle_unref(proc->current);
    loops_free(proc->loops);
    pthread_mutex_destroy(&proc->lock);
    free(proc->g);
}

static void log_started(const struct gate_proc *proc)
{
    const struct ab_conf *c = proc->current->l.conf;
    const struct smtpgate_conf *sc = &c->smtpgate;

    log_info("event=started smtp=%zu smtps=%zu policy=%zu whoson=%zu "
             "dovecot=%zu metrics=%zu socketmap=%zu downstream=%s redis=%s "
             "loops=%u", sc->d.listen.n, sc->d.listen_tls.n,
             sc->policy_listen.n, sc->whoson_listen.n, sc->dovecot_listen.n,
             sc->d.metrics_listen.n, sc->socketmap_listen.n,
             sc->downstream.family ? sc->downstream.text : "none",
             c->redis.sentinels.n ? "sentinel" : c->redis.address.text,
             proc->n);
}

int main(int argc, char **argv)
{
    struct daemon_opts o;
    struct conf_errors errs = { 0 };
    struct gate_proc proc;
    const struct smtpgate_conf *sc;
    struct loaded l;
    char err[256];

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
    sc = &l.conf->smtpgate;
    if (o.detach) {
        daemon_detach();
        log_set_dest(LOG_DEST_SYSLOG);
    } else {
        log_set_dest(log_dest_of(sc));
    }
    daemon_raise_nofile();
    daemon_tune_malloc();
    if (sc->socketmap_listen.n > 0 && sc->sender_binding)
        log_warn("event=socketmap_without_sender_binding (sender_binding "
                 "is on, and a socketmap lookup carries no sender: every "
                 "grant answers NOTFOUND; use policy_listen or the SMTP gate)");

    memset(&proc, 0, sizeof(proc));
    pthread_mutex_init(&proc.lock, NULL);
    proc.conf_path = o.conf_path;
    proc.current = bundle_new(&l);
    proc.n = loops_count(sc->d.loops);
    proc.loops = loops_new(proc.n);
    proc.g = ab_calloc(proc.n, sizeof(*proc.g));
    door_caps_new(&proc);
    /* Signals first: one sent as soon as a port accepts is handled. */
    proc.sigs = daemon_signals_new(loops_base(proc.loops, 0), on_signal, &proc);
    if (setup_loops(&proc) < 0 || services_load_users(&proc.sh, &sc->d) < 0)
        return 1;
    if (daemon_drop_privileges(sc->d.user, err, sizeof(err)) < 0) {
        log_err("event=startup_failed error=%s", log_esc(err));
        return 1;
    }
    start_services(&proc);
    metric_set(&gate_build_info, 1, "smtpgate", AB_VERSION);
    metrics_started();
    log_started(&proc);
    proc.notify = notify_new(proc.g[0].base, status_figures, &proc);
    notify_ready_when_known(proc.notify, proc.g[0].svc.redis);
    loops_run(proc.loops);

    log_info("event=stopped");
    proc_free(&proc);
    return 0;
}
