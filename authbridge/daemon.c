#include "daemon.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

void daemon_parse_args(int argc, char **argv, const char *prog,
                       const char *default_conf, struct daemon_opts *o)
{
    int ch;

    o->conf_path = default_conf;
    o->test_only = false;
    o->detach = false;
    o->verbose = 0;
    while ((ch = getopt(argc, argv, "c:tdvh")) != -1) {
        switch (ch) {
        case 'c': o->conf_path = optarg; break;
        case 't': o->test_only = true; break;
        case 'd': o->detach = true; break;
        case 'v': o->verbose++; break;
        case 'h':
        default:
            fprintf(ch == 'h' ? stdout : stderr,
                    "usage: %s [-c FILE] [-t] [-d] [-v]\n"
                    "  -c FILE  configuration (default %s)\n"
                    "  -t       check the configuration and exit\n"
                    "  -d       detach into the background (logs go to syslog)\n"
                    "  -v       log debug messages\n", prog, default_conf);
            exit(ch == 'h' ? 0 : 2);
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        exit(2);
    }
}

void daemon_detach(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        fatalx("fork: %s", strerror(errno));
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        fatalx("setsid: %s", strerror(errno));
    pid = fork();              /* never reacquire a terminal */
    if (pid < 0)
        fatalx("fork: %s", strerror(errno));
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        fatalx("chdir /: %s", strerror(errno));
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
}

/* Up to this much free heap is kept for reuse; a bound, not a cost. */
#define MALLOC_KEEP (32 * 1024 * 1024)
/* Buffers below this come from the heap, not from mmap (libevent rounds
 * a chain up to a power of two: a 64 KiB read becomes a 128 KiB chain,
 * exactly glibc's default threshold). Setting one threshold freezes
 * glibc's adaptive one, so both are set. */
#define MALLOC_MMAP_MIN (1024 * 1024)

void daemon_tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_MIN);
    mallopt(M_TRIM_THRESHOLD, MALLOC_KEEP);
}

unsigned long daemon_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (unsigned long)rl.rlim_cur;
}

int daemon_drop_privileges(const char *user, char *err, size_t errlen)
{
    struct passwd *pw;

    if (user == NULL || user[0] == '\0') {
        if (geteuid() == 0)
            log_warn("event=running_as_root msg=\"no 'user' set: the daemon "
                     "keeps root privileges; set user = (an unprivileged "
                     "account) in the config\"");
        return 0;
    }
    if (geteuid() != 0) {
        snprintf(err, errlen, "user = %s needs the daemon started as root", user);
        return -1;
    }
    errno = 0;
    pw = getpwnam(user);
    if (pw == NULL) {
        snprintf(err, errlen, "unknown user '%s'", user);
        return -1;
    }
    if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        snprintf(err, errlen, "cannot become %s: %s", user, strerror(errno));
        return -1;
    }
    if (getuid() != pw->pw_uid || geteuid() != pw->pw_uid ||
        getgid() != pw->pw_gid || getegid() != pw->pw_gid) {
        snprintf(err, errlen, "privileges not fully dropped to %s", user);
        return -1;
    }
    if (pw->pw_uid != 0 && setuid(0) == 0) {
        snprintf(err, errlen, "root could be regained after dropping to %s", user);
        return -1;
    }
    log_info("event=privileges_dropped user=%s uid=%u gid=%u", user,
             (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
    return 0;
}

int daemon_check_secret_file(const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_mode & S_IROTH) {
        snprintf(err, errlen, "%s is readable by everyone (mode %03o); "
                 "chmod o-r it", path, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

static const int handled_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT };

struct daemon_signals {
    struct event *ev[AB_ARRAY_LEN(handled_signals)];
};

struct daemon_signals *daemon_signals_new(struct event_base *base,
                                          void (*cb)(evutil_socket_t sig,
                                                     short what, void *arg),
                                          void *arg)
{
    struct daemon_signals *ds = ab_calloc(1, sizeof(*ds));

    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < AB_ARRAY_LEN(handled_signals); i++) {
        ds->ev[i] = evsignal_new(base, handled_signals[i], cb, arg);
        if (ds->ev[i] == NULL || evsignal_add(ds->ev[i], NULL) < 0)
            fatalx("cannot handle signal %d", handled_signals[i]);
    }
    return ds;
}

void daemon_signals_free(struct daemon_signals *ds)
{
    if (ds == NULL)
        return;
    for (size_t i = 0; i < AB_ARRAY_LEN(handled_signals); i++)
        event_free(ds->ev[i]);
    free(ds);
}

struct daemon_stop {
    struct event_base *base;
    struct event *timer;
    uint64_t deadline_ms;
    bool (*idle)(void *arg);
    void *arg;
};

#define STOP_POLL_MS 50

static void stop_poll(evutil_socket_t fd, short what, void *arg)
{
    struct daemon_stop *ds = arg;

    (void)fd;
    (void)what;
    if (ds->idle(ds->arg) || ab_now_ms() >= ds->deadline_ms)
        event_base_loopexit(ds->base, NULL);
}

struct daemon_stop *daemon_stop_when_idle(struct event_base *base,
                                          unsigned grace_ms,
                                          bool (*idle)(void *arg), void *arg)
{
    struct daemon_stop *ds = ab_calloc(1, sizeof(*ds));
    struct timeval poll = { 0, STOP_POLL_MS * 1000 };

    ds->base = base;
    ds->deadline_ms = ab_now_ms() + grace_ms;
    ds->idle = idle;
    ds->arg = arg;
    ds->timer = event_new(base, -1, EV_PERSIST, stop_poll, ds);
    evtimer_add(ds->timer, &poll);
    return ds;
}

void daemon_stop_free(struct daemon_stop *ds)
{
    if (ds == NULL)
        return;
    event_free(ds->timer);
    free(ds);
}

/* The coarse monotonic clock ticks every few milliseconds. */
#define DELAY_SLACK_MS 4

void daemon_delay(struct event_base *base, struct event *ev, unsigned ms)
{
    unsigned total = ms + DELAY_SLACK_MS;
    struct timeval tv = { total / 1000, (total % 1000) * 1000 };

    event_base_update_cache_time(base);
    evtimer_add(ev, &tv);
}

static uint64_t sid_base;
static atomic_uint_fast64_t sid_counter;
static pthread_once_t sid_once = PTHREAD_ONCE_INIT;

static void sid_init(void)
{
    ab_random(&sid_base, sizeof(sid_base));
}

/* Called from every loop's thread: the counter is atomic. */
const char *daemon_session_id(char buf[17])
{
    uint64_t n;

    pthread_once(&sid_once, sid_init);
    n = atomic_fetch_add_explicit(&sid_counter, 1, memory_order_relaxed);
    /* Unique within the process, unpredictable across restarts. */
    snprintf(buf, 17, "%016llx",
             (unsigned long long)(sid_base + n * 0x9e3779b97f4a7c15ULL));
    return buf;
}
