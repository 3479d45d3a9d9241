/*
 * Client addresses: parsing, the canonical text used in Redis keys, and
 * CIDR matching for trusted_networks.
 *
 * Canonical text (a public interface: it is part of every grant key):
 *   IPv4                 dotted quad, "203.0.113.7"
 *   IPv6                 RFC 5952 (inet_ntop), "2001:db8::1"
 *   IPv4-mapped IPv6     folded to IPv4, "::ffff:203.0.113.7" -> "203.0.113.7"
 *   IPv6 prefix grants   "2001:db8:1:2::/64" when grant.ipv6_prefix < 128
 */
#ifndef AB_ADDR_H
#define AB_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Enough for any canonical text, including a "/128" suffix. */
#define ADDR_TEXT_MAX 56

struct ab_addr {
    int family;          /* AF_INET or AF_INET6 */
    uint8_t b[16];       /* IPv4 uses b[0..3] */
};

struct cidr {
    struct ab_addr net;
    unsigned bits;
};

struct cidr_list {
    struct cidr *v;
    size_t n;
};

/*
 * Parse an address: IPv4 dotted quad, IPv6 (optionally in [brackets]),
 * IPv4-mapped IPv6 folded to IPv4. Zone ids ("fe80::1%eth0"), leading
 * zeros in IPv4 octets and surrounding spaces are refused. 0 or -1.
 */
int addr_parse(const char *text, struct ab_addr *out);

/* From a socket address (accept(), getpeername()); mapped IPv4 folded. */
int addr_from_sockaddr(const struct sockaddr *sa, struct ab_addr *out);

/* Canonical text of the address itself. */
void addr_format(const struct ab_addr *a, char out[ADDR_TEXT_MAX]);

/*
 * The text a grant is stored under: the canonical address, or for IPv6
 * with ipv6_prefix < 128 the network "2001:db8:1:2::/64".
 */
void addr_grant_text(const struct ab_addr *a, unsigned ipv6_prefix,
                     char out[ADDR_TEXT_MAX]);

/* Keep the first `bits` bits, zero the rest. */
void addr_mask(struct ab_addr *a, unsigned bits);

bool addr_equal(const struct ab_addr *x, const struct ab_addr *y);

/*
 * Parse "net/bits" or a single address (a host route). Host bits set
 * below the prefix are an error: "10.0.0.1/8" is almost always a typo.
 * On failure writes a reason to err and returns -1.
 */
int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen);

bool cidr_match(const struct cidr *c, const struct ab_addr *a);
bool cidr_list_match(const struct cidr_list *l, const struct ab_addr *a);

#endif
