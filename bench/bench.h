/*
 * What the load generators and do-nothing responders share: the clock,
 * strict option parsing, client sockets from chosen loopback addresses,
 * listening sockets, and latency percentiles.
 *
 * Header-only (static inline) because the Makefile links each bench program
 * on its own with libauthbridge.a: there is no bench library to put a
 * shared .c file in.
 */
#ifndef BENCH_H
#define BENCH_H

#include "authbridge/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Microseconds on the monotonic clock. */
static inline uint64_t bench_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A numeric option in [min, max], or exit with a message naming it. */
static inline unsigned bench_uint_opt(const char *prog, int opt,
                                      const char *arg, unsigned min,
                                      unsigned max)
{
    uint64_t v;

    if (ab_parse_uint(arg, min, max, &v) < 0) {
        fprintf(stderr, "%s: -%c wants a number in [%u, %u], not '%s'\n",
                prog, opt, min, max, arg);
        exit(2);
    }
    return (unsigned)v;
}

/* A dotted-quad option, or exit. */
static inline struct in_addr bench_ipv4_opt(const char *prog, int opt,
                                            const char *arg)
{
    struct in_addr a;

    if (inet_pton(AF_INET, arg, &a) != 1) {
        fprintf(stderr, "%s: -%c wants an IPv4 address, not '%s'\n", prog,
                opt, arg);
        exit(2);
    }
    return a;
}

/* Every descriptor the hard limit allows: 10,000 connections need them. */
static inline void bench_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/*
 * The i-th of n client addresses: base + i (n = 0: no bind, the kernel
 * picks 127.0.0.1). Servers see distinct clients, as they would in
 * production; grants are per address, and per-address caps stay out of
 * the way.
 */
static inline struct in_addr bench_source_addr(struct in_addr base,
                                               unsigned i)
{
    struct in_addr a;

    a.s_addr = htonl(ntohl(base.s_addr) + i);
    return a;
}

/*
 * A non-blocking TCP connection under way to 127.0.0.1:port, from src
 * when src is not NULL; -1 with errno set. connect() on loopback answers
 * EINPROGRESS; callers wait for the server's first bytes rather than for
 * writability, which saves an epoll round and a getsockopt per session.
 */
static inline int bench_connect(unsigned port, const struct in_addr *src)
{
    struct sockaddr_in sin;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    /* Small request/response lines: send each at once. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (src != NULL) {
        /* Pick the port at connect() from the whole 4-tuple, not at
         * bind(): otherwise a few seconds of a login storm run out of
         * ports that TIME_WAIT still holds. */
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                         sizeof(one));
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr = *src;
        if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
            goto fail;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 &&
        errno != EINPROGRESS)
        goto fail;
    return fd;
fail:
    {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return -1;
}

/* ---- latency samples --------------------------------------------------- */

struct bench_lat {
    uint32_t *v;                  /* microseconds */
    size_t n, cap;
};

static inline void bench_lat_add(struct bench_lat *l, uint64_t us)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4096;
        l->v = ab_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static inline int bench_u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

/* The q-th quantile (0..1) in milliseconds; sorts the samples. */
static inline double bench_lat_ms(struct bench_lat *l, double q)
{
    size_t i;

    if (l->n == 0)
        return 0.0;
    qsort(l->v, l->n, sizeof(*l->v), bench_u32_cmp);
    i = (size_t)(q * (double)(l->n - 1) + 0.5);
    return l->v[i] / 1000.0;
}

/* ---- servers ----------------------------------------------------------- */

/* A listening socket on 127.0.0.1:port (0: any free port, see *bound). */
static inline int bench_listen(unsigned port, unsigned *bound)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(sin.sin_port);
    return fd;
}

#endif
