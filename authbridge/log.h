/*
 * Logging: one line per event, "key=value" pairs, to stderr (default,
 * systemd style) or syslog (facility mail). On stderr a line starts with
 * the time (UTC), "prog[pid]:" and the level; when stderr is systemd's
 * journal (JOURNAL_STREAM), with a "<N>" priority instead, the journal
 * adding the rest. Anything a client sent goes
 * through log_esc() first; passwords and AUTH payloads are never logged.
 */
#ifndef AB_LOG_H
#define AB_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

enum log_dest {
    LOG_DEST_STDERR,
    LOG_DEST_SYSLOG,
};

void log_init(const char *progname, enum log_dest dest, int verbose);

/*
 * Daemons: write stderr lines once per event-loop iteration instead of one
 * write(2) each (two or more per POP3 login otherwise). Lines logged from
 * other threads, and everything before a fatalx(), are written at once.
 */
struct event_base;
void log_attach_loop(struct event_base *base);
void log_detach_loop(void);
void log_set_dest(enum log_dest dest);
void log_set_verbose(int verbose);

void log_msg(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARNING, __VA_ARGS__)
#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)

/* A broken invariant: log and abort. */
_Noreturn void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * Escape client-supplied text for a log value: printable ASCII passes,
 * anything else becomes \xHH; the value is double-quoted when it holds
 * a space, '=' or '"', and cut at 200 characters ("..." appended).
 * Returns a thread-local buffer from a small ring, so up to 8 results
 * can be used in one log call.
 */
const char *log_esc(const char *s);
const char *log_escn(const char *s, size_t len);

/*
 * A line any client can make us write as often as it likes (a refused
 * connection, a refused request): at most LOG_LIMIT_PER_S a second per
 * limiter, and the next line written says how many were left out
 * (suppressed=N). One limiter per kind of line, in its owner's struct.
 */
#define LOG_LIMIT_PER_S 10
struct log_limit {
    uint64_t second;              /* the second (monotonic ms / 1000) counted */
    unsigned in_second;
    unsigned suppressed;
};
/* true: write it now, with *suppressed left out before it. */
bool log_limited(struct log_limit *l, unsigned *suppressed);

#endif
