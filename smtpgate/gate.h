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

struct ab_conf;
struct smtpgate_conf;
struct rconn;
struct grant_store;
struct throttle;
struct workers;
struct auth;
struct listeners;
struct conncap;
struct sendermap;
struct smtp_session;
struct event;
struct event_base;

struct gate {
    struct event_base *base;
    struct ab_conf *conf;              /* replaced on SIGHUP */
    const struct smtpgate_conf *sc;    /* &conf->smtpgate */
    const char *conf_path;
    struct rconn *redis;
    struct grant_store *grants;
    struct throttle *throttle;         /* failed AUTH, shared with pop3d */
    struct workers *workers;
    struct auth *auth;                 /* NULL without a users file */
    SSL_CTX *tls;                      /* NULL without tls_cert */
    struct listeners *listeners;
    struct conncap *cap;               /* SMTP sessions only */
    struct sendermap *sendermap;       /* NULL without sender_map */
    bool stopping;
    TAILQ_HEAD(, smtp_session) sessions;
    unsigned nsessions;
    unsigned npolicy, nwhoson;         /* open policy / WHOSON connections */
};

/* Listener kinds. */
enum {
    GATE_LISTEN_SMTP,
    GATE_LISTEN_SMTPS,                 /* implicit TLS, RFC 8314 */
    GATE_LISTEN_POLICY,
    GATE_LISTEN_WHOSON,
};

#endif
