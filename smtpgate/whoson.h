/*
 * Front door 3: WHOSON (the protocol of the whoson package, used by Exim
 * and ZMailer) on whoson_listen, TCP. A request is one line and an empty
 * line; the answer is one line starting '+' (yes), '-' (no) or '*'
 * (error, bad request or not allowed) and an empty line.
 *
 *   QUERY <addr>           "+<user>" if the address has a live grant,
 *                          else "-Not logged in"
 *   LOGIN <addr> <user>    write a grant, as a POP3 login would (method
 *                          WHOSON): "+LOGIN ok"
 *   LOGOUT <addr>          remove the grant: "+LOGOUT ok"
 *
 * LOGIN and LOGOUT are accepted only from trusted_networks, so other
 * POP/IMAP servers (e.g. a Dovecot post-login script) can feed grants,
 * and nobody else can. Verbs are case-insensitive.
 */
#ifndef SMTPGATE_WHOSON_H
#define SMTPGATE_WHOSON_H

#include <event2/util.h>

struct conncap;
struct reqdoor;
#include <sys/socket.h>

#include "authbridge/addr.h"

enum whoson_verb {
    WHOSON_QUERY,
    WHOSON_LOGIN,
    WHOSON_LOGOUT,
};

struct whoson_req {
    enum whoson_verb verb;
    struct ab_addr addr;
    const char *user;             /* LOGIN only; points into the line */
};

/* Pure: one request line (split in place). NULL, or the text of the '*'
 * answer. */
const char *whoson_parse(char *line, struct whoson_req *r);

/* The door on one loop; cap: shared by every loop's. */
struct reqdoor *whoson_door_new(struct conncap *cap);

/* Accept callback for whoson_listen (arg: struct gate). */
void whoson_accept(evutil_socket_t fd, struct sockaddr *sa, socklen_t len,
                   int kind, void *arg);

#endif
