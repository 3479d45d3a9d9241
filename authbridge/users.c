#include "users.h"
#include "conf.h"
#include "hashcost.h"
#include "hmap.h"
#include "log.h"
#include "util.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define USER_LINE_MAX 4096

struct userdb {
    atomic_int refs;
    struct hmap *users;
    long long mtime;
    bool has_plain;
    enum pass_scheme dummy_scheme;
    char *dummy_secret;         /* what unknown users are checked against */
};

static const struct {
    const char *name;
    enum pass_scheme scheme;
} schemes[] = {
    { "PLAIN", SCHEME_PLAIN },        { "CLEARTEXT", SCHEME_PLAIN },
    { "CRYPT", SCHEME_CRYPT },        { "MD5-CRYPT", SCHEME_CRYPT },
    { "SHA256-CRYPT", SCHEME_CRYPT }, { "SHA512-CRYPT", SCHEME_CRYPT },
    { "BLF-CRYPT", SCHEME_CRYPT },    { "YESCRYPT", SCHEME_CRYPT },
};

static void user_free(void *p)
{
    struct user *u = p;

    if (u == NULL)
        return;
    free(u->name);
    if (u->secret) {
        explicit_bzero(u->secret, strlen(u->secret));
        free(u->secret);
    }
    free(u->home);
    free(u);
}

/* "{SCHEME}secret" or a bare crypt hash -> scheme + secret. */
static int parse_secret(const char *field, struct user *u, const char **why)
{
    const char *s = field;

    if (s[0] == '{') {
        const char *close = strchr(s, '}');
        size_t i;
        if (close == NULL) {
            *why = "unterminated {SCHEME}";
            return -1;
        }
        for (i = 0; i < AB_ARRAY_LEN(schemes); i++)
            if (strlen(schemes[i].name) == (size_t)(close - s - 1) &&
                ab_strncaseeq(schemes[i].name, s + 1, (size_t)(close - s - 1)))
                break;
        if (i == AB_ARRAY_LEN(schemes)) {
            *why = "unsupported password scheme";
            return -1;
        }
        u->scheme = schemes[i].scheme;
        s = close + 1;
    } else if (s[0] == '$') {
        u->scheme = SCHEME_CRYPT;
    } else {
        *why = "password must be {SCHEME}secret or a $id$ crypt hash";
        return -1;
    }
    if (u->scheme == SCHEME_CRYPT) {
        int ok = crypt_checksalt(s);
        if (ok != CRYPT_SALT_OK && ok != CRYPT_SALT_METHOD_LEGACY) {
            *why = "crypt hash not understood by libxcrypt";
            return -1;
        }
    }
    u->secret = ab_strdup(s);
    return 0;
}

