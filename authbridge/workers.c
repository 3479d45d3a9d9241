#include "workers.h"
#include "log.h"
#include "util.h"

#include <errno.h>
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
    struct work *done_head, *done_tail;
    bool stopping;
    unsigned nthreads, busy;
    unsigned sleeping;             /* workers waiting for a job */
    pthread_t *threads;
    int efd;                       /* workers -> loop: "done list grew" */
    struct event *ev;
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

static void *worker_main(void *arg)
{
    struct workers *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct work *w;
        bool wake;
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

        pthread_mutex_lock(&p->lock);
        /* Only the first finished job of a batch needs to wake the loop;
         * outside the lock, so the loop does not wake into a held lock. */
        wake = p->done_head == NULL;
        list_push(&p->done_head, &p->done_tail, w);
        if (wake) {
            uint64_t one = 1;
            pthread_mutex_unlock(&p->lock);
            while (write(p->efd, &one, sizeof(one)) < 0 && errno == EINTR)
                ;
            pthread_mutex_lock(&p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct workers *p = arg;
    struct work *w, *next;
    uint64_t n;

    (void)what;
    while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&p->lock);
    w = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    for (; w; w = next) {
        next = w->next;
        p->busy--;
        w->done(w);
    }
}

struct workers *workers_new(struct event_base *base, unsigned nthreads)
{
    struct workers *p = ab_calloc(1, sizeof(*p));

    if (nthreads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (unsigned)n : 2;
    }
    /* The loop and the workers hold the lock for a few instructions:
     * spinning a moment beats a futex sleep and wake each time. */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&p->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_cond_init(&p->cond, NULL);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0)
        fatalx("eventfd: %s", strerror(errno));
    p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, done_cb, p);
    event_add(p->ev, NULL);
    p->nthreads = nthreads;
    p->threads = ab_calloc(nthreads, sizeof(*p->threads));
    for (unsigned i = 0; i < nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (rc != 0)
            fatalx("pthread_create: %s", strerror(rc));
    }
    return p;
}

void workers_submit(struct workers *p, struct work *w)
{
    bool wake;

    p->busy++;
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

unsigned workers_busy(const struct workers *p)
{
    return p->busy;
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
    /* Let finished jobs release what they hold. */
    done_cb(p->efd, 0, p);
    event_free(p->ev);
    close(p->efd);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
    free(p);
}
