/*
 * policyload: Postfix policy-delegation load, as Postfix's smtpd
 * processes make it: C persistent connections, one request at a time on
 * each (request, wait for the answer, next request).
 *
 * Requests are what Postfix 3.7 sends at RCPT time (SMTPD_POLICY_README:
 * every attribute, an empty line at the end), for client addresses
 * base+0 .. base+A-1 in turn. With -g the even-numbered addresses hold a
 * grant and the odd ones do not: every answer is checked (action=OK for
 * the former, action=DUNNO for the latter) and a wrong one is an error.
 *
 * With -n (new addresses) no address is asked about twice: request k of
 * the run, whichever connection sends it, is for base+k, so a cache in
 * the service never answers from memory (a cold run). The run ends when
 * the -t seconds are over or the A addresses are used up, whichever is
 * first (exhausted=1 then: the caller gave too few).
 *
 *   policyload -p port [-c connections] [-t seconds] [-a addresses]
 *              [-b base-address] [-g] [-n]
 *
 * Prints one line of key=value figures: requests answered in the -t
 * seconds and their rate, answers by action, errors, latency.
 *
 * Plain read()/write() on libevent events: the generator shares two
 * cores with the service, so it spends as few system calls as it can.
 */
#include "bench/bench.h"

#include <event2/event.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>

#define REPLY_MAX    1024
#define ERRORS_SHOWN 5

struct popts {
    unsigned port, conns, seconds, naddrs;
    struct in_addr base;
    bool check;
    bool fresh;                   /* -n: every request a new address */
};

struct pload;

struct pclient {
    struct pload *pl;
    unsigned slot, round, addr;
    int fd;
    struct event *ev;
    uint64_t t_sent;
    size_t len;
    char buf[REPLY_MAX];
    char *req;                    /* -n: this connection's request */
};

struct pload {
    struct popts o;
    struct event_base *base;
    struct pclient *clients;
    char **requests;              /* one per client address (not -n) */
    size_t *request_len;
    unsigned next;                /* -n: the next address's index */
    bool stopping, exhausted;
    uint64_t t_start, t_stop;
    uint64_t answered, ok, dunno, other, wrong, io_errors;
    struct bench_lat lat;
};

#define REQUEST_MAX 2048

/* What Postfix 3.7's smtpd sends at RCPT time, into r (REQUEST_MAX). */
static size_t format_request(char *r, struct in_addr a, unsigned i)
{
    char addr[INET_ADDRSTRLEN];
    int n;

    inet_ntop(AF_INET, &a, addr, sizeof(addr));
    n = snprintf(r, REQUEST_MAX,
        "request=smtpd_access_policy\nprotocol_state=RCPT\n"
        "protocol_name=ESMTP\nclient_address=%s\nclient_name=unknown\n"
        "client_port=%u\nreverse_client_name=unknown\n"
        "helo_name=pc%u.customers.example.net\n"
        "sender=user%u@example.net\nrecipient=friend%u@remote.example.com\n"
        "recipient_count=0\nqueue_id=\ninstance=%x.65f1c2a1.8c3d2.0\n"
        "size=0\netrn_domain=\nstress=\nsasl_method=\nsasl_username=\n"
        "sasl_sender=\nccert_subject=\nccert_issuer=\nccert_fingerprint=\n"
        "ccert_pubkey_fingerprint=\nencryption_protocol=\n"
        "encryption_cipher=\nencryption_keysize=0\n"
        "server_address=127.0.0.1\nserver_port=25\npolicy_context=\n"
        "compatibility_level=3.6\nmail_version=3.7.11\n\n",
        addr, 40000 + i % 20000, i, i, i, 0x1a2b + i);
    return (size_t)n;
}

static char *make_request(struct in_addr a, unsigned i, size_t *len)
{
    char *r = ab_malloc(REQUEST_MAX);

    *len = format_request(r, a, i);
    return r;
}

static uint64_t errors(const struct pload *pl)
{
    return pl->wrong + pl->other + pl->io_errors;
}

