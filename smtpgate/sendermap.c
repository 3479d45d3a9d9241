#include "smtpgate/sendermap.h"
#include "smtpgate/rcpt.h"

#include "authbridge/conf.h"
#include "authbridge/hmap.h"
#include "authbridge/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENDERMAP_LINE_MAX 4096    /* a line is a key and a few logins */

struct sendermap {
    struct hmap *owners;           /* lower-case key -> "a\0b\0\0" */
};

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

/* "user@domain" or "@domain", checked with the RFC 5321 path parser. */
static bool valid_key(const char *key)
{
    char path[SMTP_PATH_MAX + 8];
    struct smtp_path p;
    size_t end;
    int n;

    n = snprintf(path, sizeof(path), key[0] == '@' ? "<x%s>" : "<%s>", key);
    if (n < 0 || (size_t)n >= sizeof(path))
        return false;
    return smtp_path_parse(path, (size_t)n, PATH_FORWARD, &p, &end) == PATH_OK &&
           end == (size_t)n && !p.postmaster && !p.literal && !p.quoted;
}

/* "alice, bob carol" -> "alice\0bob\0carol\0\0"; NULL if empty. */
static char *pack_logins(char *list)
{
    size_t len = strlen(list), o = 0, count = 0;
    char *out = ab_malloc(len + 2), *save = NULL, *tok;

    for (tok = strtok_r(list, ", \t", &save); tok;
         tok = strtok_r(NULL, ", \t", &save)) {
        size_t n = strlen(tok);
        memcpy(out + o, tok, n + 1);
        o += n + 1;
        count++;
    }
    out[o] = '\0';
    if (count == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void strip_comment(char *line)
{
    for (char *p = line; *p; p++)
        if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
}

static int parse_line(struct sendermap *m, char *line, const char *path,
                      int lineno, struct conf_errors *errs)
{
    char *key, *rest, *logins;

    strip_comment(line);
    key = ab_trim(line);
    if (*key == '\0')
        return 0;
    rest = key + strcspn(key, " \t");
    if (*rest != '\0')
        *rest++ = '\0';
    if (!valid_key(key)) {
        conf_errors_add(errs, "%s:%d: '%s' is not an address or @domain",
                        path, lineno, key);
        return -1;
    }
    logins = pack_logins(rest);
    if (logins == NULL) {
        conf_errors_add(errs, "%s:%d: '%s' names no login", path, lineno, key);
        return -1;
    }
    lower(key);
    if (hmap_get(m->owners, key) != NULL) {
        conf_errors_add(errs, "%s:%d: '%s' is listed twice", path, lineno, key);
        free(logins);
        return -1;
    }
    hmap_put(m->owners, key, logins);
    return 0;
}

struct sendermap *sendermap_load(const char *path, struct conf_errors *errs)
{
    struct sendermap *m;
    char line[SENDERMAP_LINE_MAX + 2];
    size_t before = errs->n;
    int lineno = 0;
    FILE *fp = fopen(path, "r");

    if (fp == NULL) {
        conf_errors_add(errs, "%s: %s", path, strerror(errno));
        return NULL;
    }
    m = ab_calloc(1, sizeof(*m));
    m->owners = hmap_new();
    while (fgets(line, sizeof(line), fp) != NULL) {
        size_t len = strlen(line);
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        else if (!feof(fp)) {
            conf_errors_add(errs, "%s:%d: line longer than %d characters",
                            path, lineno, SENDERMAP_LINE_MAX);
            break;
        }
        parse_line(m, line, path, lineno, errs);
    }
    fclose(fp);
    if (errs->n > before) {
        sendermap_free(m);
        return NULL;
    }
    return m;
}

void sendermap_free(struct sendermap *m)
{
    if (m == NULL)
        return;
    hmap_free(m->owners, free);
    free(m);
}

static bool list_has(const char *packed, const char *login)
{
    for (; packed != NULL && *packed; packed += strlen(packed) + 1)
        if (strcmp(packed, login) == 0)
            return true;
    return false;
}

/* The map's entry for sender: its exact address, else its "@domain". */
static const char *owners_of(const struct sendermap *m, const char *sender)
{
    char key[SMTP_PATH_MAX + 1];
    const char *at, *v;

    if (m == NULL || strlen(sender) > SMTP_PATH_MAX)
        return NULL;
    strcpy(key, sender);
    lower(key);
    if ((v = hmap_get(m->owners, key)) != NULL)
        return v;
    at = strrchr(key, '@');
    return at != NULL ? hmap_get(m->owners, at) : NULL;
}

bool sendermap_owns(const struct sendermap *m, const char *sender,
                    const char *login)
{
    char key[SMTP_PATH_MAX + 1];
    const char *at;

    if (m == NULL || strlen(sender) > SMTP_PATH_MAX)
        return false;
    strcpy(key, sender);
    lower(key);
    if (list_has(hmap_get(m->owners, key), login))
        return true;
    at = strrchr(key, '@');
    return at != NULL && list_has(hmap_get(m->owners, at), login);
}

bool sendermap_lists(const struct sendermap *m, const char *sender)
{
    return owners_of(m, sender) != NULL;
}
