#include "auth.h"
#include "conf.h"
#include "hashcost.h"
#include "hmap.h"
#include "log.h"
#include "util.h"
#include "workers.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CACHE_MAX      100000  /* entries; emptied when full */
#define RELOAD_CHECK_MS 1000
#define PASS_MAX       1024    /* longer passwords fail without hashing */

/*
 * Shared by every loop of a process: the file's snapshot, the credential
 * cache and the measured hash costs are under one lock, held for a few
 * instructions at a time (never across a hash or a file read).
 */
struct auth {
    pthread_mutex_t lock;
    struct userdb *db;
    char *path;
    uint64_t last_check_ms;
    long long loaded_mtime;       /* of the last file read (maybe pending) */
    unsigned gen;                 /* loads so far: the newest one wins */
    struct hmap *costs;           /* hash class -> CPU ns (boxed): hashcost.h */
    unsigned cache_ttl;
    struct hmap *cache;           /* hex HMAC -> expiry (ms, boxed) */
    unsigned char cache_key[32];
};

enum job_kind { JOB_PASS, JOB_APOP, JOB_CACHED };

struct auth_job {
    struct work w;
    struct auth *a;
    struct userdb *db;            /* a reference: reloads may swap a->db */
    enum job_kind kind;
    char *user;
    char *secret;                 /* password, or APOP digest */
    size_t secretlen;
    char *timestamp;
    char cache_id[65];
    auth_then_fn *then;
    void *then_arg;
    auth_done_cb *cb;
    void *arg;
    enum auth_result result;
    struct auth_user u;
};

struct auth *auth_new(unsigned cache_ttl)
{
    struct auth *a = ab_calloc(1, sizeof(*a));

    pthread_mutex_init(&a->lock, NULL);
    a->cache_ttl = cache_ttl;
    a->cache = hmap_new();
    a->costs = hmap_new();
    ab_random(a->cache_key, sizeof(a->cache_key));
    return a;
}

static void cache_clear(struct auth *a)
{
    hmap_free(a->cache, free);
    a->cache = hmap_new();
}

