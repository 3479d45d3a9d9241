/*
 * HTTP/1.1 requests (RFC 9112) as a framing for the request connections
 * of reqconn.h: what the Dovecot door needs to read Dovecot's HTTP client
 * (auth policy requests, event exporter posts), strictly, and no more.
 *
 * Why not libevent's evhttp: in libevent 2.1 an evhttp server accepts its
 * own connections and shows none to us before its first request (no
 * accept hook, no connection limit, no way to hand it a socket we
 * accepted), so the caps every front door has (in all and per address,
 * counted at accept) could not be kept. As a reqconn framing the door
 * gets them, and the idle and non-reading deadlines and the output
 * high-water mark, from the code the other doors use.
 *
 * What is read: a request line, header lines ended by CRLF (no obs-fold,
 * no bare CR or LF), an empty line, and a body of exactly Content-Length
 * octets. Transfer-Encoding (chunked) is refused with 501: Dovecot always
 * sends a length. Keep-alive is HTTP/1.1's default; "Connection: close"
 * and HTTP/1.0 close after the answer.
 */
#ifndef SMTPGATE_HTTP_H
#define SMTPGATE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "smtpgate/reqconn.h"

/*
 * The framing (reqconn_frame_fn). On 1, parts are the request line, the
 * header lines and, last, the body (NUL-terminated, moved two octets
 * back over the empty line to make room for the NUL). A request that
 * cannot be read is also a 1, with one part: the status line to answer
 * it with ("400 Bad Request", ...) and *used = len: the connection is to
 * be closed after that answer, the rest of its input unread.
 */
int http_frame(char *buf, size_t len, const struct reqconn_limits *lim,
               char **parts, size_t *n, size_t *used);

struct http_req {
    const char *method;
    const char *path;             /* the target up to '?' */
    const char *query;            /* after '?', or "" */
    int minor;                    /* HTTP/1.<minor> */
    const char *api_key;          /* X-API-Key, or NULL */
    const char *authorization;    /* Authorization, or NULL */
    bool close;                   /* answer, then close */
    char *body;
    size_t body_len;
};

/* Pure: the framed parts (split in place) into req. NULL, or the status
 * line to answer with. */
const char *http_parse(char **parts, size_t n, struct http_req *req);

/* The value of name in a query string ("command=allow&x=y"), written to
 * out; false when absent or too long. No %-decoding: none is needed for
 * the values we look for. */
bool http_query_param(const char *query, const char *name, char *out,
                      size_t outlen);

/* The password of "Basic base64(user:password)", written to out; false
 * if the header is not that. */
bool http_basic_password(const char *authorization, char *out,
                         size_t outlen);

/* An answer: status line ("200 OK"), a JSON body (may be ""), and
 * "Connection: close" when closing. Returns the length, or 0 when it
 * does not fit. */
size_t http_response(char *out, size_t outlen, const char *status,
                     const char *body, bool close);

#endif
