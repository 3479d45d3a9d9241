/*
 * A POP3 session's view of a Maildir (as Postfix, Dovecot and Courier
 * deliver it): locked, snapshotted at login, changed only at QUIT.
 *
 * maildir_open(), maildir_update() and maildir_close() do file-system work
 * and run on worker threads; maildir_open_message() is cheap (one open).
 *
 * Opening moves new/ messages to cur/ as "<unique>,S=<size>,W=<wire size>:2,"
 * (the Dovecot/Courier convention), so later sessions learn sizes from the
 * name instead of reading every message. UIDL is the unique part of the
 * name: stable across sessions and across the new/ -> cur/ move and flag
 * changes by other readers.
 *
 * Lock: <Maildir>/<lock_name>, created with O_EXCL and holding
 * "host pid time". It is stale when its process is gone (same host) or
 * when it was not refreshed for POP3_LOCK_STALE seconds (any host: the
 * holder refreshes it every POP3_LOCK_REFRESH seconds).
 */
#ifndef POP3D_MAILDIR_H
#define POP3D_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pop3d/limits.h"

struct message {
    char *name;                    /* file name in cur/ */
    size_t base_len;               /* the part before ':' */
    char uidl[POP3_UIDL_MAX + 1];
    uint64_t size;                 /* octets as the client reads them */
    bool deleted;
};

struct mailbox {
    char *path;                    /* the Maildir */
    struct message *msgs;
    size_t count;
    uint64_t total;                /* sum of sizes */
    char *lock_path;
    char *idle_path;               /* lock_path + ".idle": see lock_take */
    char lock_token[300];
    int lock_fd;
    /* What the open found odd, for the login's log line. */
    unsigned skipped;              /* entries that are not regular files */
    char skipped_first[320];       /* the first of them, and what it is */
    unsigned renamed;              /* new/ messages renamed on a collision */
};

enum mbox_status {
    MBOX_OK,
    MBOX_IN_USE,                   /* another live session holds the lock */
    MBOX_ERROR,                    /* the file system said no: see err */
};

/* Once, before any session (after detaching): the host name and process
 * id written into locks. */
void maildir_set_hostname(const char *host);

enum mbox_status maildir_open(const char *maildir, const char *lock_name,
                              struct mailbox **out, char *err, size_t errlen);

/* An fd open for reading message i, or -1 (errno; EINVAL: no longer a
 * regular file, ELOOP: a symbolic link). Follows renames by other
 * readers, never a link, never blocks (a FIFO is refused). */
int maildir_open_message(struct mailbox *mb, size_t i);

/*
 * UPDATE state: remove the messages marked deleted, then fsync cur/.
 * Messages already gone count as removed. Returns 0 when every one went,
 * -1 otherwise (err says which failed and why).
 */
int maildir_update(struct mailbox *mb, unsigned *removed, char *err,
                   size_t errlen);

/* Keep the lock fresh (every POP3_LOCK_REFRESH seconds). */
void maildir_touch_lock(struct mailbox *mb);

/* Release the lock (only if still ours) and free everything. */
void maildir_close(struct mailbox *mb);

/* The UIDL for a file name; exposed for tests. */
void maildir_uidl(const char *name, char out[POP3_UIDL_MAX + 1]);

#endif
