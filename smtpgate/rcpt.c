/*
 * RFC 5321 section 4.1.2 paths, parsed by hand against the grammar:
 *
 *   Path          = "<" [ A-d-l ":" ] Mailbox ">"
 *   A-d-l         = At-domain *( "," At-domain )
 *   Mailbox       = Local-part "@" ( Domain / address-literal )
 *   Local-part    = Dot-string / Quoted-string
 *   Domain        = sub-domain *("." sub-domain)
 *   sub-domain    = Let-dig [Ldh-str]
 *
 * Every rule is checked; whatever does not fit is refused. The lenient
 * parsers of old relays (last '@' wins, '%' and '!' honoured, quotes
 * stripped) are exactly what open-relay probes exploit.
 */
#include "smtpgate/rcpt.h"

#include "authbridge/addr.h"
#include "authbridge/util.h"

#include <string.h>

struct cursor {
    const char *s;
    size_t len;           /* what the caller gave */
    size_t lim;           /* how far a path may reach */
    size_t i;
    struct smtp_path *out;
    size_t o;             /* length of out->mailbox */
};

static unsigned char peek(const struct cursor *c)
{
    return c->i < c->lim ? (unsigned char)c->s[c->i] : '\0';
}

/* Why parsing stopped here: past the cap, an 8-bit octet, or syntax. */
static enum path_error fail_here(const struct cursor *c)
{
    if (c->i >= c->lim && c->len > c->lim)
        return PATH_TOO_LONG;
    return peek(c) >= 0x80 ? PATH_8BIT : PATH_SYNTAX;
}

static void emit(struct cursor *c, size_t from, size_t n)
{
    /* Cannot overflow: the mailbox is a subset of at most lim octets. */
    memcpy(c->out->mailbox + c->o, c->s + from, n);
    c->o += n;
    c->out->mailbox[c->o] = '\0';
}

static bool is_alnum(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9');
}

