#include "log.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_ESC_MAX 200   /* longest escaped value kept, before "..." */
#define LOG_ESC_RING 8    /* results usable in one log call */

static const char *log_prog = "authbridge";
/* Changed by a reload on loop 0 while the other loops log: atomics. */
static atomic_int log_dest = LOG_DEST_STDERR;
static bool log_journal;           /* stderr is systemd's journal stream */
static atomic_int log_verbose;
static atomic_int log_pid;         /* getpid() is a system call each time */
/* Each loop's thread buffers its lines until the end of its loop
 * iteration; other threads (workers) write theirs at once. */
static _Thread_local struct event *log_flush_ev;
static atomic_int log_loops;       /* attached loops: stderr is buffered */

static void log_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    fflush(stderr);
}

void log_attach_loop(struct event_base *base)
{
    static char buf[64 * 1024];

    if (log_flush_ev != NULL)
        return;
    /* The first loop (the main thread, before any other thread writes)
     * gives stderr its buffer. */
    if (atomic_fetch_add(&log_loops, 1) == 0) {
        fflush(stderr);
        setvbuf(stderr, buf, _IOFBF, sizeof(buf));
    }
    log_flush_ev = event_new(base, -1, 0, log_flush_cb, NULL);
}

void log_detach_loop(void)
{
    if (log_flush_ev == NULL)
        return;
    fflush(stderr);
    event_free(log_flush_ev);
    log_flush_ev = NULL;
    /* The last one (the main thread, after the others ended). */
    if (atomic_fetch_sub(&log_loops, 1) == 1)
        setvbuf(stderr, NULL, _IONBF, 0);
}

/*
 * systemd connects stderr to the journal and says so in JOURNAL_STREAM
 * ("device:inode" of that stream). The journal stamps every line with
 * time, host, program and pid itself, and reads a "<N>" prefix as its
 * priority (sd-daemon(3)), so `journalctl -p warning` works. Compared
 * with stderr's own identity: a child whose stderr was redirected must
 * not inherit the mode.
 */
static bool stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (e == NULL || sscanf(e, "%llu:%llu", &dev, &ino) != 2 ||
        fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

void log_init(const char *progname, enum log_dest dest, int verbose)
{
    log_journal = stderr_is_journal();
    log_prog = progname;
    atomic_store_explicit(&log_pid, (int)getpid(), memory_order_relaxed);
    atomic_store_explicit(&log_verbose, verbose, memory_order_relaxed);
    log_set_dest(dest);
}

void log_set_dest(enum log_dest dest)
{
    int was = atomic_load_explicit(&log_dest, memory_order_relaxed);

    /* Called again after daemon_detach(): a new pid. */
    atomic_store_explicit(&log_pid, (int)getpid(), memory_order_relaxed);
    if (dest == LOG_DEST_SYSLOG && was != LOG_DEST_SYSLOG)
        openlog(log_prog, LOG_PID | LOG_NDELAY, LOG_MAIL);
    atomic_store_explicit(&log_dest, (int)dest, memory_order_relaxed);
    if (dest != LOG_DEST_SYSLOG && was == LOG_DEST_SYSLOG)
        closelog();
}

void log_set_verbose(int verbose)
{
    atomic_store_explicit(&log_verbose, verbose, memory_order_relaxed);
}

static const char *prio_name(int prio)
{
    switch (prio) {
    case LOG_DEBUG:   return "debug";
    case LOG_INFO:    return "info";
    case LOG_NOTICE:  return "notice";
    case LOG_WARNING: return "warning";
    default:          return "error";
    }
}

/* stderr by hand or in a file: the time (UTC), who, the level. */
static void write_stamped(int prio, const char *line)
{
    /* The date and time to the second, made once a second per thread:
     * a busy policy service writes a line per answer. */
    static _Thread_local time_t stamp_sec = -1;
    static _Thread_local char stamp[32];
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    if (tv.tv_sec != stamp_sec) {
        gmtime_r(&tv.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        stamp_sec = tv.tv_sec;
    }
    /* One fprintf per line: stdio's lock keeps lines whole across threads. */
    fprintf(stderr, "%s.%03dZ %s[%d]: %s: %s\n", stamp,
            (int)(tv.tv_usec / 1000), log_prog,
            atomic_load_explicit(&log_pid, memory_order_relaxed),
            prio_name(prio), line);
}

static void log_vmsg(int prio, const char *fmt, va_list ap)
{
    char line[2048];

    if (prio == LOG_DEBUG &&
        !atomic_load_explicit(&log_verbose, memory_order_relaxed))
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    if (atomic_load_explicit(&log_dest, memory_order_relaxed) ==
        LOG_DEST_SYSLOG) {
        syslog(prio, "%s", line);
        return;
    }
    if (log_journal)
        fprintf(stderr, "<%d>%s\n", prio, line);
    else
        write_stamped(prio, line);
    if (log_flush_ev == NULL || prio <= LOG_CRIT)
        fflush(stderr);
    else
        event_active(log_flush_ev, 0, 0);  /* once, at the iteration's end */
}

void log_msg(int prio, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(prio, fmt, ap);
    va_end(ap);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(LOG_CRIT, fmt, ap);
    va_end(ap);
    abort();
}

const char *log_escn(const char *s, size_t len)
{
    static _Thread_local char ring[LOG_ESC_RING][LOG_ESC_MAX + 16];
    static _Thread_local unsigned next;
    char *out = ring[next++ % LOG_ESC_RING];
    size_t o = 0;
    int quote = (len == 0);

    for (size_t i = 0; i < len; i++)
        if (s[i] == ' ' || s[i] == '=' || s[i] == '"')
            quote = 1;
    if (quote)
        out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o >= LOG_ESC_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (quote)
        out[o++] = '"';
    out[o] = '\0';
    return out;
}

const char *log_esc(const char *s)
{
    return log_escn(s ? s : "", s ? strlen(s) : 0);
}

bool log_limited(struct log_limit *l, unsigned *suppressed)
{
    struct timespec ts;
    uint64_t second;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    second = (uint64_t)ts.tv_sec;
    if (second != l->second) {
        l->second = second;
        l->in_second = 0;
    }
    if (l->in_second >= LOG_LIMIT_PER_S) {
        l->suppressed++;
        return false;
    }
    l->in_second++;
    *suppressed = l->suppressed;
    l->suppressed = 0;
    return true;
}
