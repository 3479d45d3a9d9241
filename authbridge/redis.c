#include "redis_int.h"
#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <time.h>


/* ---- the event-loop adapter ------------------------------------------------
 *
 * hiredis 0.14's own libevent adapter re-adds a one-shot read event after
 * every reply and switches write interest on and off for every batch of
 * commands: four epoll_ctl calls per round trip, on the path of every
 * login. This one keeps a persistent read event and writes queued
 * commands directly once the current loop iteration has run its
 * callbacks; it asks epoll for writability only for a partial write or a
 * connect in progress.
 */
struct rio {
    redisAsyncContext *ac;
    struct event *rev, *wev, *flush;
    bool reading, wev_added;
};

/* The rio whose flush is running: a write request during it means hiredis
 * could not write everything. A static, not a field: the flush may end
 * with the context (and this rio) freed. Per thread: each loop flushes
 * its own. */
static _Thread_local struct rio *rio_flushing;

static void rio_read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redisAsyncHandleRead(((struct rio *)arg)->ac);
}

static void rio_write_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redisAsyncHandleWrite(((struct rio *)arg)->ac);
}

static void rio_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rio *io = arg;

    (void)fd;
    (void)what;
    rio_flushing = io;
    redisAsyncHandleWrite(io->ac);
    rio_flushing = NULL;
}

static void rio_add_read(void *p)
{
    struct rio *io = p;

    if (!io->reading) {
        event_add(io->rev, NULL);
        io->reading = true;
    }
}

static void rio_del_read(void *p)
{
    struct rio *io = p;

    if (io->reading) {
        event_del(io->rev);
        io->reading = false;
    }
}

static void rio_add_write(void *p)
{
    struct rio *io = p;

    if (io->wev_added)
        return;
    /* Before the connect completes, writability is how it says so; after a
     * partial write, it is when to go on. Otherwise: write at the end of
     * this loop iteration, with whatever else was queued meanwhile. */
    if (!(io->ac->c.flags & REDIS_CONNECTED) || rio_flushing == io) {
        event_add(io->wev, NULL);
        io->wev_added = true;
        return;
    }
    event_active(io->flush, EV_TIMEOUT, 0);
}

static void rio_del_write(void *p)
{
    struct rio *io = p;

    if (io->wev_added) {
        event_del(io->wev);
        io->wev_added = false;
    }
}

static void rio_cleanup(void *p)
{
    struct rio *io = p;

    if (rio_flushing == io)
        rio_flushing = NULL;
    event_free(io->rev);
    event_free(io->wev);
    event_free(io->flush);
    free(io);
}

void ri_attach(redisAsyncContext *ac, struct event_base *base)
{
    struct rio *io = ab_calloc(1, sizeof(*io));
    int fd = ac->c.fd;

    io->ac = ac;
    io->rev = event_new(base, fd, EV_READ | EV_PERSIST, rio_read_cb, io);
    io->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, rio_write_cb, io);
    io->flush = event_new(base, -1, 0, rio_flush_cb, io);
    ac->ev.data = io;
    ac->ev.addRead = rio_add_read;
    ac->ev.delRead = rio_del_read;
    ac->ev.addWrite = rio_add_write;
    ac->ev.delWrite = rio_del_write;
    ac->ev.cleanup = rio_cleanup;
    rio_add_read(io);
    rio_add_write(io);            /* writable = connected */
}


bool ri_sentinel_mode(const struct rconn *rc)
{
    return rc->nsentinels > 0;
}

const char *ri_target_text(const struct rconn *rc, char *buf, size_t len)
{
    if (ri_sentinel_mode(rc))
        snprintf(buf, len, "%s:%u(master %s)", rc->master_host, rc->master_port,
                 rc->master_name);
    else
        snprintf(buf, len, "%s", rc->address.text);
    return buf;
}

void ri_arm_ms(struct event *ev, unsigned ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(ev, &tv);
}

/* ---- requests ---------------------------------------------------------- */

/* Finer than ab_now_ms(): a pipelined request on loopback takes some
 * tens of microseconds. */
static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void arm_deadline(struct rconn *rc)
{
    struct rreq *head = TAILQ_FIRST(&rc->pending);
    uint64_t now = ab_now_ms();

    if (head == NULL || evtimer_pending(rc->deadline_ev, NULL))
        return;
    ri_arm_ms(rc->deadline_ev, head->deadline > now ?
                            (unsigned)(head->deadline - now) : 0);
}

