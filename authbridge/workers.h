/*
 * A pool of worker threads for slow, blocking work (password hashing,
 * Maildir scans, unlink + fsync) so the event loop never waits on it.
 *
 * A job's run() executes on a worker thread and must touch nothing the loop
 * owns; its done() then runs on the loop thread. To abandon a job whose
 * owner went away, the owner flags it in its own job struct and lets done()
 * free it: jobs cannot be recalled from a worker.
 */
#ifndef AB_WORKERS_H
#define AB_WORKERS_H

struct event_base;
struct workers;

struct work {
    void (*run)(struct work *w);   /* worker thread */
    void (*done)(struct work *w);  /* loop thread, after run */
    struct work *next;             /* the pool's, do not touch */
};

/* nthreads 0 = one per online CPU. */
struct workers *workers_new(struct event_base *base, unsigned nthreads);
void workers_submit(struct workers *p, struct work *w);
/* Jobs queued or running (not yet done). */
unsigned workers_busy(const struct workers *p);
/* Finish queued jobs, join the threads. */
void workers_free(struct workers *p);

#endif