static int parse_id(const char *f, unsigned *out)
{
    uint64_t v;

    if (*f == '\0') {
        *out = 0;
        return 0;
    }
    if (ab_parse_uint(f, 0, 4294967294U, &v) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Split on ':' into at most n fields; returns how many. */
static size_t split_fields(char *line, char **f, size_t n)
{
    size_t k = 0;

    f[k++] = line;
    for (char *p = line; *p && k < n; p++)
        if (*p == ':') {
            *p = '\0';
            f[k++] = p + 1;
        }
    return k;
}

static const char *parse_line(char *line, struct user *u)
{
    char *f[8];
    size_t nf = split_fields(line, f, 8);
    const char *why = NULL;
    unsigned uid = 0, gid = 0;

    if (nf < 2)
        return "expected user:password[:uid:gid:gecos:home:...]";
    if (!users_valid_name(f[0]))
        return "empty or over-long user name, or one with spaces or "
               "control characters";
    if (parse_secret(f[1], u, &why) < 0)
        return why;
    if ((nf > 2 && parse_id(f[2], &uid) < 0) || (nf > 3 && parse_id(f[3], &gid) < 0))
        return "uid and gid must be numbers";
    u->name = ab_strdup(f[0]);
    u->uid = uid;
    u->gid = gid;
    u->home = ab_strdup(nf > 5 ? f[5] : "");
    return NULL;
}

/* Until userdb_set_dummy() says which crypt class costs most: any. */
static void choose_dummy(struct userdb *db, const struct user *first_crypt)
{
    if (first_crypt != NULL) {
        db->dummy_scheme = SCHEME_CRYPT;
        db->dummy_secret = ab_strdup(first_crypt->secret);
    } else {
        db->dummy_scheme = SCHEME_PLAIN;
        db->dummy_secret = ab_strdup("authbridge-dummy-password");
    }
}

void userdb_set_dummy(struct userdb *db, const char *hash)
{
    free(db->dummy_secret);
    db->dummy_scheme = SCHEME_CRYPT;
    db->dummy_secret = ab_strdup(hash);
}

struct classes {
    char (*names)[HASHCOST_CLASS_LEN];
    const char **reps;
    size_t n, max;
};

static void class_of_user(const char *name, void *val, void *arg)
{
    const struct user *u = val;
    struct classes *c = arg;
    char cls[HASHCOST_CLASS_LEN];

    (void)name;
    if (u->scheme != SCHEME_CRYPT || c->n == c->max)
        return;
    hashcost_class(u->secret, cls, sizeof(cls));
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->names[i], cls) == 0)
            return;
    memcpy(c->names[c->n], cls, sizeof(cls));
    c->reps[c->n++] = u->secret;
}

size_t userdb_classes(const struct userdb *db,
                      char names[][HASHCOST_CLASS_LEN], const char **reps,
                      size_t max)
{
    struct classes c = { names, reps, 0, max };

    hmap_each(db->users, class_of_user, &c);
    return c.n;
}

static int load_lines(struct userdb *db, FILE *fp, const char *path,
                      struct conf_errors *errs)
{
    char line[USER_LINE_MAX];
    const struct user *first_crypt = NULL;
    size_t before = errs->n;
    int lineno = 0;

    while (fgets(line, sizeof(line), fp) != NULL) {
        size_t len = strlen(line);
        struct user *u;
        const char *why;
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        else if (!feof(fp)) {
            conf_errors_add(errs, "%s:%d: line too long", path, lineno);
            int ch;
            while ((ch = fgetc(fp)) != EOF && ch != '\n')
                ;
            continue;
        }
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        u = ab_calloc(1, sizeof(*u));
        why = parse_line(line, u);
        if (why != NULL) {
            conf_errors_add(errs, "%s:%d: %s", path, lineno, why);
            user_free(u);
            continue;
        }
        if (hmap_get(db->users, u->name) != NULL) {
            conf_errors_add(errs, "%s:%d: user '%s' listed twice", path,
                            lineno, u->name);
            user_free(u);
            continue;
        }
        if (u->scheme == SCHEME_CRYPT) {
            if (first_crypt == NULL)
                first_crypt = u;
        } else {
            db->has_plain = true;
        }
        hmap_put(db->users, u->name, u);
    }
    explicit_bzero(line, sizeof(line));
    choose_dummy(db, first_crypt);
    return errs->n > before ? -1 : 0;
}

struct userdb *userdb_load(const char *path, struct conf_errors *errs)
{
    struct userdb *db;
    struct stat st;
    FILE *fp = fopen(path, "r");

    if (fp == NULL) {
        conf_errors_add(errs, "%s: %s", path, strerror(errno));
        return NULL;
    }
    db = ab_calloc(1, sizeof(*db));
    atomic_init(&db->refs, 1);
    db->users = hmap_new();
    if (fstat(fileno(fp), &st) == 0)
        db->mtime = (long long)st.st_mtim.tv_sec * 1000000000LL +
                    st.st_mtim.tv_nsec;
    if (load_lines(db, fp, path, errs) < 0) {
        fclose(fp);
        userdb_unref(db);
        return NULL;
    }
    fclose(fp);
    return db;
}

void userdb_ref(struct userdb *db)
{
    atomic_fetch_add(&db->refs, 1);
}