/* RFC 5322 atext. */
static bool is_atext(unsigned char ch)
{
    return is_alnum(ch) || (ch != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", ch));
}

/* RFC 5321 qtextSMTP: %d32-33 / %d35-91 / %d93-126. */
static bool is_qtext(unsigned char ch)
{
    return ch == 32 || ch == 33 || (ch >= 35 && ch <= 91) ||
           (ch >= 93 && ch <= 126);
}

/* One sub-domain: Let-dig [Ldh-str], at most 63 octets. */
static int parse_label(struct cursor *c)
{
    size_t start = c->i;

    if (!is_alnum(peek(c)))
        return -1;
    while (is_alnum(peek(c)) || peek(c) == '-')
        c->i++;
    if (c->s[c->i - 1] == '-' || c->i - start > 63)
        return -1;
    return 0;
}

/*
 * Domain; with allow_dot one trailing dot before '>' is accepted and
 * reported in *dotted (not part of the returned extent [*from, c->i)).
 */
static int parse_domain(struct cursor *c, bool allow_dot, size_t *from,
                        size_t *dlen, bool *dotted)
{
    *from = c->i;
    *dotted = false;
    for (;;) {
        if (parse_label(c) < 0)
            return -1;
        if (peek(c) != '.')
            break;
        if (allow_dot && c->i + 1 < c->lim && c->s[c->i + 1] == '>') {
            *dlen = c->i - *from;
            c->i++;
            *dotted = true;
            return 0;
        }
        c->i++;
    }
    *dlen = c->i - *from;
    return 0;
}

/* A-d-l ":": at-domains separated by ',', each a plain domain. */
static int parse_route(struct cursor *c)
{
    size_t from, n;
    bool dotted;

    for (;;) {
        if (peek(c) != '@')
            return -1;
        c->i++;
        if (parse_domain(c, false, &from, &n, &dotted) < 0)
            return -1;
        if (peek(c) == ':') {
            c->i++;
            return 0;
        }
        if (peek(c) != ',')
            return -1;
        c->i++;
    }
}

static int parse_quoted(struct cursor *c)
{
    c->i++;                                   /* the opening quote */
    for (;;) {
        unsigned char ch = peek(c);
        if (ch == '"') {
            c->i++;
            return 0;
        }
        if (ch == '\\') {
            c->i++;
            ch = peek(c);
            if (ch < 32 || ch > 126)          /* quoted-pairSMTP */
                return -1;
        } else if (!is_qtext(ch)) {
            return -1;
        }
        c->i++;
    }
}

static int parse_dot_string(struct cursor *c)
{
    for (;;) {
        if (!is_atext(peek(c)))
            return -1;                        /* empty atom: "..", ".x", "x." */
        while (is_atext(peek(c)))
            c->i++;
        if (peek(c) != '.')
            return 0;
        c->i++;
    }
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]"; general literals are refused. */
static int parse_literal(struct cursor *c)
{
    char text[64];
    size_t from = ++c->i, n;
    struct ab_addr a;
    const char *p = text;

    while (peek(c) != ']' && peek(c) != '\0' && peek(c) != '[' &&
           peek(c) != '\\' && peek(c) > 32 && peek(c) < 127)
        c->i++;
    if (peek(c) != ']')
        return -1;
    n = c->i - from;
    c->i++;
    if (n == 0 || n >= sizeof(text))
        return -1;
    memcpy(text, c->s + from, n);
    text[n] = '\0';
    if (ab_strncaseeq(text, "IPv6:", 5)) {
        p = text + 5;
        return strchr(p, ':') != NULL && addr_parse(p, &a) == 0 ? 0 : -1;
    }
    return strchr(p, ':') == NULL && addr_parse(p, &a) == 0 &&
           a.family == AF_INET ? 0 : -1;
}

static enum path_error parse_local_part(struct cursor *c)
{
    size_t from = c->i;
    int rc;

    c->out->quoted = peek(c) == '"';
    rc = c->out->quoted ? parse_quoted(c) : parse_dot_string(c);
    if (rc < 0)
        return fail_here(c);
    if (c->i - from > SMTP_LOCAL_MAX)
        return PATH_TOO_LONG;
    emit(c, from, c->i - from);
    return PATH_OK;
}

static enum path_error parse_unqualified(struct cursor *c, enum path_use use)
{
    struct smtp_path *p = c->out;

    /* RFC 5321 4.5.1: "postmaster" without a domain must be accepted. */
    if (use == PATH_FORWARD && !p->quoted && !p->route &&
        ab_strcaseeq(p->mailbox, "postmaster")) {
        p->postmaster = true;
        c->i++;
        return PATH_OK;
    }
    return PATH_UNQUALIFIED;
}

static enum path_error parse_domain_part(struct cursor *c)
{
    size_t from, n;
    bool dotted;

    c->out->at = c->o;
    emit(c, c->i, 1);                         /* '@' */
    c->i++;
    if (peek(c) == '[') {
        from = c->i;
        if (parse_literal(c) < 0)
            return fail_here(c);
        c->out->literal = true;
        emit(c, from, c->i - from);
        return PATH_OK;
    }
    if (parse_domain(c, true, &from, &n, &dotted) < 0)
        return fail_here(c);
    c->out->trailing_dot = dotted;
    emit(c, from, n);
    return PATH_OK;
}

enum path_error smtp_path_parse(const char *s, size_t len, enum path_use use,
                                struct smtp_path *out, size_t *end)
{
    struct cursor c = { s, len, len < SMTP_PATH_MAX ? len : SMTP_PATH_MAX,
                        1, out, 0 };
    enum path_error e;

    memset(out, 0, sizeof(*out));
    if (len == 0 || s[0] != '<')
        return PATH_NO_BRACKETS;
    if (peek(&c) == '>') {
        if (use == PATH_FORWARD)
            return PATH_NULL_RCPT;
        out->null = true;
        *end = 2;
        return PATH_OK;
    }
    if (peek(&c) == '@') {
        if (parse_route(&c) < 0)
            return fail_here(&c);
        out->route = true;
    }
    if ((e = parse_local_part(&c)) != PATH_OK)
        return e;
    if (peek(&c) == '>')
        e = parse_unqualified(&c, use);
    else if (peek(&c) != '@')
        return fail_here(&c);
    else if ((e = parse_domain_part(&c)) == PATH_OK && peek(&c) != '>')
        return fail_here(&c);
    else if (e == PATH_OK)
        c.i++;
    if (e == PATH_OK)
        *end = c.i;
    return e;
}

const char *smtp_path_error_reply(enum path_error e, enum path_use use)
{
    bool mail = use == PATH_REVERSE;

    switch (e) {
    case PATH_OK:
        break;
    case PATH_NO_BRACKETS:
        return mail ? "501 5.5.4 Syntax: MAIL FROM:<address>"
                    : "501 5.5.4 Syntax: RCPT TO:<address>";
    case PATH_TOO_LONG:
        return mail ? "501 5.1.7 Sender address too long (RFC 5321 4.5.3.1)"
                    : "501 5.1.3 Recipient address too long (RFC 5321 4.5.3.1)";
    case PATH_UNQUALIFIED:
        return mail ? "501 5.1.7 Sender address must be fully qualified "
                      "(user@domain)"
                    : "501 5.1.3 Recipient address must be fully qualified "
                      "(user@domain)";
    case PATH_8BIT:
        return "553 5.6.7 Non-ASCII addresses are not supported here "
               "(no SMTPUTF8)";
    case PATH_NULL_RCPT:
        return "501 5.1.3 The null address <> cannot be a recipient";
    case PATH_SYNTAX:
        return mail ? "501 5.1.7 Bad sender address syntax"
                    : "501 5.1.3 Bad recipient address syntax";
    }
    return "501 5.5.2 Syntax error";
}

const char *smtp_path_domain(const struct smtp_path *p)
{
    if (p->null || p->postmaster)
        return "";
    return p->mailbox + p->at + 1;
}

enum rcpt_class rcpt_classify(const struct smtp_path *p,
                              const struct strlist *local_domains,
                              const char **why)
{
    const char *domain;

    if (p->postmaster) {
        *why = "postmaster";
        return RCPT_LOCAL;
    }
    domain = smtp_path_domain(p);
    /* Order: the most specific reason first, for the log. */
    if (p->literal)
        *why = "literal";
    else if (!strlist_contains_ci(local_domains, domain, strlen(domain)))
        *why = "remote_domain";
    else if (p->route)
        *why = "route";
    else if (p->quoted)
        *why = "quoted";
    else if (memchr(p->mailbox, '%', p->at) != NULL)
        *why = "percent";
    else if (memchr(p->mailbox, '!', p->at) != NULL)
        *why = "bang";
    else {
        *why = "local";
        return RCPT_LOCAL;
    }
    return RCPT_REMOTE;
}
