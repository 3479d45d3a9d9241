/*
 * Endpoints in the configuration: "host:port", "[v6]:port", "unix:/path"
 * (declared in conf.h).
 */
#include "conf.h"
#include "util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

void endpoint_free(struct endpoint *e)
{
    free(e->text);
    free(e->path);
    memset(e, 0, sizeof(*e));
}

static int endpoint_parse_unix(const char *path, struct endpoint *out,
                               char *err, size_t errlen)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;

    if (path[0] != '/' || strlen(path) >= sizeof(sun->sun_path)) {
        snprintf(err, errlen, "unix socket path must be absolute and shorter "
                 "than %zu characters", sizeof(sun->sun_path));
        return -1;
    }
    out->family = AF_UNIX;
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    out->sslen = sizeof(*sun);
    out->path = ab_strdup(path);
    return 0;
}

static int split_host_port(const char *text, char *host, size_t hostlen,
                           unsigned *port)
{
    const char *colon;
    size_t len;
    uint64_t p;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        len = (size_t)(close - text - 1);
        if (len >= hostlen)
            return -1;
        memcpy(host, text + 1, len);
        host[len] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text)))
            return -1;            /* bare IPv6 needs [brackets] */
        len = (size_t)(colon - text);
        if (len == 0 || len >= hostlen)
            return -1;
        memcpy(host, text, len);
        host[len] = '\0';
    }
    if (ab_parse_uint(colon + 1, 1, 65535, &p) < 0)
        return -1;
    *port = (unsigned)p;
    return 0;
}

int endpoint_parse(const char *text, bool allow_names, struct endpoint *out,
                   char *err, size_t errlen)
{
    char host[256];
    struct addrinfo hints, *res = NULL;
    struct ab_addr addr;
    unsigned port;
    bool dotted;
    int rc;

    memset(out, 0, sizeof(*out));
    if (strncmp(text, "unix:", 5) == 0) {
        if (endpoint_parse_unix(text + 5, out, err, errlen) < 0)
            return -1;
        out->text = ab_strdup(text);
        return 0;
    }
    if (split_host_port(text, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "'%s' is not host:port, [ipv6]:port or "
                 "unix:/path", text);
        return -1;
    }
    /* getaddrinfo() also takes inet_aton()'s forms: "127.1", hex, and
     * octal "010.0.0.1" (= 8.0.0.1). An IPv4 host must be a plain dotted
     * quad, so the file means what it appears to say. */
    dotted = host[strspn(host, "0123456789.")] == '\0';
    if (strchr(host, ':') == NULL && (dotted || !allow_names) &&
        addr_parse(host, &addr) < 0) {
        snprintf(err, errlen, "'%s': %s", host, dotted ?
                 "not a dotted-quad IPv4 address" : "not a numeric address");
        return -1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (allow_names ? 0 : AI_NUMERICHOST);
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "'%s': %s", host,
                 allow_names ? gai_strerror(rc) : "not a numeric address");
        return -1;
    }
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->sslen = res->ai_addrlen;
    out->family = res->ai_family;
    freeaddrinfo(res);
    if (out->family == AF_INET) {
        ((struct sockaddr_in *)&out->ss)->sin_port = htons((uint16_t)port);
        inet_ntop(AF_INET, &((struct sockaddr_in *)&out->ss)->sin_addr,
                  out->host, sizeof(out->host));
    } else {
        ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)port);
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&out->ss)->sin6_addr,
                  out->host, sizeof(out->host));
    }
    out->port = port;
    out->text = ab_strdup(text);
    return 0;
}
