/*
 * Request/response connections for the gate's line-protocol front doors
 * (the policy service, WHOSON, and any later one): a request is a frame
 * (by default a block of lines, LF or CRLF, ended by an empty line); each
 * is answered exactly once, in order, one at a time per connection, and
 * the connection stays open for the next (Postfix keeps its policy
 * connections).
 *
 * Bounded per connection, whatever the peer does: input to one request's
 * cap; output to out_high (above it no further request is taken and
 * nothing is read until the peer has read its answers); idle time, and a
 * peer that stops reading, to idle_s. A peer that half-closes after its
 * request (Exim's ${readsocket}) still gets its answer, then the
 * connection closes.
 *
 * A raw non-blocking socket with one persistent read event, not a
 * bufferevent: a request costs one read() and its answer one write(),
 * with no event changes in between. On gVisor, where every system call
 * is dear, that is most of the policy service's cost per decision.
 */
#ifndef SMTPGATE_REQCONN_H
#define SMTPGATE_REQCONN_H

#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "authbridge/addr.h"

struct event_base;
struct reqconn;
struct reqdoor;

struct reqconn_limits;

/*
 * A framing: one request at the start of buf[0..len). Returns 1 with
 * its parts [0, *n) pointing into buf (NUL-terminated in place) and
 * *used the octets of the request; 0 if incomplete; -1 if it breaks a
 * limit or is malformed (the connection is closed, after limits.refusal
 * if there is one). buf is modified only on 1.
 */
typedef int reqconn_frame_fn(char *buf, size_t len,
                             const struct reqconn_limits *lim, char **parts,
                             size_t *n, size_t *used);

struct reqconn_limits {
    size_t line_max;              /* octets per line, line end excluded */
    size_t lines_max;             /* lines (parts) per request */
    size_t request_max;           /* octets per request, all included */
    size_t out_high;              /* answers queued before reading stops */
    unsigned idle_s;              /* close an idle (or non-reading) peer */
    reqconn_frame_fn *frame;      /* NULL: reqblock_parse */
    /* Sent (as is) to a peer whose input the framing refused, before the
     * connection closes; NULL: close without a word. */
    const char *refusal;
};

/* The default framing: lines ended by an empty line. */
int reqblock_parse(char *buf, size_t len, const struct reqconn_limits *lim,
                   char **lines, size_t *n, size_t *used);

struct reqconn_ops {
    /* A request: answer it with reqconn_reply() (now or later) or
     * reqconn_close(). The parts stay valid until then. */
    void (*on_request)(struct reqconn *rc, char **parts, size_t n, void *arg);
    /* The connection is gone and nothing is outstanding: free arg. */
    void (*on_close)(void *arg);
};

/*
 * A front door on one loop: its name (in log lines), limits, callbacks
 * and connection caps, in all and per peer address (cap: shared by the
 * door of every loop, so the caps are exact across them; not owned).
 * Owns its connections.
 */
struct conncap;
struct reqdoor *reqdoor_new(const char *name, const struct reqconn_limits *lim,
                            const struct reqconn_ops *ops, struct conncap *cap);
/* At exit, after Redis calls completed: close and free every connection. */
void reqdoor_free(struct reqdoor *d);
/* Connections at this door on every loop. */
unsigned reqdoor_count(const struct reqdoor *d);

/*
 * A new connection at the door: NULL (fd closed, the refusal logged)
 * over a cap. arg is what the callbacks get; on NULL it is the caller's
 * to free.
 */
struct reqconn *reqconn_accept(struct reqdoor *d, struct event_base *base,
                               evutil_socket_t fd, const struct sockaddr *sa,
                               void *arg);

/* Answer the request at hand. rc may be freed by this call (the peer
 * left meanwhile): do not touch it afterwards. */
void reqconn_reply(struct reqconn *rc, const char *data, size_t len);

/* The last answer (a request that cannot be read, or HTTP's
 * "Connection: close"): written, then the connection closes; nothing
 * more is read. Same rule. */
void reqconn_reply_close(struct reqconn *rc, const char *data, size_t len);

/* Instead of an answer (a broken request): close. Same rule. */
void reqconn_close(struct reqconn *rc);

const struct ab_addr *reqconn_peer(const struct reqconn *rc);
const char *reqconn_peer_text(const struct reqconn *rc);

#endif
