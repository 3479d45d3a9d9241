#include "smtpgate/http.h"
#include "smtpgate/limits.h"

#include "authbridge/sasl.h"
#include "authbridge/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_400 "400 Bad Request"
#define ST_413 "413 Content Too Large"
#define ST_431 "431 Request Header Fields Too Large"
#define ST_501 "501 Not Implemented"
#define ST_505 "505 HTTP Version Not Supported"

/* ---- framing -------------------------------------------------------------- */

/* The status line stands in for the parts: the door only prints it. */
static int refuse(const char *status, char **parts, size_t *n, size_t *used,
                  size_t len)
{
    parts[0] = (char *)status;
    *n = 1;
    *used = len;
    return 1;
}

/* RFC 9110 5.6.2 token characters. */
static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

static bool name_is(const char *line, size_t namelen, const char *name)
{
    return namelen == strlen(name) && strncasecmp(line, name, namelen) == 0;
}

/* OWS-trimmed value of a header line (not NUL-terminated: [*v, *v+*vl)). */
static void header_value(const char *line, size_t len, size_t colon,
                         const char **v, size_t *vl)
{
    size_t b = colon + 1, e = len;

    while (b < e && (line[b] == ' ' || line[b] == '\t'))
        b++;
    while (e > b && (line[e - 1] == ' ' || line[e - 1] == '\t'))
        e--;
    *v = line + b;
    *vl = e - b;
}

/* Content-Length: digits only, at most the body cap. NULL or a status. */
static const char *content_length(const char *v, size_t vl, size_t *clen)
{
    size_t x = 0;

    if (vl == 0 || vl > 9)
        return ST_400;
    for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9')
            return ST_400;
        x = x * 10 + (size_t)(v[i] - '0');
    }
    if (x > HTTP_BODY_MAX)
        return ST_413;
    *clen = x;
    return NULL;
}

/* One header line: well formed, and the two that frame a body. */
static const char *header_line(const char *line, size_t len, size_t *clen,
                               bool *have_clen)
{
    const char *colon = memchr(line, ':', len), *v, *err;
    size_t nl, vl;

    if (line[0] == ' ' || line[0] == '\t')
        return ST_400;            /* obs-fold (RFC 9112 5.2) */
    if (colon == NULL || !is_token(line, (size_t)(colon - line)))
        return ST_400;
    nl = (size_t)(colon - line);
    header_value(line, len, nl, &v, &vl);
    if (name_is(line, nl, "transfer-encoding"))
        return ST_501;
    if (!name_is(line, nl, "content-length"))
        return NULL;
    if (*have_clen)
        return ST_400;            /* two lengths: request smuggling */
    *have_clen = true;
    err = content_length(v, vl, clen);
    return err;
}

/* The end of the header block, touching nothing: 1 found (*head the
 * octets up to the body, *lines the non-empty lines), 0 incomplete, or
 * a status in *err. */
static int scan_head(const char *buf, size_t len,
                     const struct reqconn_limits *lim, size_t *head,
                     size_t *lines, size_t *clen, const char **err)
{
    size_t pos = 0, l;
    bool have_clen = false;
    const char *nl;

    for (*lines = 0;; pos += l + 2) {
        nl = memchr(buf + pos, '\n', len - pos);
        if (nl == NULL) {
            if (len - pos > lim->line_max + 1 || len >= HTTP_HEAD_MAX)
                *err = ST_431;
            return *err ? -1 : 0;
        }
        l = (size_t)(nl - (buf + pos));
        if (l == 0 || buf[pos + l - 1] != '\r')
            *err = ST_400;        /* a bare LF */
        else if (--l > lim->line_max || pos + l + 2 > HTTP_HEAD_MAX)
            *err = ST_431;
        else if (memchr(buf + pos, '\r', l) || memchr(buf + pos, '\0', l))
            *err = ST_400;
        else if (l == 0 && *lines == 0)
            *err = ST_400;        /* no request line */
        else if (l == 0)
            break;
        else if (*lines > 0)
            *err = header_line(buf + pos, l, clen, &have_clen);
        if (*err == NULL && ++*lines + 1 > lim->lines_max)
            *err = ST_431;
        if (*err != NULL)
            return -1;
    }
    *head = pos + 2;
    return 1;
}

int http_frame(char *buf, size_t len, const struct reqconn_limits *lim,
               char **parts, size_t *n, size_t *used)
{
    size_t head = 0, lines = 0, clen = 0, pos = 0;
    const char *err = NULL;
    int r = scan_head(buf, len, lim, &head, &lines, &clen, &err);

    if (r < 0)
        return refuse(err, parts, n, used, len);
    if (r == 0 || len - head < clen)
        return 0;
    for (size_t i = 0; i < lines; i++) {
        char *nl = memchr(buf + pos, '\n', head - pos);
        parts[i] = buf + pos;
        nl[-1] = '\0';            /* the CR */
        pos = (size_t)(nl - buf) + 1;
    }
    /* The body moves over the empty line: room for its NUL. */
    memmove(buf + head - 2, buf + head, clen);
    buf[head - 2 + clen] = '\0';
    parts[lines] = buf + head - 2;
    *n = lines + 1;
    *used = head + clen;
    return 1;
}

