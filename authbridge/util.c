#include "util.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int ab_parse_uint_n(const char *s, size_t len, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        /* Overflow check before the multiply, not after. */
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int ab_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    return ab_parse_uint_n(s, strlen(s), min, max, out);
}

void *ab_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        fatalx("out of memory (%zu bytes)", n);
    return p;
}

void *ab_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        fatalx("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *ab_realloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        fatalx("out of memory (%zu bytes)", n);
    return p;
}

char *ab_strdup(const char *s)
{
    return ab_strndup(s, strlen(s));
}

char *ab_strndup(const char *s, size_t n)
{
    char *p = ab_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

uint64_t ab_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

char *ab_trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    return s;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

bool ab_strncaseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
        if (a[i] == '\0')
            return true;
    }
    return true;
}

bool ab_strcaseeq(const char *a, const char *b)
{
    size_t la = strlen(a);
    return la == strlen(b) && ab_strncaseeq(a, b, la);
}

bool ab_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char diff = 0;

    for (size_t i = 0; i < n; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}

void ab_random(void *buf, size_t n)
{
    unsigned char *p = buf;

    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fatalx("getrandom: %s", strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
}
