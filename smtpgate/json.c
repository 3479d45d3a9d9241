#include "smtpgate/json.h"

#include <stdbool.h>
#include <string.h>

/* The parser's state: where it reads, and the path of the member at hand. */
struct jp {
    char *p, *end;
    unsigned depth;
    bool keep;                    /* false inside arrays: check, not keep */
    struct json_doc *doc;
    char path[JSON_PATH_MAX];
    size_t plen;
    const char *err;
};

static bool value(struct jp *j);

static bool fail(struct jp *j, const char *why)
{
    if (j->err == NULL)
        j->err = why;
    return false;
}

static void skip_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
                             *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool at(struct jp *j, char c)
{
    skip_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* ---- strings ---------------------------------------------------------------- */

static long hex4(const char *p, const char *end)
{
    long v = 0;

    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' :
                c >= 'a' && c <= 'f' ? c - 'a' + 10 :
                c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static char *put_utf8(char *w, unsigned long cp)
{
    if (cp < 0x80) {
        *w++ = (char)cp;
    } else if (cp < 0x800) {
        *w++ = (char)(0xc0 | cp >> 6);
        *w++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *w++ = (char)(0xe0 | cp >> 12);
        *w++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *w++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *w++ = (char)(0xf0 | cp >> 18);
        *w++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *w++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *w++ = (char)(0x80 | (cp & 0x3f));
    }
    return w;
}

/* "\uXXXX" (r after the 'u'), a surrogate pair taken whole. The UTF-8
 * is never longer than the escape, so it is written in place. */
static bool unicode_escape(struct jp *j, char **r, char **w)
{
    long hi = hex4(*r, j->end), lo;

    if (hi < 0)
        return fail(j, "bad \\u escape");
    *r += 4;
    if (hi >= 0xdc00 && hi <= 0xdfff)
        return fail(j, "lone surrogate");
    if (hi >= 0xd800 && hi <= 0xdbff) {
        if (j->end - *r < 6 || (*r)[0] != '\\' || (*r)[1] != 'u' ||
            (lo = hex4(*r + 2, j->end)) < 0xdc00 || lo > 0xdfff)
            return fail(j, "lone surrogate");
        *r += 6;
        hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
    }
    if (hi == 0)
        return fail(j, "\\u0000 in a string");
    *w = put_utf8(*w, (unsigned long)hi);
    return true;
}

static bool simple_escape(struct jp *j, char c, char **w)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *e = c ? strchr(from, c) : NULL;

    if (e == NULL)
        return fail(j, "bad escape");
    *(*w)++ = to[e - from];
    return true;
}

/* The string at j->p, unescaped in place and NUL-terminated (the NUL
 * lands at or before the closing quote). */
static bool string(struct jp *j, char **out)
{
    char *r, *w;

    if (!at(j, '"'))
        return fail(j, "string expected");
    r = w = *out = j->p;
    while (r < j->end) {
        unsigned char c = (unsigned char)*r++;
        if (c == '"') {
            *w = '\0';
            j->p = r;
            return true;
        }
        if (c < 0x20)
            return fail(j, "control character in a string");
        if (c != '\\') {
            *w++ = (char)c;
            continue;
        }
        if (r == j->end)
            break;
        c = (unsigned char)*r++;
        if (!(c == 'u' ? unicode_escape(j, &r, &w) :
              simple_escape(j, (char)c, &w)))
            return false;
    }
    return fail(j, "unterminated string");
}

/* ---- other values ------------------------------------------------------------ */

static bool digits(struct jp *j)
{
    const char *start = j->p;

    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool number(struct jp *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!digits(j))
        return fail(j, "bad number");
    if (j->p < j->end && *j->p == '.' && (j->p++, !digits(j)))
        return fail(j, "bad number");
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!digits(j))
            return fail(j, "bad number");
    }
    return true;
}

static bool literal(struct jp *j, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return fail(j, "unexpected character");
    j->p += n;
    return true;
}

/* ---- members -------------------------------------------------------------- */

static bool keep(struct jp *j, enum json_type type, const char *str)
{
    struct json_doc *d = j->doc;
    struct json_member *m;

    if (!j->keep)
        return true;
    if (json_get(d, j->path) != NULL)
        return fail(j, "duplicate member");
    if (d->n == JSON_MEMBERS_MAX)
        return fail(j, "too many members");
    m = &d->m[d->n++];
    memcpy(m->path, j->path, j->plen + 1);
    m->type = type;
    m->str = str;
    return true;
}

static bool path_push(struct jp *j, size_t base, const char *key)
{
    size_t klen = strlen(key), need = base + (base > 0) + klen;

    if (!j->keep)
        return true;
    if (need >= JSON_PATH_MAX)
        return fail(j, "member path too long");
    if (base > 0)
        j->path[base++] = '/';
    memcpy(j->path + base, key, klen + 1);
    j->plen = need;
    return true;
}

static bool object(struct jp *j)
{
    size_t base = j->plen;
    char *key;

    if (++j->depth > JSON_DEPTH_MAX)
        return fail(j, "nested too deep");
    j->p++;                       /* '{' */
    if (!at(j, '}')) {
        do {
            if (!string(j, &key) || !path_push(j, base, key))
                return false;
            if (!at(j, ':'))
                return fail(j, "':' expected");
            if (!value(j))
                return false;
            j->plen = base;
            j->path[base] = '\0';
        } while (at(j, ','));
        if (!at(j, '}'))
            return fail(j, "',' or '}' expected");
    }
    j->depth--;
    return true;
}

static bool array(struct jp *j)
{
    bool kept = j->keep;

    if (++j->depth > JSON_DEPTH_MAX)
        return fail(j, "nested too deep");
    j->p++;                       /* '[' */
    j->keep = false;
    if (!at(j, ']')) {
        do {
            if (!value(j))
                return false;
        } while (at(j, ','));
        if (!at(j, ']'))
            return fail(j, "',' or ']' expected");
    }
    j->keep = kept;
    j->depth--;
    return true;
}

static bool value(struct jp *j)
{
    char *s;

    skip_ws(j);
    if (j->p == j->end)
        return fail(j, "value expected");
    switch (*j->p) {
    case '{':
        return object(j);
    case '[':
        return array(j);
    case '"':
        return string(j, &s) && keep(j, JSON_STRING, s);
    case 't':
        return literal(j, "true") && keep(j, JSON_TRUE, NULL);
    case 'f':
        return literal(j, "false") && keep(j, JSON_FALSE, NULL);
    case 'n':
        return literal(j, "null") && keep(j, JSON_NULL, NULL);
    default:
        return number(j) && keep(j, JSON_NUMBER, NULL);
    }
}

const char *json_parse(char *body, size_t len, struct json_doc *doc)
{
    struct jp j = { .p = body, .end = body + len, .keep = true, .doc = doc };

    doc->n = 0;
    skip_ws(&j);
    if (j.p == j.end || *j.p != '{')
        return "not a JSON object";
    if (!object(&j))
        return j.err;
    skip_ws(&j);
    if (j.p != j.end)
        return "bytes after the object";
    return NULL;
}

const struct json_member *json_get(const struct json_doc *doc,
                                   const char *path)
{
    for (size_t i = 0; i < doc->n; i++)
        if (strcmp(doc->m[i].path, path) == 0)
            return &doc->m[i];
    return NULL;
}

const char *json_get_str(const struct json_doc *doc, const char *path)
{
    const struct json_member *m = json_get(doc, path);

    return m != NULL && m->type == JSON_STRING ? m->str : NULL;
}
