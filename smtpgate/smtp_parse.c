#include "smtpgate/smtp_parse.h"

#include "authbridge/util.h"

#include <string.h>

/* ---- commands ------------------------------------------------------------ */

static bool is_letter(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

int smtp_cmd_split(const char *line, size_t len, struct smtp_cmd *cmd)
{
    size_t i = 0;

    while (i < len && is_letter((unsigned char)line[i])) {
        if (i == SMTP_VERB_MAX)
            return -1;
        cmd->verb[i] = (char)(line[i] & ~0x20);   /* ASCII upper case */
        i++;
    }
    cmd->verb[i] = '\0';
    if (i == 0 || (i < len && line[i] != ' '))
        return -1;
    cmd->args = i < len ? line + i + 1 : "";
    cmd->argslen = i < len ? len - i - 1 : 0;
    /* Trailing spaces are common ("RSET ") and harmless. */
    while (cmd->argslen > 0 && cmd->args[cmd->argslen - 1] == ' ')
        cmd->argslen--;
    return 0;
}

bool smtp_helo_valid(const char *s, size_t len)
{
    if (len == 0 || len > SMTP_HELO_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* "FROM:" or "TO:", case-insensitive, then optional spaces; the offset of
 * what follows, or 0 when the prefix is missing. */
static size_t skip_prefix(const char *args, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    if (len < n || !ab_strncaseeq(args, prefix, n))
        return 0;
    while (n < len && args[n] == ' ')
        n++;
    return n;
}

/* ---- ESMTP parameters (RFC 5321 4.1.2 esmtp-param) ----------------------- */

struct param {
    const char *key, *val;
    size_t keylen, vallen;
    bool has_val;
};

/* Next "keyword[=value]" from *p (up to end); 1 = got one, 0 = none
 * left, -1 = malformed. */
static int next_param(const char **p, const char *end, struct param *pr)
{
    const char *s = *p;

    while (s < end && *s == ' ')
        s++;
    if (s == end)
        return 0;
    pr->key = s;
    if (!is_letter((unsigned char)*s) && !is_digit((unsigned char)*s))
        return -1;
    while (s < end && (is_letter((unsigned char)*s) ||
                       is_digit((unsigned char)*s) || *s == '-'))
        s++;
    pr->keylen = (size_t)(s - pr->key);
    pr->has_val = s < end && *s == '=';
    pr->val = pr->has_val ? ++s : s;
    while (s < end && *s != ' ') {
        if ((unsigned char)*s < 33 || (unsigned char)*s > 126 || *s == '=')
            return -1;
        s++;
    }
    pr->vallen = (size_t)(s - pr->val);
    if ((pr->has_val && pr->vallen == 0) || (!pr->has_val && s != pr->val))
        return -1;
    *p = s;
    return 1;
}

static bool key_is(const struct param *pr, const char *name)
{
    return pr->keylen == strlen(name) && ab_strncaseeq(pr->key, name, pr->keylen);
}

static bool val_is(const struct param *pr, const char *v)
{
    return pr->vallen == strlen(v) && ab_strncaseeq(pr->val, v, pr->vallen);
}

static const char *mail_param(const struct param *pr, struct smtp_mail_params *mp)
{
    if (key_is(pr, "SIZE")) {
        if (mp->has_size)
            return "501 5.5.4 Duplicate SIZE parameter";
        if (!pr->has_val ||
            ab_parse_uint_n(pr->val, pr->vallen, 0, UINT64_MAX, &mp->size) < 0)
            return "501 5.5.4 Bad SIZE value (RFC 1870: digits)";
        mp->has_size = true;
        return NULL;
    }
    if (key_is(pr, "BODY")) {
        if (mp->body != BODY_UNSPECIFIED)
            return "501 5.5.4 Duplicate BODY parameter";
        if (val_is(pr, "7BIT"))
            mp->body = BODY_7BIT;
        else if (val_is(pr, "8BITMIME"))
            mp->body = BODY_8BITMIME;
        else
            return "501 5.5.4 BODY must be 7BIT or 8BITMIME";
        return NULL;
    }
    if (key_is(pr, "AUTH")) {
        if (mp->has_auth)
            return "501 5.5.4 Duplicate AUTH parameter";
        if (!pr->has_val)
            return "501 5.5.4 AUTH parameter needs a value";
        mp->has_auth = true;
        return NULL;
    }
    return "555 5.5.4 Unsupported MAIL parameter";
}

const char *smtp_parse_mail(const char *args, size_t len,
                            struct smtp_path *path,
                            struct smtp_mail_params *mp)
{
    size_t off = skip_prefix(args, len, "FROM:"), end;
    enum path_error e;
    const char *p, *stop = args + len;
    struct param pr;
    int rc;

    memset(mp, 0, sizeof(*mp));
    if (off == 0)
        return "501 5.5.4 Syntax: MAIL FROM:<address>";
    e = smtp_path_parse(args + off, len - off, PATH_REVERSE, path, &end);
    if (e != PATH_OK)
        return smtp_path_error_reply(e, PATH_REVERSE);
    p = args + off + end;
    if (p < stop && *p != ' ')
        return "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]";
    while ((rc = next_param(&p, stop, &pr)) == 1) {
        const char *err = mail_param(&pr, mp);
        if (err != NULL)
            return err;
    }
    return rc < 0 ? "501 5.5.4 Malformed MAIL parameter" : NULL;
}

const char *smtp_parse_rcpt(const char *args, size_t len,
                            struct smtp_path *path)
{
    size_t off = skip_prefix(args, len, "TO:"), end;
    enum path_error e;

    if (off == 0)
        return "501 5.5.4 Syntax: RCPT TO:<address>";
    e = smtp_path_parse(args + off, len - off, PATH_FORWARD, path, &end);
    if (e != PATH_OK)
        return smtp_path_error_reply(e, PATH_FORWARD);
    if (off + end == len)
        return NULL;
    if (args[off + end] != ' ')
        return "501 5.5.4 Syntax: RCPT TO:<address>";
    /* No extension with RCPT parameters is advertised (no DSN). */
    return "555 5.5.4 RCPT parameters are not supported here";
}

/* ---- replies ------------------------------------------------------------- */

int smtp_reply_line_parse(const char *line, size_t len,
                          struct smtp_reply_line *out)
{
    if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
        line[1] > '5' || !is_digit((unsigned char)line[2]))
        return -1;
    out->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (len == 3) {
        out->last = true;
        out->text = line + 3;
        out->textlen = 0;
        return 0;
    }
    if (line[3] != ' ' && line[3] != '-')
        return -1;
    out->last = line[3] == ' ';
    out->text = line + 4;
    out->textlen = len - 4;
    return 0;
}

/* 1 to 3 digits at text[*i]; advances *i. */
static bool digits_1_3(const char *text, size_t len, size_t *i)
{
    size_t start = *i;

    while (*i < len && *i - start < 4 && is_digit((unsigned char)text[*i]))
        (*i)++;
    return *i > start && *i - start <= 3;
}

size_t smtp_enhanced_len(const char *text, size_t len, int code)
{
    size_t i = 2;

    /* RFC 3463: class.subject.detail, class 2, 4 or 5 as the reply's. */
    if (len < 5 || text[0] != (char)('0' + code / 100) || text[1] != '.')
        return 0;
    if (!digits_1_3(text, len, &i) || i >= len || text[i] != '.')
        return 0;
    i++;
    if (!digits_1_3(text, len, &i))
        return 0;
    if (i == len)
        return i;
    return text[i] == ' ' ? i + 1 : 0;
}

/* Next space-separated word of text[*i..len). */
static bool next_word(const char *text, size_t len, size_t *i,
                      const char **w, size_t *wlen)
{
    while (*i < len && text[*i] == ' ')
        (*i)++;
    if (*i == len)
        return false;
    *w = text + *i;
    while (*i < len && text[*i] != ' ')
        (*i)++;
    *wlen = (size_t)(text + *i - *w);
    return true;
}

static bool word_is(const char *w, size_t n, const char *name)
{
    return n == strlen(name) && ab_strncaseeq(w, name, n);
}

static unsigned xattrs(const char *text, size_t len, size_t i)
{
    static const struct { const char *name; unsigned bit; } names[] = {
        { "NAME", XATTR_NAME }, { "ADDR", XATTR_ADDR },
        { "PROTO", XATTR_PROTO }, { "HELO", XATTR_HELO },
        { "LOGIN", XATTR_LOGIN }, { "PORT", XATTR_PORT },
    };
    unsigned set = 0;
    const char *w;
    size_t n;

    while (next_word(text, len, &i, &w, &n))
        for (size_t k = 0; k < AB_ARRAY_LEN(names); k++)
            if (word_is(w, n, names[k].name))
                set |= names[k].bit;
    return set;
}

void smtp_ehlo_line(const char *text, size_t len, unsigned *ext,
                    unsigned *xclient, unsigned *xforward)
{
    size_t i = 0, n;
    const char *w;

    if (!next_word(text, len, &i, &w, &n))
        return;
    if (word_is(w, n, "PIPELINING"))
        *ext |= EXT_PIPELINING;
    else if (word_is(w, n, "SIZE"))
        *ext |= EXT_SIZE;
    else if (word_is(w, n, "8BITMIME"))
        *ext |= EXT_8BITMIME;
    else if (word_is(w, n, "ENHANCEDSTATUSCODES"))
        *ext |= EXT_ENHANCED;
    else if (word_is(w, n, "XCLIENT")) {
        *ext |= EXT_XCLIENT;
        *xclient |= xattrs(text, len, i);
    } else if (word_is(w, n, "XFORWARD")) {
        *ext |= EXT_XFORWARD;
        *xforward |= xattrs(text, len, i);
    }
}

size_t smtp_xtext(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *in; in++) {
        unsigned char ch = (unsigned char)*in;
        bool plain = ch >= '!' && ch <= '~' && ch != '+' && ch != '=';
        if (o + (plain ? 1 : 3) >= outlen)
            return (size_t)-1;
        if (plain) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '+';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return o;
}
