#include "hashcost.h"

#include <crypt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * "$id$params$salt$hash": every field but the last two. bcrypt packs
 * salt and hash in one field ("$2b$12$<53 chars>"): its class is the id
 * and the cost. DES crypt (13 characters, no '$') is one class.
 */
void hashcost_class(const char *hash, char *out, size_t len)
{
    const char *fields[16];
    size_t n = 0;

    if (hash[0] != '$') {
        snprintf(out, len, "des");
        return;
    }
    for (const char *p = hash; p != NULL && n < 16; p = strchr(p + 1, '$'))
        fields[n++] = p;
    if (n >= 3 && hash[1] == '2')
        n = 2;                    /* $2b$12$...: id and cost */
    else if (n >= 3)
        n -= 2;                   /* drop salt and hash */
    if (n == 0) {
        snprintf(out, len, "%s", hash);
        return;
    }
    snprintf(out, len, "%.*s", (int)(fields[n - 1] - hash) +
             (int)strcspn(fields[n - 1] + 1, "$") + 1, hash);
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t hashcost_measure_ns(const char *hash)
{
    static _Thread_local struct crypt_data cd;
    uint64_t best = UINT64_MAX;

    for (int i = 0; i < 2; i++) {
        uint64_t t0 = thread_cpu_ns();
        (void)crypt_r("authbridge-calibration", hash, &cd);
        uint64_t t = thread_cpu_ns() - t0;
        if (t < best)
            best = t;
    }
    return best;
}
