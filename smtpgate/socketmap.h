/*
 * Front door 4: the socketmap protocol on socketmap_listen, for Postfix
 * (socketmap_table(5): check_client_access socketmap:inet:HOST:PORT:relay)
 * and Sendmail (the "socket" map class, FEATURE(drac)). A request is a
 * netstring "<map> <key>"; the answer a netstring, one per request, in
 * order, many per connection:
 *
 *   OK <value>       found
 *   NOTFOUND         (with one space after it) not found
 *   TEMP <reason>    Redis cannot answer: the MTA defers (4xx)
 *   PERM <reason>    a protocol error: a broken netstring (then the
 *                    connection closes), no space between map and key,
 *                    an empty key, a key with spaces or control bytes,
 *                    or a map we do not have (the SOCKETMAP_BAD_MAX-th
 *                    closes the connection instead)
 *
 * Maps:
 *   relay, drac   key: a client address in any textual form (IPv4, IPv6,
 *                 Sendmail's "IPv6:" prefix, IPv4-mapped). "OK OK" for a
 *                 live grant: "OK" is an access action both Postfix's
 *                 check_client_access and Sendmail's rulesets take.
 *                 "NOTFOUND " without one, and for any key that is not an
 *                 address: check_client_access also looks up the client's
 *                 host name ("unknown" without one) and shortened forms
 *                 ("127.0.0"), and a PERM for those would become "451
 *                 4.3.5 Server configuration error" for every client.
 *   user          the grant's user: "OK alice".
 *
 * Like the policy service, this answers path 4 of relay.h only (the
 * MTA's own rules do local domains and trusted networks). With
 * sender_binding on, a relay lookup has no sender to check: it answers
 * NOTFOUND for every grant (logged as path=sender_mismatch), never OK.
 */
#ifndef SMTPGATE_SOCKETMAP_H
#define SMTPGATE_SOCKETMAP_H

#include <event2/util.h>
#include <stddef.h>
#include <sys/socket.h>

#include "authbridge/addr.h"

struct conncap;
struct reqconn_limits;
struct socketmap;

enum socketmap_map {
    SOCKETMAP_RELAY,              /* "relay" and "drac" */
    SOCKETMAP_USER,
};

struct socketmap_req {
    enum socketmap_map map;
    const char *name;             /* as the client wrote it */
    const char *key;
};

/*
 * The framing (reqconn_frame_fn): one netstring "<digits>:<payload>,"
 * (no leading zeros, payload at most lim->line_max octets and without
 * NUL). parts[0] is the payload, NUL-terminated in place; *n is 1.
 */
int socketmap_frame(char *buf, size_t len, const struct reqconn_limits *lim,
                    char **parts, size_t *n, size_t *used);

/* Pure: split a payload in place into map and key. NULL, or the reason
 * text of the PERM answer. */
const char *socketmap_parse(char *payload, struct socketmap_req *r);

/* A key as a client address: what addr_parse() takes, also behind an
 * "IPv6:" prefix (any case). 0 or -1. */
int socketmap_key_addr(const char *key, struct ab_addr *out);

/* The netstring "<status> <value>" into out; its length, or 0 if it does
 * not fit. */
size_t socketmap_format(char *out, size_t size, const char *status,
                        const char *value);

/* The door and its answer counts (one per gate). */
struct socketmap *socketmap_new(struct conncap *cap);
/* At exit, after Redis calls completed. */
void socketmap_free(struct socketmap *sm);

/* The info line that sums the answers (also written once a minute). */
void socketmap_log_summary(struct socketmap *sm);

/* Accept callback for socketmap_listen (arg: struct gate). */
void socketmap_accept(evutil_socket_t fd, struct sockaddr *sa, socklen_t len,
                      int kind, void *arg);

#endif
