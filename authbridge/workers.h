/*
 * A pool of worker threads for slow, blocking work (password hashing,
 * Maildir scans, unlink + fsync) so no event loop ever waits on it. One
 * pool serves every loop of a process: each loop has a port, and a job's
 * done() runs on the loop whose port it was submitted to.
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
struct workers_port;

struct work {
    void (*run)(struct work *w);   /* worker thread */
    void (*done)(struct work *w);  /* loop thread, after run */
    struct work *next;             /* the pool's, do not touch */
    struct workers_port *port;     /* the pool's: where done() runs */
};

/* nthreads 0 = one per online CPU. */
struct workers *workers_new(unsigned nthreads);

/* A loop's port (made before its loop runs, from any thread). */
struct workers_port *workers_port_new(struct workers *p,
                                      struct event_base *base);
/* On the port's loop thread, after its loop ended and its jobs were
 * waited for (workers_busy 0): the last done()s, then the port goes. */
void workers_port_free(struct workers_port *port);

/* From the port's loop thread. */
void workers_submit(struct workers_port *port, struct work *w);
/* This port's jobs queued or running (not yet done). */
unsigned workers_busy(const struct workers_port *port);

/* After every port is gone: finish queued jobs, join the threads. */
void workers_free(struct workers *p);

#endif