void auth_free(struct auth *a)
{
    if (a == NULL)
        return;
    userdb_unref(a->db);
    hmap_free(a->cache, free);
    hmap_free(a->costs, free);
    free(a->path);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* ---- loading: the dummy costs what the costliest user costs ------------- */

/* The functions below take a->lock's holder: install, classes_known,
 * remember. */
static void install(struct auth *a, struct userdb *db)
{
    if (a->db != NULL)
        log_info("event=users_reloaded file=%s users=%zu", log_esc(a->path),
                 userdb_count(db));
    userdb_unref(a->db);
    a->db = db;
    cache_clear(a);
}

/* The file's crypt classes; false if one has not been measured yet. */
struct classes {
    size_t n;
    char names[HASHCOST_CLASSES_MAX][HASHCOST_CLASS_LEN];
    const char *reps[HASHCOST_CLASSES_MAX];
    uint64_t ns[HASHCOST_CLASSES_MAX];
    bool known[HASHCOST_CLASSES_MAX];   /* ns from an earlier measurement */
};

static bool classes_known(const struct auth *a, struct userdb *db,
                          struct classes *c)
{
    bool all = true;

    c->n = userdb_classes(db, c->names, c->reps, HASHCOST_CLASSES_MAX);
    for (size_t i = 0; i < c->n; i++) {
        const uint64_t *ns = hmap_get(a->costs, c->names[i]);
        c->known[i] = ns != NULL;
        c->ns[i] = ns ? *ns : 0;
        all = all && c->known[i];
    }
    return all;
}

/* Blocking: a worker, or start-up. */
static void measure(struct classes *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (!c->known[i])
            c->ns[i] = hashcost_measure_ns(c->reps[i]);
}

static void remember(struct auth *a, const struct classes *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (!c->known[i] && hmap_get(a->costs, c->names[i]) == NULL) {
            uint64_t *ns = ab_malloc(sizeof(*ns));
            *ns = c->ns[i];
            hmap_put(a->costs, c->names[i], ns);
        }
}

static void pick_dummy(struct userdb *db, const struct classes *c)
{
    size_t best = 0;

    for (size_t i = 1; i < c->n; i++)
        if (c->ns[i] > c->ns[best])
            best = i;
    if (c->n > 0)
        userdb_set_dummy(db, c->reps[best]);
}

/* A new class is measured on a worker (it hashes: never on the loop);
 * the file it came in takes effect once that is done. */
struct calib_job {
    struct work w;
    struct auth *a;
    struct userdb *db;
    unsigned gen;
    struct classes c;
};

static void calib_run(struct work *w)
{
    struct calib_job *j = (struct calib_job *)w;

    measure(&j->c);
}

static void calib_done(struct work *w)
{
    struct calib_job *j = (struct calib_job *)w;
    struct auth *a = j->a;

    pthread_mutex_lock(&a->lock);
    remember(a, &j->c);
    if (j->gen == a->gen) {
        pick_dummy(j->db, &j->c);
        install(a, j->db);
        j->db = NULL;
    }
    pthread_mutex_unlock(&a->lock);
    userdb_unref(j->db);              /* a newer file came meanwhile */
    free(j);
}

int auth_load(struct auth *a, const char *path, struct conf_errors *errs,
              struct workers_port *port)
{
    struct userdb *db = userdb_load(path, errs);
    struct classes c;
    struct calib_job *j;
    char *copy;

    if (db == NULL)
        return -1;
    copy = ab_strdup(path);           /* path may be a->path itself */
    pthread_mutex_lock(&a->lock);
    free(a->path);
    a->path = copy;
    a->last_check_ms = ab_now_ms();
    a->loaded_mtime = userdb_mtime(db);
    a->gen++;
    if (classes_known(a, db, &c) || port == NULL) {
        measure(&c);                  /* start-up, before the loops run */
        remember(a, &c);
        pick_dummy(db, &c);
        install(a, db);
        pthread_mutex_unlock(&a->lock);
        return 0;
    }
    j = ab_calloc(1, sizeof(*j));
    j->w.run = calib_run;
    j->w.done = calib_done;
    j->a = a;
    j->db = db;
    j->gen = a->gen;
    j->c = c;
    pthread_mutex_unlock(&a->lock);
    workers_submit(port, &j->w);
    return 0;
}

/* Whether the file changed since it was last read: at most once a
 * second, by one loop at a time (the others go on with the snapshot). */
static char *changed_path(struct auth *a)
{
    uint64_t now = ab_now_ms();
    struct stat st;
    long long mtime;
    char *path = NULL;

    if (pthread_mutex_trylock(&a->lock) != 0)
        return NULL;
    if (now - a->last_check_ms >= RELOAD_CHECK_MS && a->path != NULL) {
        a->last_check_ms = now;
        if (stat(a->path, &st) == 0) {
            mtime = (long long)st.st_mtim.tv_sec * 1000000000LL +
                    st.st_mtim.tv_nsec;
            if (mtime != a->loaded_mtime) {
                a->loaded_mtime = mtime;  /* tried once, good or bad */
                path = ab_strdup(a->path);
            }
        }
    }
    pthread_mutex_unlock(&a->lock);
    return path;
}

void auth_maybe_reload(struct auth *a, struct workers_port *port)
{
    struct conf_errors errs = { 0 };
    char *path = changed_path(a);

    if (path == NULL)
        return;
    if (auth_load(a, path, &errs, port) < 0) {
        conf_errors_log(&errs);
        log_err("event=users_reload_failed file=%s keeping=previous",
                log_esc(path));
    }
    conf_errors_free(&errs);
    free(path);
}

void auth_set_cache_ttl(struct auth *a, unsigned seconds)
{
    pthread_mutex_lock(&a->lock);
    __atomic_store_n(&a->cache_ttl, seconds, __ATOMIC_RELAXED);
    cache_clear(a);
    pthread_mutex_unlock(&a->lock);
}

bool auth_has_plain(struct auth *a)
{
    bool plain;

    pthread_mutex_lock(&a->lock);
    plain = a->db != NULL && userdb_has_plain(a->db);
    pthread_mutex_unlock(&a->lock);
    return plain;
}

/* ---- the credential cache (loop threads, under the lock) --------------- */

static void cache_id(const struct auth *a, const char *user, const char *pass,
                     size_t passlen, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[32];
    unsigned int n = sizeof(mac);

    /* HMAC over user NUL password: no collisions between ("ab","c") and
     * ("a","bc"). One-shot HMAC() cannot take two pieces. */
    size_t ulen = strlen(user);
    unsigned char *buf = ab_malloc(ulen + 1 + passlen);
    memcpy(buf, user, ulen + 1);
    memcpy(buf + ulen + 1, pass, passlen);
    HMAC(EVP_sha256(), a->cache_key, sizeof(a->cache_key), buf,
         ulen + 1 + passlen, mac, &n);
    explicit_bzero(buf, ulen + 1 + passlen);
    free(buf);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
}

static bool cache_hit(struct auth *a, const char *id)
{
    uint64_t *expiry = hmap_get(a->cache, id);

    if (expiry == NULL)
        return false;
    if (*expiry > ab_now_ms())
        return true;
    free(hmap_del(a->cache, id));
    return false;
}

static void cache_put(struct auth *a, const char *id)
{
    uint64_t *expiry = ab_malloc(sizeof(*expiry));

    if (hmap_count(a->cache) >= CACHE_MAX)
        cache_clear(a);
    *expiry = ab_now_ms() + (uint64_t)a->cache_ttl * 1000;
    free(hmap_put(a->cache, id, expiry));
}

/* ---- jobs ------------------------------------------------------------------ */

static void copy_user(struct auth_user *dst, const struct user *u)
{
    dst->name = ab_strdup(u->name);
    dst->home = ab_strdup(u->home);
    dst->uid = u->uid;
    dst->gid = u->gid;
}

static void job_run(struct work *w)
{
    struct auth_job *j = (struct auth_job *)w;
    const struct user *u;

    switch (j->kind) {
    case JOB_PASS:
        j->result = j->secretlen > PASS_MAX ? AUTH_BAD :
                    userdb_verify(j->db, j->user, j->secret, j->secretlen);
        break;
    case JOB_APOP:
        j->result = userdb_verify_apop(j->db, j->user, j->timestamp, j->secret);
        break;
    case JOB_CACHED:
        j->result = AUTH_OK;
        break;
    }
    if (j->result != AUTH_OK)
        return;
    u = userdb_find(j->db, j->user);
    if (u == NULL) {              /* cached, but gone from the file */
        j->result = AUTH_BAD;
        return;
    }
    copy_user(&j->u, u);
    j->u.cached = j->kind == JOB_CACHED;
    if (j->then)
        j->then(&j->u, j->then_arg);
}

static void job_free(struct auth_job *j)
{
    userdb_unref(j->db);
    free(j->user);
    if (j->secret) {
        explicit_bzero(j->secret, j->secretlen);
        free(j->secret);
    }
    free(j->timestamp);
    free(j->u.name);
    free(j->u.home);
    free(j);
}

static void job_done(struct work *w)
{
    struct auth_job *j = (struct auth_job *)w;
    struct auth *a = j->a;

    if (j->result == AUTH_OK && j->kind == JOB_PASS) {
        pthread_mutex_lock(&a->lock);
        if (a->cache_ttl > 0 && j->db == a->db)
            cache_put(a, j->cache_id);
        pthread_mutex_unlock(&a->lock);
    }
    j->cb(j->result, j->result == AUTH_OK ? &j->u : NULL, j->arg);
    job_free(j);
}

static struct auth_job *job_new(struct auth *a, struct workers_port *port,
                                enum job_kind kind, const char *user,
                                auth_then_fn *then, void *then_arg,
                                auth_done_cb *cb, void *arg)
{
    struct auth_job *j = ab_calloc(1, sizeof(*j));

    auth_maybe_reload(a, port);
    j->w.run = job_run;
    j->w.done = job_done;
    j->a = a;
    pthread_mutex_lock(&a->lock);
    j->db = a->db;
    userdb_ref(j->db);
    pthread_mutex_unlock(&a->lock);
    j->kind = kind;
    j->user = ab_strdup(user);
    j->then = then;
    j->then_arg = then_arg;
    j->cb = cb;
    j->arg = arg;
    return j;
}

void auth_check_pass(struct auth *a, struct workers_port *port,
                     const char *user, const char *pass, size_t passlen,
                     auth_then_fn *then, void *then_arg, auth_done_cb *cb,
                     void *arg)
{
    struct auth_job *j = job_new(a, port, JOB_PASS, user, then, then_arg, cb,
                                 arg);
    bool cached = false;

    if (__atomic_load_n(&a->cache_ttl, __ATOMIC_RELAXED) > 0 &&
        passlen <= PASS_MAX) {
        /* The key is fixed at start: the HMAC needs no lock. */
        cache_id(a, user, pass, passlen, j->cache_id);
        pthread_mutex_lock(&a->lock);
        cached = a->cache_ttl > 0 && cache_hit(a, j->cache_id);
        pthread_mutex_unlock(&a->lock);
    }
    if (cached) {
        j->kind = JOB_CACHED;
    } else {
        j->secret = ab_strndup(pass, passlen);
        j->secretlen = passlen;
    }
    workers_submit(port, &j->w);
}

void auth_check_apop(struct auth *a, struct workers_port *port,
                     const char *user, const char *timestamp,
                     const char *digest, auth_then_fn *then, void *then_arg,
                     auth_done_cb *cb, void *arg)
{
    struct auth_job *j = job_new(a, port, JOB_APOP, user, then, then_arg, cb,
                                 arg);

    j->timestamp = ab_strdup(timestamp);
    j->secret = ab_strdup(digest);
    j->secretlen = strlen(digest);
    workers_submit(port, &j->w);
}
