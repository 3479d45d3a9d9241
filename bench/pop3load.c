/*
 * pop3load: POP3 load generator for pop3d and its nullpop baseline.
 *
 * C clients, each running sessions back to back, one command at a time
 * as mail clients do (no pipelining):
 *
 *   login mode   greeting, USER, PASS, STAT, QUIT       (the login storm)
 *   retr mode    greeting, USER, PASS, RETR 1..R, QUIT  (throughput)
 *
 * A login counts when the +OK for PASS arrived; any -ERR is an error
 * (the first few are printed) and the session is dropped and restarted.
 * In retr mode every message's body is counted and checked against the
 * size in its +OK line.
 *
 * Client slot k of C logs in as users O+k, O+k+C, ... (< O+U): two
 * sessions at the same time never share a mailbox, so the Maildir lock
 * never refuses one. Sessions come from -a distinct loopback addresses
 * (base, base+1, ...) in turn, like distinct customers.
 *
 * The run lasts -t seconds; then no new session starts, the ones under
 * way finish (so every login the server granted is counted, and the
 * grants in Redis can be checked against logins_total), and one line
 * of key=value figures goes to stdout. With -N, the run instead ends
 * after that many sessions, failed ones included (the latency probe of
 * the idle benchmark).
 *
 * Plain read()/write() on non-blocking sockets driven by libevent
 * events rather than bufferevents: the generator shares two cores with
 * the server, and bufferevents add an ioctl(FIONREAD) and an evbuffer
 * copy to every read.
 */
#include "bench/bench.h"

#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>

#define LINE_BUF      1024           /* one reply line at a time */
#define BODY_BUF      (256 * 1024)   /* retr mode: big reads, few syscalls */
#define DRAIN_SECONDS 15             /* sessions under way at the end */
#define ERRORS_SHOWN  5

enum mode { MODE_LOGIN, MODE_RETR };

enum step { ST_GREETING, ST_USER, ST_PASS, ST_STAT, ST_RETR, ST_QUIT };

static const char *const step_names[] = {
    "greeting", "USER", "PASS", "STAT", "RETR", "QUIT"
};

struct opts {
    unsigned port, clients, users, user_offset, nsrc, seconds, sessions, retrs;
    enum mode mode;
    const char *user_prefix, *pass_prefix;
    struct in_addr src_base;
};

struct client;

struct load {
    struct opts o;
    struct event_base *base;
    struct client *clients;
    bool stopping;
    uint64_t t_start, t_stop;
    unsigned active, next_src;
    uint64_t started;
    /* results */
    uint64_t logins_window, logins_total, sessions_done, sessions_ended;
    uint64_t err_replies, io_errors, size_errors;
    uint64_t bytes_window, bytes_total, messages;
    struct bench_lat lat_login, lat_greet;
    struct event *drain;
};

struct client {
    struct load *ld;
    unsigned slot, round;
    int fd;
    struct event *ev;
    enum step step;
    char *buf;
    size_t len, cap;
    uint64_t t_connect;
    unsigned retr_next;
    bool in_body;
    uint64_t body_seen, announced;
    char tail[5];                   /* the last bytes of a body so far */
};

static void client_start(struct client *c);

/* ---- results ----------------------------------------------------------- */

static uint64_t errors(const struct load *ld)
{
    return ld->err_replies + ld->io_errors + ld->size_errors;
}

static void print_error(struct load *ld, const struct client *c,
                        const char *what, const char *detail, size_t len)
{
    if (errors(ld) > ERRORS_SHOWN)
        return;
    fprintf(stderr, "pop3load: %s after %s: %.*s\n", what,
            step_names[c->step], (int)(len > 200 ? 200 : len), detail);
}