void userdb_unref(struct userdb *db)
{
    if (db == NULL || atomic_fetch_sub(&db->refs, 1) != 1)
        return;
    hmap_free(db->users, user_free);
    free(db->dummy_secret);
    free(db);
}

const struct user *userdb_find(const struct userdb *db, const char *name)
{
    return hmap_get(db->users, name);
}

size_t userdb_count(const struct userdb *db)
{
    return hmap_count(db->users);
}

long long userdb_mtime(const struct userdb *db)
{
    return db->mtime;
}

bool userdb_has_plain(const struct userdb *db)
{
    return db->has_plain;
}

/* ---- verification (worker threads) ------------------------------------- */

static void sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;

    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

/* Compare digests, not strings: the time does not depend on where the
 * guess first differs, nor on the password's length. */
static bool plain_matches(const char *secret, const char *pass, size_t passlen)
{
    unsigned char a[32], b[32];

    sha256(secret, strlen(secret), a);
    sha256(pass, passlen, b);
    return ab_ct_equal(a, b, sizeof(a));
}

static bool crypt_matches(const char *hash, const char *pass, size_t passlen)
{
    static _Thread_local struct crypt_data cd;
    char buf[1024];
    const char *out;
    size_t hlen = strlen(hash);

    /* crypt_r wants a C string; a password with a NUL cannot match. */
    if (passlen >= sizeof(buf) || memchr(pass, '\0', passlen) != NULL)
        passlen = 0;
    memcpy(buf, pass, passlen);
    buf[passlen] = '\0';
    out = crypt_r(buf, hash, &cd);
    explicit_bzero(buf, sizeof(buf));
    return out != NULL && out[0] != '*' && strlen(out) == hlen &&
           ab_ct_equal(out, hash, hlen);
}

static bool secret_matches(enum pass_scheme scheme, const char *secret,
                           const char *pass, size_t passlen)
{
    return scheme == SCHEME_PLAIN ? plain_matches(secret, pass, passlen)
                                  : crypt_matches(secret, pass, passlen);
}

enum auth_result userdb_verify(const struct userdb *db, const char *name,
                               const char *pass, size_t passlen)
{
    const struct user *u = userdb_find(db, name);

    if (u == NULL) {
        (void)secret_matches(db->dummy_scheme, db->dummy_secret, pass, passlen);
        return AUTH_BAD;
    }
    /* A {PLAIN} user in a file that also has hashes pays the hash too:
     * else a fast wrong-password answer would tell who is {PLAIN}. */
    if (u->scheme == SCHEME_PLAIN && db->dummy_scheme == SCHEME_CRYPT)
        (void)secret_matches(SCHEME_CRYPT, db->dummy_secret, pass, passlen);
    return secret_matches(u->scheme, u->secret, pass, passlen) ? AUTH_OK
                                                               : AUTH_BAD;
}

static void md5_hex(const char *a, const char *b, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[16];
    unsigned int n = 16;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    EVP_DigestUpdate(ctx, a, strlen(a));
    EVP_DigestUpdate(ctx, b, strlen(b));
    EVP_DigestFinal_ex(ctx, d, &n);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[32] = '\0';
}

enum auth_result userdb_verify_apop(const struct userdb *db, const char *name,
                                    const char *timestamp, const char *digest)
{
    const struct user *u = userdb_find(db, name);
    bool usable = u != NULL && u->scheme == SCHEME_PLAIN;
    char want[33], got[33];
    size_t dlen = strlen(digest);

    md5_hex(timestamp, usable ? u->secret : db->dummy_secret, want);
    if (!usable || dlen != 32)
        return AUTH_BAD;
    /* RFC 1939 shows lower-case hex; accept either case. */
    for (size_t i = 0; i < 32; i++)
        got[i] = (char)(digest[i] >= 'A' && digest[i] <= 'F' ? digest[i] + 32
                                                             : digest[i]);
    got[32] = '\0';
    return ab_ct_equal(want, got, 32) ? AUTH_OK : AUTH_BAD;
}
