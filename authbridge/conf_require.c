/*
 * What each program needs beyond a well-formed file, found without
 * binding or connecting, so that `-t` says "configuration OK" only to a
 * configuration that can start: the files it names, listeners that can
 * all be bound together, and a `user` account that exists.
 */
#include "conf.h"
#include "util.h"

#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* A listening key of a daemon's section. */
struct listen_key {
    const char *key;
    const struct endpoint_list *l;
};

/* "file:line: key: message", or "file: [section] key: message" for a
 * key that kept its default. */
static void key_error(const struct ab_conf *c, struct conf_errors *errs,
                      const char *sec, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void key_error(const struct ab_conf *c, struct conf_errors *errs,
                      const char *sec, const char *key, const char *fmt, ...)
{
    int line = conf_key_line(c, sec, key);
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        conf_errors_add(errs, "%s:%d: %s: %s", c->path, line, key, msg);
    else
        conf_errors_add(errs, "%s: [%s] %s: %s", c->path, sec, key, msg);
}

static bool is_wildcard(const struct endpoint *e)
{
    static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

    if (e->family == AF_INET)
        return ((const struct sockaddr_in *)&e->ss)->sin_addr.s_addr ==
               htonl(INADDR_ANY);
    return memcmp(&((const struct sockaddr_in6 *)&e->ss)->sin6_addr, &any6,
                  sizeof(any6)) == 0;
}

static bool same_host(const struct endpoint *a, const struct endpoint *b)
{
    if (a->family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)&b->ss)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
                  &((const struct sockaddr_in6 *)&b->ss)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

/*
 * Two listeners that cannot both be bound: the same unix path; the same
 * port on the same address, or on a wildcard of that family (Linux
 * refuses 127.0.0.1:110 once 0.0.0.0:110 listens, SO_REUSEADDR or not);
 * and [::] takes IPv4 too (net.ipv6.bindv6only is 0 by default).
 */
static bool endpoints_clash(const struct endpoint *a, const struct endpoint *b)
{
    if (a->family == AF_UNIX || b->family == AF_UNIX)
        return a->family == b->family && strcmp(a->path, b->path) == 0;
    if (a->port != b->port)
        return false;
    if (a->family == b->family)
        return same_host(a, b) || is_wildcard(a) || is_wildcard(b);
    return (a->family == AF_INET6 && is_wildcard(a)) ||
           (b->family == AF_INET6 && is_wildcard(b));
}

static void check_listeners(const struct ab_conf *c, const char *sec,
                            const struct listen_key *keys, size_t nkeys,
                            struct conf_errors *errs)
{
    for (size_t i = 0; i < nkeys; i++)
        for (size_t a = 0; a < keys[i].l->n; a++) {
            const struct endpoint *ea = &keys[i].l->v[a];
            /* Compare with every listener before this one. */
            for (size_t j = 0; j <= i; j++)
                for (size_t b = 0; b < (j == i ? a : keys[j].l->n); b++) {
                    const struct endpoint *eb = &keys[j].l->v[b];
                    if (!endpoints_clash(ea, eb))
                        continue;
                    if (j == i)
                        key_error(c, errs, sec, keys[i].key, "%s and %s "
                                  "cannot both be bound", eb->text, ea->text);
                    else
                        key_error(c, errs, sec, keys[i].key, "%s cannot be "
                                  "bound: %s is in %s", ea->text, eb->text,
                                  keys[j].key);
                }
        }
}

static void check_user(const struct ab_conf *c, const char *sec,
                       const struct daemon_conf *d, struct conf_errors *errs)
{
    struct passwd *pw;

    if (d->user[0] == '\0')
        return;
    errno = 0;
    pw = getpwnam(d->user);
    if (pw == NULL)
        key_error(c, errs, sec, "user", "no account named '%s'%s%s", d->user,
                  errno ? ": " : "", errno ? strerror(errno) : "");
}

static void require_daemon(const struct ab_conf *c, const char *sec,
                           const struct daemon_conf *d, struct conf_errors *errs)
{
    if (d->listen_tls.n > 0 && (d->tls_cert[0] == '\0' || d->tls_key[0] == '\0'))
        conf_errors_add(errs, "%s: [%s] listen_tls needs tls_cert and tls_key",
                        c->path, sec);
    if ((d->tls_cert[0] == '\0') != (d->tls_key[0] == '\0'))
        conf_errors_add(errs, "%s: [%s] tls_cert and tls_key go together",
                        c->path, sec);
    check_user(c, sec, d, errs);
}

void conf_require_pop3d(const struct ab_conf *c, struct conf_errors *errs)
{
    const struct daemon_conf *d = &c->pop3d.d;
    const struct listen_key listeners[] = {
        { "listen", &d->listen }, { "listen_tls", &d->listen_tls },
        { "metrics_listen", &d->metrics_listen },
    };

    if (d->listen.n == 0 && d->listen_tls.n == 0)
        conf_errors_add(errs, "%s: [pop3d] needs listen or listen_tls",
                        c->path);
    require_daemon(c, "pop3d", d, errs);
    if (d->users[0] == '\0')
        conf_errors_add(errs, "%s: [pop3d] users (the passwd-file) is required",
                        c->path);
    check_listeners(c, "pop3d", listeners, AB_ARRAY_LEN(listeners), errs);
}

void conf_require_smtpgate(const struct ab_conf *c, struct conf_errors *errs)
{
    const struct smtpgate_conf *s = &c->smtpgate;
    /* Every listening key of [smtpgate]: a new front door adds its own. */
    const struct listen_key listeners[] = {
        { "listen", &s->d.listen }, { "listen_tls", &s->d.listen_tls },
        { "policy_listen", &s->policy_listen },
        { "whoson_listen", &s->whoson_listen },
        { "dovecot_listen", &s->dovecot_listen },
        { "metrics_listen", &s->d.metrics_listen },
        { "socketmap_listen", &s->socketmap_listen },
    };
    size_t n = 0;

    for (size_t i = 0; i < AB_ARRAY_LEN(listeners); i++)
        n += listeners[i].l->n;
    n -= s->d.metrics_listen.n;       /* statistics are not a front door */
    if (n == 0)
        conf_errors_add(errs, "%s: [smtpgate] needs at least one of listen, "
                        "listen_tls, policy_listen, whoson_listen, "
                        "dovecot_listen, socketmap_listen", c->path);
    if (s->dovecot_listen.n > 0 && strlen(s->dovecot_api_key) < 16)
        conf_errors_add(errs, "%s: [smtpgate] dovecot_listen needs "
                        "dovecot_api_key (16 characters or more)", c->path);
    /* The key is also the password in the event exporter's URL: only
     * characters a URL carries as they are (RFC 3986 unreserved). */
    if (strspn(s->dovecot_api_key, "abcdefghijklmnopqrstuvwxyz"
               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~") !=
        strlen(s->dovecot_api_key))
        conf_errors_add(errs, "%s: [smtpgate] dovecot_api_key: only letters, "
                        "digits and - . _ ~ (it goes into a URL)", c->path);
    if ((s->d.listen.n > 0 || s->d.listen_tls.n > 0) &&
        s->downstream.family == 0)
        conf_errors_add(errs, "%s: [smtpgate] listen needs downstream (the "
                        "MTA to pass mail to)", c->path);
    require_daemon(c, "smtpgate", &s->d, errs);
    check_listeners(c, "smtpgate", listeners, AB_ARRAY_LEN(listeners), errs);
}