/* ---- the request ------------------------------------------------------------- */

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

/* "close" among the comma-separated tokens of a Connection header. */
static bool has_close(const char *v)
{
    for (const char *p = v; *p; ) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        while (l > 0 && (*p == ' ' || *p == '\t'))
            p++, l--;
        while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (l == 5 && strncasecmp(p, "close", 5) == 0)
            return true;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return false;
}

static const char *request_line(char *line, struct http_req *req)
{
    char *sp1 = strchr(line, ' '), *target, *sp2, *version, *q;

    if (sp1 == NULL)
        return ST_400;
    *sp1 = '\0';
    target = sp1 + 1;
    if ((sp2 = strchr(target, ' ')) == NULL)
        return ST_400;
    *sp2 = '\0';
    version = sp2 + 1;
    if (!is_token(line, strlen(line)) || target[0] != '/' ||
        strchr(version, ' ') != NULL)
        return ST_400;
    if (strncmp(version, "HTTP/", 5) != 0)
        return ST_400;
    if (strcmp(version + 5, "1.1") == 0)
        req->minor = 1;
    else if (strcmp(version + 5, "1.0") == 0)
        req->minor = 0;
    else
        return ST_505;
    req->method = line;
    req->path = target;
    req->query = "";
    if ((q = strchr(target, '?')) != NULL) {
        *q = '\0';
        req->query = q + 1;
    }
    return NULL;
}

/* A header we keep: given twice, it is ambiguous. */
static bool set_once(const char **field, const char *v)
{
    if (*field != NULL)
        return false;
    *field = v;
    return true;
}

const char *http_parse(char **parts, size_t n, struct http_req *req)
{
    const char *err;

    memset(req, 0, sizeof(*req));
    if (n < 2)
        return ST_400;
    if ((err = request_line(parts[0], req)) != NULL)
        return err;
    for (size_t i = 1; i + 1 < n; i++) {
        char *colon = strchr(parts[i], ':'), *v;
        *colon = '\0';            /* the framing checked there is one */
        v = trim(colon + 1);
        if (ab_strcaseeq(parts[i], "x-api-key") &&
            !set_once(&req->api_key, v))
            return ST_400;
        if (ab_strcaseeq(parts[i], "authorization") &&
            !set_once(&req->authorization, v))
            return ST_400;
        if (ab_strcaseeq(parts[i], "connection") && has_close(v))
            req->close = true;
        if (ab_strcaseeq(parts[i], "content-length"))
            req->body_len = strtoul(v, NULL, 10);  /* checked: digits */
    }
    /* HTTP/1.0 keep-alive needs an answer header we do not send. */
    if (req->minor == 0)
        req->close = true;
    req->body = parts[n - 1];
    return NULL;
}

bool http_query_param(const char *query, const char *name, char *out,
                      size_t outlen)
{
    size_t nl = strlen(name);

    for (const char *p = query; *p; ) {
        const char *e = strchr(p, '&');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            if (l - nl - 1 >= outlen)
                return false;
            memcpy(out, p + nl + 1, l - nl - 1);
            out[l - nl - 1] = '\0';
            return true;
        }
        if (e == NULL)
            break;
        p = e + 1;
    }
    return false;
}

bool http_basic_password(const char *authorization, char *out, size_t outlen)
{
    unsigned char dec[512];
    const char *b64, *colon;
    long n;

    if (authorization == NULL || strncasecmp(authorization, "Basic ", 6) != 0)
        return false;
    b64 = authorization + 6;
    while (*b64 == ' ')
        b64++;
    n = sasl_base64_decode(b64, strlen(b64), dec, sizeof(dec) - 1);
    if (n < 0)
        return false;
    dec[n] = '\0';
    if (memchr(dec, '\0', (size_t)n) != NULL ||
        (colon = strchr((char *)dec, ':')) == NULL ||
        strlen(colon + 1) >= outlen)
        return false;
    strcpy(out, colon + 1);
    return true;
}

size_t http_response(char *out, size_t outlen, const char *status,
                     const char *body, bool close)
{
    size_t blen = strlen(body);
    int n = snprintf(out, outlen, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n"
                     "%s\r\n%s", status,
                     blen ? "Content-Type: application/json\r\n" : "", blen,
                     close ? "Connection: close\r\n" : "", body);

    return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}
