/*
 * What every smtpgate front door shares: the configuration in force, the
 * Redis grant store, the password checker, TLS, listeners, caps and the
 * sender map. One per process, owned by main.c.
 */
#ifndef SMTPGATE_GATE_H
#define SMTPGATE_GATE_H

#include <stdbool.h>
#include <sys/queue.h>
#include <openssl/ssl.h>

#include "authbridge/log.h"
#include "authbridge/services.h"

struct ab_conf;
struct smtpgate_conf;
struct listeners;
struct metrics_http;
struct sendermap;
struct smtp_session;
struct reqdoor;
struct decisions;
struct socketmap;
struct daemon_stop;
struct daemon_signals;
struct notify;
struct dovecot;
struct event;
struct event_base;

struct gate {
    struct event_base *base;
    struct ab_conf *conf;              /* replaced on SIGHUP */
    const struct smtpgate_conf *sc;    /* &conf->smtpgate */
    const char *conf_path;
    struct services svc;               /* Redis, grants, throttle, caps, users */
    SSL_CTX *tls;                      /* NULL without tls_cert */
    struct listeners *listeners;
    struct metrics_http *metrics;      /* NULL without metrics_listen */
    struct sendermap *sendermap;       /* NULL without sender_map */
    bool stopping;
    struct daemon_stop *stop;          /* once SIGTERM came */
    struct daemon_signals *signals;
    TAILQ_HEAD(, smtp_session) sessions;
    unsigned nsessions;
    struct reqdoor *policy_door;       /* policy service connections */
    struct reqdoor *whoson_door;       /* WHOSON connections */
    struct socketmap *socketmap;       /* its door and answer counts */
    struct decisions *decisions;       /* the Redis decisions stream */
    struct log_limit refused_log;      /* connection_refused lines */
    struct notify *notify;             /* NULL unless under systemd */
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
