/*
 * Front door 4: grants from Dovecot (2.3), on dovecot_listen, HTTP/1.1
 * with keep-alive (http.h), from trusted_networks only, every request
 * carrying dovecot_api_key.
 *
 * Auth policy requests (auth_policy_server_url): Dovecot POSTs
 * "<url>?command=allow" with a JSON object of its
 * auth_policy_request_attributes and waits for {"status":0} before it
 * answers the client. With auth_policy_check_after_auth = yes (and the
 * before-auth check off) that request comes after a password check that
 * succeeded; Dovecot 2.3 sends the same request before the check when
 * auth_policy_check_before_auth is on, so a login is taken as verified
 * only when the request carries verified=yes, which the passdb sets
 * (override_fields) only once the password matched. For such a login
 * whose protocol is in dovecot_protocols, the grant is written for
 * remote and user (method "<PROTOCOL>-<MECH>", node the request's node,
 * else the Dovecot's address), and the answer waits for Redis: once it
 * acknowledged, or after redis.timeout_ms (the grant then retried in the
 * background). The answer is always {"status":0}: this door never
 * refuses a login; a dead Redis must not lock anyone out of their mail.
 * "command=report" is answered at once and writes nothing.
 *
 * Event exporter posts (an event_exporter with transport http-post, the
 * key as the password of its URL, sent as HTTP Basic authentication):
 * each imap_command_finished event renews the grant of fields/remote_ip
 * for fields/user, at most once per renew_every_ms(grant.ttl) per
 * address (renew.h), and only when the address has no grant or one of
 * that user: a session keeps its rights while it lives, and cannot take
 * another user's. Answered at once (Dovecot drops events a receiver is
 * slow to take), written in the background.
 *
 * Errors: a request that cannot be read gets 400/413/431/501/505 and the
 * connection closes; a missing or wrong key 403 (logged) and close; a
 * method other than POST 405; a body that is not JSON 400.
 */
#ifndef SMTPGATE_DOVECOT_H
#define SMTPGATE_DOVECOT_H

#include <event2/util.h>
#include <sys/socket.h>

struct conncap;
struct dovecot;
struct gate;

/* One per gate, when dovecot_listen is set. */
struct dovecot *dovecot_new(struct gate *g, struct conncap *cap);
/* At exit, after Redis calls completed. */
void dovecot_free(struct dovecot *d);

/* Accept callback for dovecot_listen (arg: struct gate). */
void dovecot_accept(evutil_socket_t fd, struct sockaddr *sa, socklen_t len,
                    int kind, void *arg);

#endif