/* The generator's own CPU time: the machine's two cores are shared. */
static double cpu_ms(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void print_results(struct load *ld)
{
    double secs = (double)(ld->t_stop - ld->t_start) / 1e6;

    printf("mode=%s clients=%u seconds=%.3f logins=%llu rate=%.1f "
           "errors=%llu err_replies=%llu io_errors=%llu size_errors=%llu "
           "logins_total=%llu sessions=%llu login_p50_ms=%.2f "
           "login_p99_ms=%.2f login_max_ms=%.2f greet_p50_ms=%.2f "
           "greet_max_ms=%.2f messages=%llu bytes=%llu mib_s=%.1f "
           "cpu_ms=%.0f\n",
           ld->o.mode == MODE_LOGIN ? "login" : "retr", ld->o.clients, secs,
           (unsigned long long)ld->logins_window,
           secs > 0 ? (double)ld->logins_window / secs : 0.0,
           (unsigned long long)errors(ld),
           (unsigned long long)ld->err_replies,
           (unsigned long long)ld->io_errors,
           (unsigned long long)ld->size_errors,
           (unsigned long long)ld->logins_total,
           (unsigned long long)ld->sessions_done,
           bench_lat_ms(&ld->lat_login, 0.5),
           bench_lat_ms(&ld->lat_login, 0.99),
           bench_lat_ms(&ld->lat_login, 1.0),
           bench_lat_ms(&ld->lat_greet, 0.5),
           bench_lat_ms(&ld->lat_greet, 1.0), (unsigned long long)ld->messages,
           (unsigned long long)ld->bytes_total,
           secs > 0 ? (double)ld->bytes_window / secs / 1048576.0 : 0.0,
           cpu_ms());
}

/* ---- the end of the run ------------------------------------------------ */

static bool in_window(const struct load *ld)
{
    return !ld->stopping;
}

static void maybe_finish(struct load *ld)
{
    if (ld->stopping && ld->active == 0)
        event_base_loopbreak(ld->base);
}

static void stop_now(struct load *ld)
{
    if (ld->stopping)
        return;
    ld->stopping = true;
    ld->t_stop = bench_now_us();
    maybe_finish(ld);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct load *ld = arg;

    (void)fd;
    (void)what;
    fprintf(stderr, "pop3load: %u sessions still unfinished %d s after the "
            "end; abandoned\n", ld->active, DRAIN_SECONDS);
    event_base_loopbreak(ld->base);
}

/* The sessions under way may finish, but not forever. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct load *ld = arg;
    struct timeval drain = { DRAIN_SECONDS, 0 };

    (void)fd;
    (void)what;
    ld->drain = evtimer_new(ld->base, on_drain_timeout, ld);
    evtimer_add(ld->drain, &drain);
    stop_now(ld);
}

/* ---- sessions ---------------------------------------------------------- */

static void client_close(struct client *c)
{
    if (c->fd < 0)
        return;
    event_free(c->ev);
    close(c->fd);
    c->fd = -1;
    c->ld->active--;
}

/* The session is over (well or not): start the next one, or wind down. */
static void client_next(struct client *c)
{
    struct load *ld = c->ld;

    client_close(c);
    c->round++;
    /* -N counts sessions that failed too: a probe ends, whatever. */
    if (ld->o.sessions && ++ld->sessions_ended >= ld->o.sessions)
        stop_now(ld);
    if (ld->stopping)
        maybe_finish(ld);
    else
        client_start(c);
}

static void client_fail(struct client *c, uint64_t *counter, const char *what,
                        const char *detail, size_t len)
{
    print_error(c->ld, c, what, detail, len);
    (*counter)++;
    client_next(c);
}

static bool client_send(struct client *c, const char *cmd, size_t len)
{
    ssize_t n = write(c->fd, cmd, len);
    const char *why;

    if (n == (ssize_t)len)
        return true;
    why = n < 0 ? strerror(errno) : "short write";
    client_fail(c, &c->ld->io_errors, "write failed", why, strlen(why));
    return false;
}

static unsigned client_user(const struct client *c)
{
    unsigned per_slot = c->ld->o.users / c->ld->o.clients;

    return c->ld->o.user_offset + c->slot +
           c->ld->o.clients * (c->round % per_slot);
}

static void send_user(struct client *c)
{
    char cmd[128];
    int n = snprintf(cmd, sizeof(cmd), "USER %s%04u\r\n",
                     c->ld->o.user_prefix, client_user(c));

    c->step = ST_USER;
    client_send(c, cmd, (size_t)n);
}

static void send_pass(struct client *c)
{
    char cmd[128];
    int n = snprintf(cmd, sizeof(cmd), "PASS %s%04u\r\n",
                     c->ld->o.pass_prefix, client_user(c));

    c->step = ST_PASS;
    client_send(c, cmd, (size_t)n);
}

static void send_retr_or_quit(struct client *c)
{
    char cmd[64];
    int n;

    if (c->retr_next > c->ld->o.retrs) {
        c->step = ST_QUIT;
        client_send(c, "QUIT\r\n", 6);
        return;
    }
    n = snprintf(cmd, sizeof(cmd), "RETR %u\r\n", c->retr_next++);
    c->step = ST_RETR;
    client_send(c, cmd, (size_t)n);
}

static void logged_in(struct client *c)
{
    struct load *ld = c->ld;

    ld->logins_total++;
    if (in_window(ld))
        ld->logins_window++;
    bench_lat_add(&ld->lat_login, bench_now_us() - c->t_connect);
    if (ld->o.mode == MODE_LOGIN) {
        c->step = ST_STAT;
        client_send(c, "STAT\r\n", 6);
        return;
    }
    c->retr_next = 1;
    send_retr_or_quit(c);
}

/* ---- RETR bodies ------------------------------------------------------- */

/* A multi-line answer ends with CRLF.CRLF; dot-stuffing guarantees that
 * sequence appears nowhere else, and since the client does not pipeline
 * nothing follows it: checking the last five bytes received suffices. */
static bool body_feed(struct client *c, const char *p, size_t n)
{
    struct load *ld = c->ld;

    c->body_seen += n;
    if (in_window(ld))
        ld->bytes_window += n;
    if (n >= sizeof(c->tail)) {
        memcpy(c->tail, p + n - sizeof(c->tail), sizeof(c->tail));
    } else {
        memmove(c->tail, c->tail + n, sizeof(c->tail) - n);
        memcpy(c->tail + sizeof(c->tail) - n, p, n);
    }
    return memcmp(c->tail, "\r\n.\r\n", 5) == 0;
}

static void body_done(struct client *c)
{
    uint64_t got = c->body_seen - 3;          /* without ".\r\n" */
    char detail[96];

    c->in_body = false;
    c->ld->messages++;
    c->ld->bytes_total += got;
    if (got != c->announced) {
        int n = snprintf(detail, sizeof(detail), "announced %llu octets, "
                         "received %llu", (unsigned long long)c->announced,
                         (unsigned long long)got);
        client_fail(c, &c->ld->size_errors, "size mismatch", detail,
                    (size_t)n);
        return;
    }
    send_retr_or_quit(c);
}

static void body_start(struct client *c, const char *line)
{
    c->announced = strtoull(line + 3, NULL, 10);
    c->in_body = true;
    c->body_seen = 0;
    /* The status line's CRLF counts for an empty body's CRLF.CRLF. */
    memcpy(c->tail, "xxx\r\n", 5);
}

/* ---- replies ----------------------------------------------------------- */

/* One status line (without CRLF). */
static void on_reply(struct client *c, const char *line, size_t len)
{
    if (len < 3 || memcmp(line, "+OK", 3) != 0) {
        client_fail(c, &c->ld->err_replies, "error reply", line, len);
        return;
    }
    switch (c->step) {
    case ST_GREETING:
        bench_lat_add(&c->ld->lat_greet, bench_now_us() - c->t_connect);
        send_user(c);
        break;
    case ST_USER:
        send_pass(c);
        break;
    case ST_PASS:
        logged_in(c);
        break;
    case ST_STAT:
        c->step = ST_QUIT;
        client_send(c, "QUIT\r\n", 6);
        break;
    case ST_RETR:
        body_start(c, line);
        break;
    case ST_QUIT:
        c->ld->sessions_done++;
        client_next(c);
        break;
    }
}

/* Status lines in c->buf; what follows a RETR status line is body. */
static void take_lines(struct client *c)
{
    char *eol;

    while (c->fd >= 0 && !c->in_body &&
           (eol = memmem(c->buf, c->len, "\r\n", 2)) != NULL) {
        size_t linelen = (size_t)(eol - c->buf), rest;
        unsigned round = c->round;

        *eol = '\0';
        on_reply(c, c->buf, linelen);
        if (c->round != round)
            return;                 /* session ended (or restarted) */
        rest = c->len - linelen - 2;
        memmove(c->buf, eol + 2, rest);
        c->len = rest;
        if (c->in_body && rest > 0) {
            c->len = 0;
            if (body_feed(c, c->buf, rest))
                body_done(c);
        }
    }
    if (c->fd >= 0 && !c->in_body && c->len == c->cap)
        client_fail(c, &c->ld->io_errors, "reply line too long", "", 0);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    ssize_t n;

    (void)what;
    if (c->in_body) {
        /* Bodies are counted and dropped, never kept. */
        n = read(fd, c->buf, c->cap);
        if (n > 0 && body_feed(c, c->buf, (size_t)n))
            body_done(c);
    } else {
        n = read(fd, c->buf + c->len, c->cap - c->len);
        if (n > 0) {
            c->len += (size_t)n;
            take_lines(c);
        }
    }
    if (n == 0)
        client_fail(c, &c->ld->io_errors, "connection closed", "", 0);
    else if (n < 0 && errno != EAGAIN && errno != EINTR)
        client_fail(c, &c->ld->io_errors, "read failed", strerror(errno),
                    strlen(strerror(errno)));
}

static void client_start(struct client *c)
{
    struct load *ld = c->ld;
    unsigned nsrc = ld->o.nsrc ? ld->o.nsrc : 1;
    struct in_addr src = bench_source_addr(ld->o.src_base,
                                           ld->next_src++ % nsrc);
    int fd = bench_connect(ld->o.port, ld->o.nsrc ? &src : NULL);

    if (fd < 0) {
        /* No retry loop: a client that cannot connect ends the run. */
        ld->io_errors++;
        fprintf(stderr, "pop3load: connect: %s\n", strerror(errno));
        stop_now(ld);
        return;
    }
    c->fd = fd;
    c->len = 0;
    c->in_body = false;
    c->step = ST_GREETING;
    c->t_connect = bench_now_us();
    c->ev = event_new(ld->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    event_add(c->ev, NULL);
    ld->active++;
    ld->started++;
}

/* ---- set-up ----------------------------------------------------------- */

/* A numeric option, or exit naming it. */
static unsigned num(int opt, unsigned min, unsigned max)
{
    return bench_uint_opt("pop3load", opt, optarg, min, max);
}

static void usage(void)
{
    fprintf(stderr,
        "usage: pop3load -p port [-m login|retr] [-c clients] [-t seconds]\n"
        "         [-N sessions] [-U users] [-O first-user] [-u user-prefix]\n"
        "         [-P pass-prefix] [-r retrs-per-session] [-b source-base]\n"
        "         [-a source-count]\n"
        "  users are O..O+U-1; user i is <user-prefix><i as %%04u>, its\n"
        "  password <pass-prefix><i as %%04u>\n");
    exit(2);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    int opt;

    *o = (struct opts){ .clients = 16, .users = 1024, .seconds = 5,
                        .retrs = 1, .user_prefix = "u", .pass_prefix = "pw",
                        .mode = MODE_LOGIN };
    o->src_base.s_addr = htonl(0x7f010001);       /* 127.1.0.1 */
    while ((opt = getopt(argc, argv, "p:m:c:t:N:U:O:u:P:r:b:a:")) != -1) {
        switch (opt) {
        case 'p': o->port = num(opt, 1, 65535); break;
        case 'c': o->clients = num(opt, 1, 100000); break;
        case 't': o->seconds = num(opt, 1, 3600); break;
        case 'N': o->sessions = num(opt, 1, 1u << 30); break;
        case 'U': o->users = num(opt, 1, 1000000); break;
        case 'O': o->user_offset = num(opt, 0, 1000000); break;
        case 'r': o->retrs = num(opt, 1, 100000); break;
        case 'a': o->nsrc = num(opt, 0, 1u << 20); break;
        case 'b': o->src_base = bench_ipv4_opt("pop3load", opt, optarg); break;
        case 'u': o->user_prefix = optarg; break;
        case 'P': o->pass_prefix = optarg; break;
        case 'm':
            if (strcmp(optarg, "login") == 0)
                o->mode = MODE_LOGIN;
            else if (strcmp(optarg, "retr") == 0)
                o->mode = MODE_RETR;
            else
                usage();
            break;
        default: usage();
        }
    }
    if (o->port == 0 || optind != argc)
        usage();
    if (o->users < o->clients) {
        fprintf(stderr, "pop3load: %u clients need at least as many users "
                "(-U), or two would share a mailbox\n", o->clients);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    static struct load ld;
    struct timeval run;
    struct event *deadline;
    int rc;

    parse_opts(argc, argv, &ld.o);
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile();
    ld.base = event_base_new();
    ld.clients = ab_calloc(ld.o.clients, sizeof(*ld.clients));
    run.tv_sec = ld.o.sessions ? 3600 : ld.o.seconds;
    run.tv_usec = 0;
    deadline = evtimer_new(ld.base, on_deadline, &ld);
    evtimer_add(deadline, &run);
    ld.t_start = bench_now_us();
    for (unsigned i = 0; i < ld.o.clients && !ld.stopping; i++) {
        struct client *c = &ld.clients[i];
        c->ld = &ld;
        c->slot = i;
        c->fd = -1;
        c->cap = ld.o.mode == MODE_RETR ? BODY_BUF : LINE_BUF;
        c->buf = ab_malloc(c->cap);
        client_start(c);
    }
    event_base_dispatch(ld.base);
    print_results(&ld);
    fflush(stdout);
    rc = errors(&ld) == 0 ? 0 : 1;
    for (unsigned i = 0; i < ld.o.clients; i++) {
        if (ld.clients[i].fd >= 0)
            client_close(&ld.clients[i]);    /* abandoned after the drain */
        free(ld.clients[i].buf);
    }
    free(ld.clients);
    free(ld.lat_login.v);
    free(ld.lat_greet.v);
    event_free(deadline);
    if (ld.drain)
        event_free(ld.drain);
    event_base_free(ld.base);
    return rc;
}
