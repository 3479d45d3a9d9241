#include "addr.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* ::ffff:a.b.c.d is the same host as a.b.c.d: one grant, one key. */
static void fold_mapped(struct ab_addr *a)
{
    if (a->family == AF_INET6 &&
        memcmp(a->b, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
        memmove(a->b, a->b + 12, 4);
        memset(a->b + 4, 0, 12);
        a->family = AF_INET;
    }
}

/*
 * inet_pton(AF_INET) already refuses "1.2.3" and "1.2.3.4.5" but accepts
 * "01.2.3.4" on some libcs; octal-looking octets are refused so that a
 * config never means something other than what it appears to say.
 */
static bool ipv4_has_leading_zero(const char *s)
{
    for (const char *p = s; *p; p++)
        if (*p == '0' && (p == s || p[-1] == '.') &&
            p[1] >= '0' && p[1] <= '9')
            return true;
    return false;
}

int addr_parse(const char *text, struct ab_addr *out)
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t len = strlen(text);
    struct ab_addr a;

    memset(&a, 0, sizeof(a));
    if (len == 0 || len >= sizeof(buf))
        return -1;
    if (text[0] == '[') {
        if (len < 3 || text[len - 1] != ']')
            return -1;
        memcpy(buf, text + 1, len - 2);
        buf[len - 2] = '\0';
        if (inet_pton(AF_INET6, buf, a.b) != 1)
            return -1;
        a.family = AF_INET6;
    } else if (strchr(text, ':') != NULL) {
        if (inet_pton(AF_INET6, text, a.b) != 1)
            return -1;
        a.family = AF_INET6;
    } else {
        if (ipv4_has_leading_zero(text) || inet_pton(AF_INET, text, a.b) != 1)
            return -1;
        a.family = AF_INET;
    }
    fold_mapped(&a);
    *out = a;
    return 0;
}

int addr_from_sockaddr(const struct sockaddr *sa, struct ab_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        out->family = AF_INET;
        memcpy(out->b, &s4->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        out->family = AF_INET6;
        memcpy(out->b, &s6->sin6_addr, 16);
        fold_mapped(out);
        return 0;
    }
    return -1;
}

void addr_format(const struct ab_addr *a, char out[ADDR_TEXT_MAX])
{
    if (inet_ntop(a->family, a->b, out, ADDR_TEXT_MAX) == NULL)
        snprintf(out, ADDR_TEXT_MAX, "unknown");
}

void addr_mask(struct ab_addr *a, unsigned bits)
{
    unsigned total = a->family == AF_INET ? 32 : 128;

    if (bits >= total)
        return;
    a->b[bits / 8] &= (uint8_t)(0xff00 >> (bits % 8));
    for (unsigned i = bits / 8 + 1; i < total / 8; i++)
        a->b[i] = 0;
}

void addr_grant_text(const struct ab_addr *a, unsigned ipv6_prefix,
                     char out[ADDR_TEXT_MAX])
{
    struct ab_addr net = *a;
    size_t len;

    if (a->family != AF_INET6 || ipv6_prefix >= 128) {
        addr_format(a, out);
        return;
    }
    addr_mask(&net, ipv6_prefix);
    addr_format(&net, out);
    len = strlen(out);
    snprintf(out + len, ADDR_TEXT_MAX - len, "/%u", ipv6_prefix);
}

bool addr_equal(const struct ab_addr *x, const struct ab_addr *y)
{
    size_t n = x->family == AF_INET ? 4 : 16;
    return x->family == y->family && memcmp(x->b, y->b, n) == 0;
}

int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(text, '/');
    struct cidr c;
    struct ab_addr masked;
    uint64_t bits;
    unsigned max;
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);

    if (alen == 0 || alen >= sizeof(buf)) {
        snprintf(err, errlen, "'%s' is not a network (want address/bits)", text);
        return -1;
    }
    memcpy(buf, text, alen);
    buf[alen] = '\0';
    if (addr_parse(buf, &c.net) < 0) {
        snprintf(err, errlen, "'%s' is not an IPv4 or IPv6 address", buf);
        return -1;
    }
    /* A mapped network ("::ffff:10.0.0.0/104") folds to IPv4 bits. */
    max = c.net.family == AF_INET ? 32 : 128;
    bits = max;
    if (slash != NULL) {
        if (ab_parse_uint(slash + 1, 0, 128, &bits) < 0) {
            snprintf(err, errlen, "'%s': bad prefix length", text);
            return -1;
        }
        if (c.net.family == AF_INET && strchr(buf, ':') != NULL) {
            if (bits < 96) {
                snprintf(err, errlen, "'%s': mapped prefix shorter than /96", text);
                return -1;
            }
            bits -= 96;
        }
        if (bits > max) {
            snprintf(err, errlen, "'%s': prefix longer than /%u", text, max);
            return -1;
        }
    }
    c.bits = (unsigned)bits;
    masked = c.net;
    addr_mask(&masked, c.bits);
    if (!addr_equal(&masked, &c.net)) {
        char fix[ADDR_TEXT_MAX];
        addr_format(&masked, fix);
        snprintf(err, errlen, "'%s' has host bits set (did you mean %s/%u?)",
                 text, fix, c.bits);
        return -1;
    }
    *out = c;
    return 0;
}

bool cidr_match(const struct cidr *c, const struct ab_addr *a)
{
    struct ab_addr masked = *a;

    if (c->net.family != a->family)
        return false;
    addr_mask(&masked, c->bits);
    return addr_equal(&masked, &c->net);
}

bool cidr_list_match(const struct cidr_list *l, const struct ab_addr *a)
{
    for (size_t i = 0; i < l->n; i++)
        if (cidr_match(&l->v[i], a))
            return true;
    return false;
}
