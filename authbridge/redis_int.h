/*
 * Inside the asynchronous Redis connection (redis.h): the structures and
 * the calls its files share. redis.c: requests, scripts, the data
 * connection and its event-loop adapter; redis_sentinel.c: finding the
 * master through the sentinels and following a failover; redis_track.c:
 * the invalidation connection of client-side caching.
 */
#ifndef AB_REDIS_INT_H
#define AB_REDIS_INT_H

#include "redis.h"
#include "conf.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <stdint.h>
#include <sys/queue.h>

#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS   500   /* recovery within a second of Redis return */
#define PSUB_RETRY_MS    500

enum rstate {
    RS_DOWN,         /* waiting for the back-off timer */
    RS_RESOLVING,    /* asking a sentinel for the master's address */
    RS_CONNECTING,   /* connected or connecting, AUTH/SELECT/ROLE pending */
    RS_UP,
};

struct rreq {
    TAILQ_ENTRY(rreq) link;
    struct rconn *rc;
    rconn_cb *cb;
    void *arg;
    uint64_t deadline;
    uint64_t sent_ns;             /* for the latency histogram */
    bool raw_errors;              /* error replies reach cb (EVALSHA) */
    bool timed_out;               /* dropped for being late */
};
TAILQ_HEAD(rreq_list, rreq);

struct rconn {
    struct event_base *base;
    /* Copies of the settings: the config may be reloaded under us. */
    char *password, *username, *master_name;
    unsigned database, timeout_ms;
    struct endpoint address;
    struct endpoint *sentinels;
    size_t nsentinels, sentinel_idx;

    enum rstate state;
    redisAsyncContext *ac;        /* the data connection */
    redisAsyncContext *sac;       /* sentinel query, while resolving */
    redisAsyncContext *psub;      /* sentinel +switch-master subscription */
    char master_host[64];
    unsigned master_port;

    struct rreq_list pending;     /* handed to hiredis, oldest first */
    struct rreq_list failq;       /* failed before sending: answer async */
    size_t npending;
    struct event *deadline_ev;    /* oldest pending request's deadline */
    struct event *phase_ev;       /* back-off / resolve / connect deadline */
    struct event *fail_ev;
    struct event *psub_ev;
    unsigned backoff_ms;
    bool down_logged;             /* one log line per outage */
    void (*on_up)(void *arg);
    void *on_up_arg;
    bool tried;                   /* the first attempt has ended */
    void (*on_change)(void *arg);
    void *on_change_arg;

    /* Where the data connection went (the invalidation connection goes
     * to the same server). */
    char data_host[64];
    unsigned data_port;
    char *data_path;

    /* Client-side caching (redis_track.c). */
    rconn_inval_fn *on_inval;
    void *inval_arg;
    redisAsyncContext *inv;       /* subscribed to __redis__:invalidate */
    long long inv_id;             /* its CLIENT ID; 0 until known */
    bool tracking;                /* the data connection tracks for inv */
    bool track_refused;           /* Redis said no (before 6): stop trying */
    uint64_t track_epoch;         /* +1 each time the cache must go */
    struct event *inv_ev;         /* reopen the invalidation connection */
};

/* redis.c */
void ri_attach(redisAsyncContext *ac, struct event_base *base);
bool ri_sentinel_mode(const struct rconn *rc);
const char *ri_target_text(const struct rconn *rc, char *buf, size_t len);
void ri_arm_ms(struct event *ev, unsigned ms);
/* Every change of state goes through here (the redis_up gauge counts). */
void ri_set_state(struct rconn *rc, enum rstate st);
void ri_schedule_retry(struct rconn *rc, const char *why);
/* Drop the data connection: every pending request is answered NULL. */
void ri_drop(struct rconn *rc, const char *why);
void ri_start(struct rconn *rc);
void ri_connect_data(struct rconn *rc, const char *host, unsigned port,
                     const char *path);

/* redis_track.c: the data connection is up, or went down. */
void ri_track_up(struct rconn *rc);
void ri_track_down(struct rconn *rc);
void ri_track_free(struct rconn *rc);

/* redis_sentinel.c */
void ri_resolve_master(struct rconn *rc);
void ri_sentinel_next(struct rconn *rc);
void ri_psub_open(struct rconn *rc);
void ri_psub_timer_cb(evutil_socket_t fd, short what, void *arg);

#endif