/* A Redis error is logged and, for callers, "unavailable". Some errors
 * mean we are talking to the wrong server: go and find the master. */
static void reply_error(struct rconn *rc, const redisReply *r)
{
    static _Thread_local uint64_t last_log;      /* per loop: its connection */
    uint64_t now = ab_now_ms();

    if (now - last_log > 1000 || last_log == 0) {
        log_err("event=redis_error reply=%s", log_escn(r->str, r->len));
        last_log = now;
    }
    if (strncmp(r->str, "READONLY", 8) == 0 ||
        strncmp(r->str, "MASTERDOWN", 10) == 0 ||
        strncmp(r->str, "LOADING", 7) == 0 ||
        strncmp(r->str, "NOAUTH", 6) == 0)
        ri_drop(rc, "server cannot take writes");
}

static void req_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rreq *q = priv;
    struct rconn *rc = q->rc;
    redisReply *r = reply;

    (void)ac;
    TAILQ_REMOVE(&rc->pending, q, link);
    rc->npending--;
    if (r != NULL)
        metric_observe(&metric_redis_latency,
                       (double)(now_ns() - q->sent_ns) / 1e9);
    else
        metric_inc(&metric_redis_errors, q->timed_out ? "timeout" :
                   "unavailable", NULL);
    if (r != NULL && r->type == REDIS_REPLY_ERROR && !q->raw_errors) {
        metric_inc(&metric_redis_errors, "reply", NULL);
        reply_error(rc, r);
        r = NULL;
    }
    q->cb(r, q->arg);
    free(q);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *rc = arg;
    struct rreq *head = TAILQ_FIRST(&rc->pending);

    (void)fd;
    (void)what;
    if (head == NULL)
        return;
    if (head->deadline > ab_now_ms()) {
        arm_deadline(rc);
        return;
    }
    /* Replies come in order: if the oldest is late, all behind it are
     * too. Dropping the connection answers every one of them now. */
    log_warn("event=redis_timeout pending=%zu timeout_ms=%u", rc->npending,
             rc->timeout_ms);
    TAILQ_FOREACH(head, &rc->pending, link)
        head->timed_out = true;
    ri_drop(rc, "request timed out");
}

static void fail_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *rc = arg;
    struct rreq_list list = TAILQ_HEAD_INITIALIZER(list);
    struct rreq *q;

    (void)fd;
    (void)what;
    /* Detach first: callbacks may queue new (failing) requests. */
    TAILQ_CONCAT(&list, &rc->failq, link);
    while ((q = TAILQ_FIRST(&list)) != NULL) {
        TAILQ_REMOVE(&list, q, link);
        q->cb(NULL, q->arg);
        free(q);
    }
}

static struct rreq *req_new(struct rconn *rc, rconn_cb *cb, void *arg)
{
    struct rreq *q = ab_calloc(1, sizeof(*q));

    q->rc = rc;
    q->cb = cb;
    q->arg = arg;
    return q;
}

static void req_fail_async(struct rconn *rc, struct rreq *q)
{
    metric_inc(&metric_redis_errors, "unavailable", NULL);
    TAILQ_INSERT_TAIL(&rc->failq, q, link);
    event_active(rc->fail_ev, 0, 0);
}

/* Queue commands on the live connection; the last one carries q, which
 * must be answered by `deadline` (0: timeout_ms from now). */
static void req_send_by(struct rconn *rc, struct rreq *q,
                        const struct rcmd *cmds, int ncmds, bool multi,
                        uint64_t deadline)
{
    static const char *multi_argv[] = { "MULTI" }, *exec_argv[] = { "EXEC" };
    int rc_ok = REDIS_OK;

    if (rc->ac == NULL || rc->state == RS_DOWN || rc->state == RS_RESOLVING) {
        req_fail_async(rc, q);
        return;
    }
    if (multi)
        rc_ok |= redisAsyncCommandArgv(rc->ac, NULL, NULL, 1, multi_argv, NULL);
    for (int i = 0; i < ncmds; i++) {
        bool last = !multi && i == ncmds - 1;
        rc_ok |= redisAsyncCommandArgv(rc->ac, last ? req_reply : NULL,
                                       last ? q : NULL, cmds[i].argc,
                                       cmds[i].argv, cmds[i].argvlen);
    }
    if (multi)
        rc_ok |= redisAsyncCommandArgv(rc->ac, req_reply, q, 1, exec_argv, NULL);
    if (rc_ok != REDIS_OK) {
        /* hiredis refuses only while disconnecting: treat as down. */
        req_fail_async(rc, q);
        return;
    }
    q->deadline = deadline ? deadline : ab_now_ms() + rc->timeout_ms;
    q->sent_ns = now_ns();
    TAILQ_INSERT_TAIL(&rc->pending, q, link);
    rc->npending++;
    arm_deadline(rc);
}

