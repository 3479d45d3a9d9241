/*
 * Front door 2: the Postfix policy delegation service (SMTPD_POLICY_README)
 * on policy_listen. Postfix's smtpd sends "name=value" lines ended by an
 * empty line and waits for "action=..." and an empty line; each smtpd
 * process keeps its connection for many requests.
 *
 *   action=OK               the client address has a live grant (and,
 *                           with sender_binding, the sender is the user's)
 *   action=DUNNO            no grant: Postfix goes on to the next
 *                           restriction (reject_unauth_destination)
 *   action=DEFER_IF_REJECT  Redis cannot answer: if Postfix would reject
 *                           the relay, it says 450 instead, so the client
 *                           retries rather than bounces
 *
 * Local domains, trusted networks and SASL logins are Postfix's own
 * restrictions (permit_mynetworks, permit_sasl_authenticated and
 * reject_unauth_destination itself), so this door only answers path 4 of
 * relay.h. See conf/postfix-main.cf.sample for the placement.
 */
#ifndef SMTPGATE_POLICY_H
#define SMTPGATE_POLICY_H

#include <event2/util.h>

struct conncap;
struct reqdoor;
#include <stddef.h>
#include <sys/socket.h>

struct policy_req {
    const char *request;          /* "smtpd_access_policy" */
    const char *protocol_state;
    const char *client_address;
    const char *client_port;      /* Postfix 3.0+; with XCLIENT, the gate's */
    const char *helo_name;
    const char *sender;           /* without <>; "" for the null sender */
    const char *recipient;
    unsigned nattrs;
};

/* Pure: the attributes we use, pointing into lines. -1 if a line is not
 * "name=value" with a non-empty name of [a-z_0-9]. Unknown names pass. */
int policy_parse(char **lines, size_t n, struct policy_req *r);

/* The info line that sums the answers (also written once a minute). */
void policy_log_summary(void);

/* The door on one loop; cap: shared by every loop's. */
struct reqdoor *policy_door_new(struct conncap *cap);

/* Accept callback for policy_listen (arg: struct gate). */
void policy_accept(evutil_socket_t fd, struct sockaddr *sa, socklen_t len,
                   int kind, void *arg);

#endif
