/*
 * Several event loops in one process, one per thread: loop 0 is the
 * main thread's (it also handles signals and the service manager); the
 * others run on threads of their own. Each loop owns its listeners, its
 * Redis connections and its sessions; what they share (the user file,
 * the credential cache, the workers, the caps, the metrics) is made
 * thread-safe where it lives.
 *
 * Loop 0 reaches the others with commands (a byte on a pipe each: no
 * lock on any loop's hot path): a reload, a stop. Each loop ends when its
 * event base has nothing left or is told to exit, then frees what it
 * owns on its own thread (thread-local state dies with the thread).
 */
#ifndef AB_LOOPS_H
#define AB_LOOPS_H

struct event_base;
struct loops;

enum loop_cmd {
    LOOP_RELOAD = 'R',            /* a new configuration is ready */
    LOOP_STOP = 'S',              /* stop gracefully */
};

struct loop_ops {
    /* On the loop's thread, before its first event (log buffering,
     * thread-local state). May be NULL. */
    void (*start)(void *ctx);
    /* A command from loop 0, on the loop's thread. */
    void (*command)(void *ctx, enum loop_cmd cmd);
    /* On the loop's thread, once its loop ended: free what it owns. */
    void (*finish)(void *ctx);
};

/* The configured count: 0 means one per online CPU. */
unsigned loops_count(unsigned configured);

/* n event bases, none running yet. */
struct loops *loops_new(unsigned n);
struct event_base *loops_base(struct loops *l, unsigned i);
void loops_set(struct loops *l, unsigned i, const struct loop_ops *ops,
               void *ctx);

/* Start loops 1..n-1 on their threads, run loop 0 here; when it ends,
 * wait for the others. Returns once every loop has finished. */
void loops_run(struct loops *l);

/* From loop 0: to every other loop (thread-safe, never blocks). */
void loops_broadcast(struct loops *l, enum loop_cmd cmd);

void loops_free(struct loops *l);

#endif
