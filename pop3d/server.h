/*
 * One event loop of pop3d (struct server) and what its sessions share:
 * the configuration in force, the Redis grant store, the password
 * checker, TLS, listeners and caps. A process runs [pop3d] loops of them
 * (struct pop3d_proc holds what they share), each on its own thread
 * with its own listeners (SO_REUSEPORT), Redis connection and sessions.
 */
#ifndef POP3D_SERVER_H
#define POP3D_SERVER_H

#include <stdatomic.h>
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

struct pop3d_proc;
struct pop3d_bundle;

struct server {
    struct pop3d_proc *proc;
    unsigned loop;                 /* 0: the main thread's */
    struct event_base *base;
    struct pop3d_bundle *bundle;   /* this loop's reference */
    struct ab_conf *conf;          /* = bundle's; replaced on SIGHUP */
    const struct pop3d_conf *pc;   /* &conf->pop3d */
    SSL_CTX *tls;                  /* = bundle's; NULL without tls_cert */
    struct services svc;           /* Redis, grants, throttle; caps, users */
    struct listeners *listeners;
    char hostname[256];
    long pid;                      /* for APOP timestamps */
    bool stopping;
    TAILQ_HEAD(, session) sessions;
    atomic_uint nsessions;         /* read by loop 0 for STATUS= */
    struct daemon_stop *stop;      /* once SIGTERM came */
    struct log_limit refused_log;  /* connection_refused lines */
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
