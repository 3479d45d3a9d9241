/*
 * The throttle's key names (throttle.h), apart from its async counting:
 * the admin command (`authbridge why`) reads the same keys, and linking
 * throttle.o would bring the daemons' Redis connection and libcrypto
 * into every run of `authbridge checkrelay`.
 */
#include "throttle.h"

#include <stdio.h>

void throttle_addr_key(const char *prefix, const struct ab_addr *a,
                       char *out, size_t len)
{
    char text[ADDR_TEXT_MAX];

    addr_grant_text(a, THROTTLE_V6_PREFIX, text);
    snprintf(out, len, "%sfail:%s", prefix, text);
}

void throttle_user_key(const char *prefix, const char *user, char *out,
                       size_t len)
{
    snprintf(out, len, "%sfailuser:%.256s", prefix, user);
}
