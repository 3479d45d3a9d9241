/*
 * One client connection: a libevent bufferevent over TCP or TLS, with
 * strict line reading, timeouts, output back-pressure, close-after-flush
 * and the STARTTLS/STLS upgrade. pop3d and smtpgate sessions sit on it.
 *
 * The owner is told about input (on_input), about output falling below
 * the low-water mark when it asked (on_drain), and once about the end
 * (on_end), after which it must call conn_free().
 */
#ifndef AB_CONN_H
#define AB_CONN_H

#include <event2/buffer.h>
#include <event2/util.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "addr.h"

struct event_base;
struct conn;

enum conn_end {
    CONN_EOF,          /* the client closed */
    CONN_ERROR,        /* socket or TLS error */
    CONN_TIMEOUT,      /* no input (or no output progress) for too long */
    CONN_DONE,         /* conn_close_after_flush() finished */
};

struct conn_ops {
    void (*on_input)(struct conn *c, void *arg);
    void (*on_drain)(struct conn *c, void *arg);
    void (*on_end)(struct conn *c, enum conn_end why, void *arg);
    /*
     * Optional: the connection idled past its timeout. The owner may
     * queue a last line ("421 ... timeout"); it is then flushed (for at
     * most CONN_FAREWELL_S seconds) and on_end(CONN_TIMEOUT) follows.
     */
    void (*on_timeout)(struct conn *c, void *arg);
};

#define CONN_FAREWELL_S 5

enum line_result {
    LINE_OK,           /* a line, without its CRLF / LF */
    LINE_MORE,         /* no complete line yet */
    LINE_TOO_LONG,     /* longer than max: the caller should answer and close */
    LINE_BAD,          /* held a NUL or a bare CR: consumed, refuse it */
};

/* fd must be non-blocking (evconnlistener's are). tls_ctx non-NULL:
 * implicit TLS (handshake first, RFC 8314). */
struct conn *conn_new(struct event_base *base, evutil_socket_t fd,
                      const struct sockaddr *sa, SSL_CTX *tls_ctx,
                      const struct conn_ops *ops, void *arg);
void conn_free(struct conn *c);

const struct ab_addr *conn_peer(const struct conn *c);
const char *conn_peer_text(const struct conn *c);
bool conn_is_tls(const struct conn *c);
/* "TLSv1.3/TLS_AES_256_GCM_SHA384" or "no". */
const char *conn_tls_desc(const struct conn *c, char *buf, size_t len);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);
size_t conn_output_len(const struct conn *c);
void conn_write(struct conn *c, const void *data, size_t len);
void conn_printf(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Take one line of at most max octets (without the line end) into buf,
 * which must hold max + 2 bytes; it comes back NUL-terminated. A line ends
 * at LF, with or without CR before it.
 */
enum line_result conn_readline(struct conn *c, char *buf, size_t max,
                               size_t *len);

/* Seconds; 0 = none. The read timeout is the idle timeout. */
void conn_set_timeouts(struct conn *c, unsigned read_s, unsigned write_s);
/* Stop/restart reading input (back-pressure while busy). */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);
/* Ask for on_drain when output falls to `low` bytes (0: never). */
void conn_want_drain(struct conn *c, size_t low);

/* Stop reading; on_end(CONN_DONE) once the output is written. */
void conn_close_after_flush(struct conn *c);

/*
 * STARTTLS/STLS: call right after queueing the "go ahead" reply. Input
 * already received is discarded (plaintext pipelined after the command
 * must never be read as if it came over TLS: CVE-2011-0411), reading
 * stops, and once the reply is written the handshake starts.
 */
void conn_starttls(struct conn *c, SSL_CTX *ctx);

/*
 * Write a plaintext bufferevent's output now, from the caller, when its
 * own writing (EV_WRITE) is off: one write(2) instead of two epoll_ctl
 * calls and a loop turn. What the socket does not take, and any error, is
 * left to the bufferevent (EV_WRITE on). conn uses it for every reply;
 * smtpgate's MTA side too.
 */
struct bufferevent;
void bev_flush_direct(struct bufferevent *bev);

#endif
