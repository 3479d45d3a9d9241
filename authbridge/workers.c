#include "workers.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct work *todo_head, *todo_tail;
    bool stopping;
    unsigned nthreads;
    unsigned sleeping;             /* workers waiting for a job */
    pthread_t *threads;
};

/* A loop's end of the pool: finished jobs come back through its eventfd. */
struct workers_port {
    struct workers *p;
    pthread_mutex_t lock;
    struct work *done_head, *done_tail;
    int efd;                       /* workers -> loop: "done list grew" */
    struct event *ev;
    unsigned busy;                 /* the loop's own count: loop thread only */
};

static void list_push(struct work **head, struct work **tail, struct work *w)
{
    w->next = NULL;
    if (*tail)
        (*tail)->next = w;
    else
        *head = w;
    *tail = w;
}

static void mutex_init_adaptive(pthread_mutex_t *m)
{
    /* The loop and the workers hold the lock for a few instructions:
     * spinning a moment beats a futex sleep and wake each time. */
    pthread_mutexattr_t attr;

    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
}

/* A worker hands a finished job to its loop. Only the first finished
 * job of a batch needs to wake the loop; outside the lock, so the loop
 * does not wake into a held lock. */
static void finished(struct work *w)
{
    struct workers_port *port = w->port;
    uint64_t one = 1;
    bool wake;

    pthread_mutex_lock(&port->lock);
    wake = port->done_head == NULL;
    list_push(&port->done_head, &port->done_tail, w);
    pthread_mutex_unlock(&port->lock);
    if (wake)
        while (write(port->efd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
}

static void *worker_main(void *arg)
{
    struct workers *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct work *w;
        while (p->todo_head == NULL && !p->stopping) {
            p->sleeping++;
            pthread_cond_wait(&p->cond, &p->lock);
            p->sleeping--;
        }
        if (p->todo_head == NULL)
            break;
        w = p->todo_head;
        p->todo_head = w->next;
        if (p->todo_head == NULL)
            p->todo_tail = NULL;
        pthread_mutex_unlock(&p->lock);

        w->run(w);
        finished(w);

        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct workers_port *port = arg;
    struct work *w, *next;
    uint64_t n;

    (void)what;
    while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&port->lock);
    w = port->done_head;
    port->done_head = port->done_tail = NULL;
    pthread_mutex_unlock(&port->lock);
    for (; w; w = next) {
        next = w->next;
        port->busy--;
        w->done(w);
    }
}

struct workers *workers_new(unsigned nthreads)
{
    struct workers *p = ab_calloc(1, sizeof(*p));

    if (nthreads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (unsigned)n : 2;
    }
    mutex_init_adaptive(&p->lock);
    pthread_cond_init(&p->cond, NULL);
    p->nthreads = nthreads;
    p->threads = ab_calloc(nthreads, sizeof(*p->threads));
    for (unsigned i = 0; i < nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (rc != 0)
            fatalx("pthread_create: %s", strerror(rc));
    }
    return p;
}

struct workers_port *workers_port_new(struct workers *p,
                                      struct event_base *base)
{
    struct workers_port *port = ab_calloc(1, sizeof(*port));

    port->p = p;
    mutex_init_adaptive(&port->lock);
    port->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (port->efd < 0)
        fatalx("eventfd: %s", strerror(errno));
    port->ev = event_new(base, port->efd, EV_READ | EV_PERSIST, done_cb, port);
    event_add(port->ev, NULL);
    return port;
}

void workers_port_free(struct workers_port *port)
{
    struct pollfd pfd;

    if (port == NULL)
        return;
    /* Let finished jobs release what they hold; wait for any still
     * running (an exit after the stop's grace time): a worker must never
     * hand a job to a port that is gone. */
    done_cb(port->efd, 0, port);
    while (port->busy > 0) {
        pfd = (struct pollfd){ .fd = port->efd, .events = POLLIN };
        if (poll(&pfd, 1, -1) > 0)
            done_cb(port->efd, 0, port);
    }
    event_free(port->ev);
    close(port->efd);
    pthread_mutex_destroy(&port->lock);
    free(port);
}

void workers_submit(struct workers_port *port, struct work *w)
{
    struct workers *p = port->p;
    bool wake;

    port->busy++;
    w->port = port;
    pthread_mutex_lock(&p->lock);
    list_push(&p->todo_head, &p->todo_tail, w);
    wake = p->sleeping > 0;        /* a busy worker takes it next anyway */
    pthread_mutex_unlock(&p->lock);
    /* Signalled after the unlock: a woken worker does not first sleep
     * again on the lock this thread still holds. A worker that went to
     * sleep meanwhile was counted, and rechecks the list when woken. */
    if (wake)
        pthread_cond_signal(&p->cond);
}

unsigned workers_busy(const struct workers_port *port)
{
    return port ? port->busy : 0;
}

void workers_free(struct workers *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
    free(p);
}
