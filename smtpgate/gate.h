/*
 * One event loop of smtpgate (struct gate) and what its front doors
 * share: the configuration in force, the Redis grant store, the password
 * checker, TLS, listeners, caps and the sender map. A process runs
 * [smtpgate] loops of them (struct gate_proc, in main.c, holds what they
 * share), each on its own thread with its own listeners (SO_REUSEPORT),
 * Redis connections, doors and sessions.
 */
#ifndef SMTPGATE_GATE_H
#define SMTPGATE_GATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <openssl/ssl.h>

#include "authbridge/log.h"
#include "authbridge/services.h"

struct ab_conf;
struct smtpgate_conf;
struct listeners;
struct sendermap;
struct smtp_session;
struct reqdoor;
struct decisions;
struct socketmap;
struct daemon_stop;
struct dovecot;
struct event;
struct event_base;

struct gate_proc;
struct gate_bundle;

struct gate {
    struct gate_proc *proc;
    unsigned loop;                     /* 0: the main thread's */
    struct event_base *base;
    struct gate_bundle *bundle;        /* this loop's reference */
    struct ab_conf *conf;              /* = bundle's; replaced on SIGHUP */
    const struct smtpgate_conf *sc;    /* &conf->smtpgate */
    SSL_CTX *tls;                      /* = bundle's; NULL without tls_cert */
    struct sendermap *sendermap;       /* = bundle's; NULL without sender_map */
    struct services svc;               /* Redis, grants, throttle; caps, users */
    struct listeners *listeners;
    bool stopping;
    struct daemon_stop *stop;          /* once SIGTERM came */
    TAILQ_HEAD(, smtp_session) sessions;
    atomic_uint nsessions;             /* read by loop 0 for STATUS= */
    struct reqdoor *policy_door;       /* policy service connections */
    struct reqdoor *whoson_door;       /* WHOSON connections */
    struct socketmap *socketmap;       /* its door and answer counts */
    struct decisions *decisions;       /* the Redis decisions stream */
    struct log_limit refused_log;      /* connection_refused lines */
    struct dovecot *dovecot;           /* NULL without dovecot_listen */
};

/* Listener kinds. */
enum {
    GATE_LISTEN_SMTP,
    GATE_LISTEN_SMTPS,                 /* implicit TLS, RFC 8314 */
    GATE_LISTEN_POLICY,
    GATE_LISTEN_WHOSON,
    GATE_LISTEN_DOVECOT,
    GATE_LISTEN_SOCKETMAP,
};

#endif