static void print_results(struct pload *pl)
{
    double secs = (double)(pl->t_stop - pl->t_start) / 1e6;

    printf("connections=%u seconds=%.3f requests=%llu rate=%.1f ok=%llu "
           "dunno=%llu other=%llu wrong=%llu io_errors=%llu errors=%llu "
           "exhausted=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", pl->o.conns,
           secs,
           (unsigned long long)pl->answered,
           secs > 0 ? (double)pl->answered / secs : 0.0,
           (unsigned long long)pl->ok, (unsigned long long)pl->dunno,
           (unsigned long long)pl->other, (unsigned long long)pl->wrong,
           (unsigned long long)pl->io_errors,
           (unsigned long long)errors(pl), pl->exhausted,
           bench_lat_ms(&pl->lat, 0.5),
           bench_lat_ms(&pl->lat, 0.99), bench_lat_ms(&pl->lat, 1.0));
}

static void stop(struct pload *pl)
{
    pl->stopping = true;
    pl->t_stop = bench_now_us();
    event_base_loopbreak(pl->base);
}

static void send_request(struct pclient *c)
{
    struct pload *pl = c->pl;
    const char *req;
    size_t len;
    ssize_t n;

    if (pl->o.fresh) {
        if (pl->next >= pl->o.naddrs) {
            pl->exhausted = true;
            stop(pl);
            return;
        }
        c->addr = pl->next++;
        len = format_request(c->req, bench_source_addr(pl->o.base, c->addr),
                             c->addr);
        req = c->req;
    } else {
        /* Connection k asks for addresses k, k+C, k+2C, ... in turn. */
        c->addr = (c->slot + pl->o.conns * c->round++) % pl->o.naddrs;
        req = pl->requests[c->addr];
        len = pl->request_len[c->addr];
    }
    c->len = 0;
    c->t_sent = bench_now_us();
    n = write(c->fd, req, len);
    if (n != (ssize_t)len) {
        fprintf(stderr, "policyload: write: %s\n",
                n < 0 ? strerror(errno) : "short write");
        pl->io_errors++;
        pl->stopping = true;
        event_base_loopbreak(pl->base);
    }
}

static void judge(struct pclient *c)
{
    struct pload *pl = c->pl;
    bool is_ok = strncmp(c->buf, "action=OK\n", 10) == 0;
    bool is_dunno = strncmp(c->buf, "action=DUNNO\n", 13) == 0;
    bool granted = c->addr % 2 == 0;
    bool bad = (!is_ok && !is_dunno) || (pl->o.check && is_ok != granted);

    pl->answered++;
    bench_lat_add(&pl->lat, bench_now_us() - c->t_sent);
    pl->ok += is_ok;
    pl->dunno += is_dunno;
    if (!is_ok && !is_dunno)
        pl->other++;
    else if (bad)
        pl->wrong++;
    if (bad && errors(pl) <= ERRORS_SHOWN)
        fprintf(stderr, "policyload: address #%u (%s) answered: %.*s\n",
                c->addr, granted ? "granted" : "no grant",
                (int)strcspn(c->buf, "\n"), c->buf);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct pclient *c = arg;
    struct pload *pl = c->pl;
    ssize_t n = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);

    (void)what;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || c->len + (size_t)n >= sizeof(c->buf) - 1) {
        fprintf(stderr, "policyload: connection %u: %s\n", c->slot,
                n == 0 ? "closed by the server" :
                n < 0 ? strerror(errno) : "answer too long");
        pl->io_errors++;
        event_del(c->ev);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    /* One request outstanding: the answer ends where the input does. */
    if (c->len < 2 || memcmp(c->buf + c->len - 2, "\n\n", 2) != 0)
        return;
    if (pl->stopping)
        return;
    judge(c);
    send_request(c);
}