static void req_send(struct rconn *rc, struct rreq *q, const struct rcmd *cmds,
                     int ncmds, bool multi)
{
    req_send_by(rc, q, cmds, ncmds, multi, 0);
}

void rconn_command(struct rconn *rc, rconn_cb *cb, void *arg,
                   const struct rcmd *cmd)
{
    req_send(rc, req_new(rc, cb, arg), cmd, 1, false);
}

void rconn_transaction(struct rconn *rc, rconn_cb *cb, void *arg,
                       const struct rcmd *cmds, int ncmds)
{
    req_send(rc, req_new(rc, cb, arg), cmds, ncmds, true);
}

/* ---- scripts ------------------------------------------------------------ */

void rscript_init(struct rscript *s, const char *body)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    s->body = body;
    if (EVP_Digest(body, strlen(body), md, &n, EVP_sha1(), NULL) != 1 ||
        n != 20)
        fatalx("rscript_init: no SHA-1");
    for (unsigned i = 0; i < 20; i++)
        snprintf(s->sha1 + 2 * i, 3, "%02x", md[i]);
}

/* An EVALSHA in flight: what is needed to send it again as EVAL. */
struct evalq {
    struct rconn *rc;
    const struct rscript *s;
    rconn_cb *cb;
    void *arg;
    uint64_t deadline;
    int argc;
    const char **argv;            /* [0] "EVALSHA", [1] the SHA-1, ... */
};

static void evalq_free(struct evalq *e)
{
    for (int i = 2; i < e->argc; i++)
        free((char *)e->argv[i]);
    free(e->argv);
    free(e);
}

static void eval_reply(redisReply *r, void *arg)
{
    struct evalq *e = arg;

    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "NOSCRIPT", 8) == 0) {
        e->argv[0] = "EVAL";
        e->argv[1] = e->s->body;
        const struct rcmd cmd = { e->argc, e->argv, NULL };
        req_send_by(e->rc, req_new(e->rc, e->cb, e->arg), &cmd, 1, false,
                    e->deadline);
        evalq_free(e);
        return;
    }
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        metric_inc(&metric_redis_errors, "reply", NULL);
        reply_error(e->rc, r);
        r = NULL;
    }
    e->cb(r, e->arg);
    evalq_free(e);
}

void rconn_eval(struct rconn *rc, rconn_cb *cb, void *arg,
                const struct rscript *s, int nkeys, int argc,
                const char *const *argv)
{
    struct evalq *e = ab_calloc(1, sizeof(*e));
    struct rreq *q = req_new(rc, eval_reply, e);
    char n[16];

    e->rc = rc;
    e->s = s;
    e->cb = cb;
    e->arg = arg;
    e->argc = argc + 3;
    e->argv = ab_calloc((size_t)e->argc, sizeof(*e->argv));
    e->argv[0] = "EVALSHA";
    e->argv[1] = s->sha1;
    snprintf(n, sizeof(n), "%d", nkeys);
    e->argv[2] = ab_strdup(n);
    for (int i = 0; i < argc; i++)
        e->argv[3 + i] = ab_strdup(argv[i]);
    e->deadline = ab_now_ms() + rc->timeout_ms;
    q->raw_errors = true;
    const struct rcmd cmd = { e->argc, e->argv, NULL };
    req_send_by(rc, q, &cmd, 1, false, e->deadline);
}

bool rconn_is_up(const struct rconn *rc)
{
    return rc->state == RS_UP;
}

struct event_base *redis_base(const struct rconn *rc)
{
    return rc->base;
}

size_t rconn_pending(const struct rconn *rc)
{
    return rc->npending;
}

void rconn_on_up(struct rconn *rc, void (*fn)(void *arg), void *arg)
{
    rc->on_up = fn;
    rc->on_up_arg = arg;
}

enum rconn_health rconn_health(const struct rconn *rc)
{
    if (rc->state == RS_UP)
        return RCONN_UP;
    return rc->tried ? RCONN_DOWN : RCONN_UNKNOWN;
}

void rconn_on_change(struct rconn *rc, void (*fn)(void *arg), void *arg)
{
    rc->on_change = fn;
    rc->on_change_arg = arg;
}

