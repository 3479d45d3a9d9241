/*
 * sender_map: which sender addresses belong to which login, for
 * sender_binding and header_from_check (relay.h: a relay needs MAIL FROM,
 * and the From: header, to be an address of the user who logged in; from
 * a trusted network, an address of ours: a local domain or the map's).
 *
 * Without a map, a user owns exactly <user>@<each local domain> (or, for
 * logins that are whole addresses, that address). The map adds more, in
 * the format of Postfix's smtpd_sender_login_maps, so admins can share
 * one file between both:
 *
 *     # address or @domain     login[, login...]
 *     sales@example.net        alice, bob
 *     alice@example.org        alice
 *     @example.com             carol          # every address in a domain
 *
 * Addresses and domains are matched case-insensitively, logins exactly.
 * '#' starts a comment; blank lines are ignored; any other malformed line
 * is an error naming file:line. Reloaded on SIGHUP (the old map stays if
 * the new one is broken).
 */
#ifndef SMTPGATE_SENDERMAP_H
#define SMTPGATE_SENDERMAP_H

#include <stdbool.h>

struct conf_errors;
struct sendermap;

/* NULL when the file is unreadable or malformed; errors in errs. */
struct sendermap *sendermap_load(const char *path, struct conf_errors *errs);
void sendermap_free(struct sendermap *m);

/* Does the map give sender (exact address, then "@domain") to login? */
bool sendermap_owns(const struct sendermap *m, const char *sender,
                    const char *login);

/* Is sender (exact address, or its "@domain") in the map at all,
 * whoever it belongs to? The trusted-network rule: the map names the
 * provider's own addresses beside its local domains. */
bool sendermap_lists(const struct sendermap *m, const char *sender);

#endif
