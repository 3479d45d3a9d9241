/*
 * What every daemon does around its event loop: command line (-c, -t, -d,
 * -v), detaching, raising the descriptor limit, dropping privileges after
 * binding, refusing secret files others can read, session ids.
 */
#ifndef AB_DAEMON_H
#define AB_DAEMON_H

#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon_opts {
    const char *conf_path;
    bool test_only;        /* -t */
    bool detach;           /* -d */
    int verbose;           /* -v */
};

/* Parse argv; prints usage and exits on errors. */
void daemon_parse_args(int argc, char **argv, const char *prog,
                       const char *default_conf, struct daemon_opts *o);

/* Fork into the background, new session, stdio to /dev/null. */
void daemon_detach(void);

/*
 * Keep freed heap memory instead of handing it straight back to the
 * kernel: streaming allocates and frees 64 KiB buffers continuously, and
 * glibc's default trimming made every one of them fault its pages in
 * again (a third of pop3d's time in a RETR benchmark).
 */
void daemon_tune_malloc(void);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit; returns it. */
unsigned long daemon_raise_nofile(void);

/*
 * After binding: setgroups, setgid, setuid to `user`, each checked, and
 * check that root cannot be regained. Empty user while root: a loud
 * warning. -1 with a reason in err.
 */
int daemon_drop_privileges(const char *user, char *err, size_t errlen);

/* A key, certificate-key or user file must not be readable by others. */
int daemon_check_secret_file(const char *path, char *err, size_t errlen);

/*
 * Start a one-shot timer that fires no sooner than ms from now: a delay
 * promised to a client (failed-login delays, tarpits). libevent measures
 * from the start of the loop iteration with a coarse clock, so a plain
 * evtimer_add() may fire a millisecond or so early.
 */
struct event;
struct event_base;
void daemon_delay(struct event_base *base, struct event *ev, unsigned ms);

/*
 * Graceful stop: once listeners are closed and sessions told to finish,
 * poll every 50 ms and leave the loop when idle(arg) says nothing is left,
 * or after grace_ms whatever remains. daemon_stop_free() at exit.
 */
/*
 * SIGTERM, SIGINT, SIGQUIT and SIGHUP, handled by cb on the loop from
 * now on. Called before binding: a signal sent as soon as the port
 * accepts connections must do what the README says, not the default
 * action (SIGHUP's is to terminate). Signals that come before the loop
 * runs wait for it. SIGPIPE is ignored.
 */
struct daemon_signals;
struct daemon_signals *daemon_signals_new(struct event_base *base,
                                          void (*cb)(evutil_socket_t sig,
                                                     short what, void *arg),
                                          void *arg);
void daemon_signals_free(struct daemon_signals *ds);

struct daemon_stop;
struct daemon_stop *daemon_stop_when_idle(struct event_base *base,
                                          unsigned grace_ms,
                                          bool (*idle)(void *arg), void *arg);
void daemon_stop_free(struct daemon_stop *ds);

/* A short id naming one session in every log line ("sid=..."). */
const char *daemon_session_id(char buf[17]);

#endif