static void health_changed(struct rconn *rc)
{
    rc->tried = true;
    if (rc->on_change)
        rc->on_change(rc->on_change_arg);
}

/* ---- the data connection ----------------------------------------------- */

/*
 * authbridge_redis_up: 1 only while every connection of the process is
 * up (each event loop has its own), so one loop cut off from Redis shows.
 */
static struct {
    pthread_mutex_t lock;         /* counts and gauge change together */
    int total, up;
} conns = { PTHREAD_MUTEX_INITIALIZER, 0, 0 };

static void conns_add(int total, int up)
{
    pthread_mutex_lock(&conns.lock);
    conns.total += total;
    conns.up += up;
    metric_set(&metric_redis_up, conns.total > 0 && conns.up == conns.total,
               NULL, NULL);
    pthread_mutex_unlock(&conns.lock);
}

void ri_set_state(struct rconn *rc, enum rstate st)
{
    bool changed = (rc->state == RS_UP) != (st == RS_UP);

    rc->state = st;
    if (changed)
        conns_add(0, st == RS_UP ? 1 : -1);
}

void ri_schedule_retry(struct rconn *rc, const char *why)
{
    char t[128];

    ri_set_state(rc, RS_DOWN);
    ri_track_down(rc);
    if (!rc->down_logged) {
        log_warn("event=redis_down redis=%s reason=%s",
                 ri_target_text(rc, t, sizeof(t)), log_esc(why));
        rc->down_logged = true;
        health_changed(rc);
    }
    rc->backoff_ms = rc->backoff_ms == 0 ? BACKOFF_FIRST_MS :
                     rc->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
                     rc->backoff_ms * 2;
    ri_arm_ms(rc->phase_ev, rc->backoff_ms);
}

/* Drop the data connection: every pending request is answered NULL
 * by hiredis (synchronously, or right after the current callback). */
void ri_drop(struct rconn *rc, const char *why)
{
    redisAsyncContext *ac = rc->ac;

    if (ac == NULL)
        return;
    rc->ac = NULL;
    ri_schedule_retry(rc, why);
    redisAsyncFree(ac);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rconn *rc = ac->data;

    (void)status;
    if (ac != rc->ac)
        return;                   /* one we dropped ourselves */
    rc->ac = NULL;
    ri_schedule_retry(rc, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rconn *rc = ac->data;

    if (status == REDIS_OK || ac != rc->ac)
        return;
    rc->ac = NULL;                /* hiredis frees it after this callback */
    ri_schedule_retry(rc, ac->errstr);
}

static void became_up(struct rconn *rc)
{
    char t[128];

    ri_set_state(rc, RS_UP);
    rc->backoff_ms = 0;
    rc->down_logged = false;
    evtimer_del(rc->phase_ev);
    log_info("event=redis_up redis=%s", ri_target_text(rc, t, sizeof(t)));
    if (ri_sentinel_mode(rc) && rc->psub == NULL)
        ri_psub_open(rc);
    ri_track_up(rc);
    health_changed(rc);
    if (rc->on_up)
        rc->on_up(rc->on_up_arg);
}

static void setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rconn *rc = priv;
    redisReply *r = reply;

    if (r == NULL || ac != rc->ac)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        log_err("event=redis_setup_failed error=%s", log_escn(r->str, r->len));
        ri_drop(rc, "AUTH or SELECT refused");
    }
}

static void role_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rconn *rc = priv;
    redisReply *r = reply;
    bool master = true;

    if (r == NULL || ac != rc->ac || rc->state != RS_CONNECTING)
        return;
    /* An ACL user without ROLE rights gets an error: assume master. */
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        master = strcmp(r->element[0]->str, "master") == 0;
    if (!master) {
        char t[128];
        log_err("event=redis_not_master redis=%s role=%s",
                ri_target_text(rc, t, sizeof(t)), log_esc(r->element[0]->str));
        if (ri_sentinel_mode(rc)) {
            ri_drop(rc, "not the master");
            return;
        }
    }
    became_up(rc);
}

