/*
 * pop3idle: open N connections to a POP3 server and hold them, idle.
 *
 * Each connection waits for the greeting (with -l it also logs in, as
 * users 0..U-1 in turn) and then sends nothing more. Once all N are
 * there, one line "held=N ..." goes to stdout, so a script can measure
 * the server's memory and try a fresh client meanwhile. SIGTERM (or -T
 * seconds) ends the hold with a last line "held=H dropped=D": a
 * connection the server closed or broke while held counts as dropped.
 *
 * Connections come from -a distinct loopback addresses (base, base+1,
 * ...) so the server's per-address cap is not what is measured, and at
 * most -C are being set up at a time, as a listen backlog would want.
 *
 *   pop3idle -p port -n count [-a addresses] [-b base] [-C in-flight]
 *            [-l -U users -u user-prefix -P pass-prefix] [-T seconds]
 */
#include "bench/bench.h"

#include <event2/event.h>
#include <signal.h>
#include <stdbool.h>

#define LINE_BUF 512

enum idle_state { IS_GREETING, IS_USER, IS_PASS, IS_HELD, IS_CLOSED };

struct idle_opts {
    unsigned port, count, nsrc, inflight, users, seconds;
    bool login;
    const char *user_prefix, *pass_prefix;
    struct in_addr src_base;
};

struct idle_conn {
    struct holder *h;
    unsigned index;
    int fd;
    struct event *ev;
    enum idle_state st;
    size_t len;
    char buf[LINE_BUF];
};

struct holder {
    struct idle_opts o;
    struct event_base *base;
    struct idle_conn *conns;
    unsigned next, setting_up, held, dropped, failed;
    bool announced;
    uint64_t t_start;
};

static void start_more(struct holder *h);

static void conn_drop(struct idle_conn *c, const char *why)
{
    struct holder *h = c->h;

    if (c->st == IS_HELD)
        h->dropped++;
    else
        h->failed++;
    if (h->dropped + h->failed <= 5)
        fprintf(stderr, "pop3idle: connection %u %s: %s\n", c->index,
                c->st == IS_HELD ? "dropped while held" : "failed", why);
    event_free(c->ev);
    close(c->fd);
    c->fd = -1;
    if (c->st == IS_HELD) {
        c->st = IS_CLOSED;
        h->held--;
        return;
    }
    c->st = IS_CLOSED;
    h->setting_up--;
    start_more(h);
}

static void send_line(struct idle_conn *c, const char *kw, const char *prefix)
{
    char cmd[128];
    int n = snprintf(cmd, sizeof(cmd), "%s %s%04u\r\n", kw, prefix,
                     c->index % c->h->o.users);

    if (write(c->fd, cmd, (size_t)n) != n)
        conn_drop(c, "write failed");
}

static void announce_if_all_held(struct holder *h)
{
    if (h->announced || h->held < h->o.count)
        return;
    h->announced = true;
    printf("held=%u seconds=%.2f\n", h->held,
           (double)(bench_now_us() - h->t_start) / 1e6);
    fflush(stdout);
}

static void became_held(struct idle_conn *c)
{
    struct holder *h = c->h;

    c->st = IS_HELD;
    h->setting_up--;
    h->held++;
    announce_if_all_held(h);
    start_more(h);
}

