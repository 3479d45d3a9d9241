#include "loops.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct loop {
    struct loops *owner;
    unsigned index;
    struct event_base *base;
    const struct loop_ops *ops;
    void *ctx;
    int cmd_fd[2];                /* loop 0 writes [1], the loop reads [0] */
    struct event *cmd_ev;
    pthread_t thread;
    bool started;
};

struct loops {
    struct loop *v;
    unsigned n;
};

unsigned loops_count(unsigned configured)
{
    long n;

    if (configured > 0)
        return configured;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static void cmd_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loop *lp = arg;
    unsigned char buf[16];
    ssize_t n;

    (void)what;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n; i++)
            if (lp->ops && lp->ops->command)
                lp->ops->command(lp->ctx, (enum loop_cmd)buf[i]);
}

struct loops *loops_new(unsigned n)
{
    struct loops *l = ab_calloc(1, sizeof(*l));

    l->n = n;
    l->v = ab_calloc(n, sizeof(*l->v));
    for (unsigned i = 0; i < n; i++) {
        struct loop *lp = &l->v[i];
        lp->owner = l;
        lp->index = i;
        lp->base = event_base_new();
        if (lp->base == NULL)
            fatalx("event_base_new failed");
        lp->cmd_fd[0] = lp->cmd_fd[1] = -1;
        if (i == 0)
            continue;             /* loop 0 gets signals, not commands */
        if (pipe2(lp->cmd_fd, O_NONBLOCK | O_CLOEXEC) < 0)
            fatalx("pipe2: %s", strerror(errno));
        lp->cmd_ev = event_new(lp->base, lp->cmd_fd[0], EV_READ | EV_PERSIST,
                               cmd_cb, lp);
        event_add(lp->cmd_ev, NULL);
    }
    return l;
}

struct event_base *loops_base(struct loops *l, unsigned i)
{
    return l->v[i].base;
}

void loops_set(struct loops *l, unsigned i, const struct loop_ops *ops,
               void *ctx)
{
    l->v[i].ops = ops;
    l->v[i].ctx = ctx;
}

static void run_one(struct loop *lp)
{
    if (lp->ops && lp->ops->start)
        lp->ops->start(lp->ctx);
    event_base_dispatch(lp->base);
    /* The command pipe would keep a finished base alive: gone first. */
    if (lp->cmd_ev != NULL) {
        event_free(lp->cmd_ev);
        lp->cmd_ev = NULL;
    }
    if (lp->ops && lp->ops->finish)
        lp->ops->finish(lp->ctx);
}

static void *thread_main(void *arg)
{
    run_one(arg);
    return NULL;
}

void loops_run(struct loops *l)
{
    for (unsigned i = 1; i < l->n; i++) {
        int rc = pthread_create(&l->v[i].thread, NULL, thread_main, &l->v[i]);
        if (rc != 0)
            fatalx("pthread_create: %s", strerror(rc));
        l->v[i].started = true;
    }
    run_one(&l->v[0]);
    for (unsigned i = 1; i < l->n; i++)
        if (l->v[i].started)
            pthread_join(l->v[i].thread, NULL);
}

void loops_broadcast(struct loops *l, enum loop_cmd cmd)
{
    unsigned char c = (unsigned char)cmd;

    for (unsigned i = 1; i < l->n; i++)
        if (l->v[i].cmd_fd[1] >= 0 && write(l->v[i].cmd_fd[1], &c, 1) < 0)
            log_warn("event=loop_command_lost loop=%u cmd=%c error=%s", i,
                     (int)c, log_esc(strerror(errno)));
}

void loops_free(struct loops *l)
{
    if (l == NULL)
        return;
    for (unsigned i = 0; i < l->n; i++) {
        struct loop *lp = &l->v[i];
        if (lp->cmd_ev)
            event_free(lp->cmd_ev);
        if (lp->cmd_fd[0] >= 0) {
            close(lp->cmd_fd[0]);
            close(lp->cmd_fd[1]);
        }
        event_base_free(lp->base);
    }
    free(l->v);
    free(l);
}