void ri_connect_data(struct rconn *rc, const char *host, unsigned port,
                         const char *path)
{
    redisAsyncContext *ac;
    char portbuf[16];

    snprintf(rc->data_host, sizeof(rc->data_host), "%s", host ? host : "");
    rc->data_port = port;
    free(rc->data_path);
    rc->data_path = path ? ab_strdup(path) : NULL;
    ac = path ? redisAsyncConnectUnix(path) : redisAsyncConnect(host, (int)port);
    if (ac == NULL || ac->err) {
        ri_schedule_retry(rc, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return;
    }
    ac->data = rc;
    rc->ac = ac;
    ri_set_state(rc, RS_CONNECTING);
    ri_attach(ac, rc->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (!path)
        redisEnableKeepAlive(&ac->c);
    /* Queued before any request, so they run first on the server. */
    if (rc->password[0] && rc->username[0])
        redisAsyncCommand(ac, setup_reply, rc, "AUTH %s %s", rc->username,
                          rc->password);
    else if (rc->password[0])
        redisAsyncCommand(ac, setup_reply, rc, "AUTH %s", rc->password);
    if (rc->database != 0) {
        snprintf(portbuf, sizeof(portbuf), "%u", rc->database);
        redisAsyncCommand(ac, setup_reply, rc, "SELECT %s", portbuf);
    }
    redisAsyncCommand(ac, role_reply, rc, "ROLE");
    ri_arm_ms(rc->phase_ev, rc->timeout_ms < 1000 ? 1000 : rc->timeout_ms);
}

/* ---- phases -------------------------------------------------------------- */

void ri_start(struct rconn *rc)
{
    if (ri_sentinel_mode(rc))
        ri_resolve_master(rc);
    else
        ri_connect_data(rc, rc->address.host, rc->address.port, rc->address.path);
}

static void phase_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *rc = arg;

    (void)fd;
    (void)what;
    switch (rc->state) {
    case RS_DOWN:
        ri_start(rc);
        break;
    case RS_RESOLVING:
        log_warn("event=sentinel_timeout sentinel=%s",
                 rc->sentinels[rc->sentinel_idx].text);
        ri_sentinel_next(rc);
        break;
    case RS_CONNECTING:
        ri_drop(rc, "connect timed out");
        break;
    case RS_UP:
        break;
    }
}

static void copy_endpoint(struct endpoint *dst, const struct endpoint *src)
{
    *dst = *src;
    dst->text = ab_strdup(src->text ? src->text : "");
    dst->path = src->path ? ab_strdup(src->path) : NULL;
}

struct rconn *rconn_new(struct event_base *base, const struct redis_conf *conf)
{
    struct rconn *rc = ab_calloc(1, sizeof(*rc));

    rc->base = base;
    rc->password = ab_strdup(conf->password);
    rc->username = ab_strdup(conf->username);
    rc->master_name = ab_strdup(conf->master_name);
    rc->database = conf->database;
    rc->timeout_ms = conf->timeout_ms;
    copy_endpoint(&rc->address, &conf->address);
    rc->nsentinels = conf->sentinels.n;
    rc->sentinels = ab_calloc(rc->nsentinels, sizeof(*rc->sentinels));
    for (size_t i = 0; i < rc->nsentinels; i++)
        copy_endpoint(&rc->sentinels[i], &conf->sentinels.v[i]);
    TAILQ_INIT(&rc->pending);
    TAILQ_INIT(&rc->failq);
    rc->deadline_ev = evtimer_new(base, deadline_cb, rc);
    rc->phase_ev = evtimer_new(base, phase_cb, rc);
    rc->psub_ev = evtimer_new(base, ri_psub_timer_cb, rc);
    rc->fail_ev = event_new(base, -1, 0, fail_cb, rc);
    conns_add(1, 0);
    ri_start(rc);
    return rc;
}

void rconn_free(struct rconn *rc)
{
    if (rc == NULL)
        return;
    rc->on_up = NULL;
    rc->on_change = NULL;
    ri_set_state(rc, RS_DOWN);
    conns_add(-1, 0);
    ri_track_free(rc);
    if (rc->ac) {
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        redisAsyncFree(ac);
    }
    if (rc->sac) {
        redisAsyncContext *sac = rc->sac;
        rc->sac = NULL;
        redisAsyncFree(sac);
    }
    if (rc->psub) {
        redisAsyncContext *ps = rc->psub;
        rc->psub = NULL;
        redisAsyncFree(ps);
    }
    fail_cb(-1, 0, rc);
    event_free(rc->deadline_ev);
    event_free(rc->phase_ev);
    event_free(rc->psub_ev);
    event_free(rc->fail_ev);
    endpoint_free(&rc->address);
    for (size_t i = 0; i < rc->nsentinels; i++)
        endpoint_free(&rc->sentinels[i]);
    free(rc->sentinels);
    free(rc->data_path);
    free(rc->password);
    free(rc->username);
    free(rc->master_name);
    free(rc);
}
