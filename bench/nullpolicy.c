/*
 * nullpolicy: a do-nothing Postfix policy service, the reference for
 * smtpgate's policy_listen. Reads requests (name=value lines up to an
 * empty line) and answers "action=DUNNO" to each, without looking at it.
 *
 * Plain read()/write() on libevent events, as smtpgate's request
 * connections do: the figure is the cost of the round trips alone.
 *
 *   nullpolicy [-p port]      prints "port=N"; runs until SIGTERM/SIGINT
 */
#include "bench/bench.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdbool.h>

#define REQUEST_MAX (16 * 1024)     /* smtpgate's POLICY_REQUEST_MAX */
#define REPLY       "action=DUNNO\n\n"

struct pconn {
    int fd;
    struct event *ev;
    size_t len;
    char buf[REQUEST_MAX];
};

static struct event_base *base;

static void pconn_free(struct pconn *p)
{
    event_free(p->ev);
    close(p->fd);
    free(p);
}

/* Answers for every complete request in the buffer; false: too long. */
static bool answer_requests(struct pconn *p, size_t *answers)
{
    char *end;

    *answers = 0;
    while ((end = memmem(p->buf, p->len, "\n\n", 2)) != NULL) {
        size_t used = (size_t)(end - p->buf) + 2;

        memmove(p->buf, p->buf + used, p->len - used);
        p->len -= used;
        (*answers)++;
    }
    return p->len < sizeof(p->buf);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    static char out[64 * (sizeof(REPLY) - 1)];
    struct pconn *p = arg;
    ssize_t n = read(fd, p->buf + p->len, sizeof(p->buf) - p->len);
    size_t answers, olen = 0;

    (void)what;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        pconn_free(p);
        return;
    }
    p->len += (size_t)n;
    if (!answer_requests(p, &answers)) {
        pconn_free(p);
        return;
    }
    /* One write for what arrived together (Postfix: one request). */
    while (answers > 0) {
        olen = 0;
        for (; answers > 0 && olen < sizeof(out); answers--) {
            memcpy(out + olen, REPLY, sizeof(REPLY) - 1);
            olen += sizeof(REPLY) - 1;
        }
        if (write(fd, out, olen) != (ssize_t)olen) {
            pconn_free(p);
            return;
        }
    }
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct pconn *p = ab_calloc(1, sizeof(*p));

    (void)lev;
    (void)sa;
    (void)salen;
    (void)arg;
    evutil_make_socket_nonblocking(fd);
    p->fd = fd;
    p->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, p);
    event_add(p->ev, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    unsigned port = 0, bound;
    struct evconnlistener *lev;
    struct event *sigterm, *sigint;
    int opt, fd;

    while ((opt = getopt(argc, argv, "p:")) != -1) {
        if (opt != 'p') {
            fprintf(stderr, "usage: nullpolicy [-p port]\n");
            return 2;
        }
        port = bench_uint_opt("nullpolicy", opt, optarg, 0, 65535);
    }
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if ((fd = bench_listen(port, &bound)) < 0) {
        perror("nullpolicy: listen");
        return 1;
    }
    lev = evconnlistener_new(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, -1,
                             fd);
    sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    sigint = evsignal_new(base, SIGINT, on_signal, NULL);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    printf("port=%u\n", bound);
    fflush(stdout);
    event_base_dispatch(base);
    evconnlistener_free(lev);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(base);
    return 0;
}
