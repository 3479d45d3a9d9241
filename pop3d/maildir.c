#include "pop3d/maildir.h"
#include "pop3d/msgstream.h"
#include "authbridge/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char lock_host[256] = "localhost";
static long lock_pid;

void maildir_set_hostname(const char *host)
{
    snprintf(lock_host, sizeof(lock_host), "%s", host);
    lock_pid = (long)getpid();
}

/* "a/b" into out; -1 when it does not fit (a path we must not truncate). */
static int join(char *out, size_t len, const char *a, const char *b)
{
    int n = snprintf(out, len, "%s/%s", a, b);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/*
 * What a directory entry is, without following a link: the type the
 * kernel put in the entry, or (file systems that leave it DT_UNKNOWN)
 * what fstatat says.
 */
static unsigned char entry_type(int dirfd, const struct dirent64 *d)
{
    struct stat st;

    if (d->d_type != DT_UNKNOWN)
        return d->d_type;
    if (fstatat(dirfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return DT_UNKNOWN;
    return S_ISREG(st.st_mode) ? DT_REG : S_ISLNK(st.st_mode) ? DT_LNK :
           S_ISDIR(st.st_mode) ? DT_DIR : DT_FIFO;
}

/*
 * Call fn for each entry of a folder but dot files, until fn returns
 * true; type is DT_REG, DT_LNK, DT_DIR, another DT_ value, or DT_UNKNOWN
 * (vanished meanwhile). open + getdents64 rather than opendir, which adds
 * an fstat: two system calls a login (and system calls are what a login
 * costs).
 */
static int dir_each(const char *path,
                    bool (*fn)(const char *name, unsigned char type, void *arg),
                    void *arg)
{
    char buf[32 * 1024];
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), saved;
    ssize_t n;

    if (fd < 0)
        return -1;
    while ((n = getdents64(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n;) {
            const struct dirent64 *d = (const struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] != '.' &&
                fn(d->d_name, entry_type(fd, d), arg)) {
                close(fd);
                return 0;
            }
        }
    }
    saved = errno;
    close(fd);
    errno = saved;
    return n < 0 ? -1 : 0;
}

/* ---- names ------------------------------------------------------------------- */

static size_t base_len_of(const char *name)
{
    const char *colon = strchr(name, ':');
    return colon ? (size_t)(colon - name) : strlen(name);
}

void maildir_uidl(const char *name, char out[POP3_UIDL_MAX + 1])
{
    size_t n = strcspn(name, ",:");
    bool ok = n > 0 && n <= POP3_UIDL_MAX;
    uint64_t h = 0xcbf29ce484222325ULL;   /* FNV-1a: stable everywhere */

    for (size_t i = 0; ok && i < n; i++)
        ok = name[i] >= 0x21 && name[i] <= 0x7e;
    if (ok) {
        memcpy(out, name, n);
        out[n] = '\0';
        return;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)name[i]) * 0x100000001b3ULL;
    snprintf(out, POP3_UIDL_MAX + 1, "h%016llx", (unsigned long long)h);
}

/* ",W=<n>" in the base name: the wire size someone already computed. */
static bool size_from_name(const char *name, size_t base_len, uint64_t *size)
{
    for (const char *p = name; p && (size_t)(p - name) < base_len;
         p = strchr(p + 1, ',')) {
        if (strncmp(p, ",W=", 3) == 0) {
            size_t n = strspn(p + 3, "0123456789");
            return ab_parse_uint_n(p + 3, n, 0, UINT64_MAX, size) == 0;
        }
    }
    return false;
}

/* ---- sizes --------------------------------------------------------------------- */

/*
 * Open a message for reading, never blocking and never through a link:
 * whoever can write the Maildir (a shared vmail account, another
 * customer) could plant a symbolic link to /etc/shadow or to someone
 * else's mail, or a FIFO whose open() would wait for a writer for ever
 * (on the event loop, or on a worker that every login needs). Only a
 * regular file with this name is a message.
 */
static int open_message_file(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

static int file_sizes(const char *path, uint64_t *raw, uint64_t *vsize)
{
    char buf[POP3_READ_CHUNK];
    struct msg_vsize v;
    ssize_t n;
    int fd = open_message_file(path);

    if (fd < 0)
        return -1;
    msg_vsize_init(&v);
    *raw = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        msg_vsize_feed(&v, buf, (size_t)n);
        *raw += (uint64_t)n;
    }
    close(fd);
    if (n < 0)
        return -1;
    *vsize = msg_vsize_finish(&v);
    return 0;
}

/* ---- the lock ------------------------------------------------------------------ */

/*
 * st is lstat's: the name itself. Only a regular file can be a lock we
 * or another pop3d made; anything else at its name (a FIFO, whose open
 * would wait for a writer for ever, a link, a folder) was planted, and
 * breaking it locks nobody out.
 */
static bool lock_is_stale(const char *path, const struct stat *st)
{
    char buf[256], host[256];
    long pid = 0;
    ssize_t n;
    int fd;

    if (!S_ISREG(st->st_mode))
        return true;
    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (time(NULL) - st->st_mtime > POP3_LOCK_STALE) {
        if (fd >= 0)
            close(fd);
        return true;
    }
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;             /* being written right now */
    buf[n] = '\0';
    if (sscanf(buf, "%255s %ld", host, &pid) != 2 || pid <= 0)
        return false;
    return strcmp(host, lock_host) == 0 && kill((pid_t)pid, 0) < 0 &&
           errno == ESRCH;
}

/* Remove a stale lock, unless it changed since we judged it. */
static void lock_break(const char *path, const struct stat *judged)
{
    struct stat now;

    if (lstat(path, &now) == 0 && now.st_ino == judged->st_ino &&
        now.st_mtim.tv_sec == judged->st_mtim.tv_sec &&
        now.st_mtim.tv_nsec == judged->st_mtim.tv_nsec)
        unlink(path);
}

/*
 * Taking the lock. The lock is a file created exclusively (link(2), which
 * is atomic on every local file system and on NFS) holding "host pid
 * stamp", so that a lock left by a dead process can be judged stale.
 *
 * Its inode is reused: release renames the lock to "<lock>.idle", and the
 * next session renames that to a name of its own, writes its token into
 * it and links it to the lock's name. Creating and freeing an inode per
 * login is what the file system would otherwise do thousands of times a
 * second (on ext4 without a journal, each allocation scans past every
 * inode freed in the last minutes: a third of pop3d's time in a login
 * storm). The token is in the file before the lock's name points at it,
 * so nobody ever judges a half-written lock. A crash between the rename
 * and the link can leave one "<lock>.<host>.<pid>.<n>" file behind; it is
 * harmless (nothing reads it) and unlike the lock itself is not reused.
 */
static unsigned long lock_serial;

static void priv_name(const struct mailbox *mb, char *priv, size_t privlen)
{
    snprintf(priv, privlen, "%s.%s.%ld.%lu", mb->lock_path, lock_host,
             lock_pid ? lock_pid : (long)getpid(),
             __atomic_add_fetch(&lock_serial, 1, __ATOMIC_RELAXED));
}

/* A file of our own, holding our token: the idle inode if there is one,
 * else a new one. Its name is left in priv. -1 with errno on failure. */
static int lock_prepare(struct mailbox *mb, const char *idle, char *priv,
                        size_t privlen)
{
    size_t len = strlen(mb->lock_token);
    bool reused;
    int fd;

    priv_name(mb, priv, privlen);
    reused = rename(idle, priv) == 0;
    if (reused) {
        /* Whoever can write the Maildir can plant "idle": never follow a
         * symbolic link, never write a file that has another name. */
        struct stat st;
        fd = open(priv, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
                        st.st_nlink != 1)) {
            close(fd);
            fd = -1;
        }
        if (fd < 0) {
            unlink(priv);         /* only this name goes, not its target */
            priv_name(mb, priv, privlen);
            reused = false;
        }
    }
    if (!reused)
        fd = open(priv, O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -1;
    if (pwrite(fd, mb->lock_token, len, 0) != (ssize_t)len ||
        (reused && ftruncate(fd, (off_t)len) < 0)) {
        int saved = errno ? errno : EIO;
        close(fd);
        unlink(priv);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Over NFS a link(2) can succeed on the server and still report an error
 * (the reply was lost, the retried call found the name): our file then
 * has two names. The classic check of NFS-safe dot-locking. */
static bool linked_anyway(int fd)
{
    struct stat st;
    int saved = errno;
    bool two = fstat(fd, &st) == 0 && st.st_nlink == 2;

    errno = saved;
    return two;
}

static enum mbox_status lock_take(struct mailbox *mb, char *err, size_t errlen,
                                  bool *missing)
{
    size_t plen = strlen(mb->lock_path) + strlen(lock_host) + 64;
    char *priv = ab_malloc(plen);
    const char *idle = mb->idle_path;
    enum mbox_status rc = MBOX_IN_USE;

    *missing = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct stat st;
        int fd = lock_prepare(mb, idle, priv, plen);

        if (fd < 0) {
            *missing = errno == ENOENT;
            snprintf(err, errlen, "create %s: %s", priv, strerror(errno));
            rc = MBOX_ERROR;
            break;
        }
        if (link(priv, mb->lock_path) == 0 || linked_anyway(fd)) {
            unlink(priv);
            mb->lock_fd = fd;
            rc = MBOX_OK;
            break;
        }
        if (errno != EEXIST) {
            snprintf(err, errlen, "link %s: %s", mb->lock_path,
                     strerror(errno));
            close(fd);
            unlink(priv);
            rc = MBOX_ERROR;
            break;
        }
        close(fd);
        rename(priv, idle);       /* for the next one */
        if (lstat(mb->lock_path, &st) < 0 ||
            !lock_is_stale(mb->lock_path, &st))
            break;
        lock_break(mb->lock_path, &st);
    }
    free(priv);
    return rc;
}

void maildir_touch_lock(struct mailbox *mb)
{
    if (mb->lock_fd >= 0)
        futimens(mb->lock_fd, NULL);
}

/* ---- scanning ------------------------------------------------------------------ */

/* The home folder (one level, as Dovecot does for a new user), then the
 * Maildir and its three folders. */
static int ensure_dirs(const char *maildir, char *err, size_t errlen)
{
    static const char *const sub[] = { "", "/cur", "/new", "/tmp" };
    char path[4096], *slash;

    struct stat st;

    snprintf(path, sizeof(path), "%s", maildir);
    slash = strrchr(path, '/');
    if (slash != NULL && slash != path) {
        *slash = '\0';
        if (stat(path, &st) < 0 && errno == ENOENT && mkdir(path, 0700) < 0) {
            snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
            return -1;
        }
    }
    /* Create only what is missing: mkdir() would mask the real error
     * (EACCES on a parent) behind EEXIST. */
    for (size_t i = 0; i < AB_ARRAY_LEN(sub); i++) {
        snprintf(path, sizeof(path), "%s%s", maildir, sub[i]);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            continue;
        if (mkdir(path, 0700) < 0) {
            snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Not a message (a link, a FIFO, a folder...): left alone, and counted
 * for the login's log line. */
static void skip_entry(struct mailbox *mb, const char *sub, const char *name,
                       unsigned char type)
{
    if (type == DT_UNKNOWN)
        return;                   /* vanished meanwhile: nothing odd */
    if (mb->skipped++ == 0)
        snprintf(mb->skipped_first, sizeof(mb->skipped_first), "%s/%s (%s)",
                 sub, name, type == DT_LNK ? "symbolic link" :
                 type == DT_DIR ? "folder" : "not a regular file");
}

/* Two names of one file: a move whose unlink of new/ never happened. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    return lstat(a, &sa) == 0 && lstat(b, &sb) == 0 &&
           sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

/*
 * rename(2) replaces what has the target name: two new/ messages that
 * map to one cur/ name (or a new/ file whose target exists) would lose
 * one silently. RENAME_NOREPLACE refuses instead; where the file system
 * lacks it, link(2) refuses an existing name too (and is atomic on NFS).
 */
static int move_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (link(from, to) < 0)
        return -1;
    unlink(from);
    return 0;
}

/* cur/<unique><tag><what the name had><sizes>:2, */
static int cur_name(const char *maildir, const char *name, const char *tag,
                    uint64_t raw, uint64_t vsize, char *to, size_t len)
{
    size_t blen = base_len_of(name), ulen = strcspn(name, ",:");
    const char *rest = name + ulen;
    int rlen = (int)(blen - ulen), n;

    if (strstr(name, ",W=") != NULL)
        n = snprintf(to, len, "%s/cur/%.*s%s%.*s:2,", maildir, (int)ulen, name,
                     tag, rlen, rest);
    else if (strstr(name, ",S=") != NULL)
        n = snprintf(to, len, "%s/cur/%.*s%s%.*s,W=%llu:2,", maildir,
                     (int)ulen, name, tag, rlen, rest,
                     (unsigned long long)vsize);
    else
        n = snprintf(to, len, "%s/cur/%.*s%s%.*s,S=%llu,W=%llu:2,", maildir,
                     (int)ulen, name, tag, rlen, rest,
                     (unsigned long long)raw, (unsigned long long)vsize);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* new/X -> cur/X,S=..,W=..:2, (the sizes learned once, kept in the name).
 * On a collision both messages stay: this one gets a new unique part
 * (so a new UIDL too: it is a different message). */
static bool move_one(const char *name, unsigned char type, void *arg)
{
    struct mailbox *mb = arg;
    char from[4096], to[4096], tag[16] = "";
    uint64_t raw, vsize;

    if (type != DT_REG) {
        skip_entry(mb, "new", name, type);
        return false;
    }
    if (snprintf(from, sizeof(from), "%s/new/%s", mb->path, name) >=
            (int)sizeof(from) || file_sizes(from, &raw, &vsize) < 0)
        return false;             /* vanished or unreadable: leave it */
    for (int attempt = 0; attempt < POP3_MOVE_ATTEMPTS; attempt++) {
        if (cur_name(mb->path, name, tag, raw, vsize, to, sizeof(to)) < 0)
            return false;
        if (move_noreplace(from, to) == 0) {
            mb->renamed += attempt > 0;
            return false;
        }
        if (errno != EEXIST)
            return false;         /* ENOENT: another reader moved it */
        if (same_file(from, to)) {
            unlink(from);
            return false;
        }
        uint32_t r;
        ab_random(&r, sizeof(r));
        snprintf(tag, sizeof(tag), ".R%08x", r);
    }
    return false;
}

static void move_new(struct mailbox *mb)
{
    char dir[4096];

    snprintf(dir, sizeof(dir), "%s/new", mb->path);
    dir_each(dir, move_one, mb);
}

static int add_message(struct mailbox *mb, const char *cur, const char *name,
                       size_t *cap)
{
    struct message *m;
    char path[4096];
    uint64_t raw;

    if (mb->count == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        mb->msgs = ab_realloc(mb->msgs, *cap * sizeof(*mb->msgs));
    }
    m = &mb->msgs[mb->count];
    memset(m, 0, sizeof(*m));
    m->base_len = base_len_of(name);
    if (!size_from_name(name, m->base_len, &m->size)) {
        if (join(path, sizeof(path), cur, name) < 0 ||
            file_sizes(path, &raw, &m->size) < 0)
            return -1;            /* vanished meanwhile: not in the snapshot */
    }
    m->name = ab_strdup(name);
    maildir_uidl(name, m->uidl);
    mb->total += m->size;
    mb->count++;
    return 0;
}

static int message_cmp(const void *a, const void *b)
{
    /* Unique names start with the delivery time: natural order is age. */
    return strverscmp(((const struct message *)a)->name,
                      ((const struct message *)b)->name);
}

struct scan {
    struct mailbox *mb;
    const char *cur;
    size_t cap;
};

static bool scan_one(const char *name, unsigned char type, void *arg)
{
    struct scan *sc = arg;

    if (type == DT_REG)
        add_message(sc->mb, sc->cur, name, &sc->cap);
    else
        skip_entry(sc->mb, "cur", name, type);
    return false;
}

static int scan_cur(struct mailbox *mb, char *err, size_t errlen)
{
    char cur[4096];
    struct scan sc = { mb, cur, 0 };
    int rc;

    snprintf(cur, sizeof(cur), "%s/cur", mb->path);
    rc = dir_each(cur, scan_one, &sc);
    if (rc < 0 && errno == ENOENT && ensure_dirs(mb->path, err, errlen) == 0)
        rc = dir_each(cur, scan_one, &sc);
    if (rc < 0) {
        snprintf(err, errlen, "read folder %s: %s", cur, strerror(errno));
        return -1;
    }
    if (mb->count > 1)
        qsort(mb->msgs, mb->count, sizeof(*mb->msgs), message_cmp);
    if (mb->count > POP3_MAX_MESSAGES) {
        for (size_t i = POP3_MAX_MESSAGES; i < mb->count; i++) {
            mb->total -= mb->msgs[i].size;
            free(mb->msgs[i].name);
        }
        mb->count = POP3_MAX_MESSAGES;
    }
    return 0;
}

enum mbox_status maildir_open(const char *maildir, const char *lock_name,
                              struct mailbox **out, char *err, size_t errlen)
{
    struct mailbox *mb = ab_calloc(1, sizeof(*mb));
    enum mbox_status st;
    bool missing;
    size_t plen = strlen(maildir) + strlen(lock_name) + 2;

    mb->lock_fd = -1;
    mb->path = ab_strdup(maildir);
    mb->lock_path = ab_malloc(plen);
    snprintf(mb->lock_path, plen, "%s/%s", maildir, lock_name);
    mb->idle_path = ab_malloc(plen + sizeof(".idle"));
    snprintf(mb->idle_path, plen + sizeof(".idle"), "%s.idle", mb->lock_path);
    snprintf(mb->lock_token, sizeof(mb->lock_token), "%s %ld %lld\n", lock_host,
             lock_pid ? lock_pid : (long)getpid(), (long long)time(NULL));
    /* The lock is the first thing we need; only when its folder is missing
     * is it worth looking at what else is (a new user's first login). */
    st = lock_take(mb, err, errlen, &missing);
    if (missing) {
        if (ensure_dirs(maildir, err, errlen) < 0) {
            maildir_close(mb);
            return MBOX_ERROR;
        }
        st = lock_take(mb, err, errlen, &missing);
    }
    if (st != MBOX_OK) {
        maildir_close(mb);
        return st;
    }
    move_new(mb);
    if (scan_cur(mb, err, errlen) < 0) {
        maildir_close(mb);
        return MBOX_ERROR;
    }
    *out = mb;
    return MBOX_OK;
}

/* ---- messages ------------------------------------------------------------------ */

/* Another reader may have renamed the file (new flags): find it by its
 * unique part, which never changes. */
struct renamed {
    struct message *m;
    bool found;
};

static bool same_message(const char *name, unsigned char type, void *arg)
{
    struct renamed *r = arg;

    if (type != DT_REG || base_len_of(name) != r->m->base_len ||
        strncmp(name, r->m->name, r->m->base_len) != 0)
        return false;
    free(r->m->name);
    r->m->name = ab_strdup(name);
    r->found = true;
    return true;
}

static bool find_renamed(struct mailbox *mb, struct message *m)
{
    char cur[4096];
    struct renamed r = { m, false };

    snprintf(cur, sizeof(cur), "%s/cur", mb->path);
    return dir_each(cur, same_message, &r) == 0 && r.found;
}

static int message_path(const struct mailbox *mb, const struct message *m,
                        char *out, size_t len)
{
    int n = snprintf(out, len, "%s/cur/%s", mb->path, m->name);

    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int maildir_open_message(struct mailbox *mb, size_t i)
{
    struct message *m = &mb->msgs[i];
    char path[4096];
    int fd;

    if (message_path(mb, m, path, sizeof(path)) < 0)
        return -1;
    fd = open_message_file(path);
    if (fd >= 0 || errno != ENOENT || !find_renamed(mb, m))
        return fd;
    if (message_path(mb, m, path, sizeof(path)) < 0)
        return -1;
    return open_message_file(path);
}

static int remove_message(struct mailbox *mb, struct message *m)
{
    char path[4096];

    if (message_path(mb, m, path, sizeof(path)) < 0)
        return -1;
    if (unlink(path) == 0)
        return 0;
    if (errno != ENOENT)
        return -1;
    if (!find_renamed(mb, m))
        return 0;                 /* already gone: what DELE wanted */
    if (message_path(mb, m, path, sizeof(path)) < 0)
        return -1;
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int maildir_update(struct mailbox *mb, unsigned *removed, char *err,
                   size_t errlen)
{
    char cur[4096];
    unsigned failed = 0;
    int dfd, saved = 0;

    *removed = 0;
    for (size_t i = 0; i < mb->count; i++) {
        if (!mb->msgs[i].deleted)
            continue;
        if (remove_message(mb, &mb->msgs[i]) == 0) {
            (*removed)++;
        } else {
            saved = errno;
            failed++;
        }
    }
    /* The unlinks are durable once the directory is (and a QUIT that
     * deleted nothing has nothing to make durable). */
    snprintf(cur, sizeof(cur), "%s/cur", mb->path);
    dfd = *removed > 0 ? open(cur, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    if (failed == 0)
        return 0;
    snprintf(err, errlen, "%u of %u deleted messages not removed: %s", failed,
             failed + *removed, strerror(saved));
    return -1;
}

/* ---- release ---------------------------------------------------------------- */

/* The file at the lock's name is still the one we created: we hold it
 * open, so its inode cannot have been reused by whoever broke it. */
static bool lock_still_ours(const struct mailbox *mb)
{
    struct stat ours, now;

    return fstat(mb->lock_fd, &ours) == 0 && lstat(mb->lock_path, &now) == 0 &&
           ours.st_ino == now.st_ino && ours.st_dev == now.st_dev;
}

void maildir_close(struct mailbox *mb)
{
    if (mb == NULL)
        return;
    if (mb->lock_fd >= 0) {
        /* Someone who judged us dead may have taken it over: leave theirs.
         * Ours becomes the idle inode the next session takes (see
         * lock_take); where that fails, it goes. */
        if (lock_still_ours(mb) && rename(mb->lock_path, mb->idle_path) < 0)
            unlink(mb->lock_path);
        close(mb->lock_fd);
    }
    for (size_t i = 0; i < mb->count; i++)
        free(mb->msgs[i].name);
    free(mb->msgs);
    free(mb->path);
    free(mb->lock_path);
    free(mb->idle_path);
    free(mb);
}