/* Set-up only: the client speaks first, so the connection must be up. */
static int wait_connected(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int err = 0;
    socklen_t len = sizeof(err);

    if (poll(&p, 1, 5000) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    errno = err;
    return err == 0 ? 0 : -1;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stop(arg);
}

/* A numeric option, or exit naming it. */
static unsigned num(int opt, unsigned min, unsigned max)
{
    return bench_uint_opt("policyload", opt, optarg, min, max);
}

static void usage(void)
{
    fprintf(stderr, "usage: policyload -p port [-c connections] [-t seconds] "
            "[-a addresses] [-b base-address] [-g] [-n]\n");
    exit(2);
}

static void parse_opts(int argc, char **argv, struct popts *o)
{
    int opt;

    *o = (struct popts){ .conns = 16, .seconds = 5, .naddrs = 256 };
    o->base.s_addr = htonl(0x0a010001);          /* 10.1.0.1 */
    while ((opt = getopt(argc, argv, "p:c:t:a:b:gn")) != -1) {
        switch (opt) {
        case 'p': o->port = num(opt, 1, 65535); break;
        case 'c': o->conns = num(opt, 1, 4096); break;
        case 't': o->seconds = num(opt, 1, 3600); break;
        case 'a': o->naddrs = num(opt, 1, 1u << 26); break;
        case 'b': o->base = bench_ipv4_opt("policyload", opt, optarg); break;
        case 'g': o->check = true; break;
        case 'n': o->fresh = true; break;
        default: usage();
        }
    }
    if (o->port == 0 || optind != argc)
        usage();
}

int main(int argc, char **argv)
{
    static struct pload pl;
    struct timeval run;
    struct event *deadline;
    unsigned nreq;
    int rc;

    parse_opts(argc, argv, &pl.o);
    signal(SIGPIPE, SIG_IGN);
    pl.base = event_base_new();
    /* Requests made up front, unless each is for a new address. */
    nreq = pl.o.fresh ? 0 : pl.o.naddrs;
    pl.requests = ab_calloc(nreq + 1, sizeof(*pl.requests));
    pl.request_len = ab_calloc(nreq + 1, sizeof(*pl.request_len));
    for (unsigned i = 0; i < nreq; i++)
        pl.requests[i] = make_request(bench_source_addr(pl.o.base, i), i,
                                      &pl.request_len[i]);
    pl.clients = ab_calloc(pl.o.conns, sizeof(*pl.clients));
    for (unsigned i = 0; i < pl.o.conns; i++) {
        struct pclient *c = &pl.clients[i];
        c->pl = &pl;
        c->slot = i;
        if (pl.o.fresh)
            c->req = ab_malloc(REQUEST_MAX);
        if ((c->fd = bench_connect(pl.o.port, NULL)) < 0 ||
            wait_connected(c->fd) < 0) {
            perror("policyload: connect");
            return 1;
        }
        c->ev = event_new(pl.base, c->fd, EV_READ | EV_PERSIST, on_readable, c);
        event_add(c->ev, NULL);
    }
    run = (struct timeval){ pl.o.seconds, 0 };
    deadline = evtimer_new(pl.base, on_deadline, &pl);
    evtimer_add(deadline, &run);
    /* Persistent connections: set up before the clock starts. */
    pl.t_start = bench_now_us();
    for (unsigned i = 0; i < pl.o.conns && !pl.stopping; i++)
        send_request(&pl.clients[i]);
    if (!pl.stopping)
        event_base_dispatch(pl.base);
    if (pl.t_stop == 0)
        pl.t_stop = bench_now_us();
    print_results(&pl);
    fflush(stdout);
    rc = errors(&pl) == 0 && pl.answered > 0 ? 0 : 1;
    for (unsigned i = 0; i < pl.o.conns; i++) {
        event_free(pl.clients[i].ev);
        close(pl.clients[i].fd);
        free(pl.clients[i].req);
    }
    for (unsigned i = 0; i < nreq; i++)
        free(pl.requests[i]);
    free(pl.requests);
    free(pl.request_len);
    free(pl.clients);
    free(pl.lat.v);
    event_free(deadline);
    event_base_free(pl.base);
    return rc;
}
