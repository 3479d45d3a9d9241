/*
 * Listening sockets (libevent evconnlistener) and connection caps.
 *
 * When accept() fails for want of file descriptors the listener pauses
 * for a moment instead of spinning, and says so once per episode.
 */
#ifndef AB_LISTEN_H
#define AB_LISTEN_H

#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct endpoint;
struct listeners;

typedef void listen_accept_fn(evutil_socket_t fd, struct sockaddr *sa,
                              socklen_t len, int kind, void *arg);

/*
 * How the loops of a process share a listening address: ALONE, one loop
 * binds it (as every process but the multi-loop ones); SHARED_FIRST and
 * SHARED, each loop binds its own socket with SO_REUSEPORT and the
 * kernel spreads the connections. The first loop first makes sure no
 * other process listens there (SO_REUSEPORT would otherwise let a second
 * instance of the daemon take half the connections without a word); a
 * unix socket is the first loop's alone (listeners_add skips it for the
 * others and returns 0).
 */
enum listen_share { LISTEN_ALONE, LISTEN_SHARED_FIRST, LISTEN_SHARED };

struct listeners *listeners_new(struct event_base *base,
                                enum listen_share share);
/* Bind one endpoint; kind is passed back on accept. -1 + err on failure. */
int listeners_add(struct listeners *l, const struct endpoint *ep, int kind,
                  listen_accept_fn *fn, void *arg, char *err, size_t errlen);
/* Stop accepting (graceful shutdown): the sockets are closed. */
void listeners_free(struct listeners *l);
size_t listeners_count(const struct listeners *l);

/* Connection caps: total and per client address. */
struct conncap;

enum cap_result {
    CAP_OK,
    CAP_TOTAL,            /* the server is full */
    CAP_PER_ADDR,         /* this address has too many */
};

struct conncap *conncap_new(unsigned max_total, unsigned max_per_addr);
void conncap_set_limits(struct conncap *c, unsigned max_total,
                        unsigned max_per_addr);
void conncap_free(struct conncap *c);
enum cap_result conncap_acquire(struct conncap *c, const char *addr);
void conncap_release(struct conncap *c, const char *addr);
unsigned conncap_total(struct conncap *c);

#endif