/* One status line during set-up. */
static void on_line(struct idle_conn *c, const char *line, size_t len)
{
    if (len < 3 || memcmp(line, "+OK", 3) != 0) {
        conn_drop(c, line);
        return;
    }
    switch (c->st) {
    case IS_GREETING:
        if (!c->h->o.login) {
            became_held(c);
            return;
        }
        c->st = IS_USER;
        send_line(c, "USER", c->h->o.user_prefix);
        return;
    case IS_USER:
        c->st = IS_PASS;
        send_line(c, "PASS", c->h->o.pass_prefix);
        return;
    case IS_PASS:
        became_held(c);
        return;
    case IS_HELD:
    case IS_CLOSED:
        return;
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct idle_conn *c = arg;
    ssize_t n = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
    char *eol;

    (void)what;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_drop(c, n == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    if (n < 0)
        return;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (c->st == IS_HELD) {
        /* A held connection hears only farewells (an idle timeout). */
        conn_drop(c, c->buf);
        return;
    }
    if ((eol = strstr(c->buf, "\r\n")) == NULL) {
        if (c->len == sizeof(c->buf) - 1)
            conn_drop(c, "line too long");
        return;
    }
    *eol = '\0';
    c->len = 0;
    on_line(c, c->buf, (size_t)(eol - c->buf));
}

static void start_one(struct holder *h)
{
    struct idle_conn *c = &h->conns[h->next];
    struct in_addr src = bench_source_addr(h->o.src_base, h->next % h->o.nsrc);

    c->h = h;
    c->index = h->next++;
    c->fd = bench_connect(h->o.port, &src);
    if (c->fd < 0) {
        h->failed++;
        c->st = IS_CLOSED;
        fprintf(stderr, "pop3idle: connect %u: %s\n", c->index,
                strerror(errno));
        return;
    }
    c->st = IS_GREETING;
    c->ev = event_new(h->base, c->fd, EV_READ | EV_PERSIST, on_readable, c);
    event_add(c->ev, NULL);
    h->setting_up++;
}

static void start_more(struct holder *h)
{
    while (h->next < h->o.count && h->setting_up < h->o.inflight)
        start_one(h);
    if (h->next == h->o.count && h->setting_up == 0 && !h->announced) {
        printf("held=%u failed=%u (not all connections could be set up)\n",
               h->held, h->failed);
        fflush(stdout);
        h->announced = true;
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(((struct holder *)arg)->base);
}

/* A numeric option, or exit naming it. */
static unsigned num(int opt, unsigned min, unsigned max)
{
    return bench_uint_opt("pop3idle", opt, optarg, min, max);
}

static void usage(void)
{
    fprintf(stderr, "usage: pop3idle -p port -n count [-a addresses] "
            "[-b base] [-C in-flight]\n"
            "         [-l -U users -u user-prefix -P pass-prefix] "
            "[-T seconds]\n");
    exit(2);
}

static void parse_opts(int argc, char **argv, struct idle_opts *o)
{
    int opt;

    *o = (struct idle_opts){ .nsrc = 1000, .inflight = 200, .users = 1,
                             .seconds = 300, .user_prefix = "u",
                             .pass_prefix = "pw" };
    o->src_base.s_addr = htonl(0x7f030001);       /* 127.3.0.1 */
    while ((opt = getopt(argc, argv, "p:n:a:b:C:lU:u:P:T:")) != -1) {
        switch (opt) {
        case 'p': o->port = num(opt, 1, 65535); break;
        case 'n': o->count = num(opt, 1, 1000000); break;
        case 'a': o->nsrc = num(opt, 1, 1u << 20); break;
        case 'C': o->inflight = num(opt, 1, 100000); break;
        case 'U': o->users = num(opt, 1, 1000000); break;
        case 'T': o->seconds = num(opt, 1, 86400); break;
        case 'b': o->src_base = bench_ipv4_opt("pop3idle", opt, optarg); break;
        case 'u': o->user_prefix = optarg; break;
        case 'P': o->pass_prefix = optarg; break;
        case 'l': o->login = true; break;
        default: usage();
        }
    }
    if (o->port == 0 || o->count == 0 || optind != argc)
        usage();
    if (o->login && o->users < o->count) {
        /* Two sessions of one user: the second gets [IN-USE]. */
        fprintf(stderr, "pop3idle: -l needs a user per connection (-U)\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    static struct holder h;
    struct event *sigterm, *sigint, *timer;
    struct timeval limit;

    parse_opts(argc, argv, &h.o);
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile();
    h.base = event_base_new();
    h.conns = ab_calloc(h.o.count, sizeof(*h.conns));
    sigterm = evsignal_new(h.base, SIGTERM, on_stop, &h);
    sigint = evsignal_new(h.base, SIGINT, on_stop, &h);
    timer = evtimer_new(h.base, on_stop, &h);
    limit = (struct timeval){ h.o.seconds, 0 };
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    evtimer_add(timer, &limit);
    h.t_start = bench_now_us();
    start_more(&h);
    event_base_dispatch(h.base);
    printf("held=%u dropped=%u failed=%u\n", h.held, h.dropped, h.failed);
    fflush(stdout);
    for (unsigned i = 0; i < h.next; i++)
        if (h.conns[i].st != IS_CLOSED) {
            event_free(h.conns[i].ev);
            close(h.conns[i].fd);
        }
    free(h.conns);
    event_free(sigterm);
    event_free(sigint);
    event_free(timer);
    event_base_free(h.base);
    return h.dropped || h.failed ? 1 : 0;
}
