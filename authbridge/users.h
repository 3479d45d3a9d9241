/*
 * The user file: Dovecot-compatible passwd-file, one user a line,
 *
 *     user:{SCHEME}secret:uid:gid:gecos:home:shell:extra
 *
 * The Maildir is home/Maildir. Schemes: {PLAIN} (tests, demos, APOP),
 * {CRYPT}, {MD5-CRYPT}, {SHA256-CRYPT}, {SHA512-CRYPT}, {BLF-CRYPT},
 * {YESCRYPT}, or a bare "$id$..." crypt hash; crypt hashes are checked
 * with libxcrypt's crypt_r.
 *
 * A loaded database is immutable and reference counted, so a reload can
 * swap it while worker threads still verify against the old one.
 */
#ifndef AB_USERS_H
#define AB_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct conf_errors;
struct userdb;

/* The longest user name anywhere (files, USER, AUTH, WHOSON, admin). */
#define USER_NAME_MAX 255

enum pass_scheme {
    SCHEME_PLAIN,
    SCHEME_CRYPT,
};

struct user {
    char *name;
    enum pass_scheme scheme;
    char *secret;          /* plain password or crypt hash */
    uid_t uid;
    gid_t gid;
    char *home;
};

enum auth_result {
    AUTH_OK,
    AUTH_BAD,              /* unknown user or wrong password: same answer */
    AUTH_TEMPFAIL,         /* could not check (system error) */
};

/* What can be a user name: 1..USER_NAME_MAX octets, no space, control
 * character or ':' (the user file's separator). Checked wherever a name
 * comes in, so every program agrees on it. */
bool users_valid_name(const char *name);

/* NULL on error; every problem is added to errs as "file:line: ...". */
struct userdb *userdb_load(const char *path, struct conf_errors *errs);
void userdb_ref(struct userdb *db);
void userdb_unref(struct userdb *db);

const struct user *userdb_find(const struct userdb *db, const char *name);
size_t userdb_count(const struct userdb *db);
/* The file's modification time when loaded (to notice edits). */
long long userdb_mtime(const struct userdb *db);
bool userdb_has_plain(const struct userdb *db);

/*
 * The dummy: unknown users (and {PLAIN} ones, in a file that also has
 * hashes) are checked against it, so they cost at least what the
 * costliest known user costs. userdb_classes() lists the file's crypt
 * cost classes (hashcost.h) with one hash of each; the caller measures
 * them and, before the database is used, names the costliest with
 * userdb_set_dummy(). Until then the dummy is the first hash of the file.
 */
#define HASHCOST_CLASS_LEN 64
size_t userdb_classes(const struct userdb *db,
                      char names[][HASHCOST_CLASS_LEN], const char **reps,
                      size_t max);
void userdb_set_dummy(struct userdb *db, const char *hash);

/* Blocking (crypt_r): worker threads only. */
enum auth_result userdb_verify(const struct userdb *db, const char *name,
                               const char *pass, size_t passlen);

/* APOP (RFC 1939): digest = hex MD5(timestamp password); {PLAIN} only. */
enum auth_result userdb_verify_apop(const struct userdb *db, const char *name,
                                    const char *timestamp, const char *digest);

#endif
