/*
 * Request/response connections for the policy service and WHOSON: a
 * request is a block of lines (LF or CRLF) ended by an empty line; each is
 * answered exactly once, in order, one at a time per connection, and the
 * connection stays open for the next (Postfix keeps its policy
 * connections).
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

struct reqconn_limits {
    size_t line_max;              /* octets per line, line end excluded */
    size_t lines_max;             /* lines per request */
    size_t request_max;           /* octets per request, all included */
    unsigned idle_s;              /* close an idle connection */
};

/*
 * Pure: one request at the start of buf[0..len). Returns 1 with lines
 * [0, *n) pointing into buf (line ends replaced by NULs) and *used the
 * octets of the request including its empty line; 0 if incomplete; -1
 * if it breaks a limit or holds a NUL byte. buf is modified only on 1.
 */
int reqblock_parse(char *buf, size_t len, const struct reqconn_limits *lim,
                   char **lines, size_t *n, size_t *used);

struct reqconn_ops {
    /* A request: answer it with reqconn_reply() (now or later) or
     * reqconn_close(). The lines stay valid until then. */
    void (*on_request)(struct reqconn *rc, char **lines, size_t n, void *arg);
    /* The connection is gone and nothing is outstanding: free arg. */
    void (*on_close)(void *arg);
};

struct reqconn *reqconn_new(struct event_base *base, evutil_socket_t fd,
                            const struct sockaddr *sa,
                            const struct reqconn_limits *lim,
                            const struct reqconn_ops *ops, void *arg);

/* Answer the request at hand. rc may be freed by this call (the peer
 * left meanwhile): do not touch it afterwards. */
void reqconn_reply(struct reqconn *rc, const char *data, size_t len);

/* Instead of an answer (a broken request): close. Same rule. */
void reqconn_close(struct reqconn *rc);

/* At exit, after Redis calls completed: close and free every connection. */
void reqconn_free_all(void);

const struct ab_addr *reqconn_peer(const struct reqconn *rc);
const char *reqconn_peer_text(const struct reqconn *rc);

#endif
