/*
 * connload: one connection at a time to 127.0.0.1:port, as an SMTP
 * client opens them: connect, read the server's first line, close. What
 * it measures is the time from connect() to that line: under tcpserver,
 * a fork and exec of whatever tcpserver runs.
 *
 * Source addresses base+0 .. base+A-1 in turn. With -g the even ones
 * hold a grant: the line must say relay=yes for them and relay=no for the
 * odd ones (nullsmtpd's words); with -n every line must say relay=no.
 * Anything else is an error.
 *
 *   connload -p port [-t seconds] [-a addresses] [-b base-address] [-g|-n]
 *
 * Prints one line of key=value figures.
 */
#include "bench/bench.h"

#include <poll.h>
#include <stdbool.h>

enum expect { EXPECT_ANY, EXPECT_GRANTS, EXPECT_NONE };

struct copts {
    unsigned port, seconds, naddrs;
    struct in_addr base;
    enum expect expect;
};

/* The first line from fd, within 10 s; its length, or -1. */
static ssize_t first_line(int fd, char *buf, size_t size)
{
    size_t len = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN };

    while (len + 1 < size) {
        ssize_t n;
        if (poll(&p, 1, 10000) != 1)
            return -1;
        n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (strchr(buf, '\n'))
            return (ssize_t)len;
    }
    return -1;
}

static bool answer_ok(const struct copts *o, unsigned slot, const char *line)
{
    bool yes = strstr(line, "relay=yes") != NULL;

    switch (o->expect) {
    case EXPECT_GRANTS: return yes == (slot % 2 == 0) &&
                               (yes || strstr(line, "relay=no"));
    case EXPECT_NONE:   return strstr(line, "relay=no") != NULL;
    case EXPECT_ANY:    break;
    }
    return strncmp(line, "220", 3) == 0;
}

static void parse(int argc, char **argv, struct copts *o)
{
    int ch;

    memset(o, 0, sizeof(*o));
    o->seconds = 5;
    o->naddrs = 16;
    o->base = bench_ipv4_opt("connload", 'b', "127.0.7.1");
    while ((ch = getopt(argc, argv, "p:t:a:b:gn")) != -1) {
        switch (ch) {
        case 'p': o->port = bench_uint_opt("connload", ch, optarg, 1, 65535); break;
        case 't': o->seconds = bench_uint_opt("connload", ch, optarg, 1, 3600); break;
        case 'a': o->naddrs = bench_uint_opt("connload", ch, optarg, 1, 65536); break;
        case 'b': o->base = bench_ipv4_opt("connload", ch, optarg); break;
        case 'g': o->expect = EXPECT_GRANTS; break;
        case 'n': o->expect = EXPECT_NONE; break;
        default:
            fprintf(stderr, "usage: connload -p port [-t seconds] [-a addresses] "
                    "[-b base] [-g|-n]\n");
            exit(2);
        }
    }
    if (o->port == 0) {
        fprintf(stderr, "connload: -p port is required\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct copts o;
    struct bench_lat lat = { 0 };
    uint64_t start, stop, conns = 0, errors = 0, total_us = 0;
    char line[256];

    parse(argc, argv, &o);
    start = bench_now_us();
    stop = start + (uint64_t)o.seconds * 1000000u;
    for (unsigned slot = 0; bench_now_us() < stop; slot = (slot + 1) % o.naddrs) {
        struct in_addr src = bench_source_addr(o.base, slot);
        uint64_t t0 = bench_now_us();
        int fd = bench_connect(o.port, &src);
        ssize_t n = fd < 0 ? -1 : first_line(fd, line, sizeof(line));

        if (fd >= 0)
            close(fd);
        if (n < 0 || !answer_ok(&o, slot, line)) {
            if (errors++ < 3)
                fprintf(stderr, "connload: %s from %s\n", n < 0 ?
                        "no line" : line, inet_ntoa(src));
            continue;
        }
        bench_lat_add(&lat, bench_now_us() - t0);
        total_us += bench_now_us() - t0;
        conns++;
    }
    printf("conns=%llu rate=%.0f mean_ms=%.3f p50_ms=%.3f p99_ms=%.3f "
           "errors=%llu\n", (unsigned long long)conns,
           conns * 1e6 / (double)(bench_now_us() - start),
           conns ? total_us / 1000.0 / (double)conns : 0.0,
           bench_lat_ms(&lat, 0.5), bench_lat_ms(&lat, 0.99),
           (unsigned long long)errors);
    free(lat.v);
    return 0;
}
