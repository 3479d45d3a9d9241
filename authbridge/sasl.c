#include "authbridge/sasl.h"
#include "authbridge/users.h"

#include <string.h>

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* One group of four characters, the last possibly padded. */
static int b64_group(const char *in, bool last, unsigned char out[3])
{
    int v[4], pad = 0;

    for (int k = 0; k < 4; k++) {
        if (in[k] == '=' && last && k >= 2) {
            pad++;
            v[k] = 0;
            continue;
        }
        if (pad > 0 || (v[k] = b64_value((unsigned char)in[k])) < 0)
            return -1;                /* '=' in the middle, or garbage */
    }
    out[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
    out[1] = (unsigned char)(v[1] << 4 | v[2] >> 2);
    out[2] = (unsigned char)(v[2] << 6 | v[3]);
    /* Canonical encoding only: the bits the padding drops must be 0. */
    if ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))
        return -1;
    return 3 - pad;
}

long sasl_base64_decode(const char *in, size_t len, unsigned char *out,
                        size_t outlen)
{
    size_t o = 0;

    if (len == 1 && in[0] == '=')
        return 0;
    if (len % 4 != 0)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        unsigned char group[3];
        int n = b64_group(in + i, i + 4 == len, group);
        if (n < 0 || o + (size_t)n > outlen)
            return -1;
        memcpy(out + o, group, (size_t)n);
        o += (size_t)n;
    }
    return (long)o;
}

int sasl_plain_split(unsigned char *msg, size_t len, const char **user,
                     const char **pass, size_t *passlen)
{
    unsigned char *nul1 = memchr(msg, '\0', len), *nul2;
    const char *authzid = (const char *)msg;

    if (nul1 == NULL)
        return -1;
    nul2 = memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg));
    if (nul2 == NULL)
        return -1;
    *user = (const char *)nul1 + 1;
    *pass = (const char *)nul2 + 1;
    *passlen = len - (size_t)(nul2 + 1 - msg);
    if (memchr(*pass, '\0', *passlen) != NULL || !users_valid_name(*user))
        return -1;
    if (authzid[0] != '\0' && strcmp(authzid, *user) != 0)
        return -1;
    return 0;
}
