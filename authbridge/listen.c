#include "listen.h"
#include "conf.h"
#include "hmap.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG   4096
#define EMFILE_PAUSE_MS  100   /* accept pause when out of descriptors */

struct listener {
    struct evconnlistener *lev;
    struct event *resume;
    struct listeners *owner;
    listen_accept_fn *fn;
    void *arg;
    int kind;
    bool warned;
    char *text;
};

struct listeners {
    struct event_base *base;
    enum listen_share share;
    struct listener **v;
    size_t n;
};

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int len, void *arg)
{
    struct listener *l = arg;

    (void)lev;
    l->warned = false;
    l->fn(fd, sa, (socklen_t)len, l->kind, l->arg);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    (void)fd;
    (void)what;
    evconnlistener_enable(l->lev);
}

static void error_cb(struct evconnlistener *lev, void *arg)
{
    struct listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = { 0, EMFILE_PAUSE_MS * 1000 };

    /* Out of descriptors: the pending connection stays in the backlog;
     * pause instead of spinning on accept(), keep serving the others. */
    if (!l->warned) {
        log_warn("event=accept_failed listen=%s error=%s pause_ms=%d",
                 l->text, log_esc(strerror(err)), EMFILE_PAUSE_MS);
        l->warned = true;
    }
    evconnlistener_disable(lev);
    evtimer_add(l->resume, &tv);
}

struct listeners *listeners_new(struct event_base *base,
                                enum listen_share share)
{
    struct listeners *ls = ab_calloc(1, sizeof(*ls));

    ls->base = base;
    ls->share = share;
    return ls;
}

/* Nobody listens on ep now: a bind without SO_REUSEPORT succeeds. */
static int probe_free(const struct endpoint *ep, char *err, size_t errlen)
{
    int fd = socket(ep->family, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;

    if (fd < 0)
        return 0;                 /* the real bind will say what is wrong */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
    if (bind(fd, (const struct sockaddr *)&ep->ss, ep->sslen) < 0 &&
        errno == EADDRINUSE) {
        snprintf(err, errlen, "cannot listen on %s: %s (another process "
                 "listens there)", ep->text, strerror(errno));
        rc = -1;
    }
    close(fd);
    return rc;
}

int listeners_add(struct listeners *ls, const struct endpoint *ep, int kind,
                  listen_accept_fn *fn, void *arg, char *err, size_t errlen)
{
    struct listener *l = ab_calloc(1, sizeof(*l));
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
                     LEV_OPT_REUSEABLE;

    if (ep->family == AF_UNIX && ls->share == LISTEN_SHARED) {
        free(l);
        return 0;                 /* the first loop's alone */
    }
    if (ep->family != AF_UNIX && ls->share != LISTEN_ALONE) {
        if (ls->share == LISTEN_SHARED_FIRST &&
            probe_free(ep, err, errlen) < 0) {
            free(l);
            return -1;
        }
        flags |= LEV_OPT_REUSEABLE_PORT;
    }
    if (ep->family == AF_UNIX)
        unlink(ep->path);         /* a stale socket from a previous run */
    l->lev = evconnlistener_new_bind(ls->base, accept_cb, l, flags,
                                     LISTEN_BACKLOG,
                                     (const struct sockaddr *)&ep->ss,
                                     (int)ep->sslen);
    if (l->lev == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", ep->text,
                 strerror(errno));
        free(l);
        return -1;
    }
    evconnlistener_set_error_cb(l->lev, error_cb);
    l->resume = evtimer_new(ls->base, resume_cb, l);
    l->owner = ls;
    l->fn = fn;
    l->arg = arg;
    l->kind = kind;
    l->text = ab_strdup(ep->text);
    ls->v = ab_realloc(ls->v, (ls->n + 1) * sizeof(*ls->v));
    ls->v[ls->n++] = l;
    return 0;
}

size_t listeners_count(const struct listeners *ls)
{
    return ls->n;
}

void listeners_free(struct listeners *ls)
{
    if (ls == NULL)
        return;
    for (size_t i = 0; i < ls->n; i++) {
        evconnlistener_free(ls->v[i]->lev);
        event_free(ls->v[i]->resume);
        free(ls->v[i]->text);
        free(ls->v[i]);
    }
    free(ls->v);
    free(ls);
}

/* ---- caps ------------------------------------------------------------------ */

/* Shared by every loop of a process, so the caps are exact across
 * them: one lock, held for a hash lookup. */
struct conncap {
    pthread_mutex_t lock;
    unsigned max_total, max_per_addr, total;
    struct hmap *per_addr;        /* address text -> count (boxed) */
};

struct conncap *conncap_new(unsigned max_total, unsigned max_per_addr)
{
    struct conncap *c = ab_calloc(1, sizeof(*c));

    pthread_mutex_init(&c->lock, NULL);
    c->max_total = max_total;
    c->max_per_addr = max_per_addr;
    c->per_addr = hmap_new();
    return c;
}

void conncap_set_limits(struct conncap *c, unsigned max_total,
                        unsigned max_per_addr)
{
    pthread_mutex_lock(&c->lock);
    c->max_total = max_total;
    c->max_per_addr = max_per_addr;
    pthread_mutex_unlock(&c->lock);
}

void conncap_free(struct conncap *c)
{
    if (c == NULL)
        return;
    hmap_free(c->per_addr, free);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static enum cap_result acquire(struct conncap *c, const char *addr)
{
    unsigned *n = hmap_get(c->per_addr, addr);

    if (c->total >= c->max_total)
        return CAP_TOTAL;
    if (n != NULL && *n >= c->max_per_addr)
        return CAP_PER_ADDR;
    if (n == NULL) {
        n = ab_calloc(1, sizeof(*n));
        hmap_put(c->per_addr, addr, n);
    }
    (*n)++;
    c->total++;
    return CAP_OK;
}

enum cap_result conncap_acquire(struct conncap *c, const char *addr)
{
    enum cap_result r;

    pthread_mutex_lock(&c->lock);
    r = acquire(c, addr);
    pthread_mutex_unlock(&c->lock);
    return r;
}

void conncap_release(struct conncap *c, const char *addr)
{
    unsigned *n;

    pthread_mutex_lock(&c->lock);
    n = hmap_get(c->per_addr, addr);
    if (n == NULL)
        fatalx("conncap_release: %s holds no connection", addr);
    c->total--;
    if (--*n == 0)
        free(hmap_del(c->per_addr, addr));
    pthread_mutex_unlock(&c->lock);
}

unsigned conncap_total(struct conncap *c)
{
    unsigned n;

    pthread_mutex_lock(&c->lock);
    n = c->total;
    pthread_mutex_unlock(&c->lock);
    return n;
}
