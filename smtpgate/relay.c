#include "smtpgate/relay.h"
#include "smtpgate/sendermap.h"

#include "authbridge/log.h"
#include "authbridge/util.h"

#include <stdio.h>
#include <string.h>

enum relay_path relay_decide_now(const struct smtpgate_conf *sc,
                                 const struct relay_query *q)
{
    if (q->rcpt_local)
        return RELAY_LOCAL;
    if (cidr_list_match(&sc->d.trusted_networks, q->client))
        return RELAY_TRUSTED;
    if (q->auth_user != NULL)
        return RELAY_AUTH;
    return RELAY_NEED_GRANT;
}

bool relay_sender_owned(const struct strlist *local_domains,
                        const struct sendermap *map, const char *sender,
                        const char *login)
{
    const char *at = strrchr(sender, '@');
    size_t llen = strlen(login);

    if (sender[0] == '\0' || at == NULL)
        return false;
    if (strchr(login, '@') != NULL) {
        if (ab_strcaseeq(sender, login))
            return true;
    } else if ((size_t)(at - sender) == llen &&
               ab_strncaseeq(sender, login, llen) &&
               strlist_contains_ci(local_domains, at + 1, strlen(at + 1))) {
        return true;
    }
    return sendermap_owns(map, sender, login);
}

enum relay_path relay_grant_outcome(const struct smtpgate_conf *sc,
                                    const struct sendermap *map,
                                    enum grant_status st, const char *user,
                                    const char *sender)
{
    switch (st) {
    case GRANT_UNAVAILABLE:
        return RELAY_TEMPFAIL;
    case GRANT_NONE:
        return RELAY_DENIED;
    case GRANT_OK:
        break;
    }
    return relay_bind(sc, map, RELAY_GRANT, user, sender);
}

bool relay_sender_allowed(const struct smtpgate_conf *sc,
                          const struct sendermap *map, const char *user,
                          const char *sender)
{
    const char *at;

    if (user != NULL)
        return relay_sender_owned(&sc->local_domains, map, sender, user);
    if (sender[0] == '\0')
        return true;
    at = strrchr(sender, '@');
    if (at == NULL)
        return false;
    return strlist_contains_ci(&sc->local_domains, at + 1, strlen(at + 1)) ||
           sendermap_lists(map, sender);
}

enum relay_path relay_bind(const struct smtpgate_conf *sc,
                           const struct sendermap *map, enum relay_path path,
                           const char *user, const char *sender)
{
    bool bound;

    switch (path) {
    case RELAY_GRANT:
        bound = sc->sender_binding != SENDER_BINDING_NO;
        break;
    case RELAY_TRUSTED:
    case RELAY_AUTH:
        bound = sc->sender_binding == SENDER_BINDING_ALL;
        break;
    default:
        return path;
    }
    if (bound && !relay_sender_allowed(sc, map, user, sender))
        return RELAY_SENDER_MISMATCH;
    return path;
}

void relay_own_address(const struct smtpgate_conf *sc, const char *user,
                       char *buf, size_t size)
{
    const char *domain = sc->local_domains.n > 0 ? sc->local_domains.v[0] : NULL;

    if (user != NULL && strchr(user, '@') != NULL)
        snprintf(buf, size, "%s", user);
    else if (user != NULL && domain != NULL)
        snprintf(buf, size, "%s@%s", user, domain);
    else if (user == NULL && domain != NULL)
        snprintf(buf, size, "an address @%s", domain);
    else
        snprintf(buf, size, "your own address");
    /* A reply line: a user name from Redis may hold anything. */
    for (char *c = buf; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
}

bool relay_allowed(enum relay_path p)
{
    return p == RELAY_LOCAL || p == RELAY_TRUSTED || p == RELAY_AUTH ||
           p == RELAY_GRANT;
}

const char *relay_path_name(enum relay_path p)
{
    switch (p) {
    case RELAY_LOCAL:           return "local";
    case RELAY_TRUSTED:         return "trusted";
    case RELAY_AUTH:            return "auth";
    case RELAY_GRANT:           return "grant";
    case RELAY_DENIED:          return "denied";
    case RELAY_TEMPFAIL:        return "tempfail";
    case RELAY_SENDER_MISMATCH: return "sender_mismatch";
    case RELAY_NEED_GRANT:      return "need_grant";
    }
    return "?";
}
