/*
 * users_valid_name() (declared in users.h), alone in its object: the
 * admin command checks names with it, and pulling users.o in would link
 * libcrypto and libxcrypt into every run of `authbridge checkrelay`
 * (about 4 ms more per SMTP connection on a slow host, mostly the
 * dynamic loader relocating libcrypto).
 */
#include "users.h"

#include <string.h>

bool users_valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > USER_NAME_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == ':')
            return false;
    return true;
}
