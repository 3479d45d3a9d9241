#include "notify.h"
#include "log.h"
#include "redis.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How often the figures are looked at; a datagram goes only when they
 * changed, so an idle daemon sends nothing. `systemctl status` is read
 * by people: two seconds is fresh enough for them. */
#define NOTIFY_STATUS_MS 2000
/* systemd reads at most this much of one datagram (NOTIFY_BUFFER_MAX is
 * larger; our messages stay far below). */
#define NOTIFY_MSG_MAX   512

struct notify {
    int fd;
    struct sockaddr_un sa;
    socklen_t salen;
    notify_status_fn *status_fn;
    void *status_arg;
    struct rconn *rc;              /* set by notify_ready_when_known() */
    struct event *timer;
    bool ready_sent;               /* READY=1 went out once */
    bool reloading;
    bool reload_failed;            /* the last reload kept the old config */
    bool stopping;
    bool send_failed_logged;       /* one log line, not one per datagram */
    char last_status[NOTIFY_MSG_MAX];
};

/* "/path" or "@abstract"; anything else (vsock, relative) is not ours. */
static int parse_address(struct notify *n, const char *e)
{
    size_t len = strlen(e);

    if ((e[0] != '/' && e[0] != '@') || len < 2 || len >= sizeof(n->sa.sun_path))
        return -1;
    memset(&n->sa, 0, sizeof(n->sa));
    n->sa.sun_family = AF_UNIX;
    memcpy(n->sa.sun_path, e, len);
    if (e[0] == '@')
        n->sa.sun_path[0] = '\0';  /* abstract: no file, no trailing NUL */
    n->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                           (e[0] == '/'));
    return 0;
}

/*
 * State messages (READY, RELOADING, STOPPING) are sent blocking, as
 * sd_notify() does: losing one would leave systemd waiting for a start
 * or a reload that happened. A STATUS= refresh alone must never hold the
 * event loop: sent non-blocking, dropped if the manager's queue is full.
 */
static int send_msg(struct notify *n, const char *msg, bool state)
{
    size_t len = strlen(msg);
    ssize_t r;

    do
        r = sendto(n->fd, msg, len, MSG_NOSIGNAL | (state ? 0 : MSG_DONTWAIT),
                   (const struct sockaddr *)&n->sa, n->salen);
    while (r < 0 && errno == EINTR);
    if (r == (ssize_t)len)
        return 0;
    if (!n->send_failed_logged || state)
        log_warn("event=notify_failed socket=%s error=%s",
                 log_esc(getenv("NOTIFY_SOCKET")),
                 log_esc(r < 0 ? strerror(errno) : "short write"));
    n->send_failed_logged = true;
    return -1;
}

static const char *redis_text(const struct notify *n)
{
    if (n->rc == NULL)
        return "starting";
    switch (rconn_health(n->rc)) {
    case RCONN_UP:   return "Redis up";
    case RCONN_DOWN: return "Redis down";
    default:         return "Redis connecting";
    }
}

static void status_text(struct notify *n, char *buf, size_t len)
{
    char figures[256];

    figures[0] = '\0';
    n->status_fn(n->status_arg, figures, sizeof(figures));
    snprintf(buf, len, "STATUS=%s%s%s; %s%s",
             n->stopping ? "stopping: " : n->reloading ? "reloading: " : "",
             figures, figures[0] ? "" : "running", redis_text(n),
             n->reload_failed ? "; last reload FAILED, previous "
             "configuration kept (see the log)" : "");
}

/* prefix (READY=1 etc.) and the current STATUS= in one datagram. */
static void send_with_status(struct notify *n, const char *prefix, bool state)
{
    char status[NOTIFY_MSG_MAX], msg[NOTIFY_MSG_MAX + 128];

    status_text(n, status, sizeof(status));
    snprintf(msg, sizeof(msg), "%s%s", prefix, status);
    if (send_msg(n, msg, state) == 0)
        memcpy(n->last_status, status, sizeof(status));
}

static void status_tick(evutil_socket_t fd, short what, void *arg)
{
    struct notify *n = arg;
    char status[NOTIFY_MSG_MAX];

    (void)fd;
    (void)what;
    status_text(n, status, sizeof(status));
    if (strcmp(status, n->last_status) != 0)
        send_with_status(n, "", false);
}

static void send_ready(struct notify *n)
{
    if (n->ready_sent || n->stopping)
        return;
    n->ready_sent = true;
    send_with_status(n, "READY=1\n", true);
    log_debug("event=notify_ready");
}

static void on_redis_change(void *arg)
{
    struct notify *n = arg;

    if (!n->ready_sent)
        send_ready(n);
    else
        status_tick(-1, 0, n);
}

struct notify *notify_new(struct event_base *base, notify_status_fn *fn,
                          void *arg)
{
    const char *e = getenv("NOTIFY_SOCKET");
    struct notify *n;
    struct timeval tv = { NOTIFY_STATUS_MS / 1000,
                          (NOTIFY_STATUS_MS % 1000) * 1000 };

    if (e == NULL || e[0] == '\0')
        return NULL;
    n = ab_calloc(1, sizeof(*n));
    if (parse_address(n, e) < 0) {
        log_warn("event=notify_unusable socket=%s msg=\"not a path or "
                 "@abstract name: not notifying\"", log_esc(e));
        free(n);
        return NULL;
    }
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (n->fd < 0) {
        log_warn("event=notify_unusable error=%s", log_esc(strerror(errno)));
        free(n);
        return NULL;
    }
    n->status_fn = fn;
    n->status_arg = arg;
    n->timer = event_new(base, -1, EV_PERSIST, status_tick, n);
    evtimer_add(n->timer, &tv);
    return n;
}

void notify_ready_when_known(struct notify *n, struct rconn *rc)
{
    if (n == NULL)
        return;
    n->rc = rc;
    rconn_on_change(rc, on_redis_change, n);
    if (rconn_health(rc) != RCONN_UNKNOWN)
        send_ready(n);
}

void notify_reloading(struct notify *n)
{
    struct timespec ts;
    char prefix[96];

    if (n == NULL)
        return;
    n->reloading = true;
    /* systemd 253's Type=notify-reload wants the reload's start time;
     * older managers ignore the field. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(prefix, sizeof(prefix), "RELOADING=1\nMONOTONIC_USEC=%llu\n",
             (unsigned long long)ts.tv_sec * 1000000ULL +
             (unsigned long long)ts.tv_nsec / 1000ULL);
    send_with_status(n, prefix, true);
}

void notify_reloaded(struct notify *n, bool ok)
{
    if (n == NULL)
        return;
    n->reloading = false;
    n->reload_failed = !ok;
    /* Before the first READY=1 a reload does not make us ready. */
    send_with_status(n, n->ready_sent ? "READY=1\n" : "", n->ready_sent);
}

void notify_stopping(struct notify *n)
{
    if (n == NULL || n->stopping)
        return;
    n->stopping = true;
    send_with_status(n, "STOPPING=1\n", true);
}

void notify_free(struct notify *n)
{
    if (n == NULL)
        return;
    if (n->rc != NULL)
        rconn_on_change(n->rc, NULL, NULL);
    event_free(n->timer);
    close(n->fd);
    free(n);
}
