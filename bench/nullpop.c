/*
 * nullpop: a do-nothing POP3 responder, the baseline pop3d is measured
 * against. A greeting, "+OK" to every line, "+OK Bye" and close on QUIT.
 * With -m FILE, "RETR n" answers with that file as a message (LF turned
 * into CRLF once, at start-up, and sent from memory), so the RETR client
 * sees the same bytes pop3d sends, without a mailbox behind them.
 *
 * It uses the same I/O stack as pop3d (one libevent loop, evconnlistener,
 * socket bufferevents, the same listen backlog, Nagle's algorithm left
 * on), so the distance between the two is what pop3d does per login:
 * password check, Maildir, grant. -n sets TCP_NODELAY on its sockets:
 * with Nagle on, the short tail of a multi-line answer (".\r\n") waits
 * for the client's delayed ACK, about 40 ms a message on Linux, which
 * the RETR benchmark shows next to it.
 *
 *   nullpop [-n] [-p port] [-m message-file]
 *
 * Prints "port=N" once listening (-p 0, the default, takes a free port);
 * runs until SIGTERM or SIGINT.
 */
#include "bench/bench.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdbool.h>
#include <strings.h>

#define LINE_MAX_LEN 1024           /* a client gone mad gets closed */

struct nullpop {
    struct event_base *base;
    char *msg;                      /* CRLF text of the RETR message */
    size_t msglen;
    bool nodelay;                   /* TCP_NODELAY on accepted sockets */
};

static struct nullpop np;

/* The whole file, LF -> CRLF (a CR already before an LF is kept once). */
static void load_message(const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 20, n = 0;
    int ch, prev = 0;

    if (f == NULL) {
        perror(path);
        exit(1);
    }
    np.msg = ab_malloc(cap);
    while ((ch = getc(f)) != EOF) {
        if (n + 2 > cap)
            np.msg = ab_realloc(np.msg, cap *= 2);
        if (ch == '\n' && prev != '\r')
            np.msg[n++] = '\r';
        np.msg[n++] = (char)ch;
        prev = ch;
    }
    fclose(f);
    if (n < 2 || np.msg[n - 1] != '\n') {
        fprintf(stderr, "%s: must end with a line end\n", path);
        exit(1);
    }
    np.msglen = n;
}

static void close_when_flushed(struct bufferevent *bev, void *arg)
{
    (void)arg;
    bufferevent_free(bev);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    (void)arg;
    bufferevent_free(bev);          /* EOF or error: nothing to keep */
}

static void send_message(struct evbuffer *out)
{
    evbuffer_add_printf(out, "+OK %zu octets\r\n", np.msglen);
    /* By reference: the baseline should cost the bytes on the wire and
     * nothing else. */
    evbuffer_add_reference(out, np.msg, np.msglen, NULL, NULL);
    evbuffer_add(out, ".\r\n", 3);
}

/* One reply per line; false once the connection is to be closed. */
static bool answer(struct bufferevent *bev, const char *line)
{
    struct evbuffer *out = bufferevent_get_output(bev);

    if (strncasecmp(line, "QUIT", 4) == 0) {
        evbuffer_add(out, "+OK Bye\r\n", 9);
        bufferevent_disable(bev, EV_READ);
        bufferevent_setcb(bev, NULL, close_when_flushed, on_event, NULL);
        return false;
    }
    if (np.msg != NULL && strncasecmp(line, "RETR ", 5) == 0)
        send_message(out);
    else
        evbuffer_add(out, "+OK\r\n", 5);
    return true;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    char *line;

    (void)arg;
    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
        bool more = answer(bev, line);

        free(line);
        if (!more)
            return;
    }
    if (evbuffer_get_length(in) > LINE_MAX_LEN)
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct bufferevent *bev;
    int one = 1;

    (void)lev;
    (void)sa;
    (void)salen;
    (void)arg;
    if (np.nodelay)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    bev = bufferevent_socket_new(np.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    evbuffer_add(bufferevent_get_output(bev), "+OK nullpop ready\r\n", 19);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopbreak(np.base);
}

static void usage(void)
{
    fprintf(stderr, "usage: nullpop [-n] [-p port] [-m message-file]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned port = 0, bound;
    struct evconnlistener *lev;
    struct event *sigterm, *sigint;
    int opt, fd;

    while ((opt = getopt(argc, argv, "np:m:")) != -1) {
        if (opt == 'n')
            np.nodelay = true;
        else if (opt == 'p')
            port = bench_uint_opt("nullpop", opt, optarg, 0, 65535);
        else if (opt == 'm')
            load_message(optarg);
        else
            usage();
    }
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile();
    np.base = event_base_new();
    if ((fd = bench_listen(port, &bound)) < 0) {
        perror("nullpop: listen");
        return 1;
    }
    lev = evconnlistener_new(np.base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE,
                             -1, fd);
    sigterm = evsignal_new(np.base, SIGTERM, on_signal, NULL);
    sigint = evsignal_new(np.base, SIGINT, on_signal, NULL);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    printf("port=%u\n", bound);
    fflush(stdout);
    event_base_dispatch(np.base);
    evconnlistener_free(lev);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(np.base);
    free(np.msg);
    return 0;
}
