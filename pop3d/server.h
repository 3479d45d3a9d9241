/*
 * What every pop3d session shares: the configuration in force, the Redis
 * grant store, the password checker, TLS, listeners and caps.
 */
#ifndef POP3D_SERVER_H
#define POP3D_SERVER_H

#include <stdbool.h>
#include <sys/queue.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "authbridge/log.h"
#include "authbridge/services.h"
#include <sys/socket.h>

struct ab_conf;
struct pop3d_conf;
struct listeners;
struct metrics_http;
struct session;
struct daemon_stop;
struct notify;

struct server {
    struct event_base *base;
    struct ab_conf *conf;          /* replaced on SIGHUP */
    const struct pop3d_conf *pc;   /* &conf->pop3d */
    const char *conf_path;
    struct services svc;           /* Redis, grants, throttle, caps, users */
    SSL_CTX *tls;                  /* NULL without tls_cert */
    struct listeners *listeners;
    struct metrics_http *metrics;  /* NULL without metrics_listen */
    char hostname[256];
    long pid;                      /* for APOP timestamps */
    bool stopping;
    TAILQ_HEAD(, session) sessions;
    unsigned nsessions;
    struct daemon_stop *stop;      /* once SIGTERM came */
    struct log_limit refused_log;  /* connection_refused lines */
    struct notify *notify;         /* NULL unless under systemd */
};

/* Listener kinds. */
enum { LISTEN_PLAIN = 0, LISTEN_TLS = 1 };

/* Accept callback for the listeners (session.c). */
void session_accept(evutil_socket_t fd, struct sockaddr *sa, socklen_t len,
                    int kind, void *arg);

/* Graceful stop: sessions in TRANSACTION are closed without UPDATE
 * (nothing is deleted), others at once. */
void session_shutdown_all(struct server *srv);

#endif
