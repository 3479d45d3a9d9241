/*
 * How the admin command shows what it read: times, durations, JSON
 * strings, and text made safe for a terminal.
 */
#include "authbridge/cli.h"
#include "authbridge/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *fmt_time(long long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
    return buf;
}

const char *fmt_duration(long long s, char *buf, size_t len)
{
    if (s < 0)
        snprintf(buf, len, "never");
    else if (s >= 3600)
        snprintf(buf, len, "%lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
    else if (s >= 60)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, len, "%llds", s);
    return buf;
}

void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/*
 * Anything read from Redis may have come from a client (a HELO name, a
 * sender, a user name through WHOSON): bytes outside printable ASCII
 * become \xNN, so no escape sequence reaches the admin's terminal; with
 * quote, a value holding a space, '=', '"' or '\\' (or an empty one) is
 * put in double quotes with '"' and '\\' escaped, so that no value can
 * pass for another field ("a\" user=\"root" stays one value).
 */
char *text_safe(const char *s, bool quote)
{
    bool q = quote && (*s == '\0' || strpbrk(s, " =\"\\") != NULL);
    char *out = ab_malloc(strlen(s) * 4 + 3), *o = out;

    if (q)
        *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f) {
            o += sprintf(o, "\\x%02x", *p);
            continue;
        }
        if (q && (*p == '"' || *p == '\\'))
            *o++ = '\\';
        *o++ = (char)*p;
    }
    if (q)
        *o++ = '"';
    *o = '\0';
    return out;
}

void print_safe(const char *s, bool quote)
{
    char *t = text_safe(s, quote);

    fputs(t, stdout);
    free(t);
}
