/*
 * Two small machines: a line scanner over the header block, and a
 * recursive-descent parser (one level: a group holds mailboxes, never
 * groups) over one unfolded field body. Neither allocates; the parser
 * builds each address in a buffer on the stack.
 *
 * Line ends: DATA lines end in CRLF (a bare CR or LF makes the session
 * refuse the whole message, datascan.h), so the scanner ends a line at
 * LF and drops the CR before it; what a bare CR or LF does to a header
 * here does not matter, the message is refused anyway.
 */
#include "smtpgate/hdrfrom.h"

#include <string.h>

/* ---- the header block -------------------------------------------------- */

enum {
    ST_BOL,         /* at the start of a line */
    ST_BOL_DOT,     /* after a stuffing dot at the start of a line */
    ST_EMPTY_CR,    /* a CR at the start of a line: the empty line? */
    ST_NAME,        /* in a field name */
    ST_NAME_WSP,    /* WSP between the name and the colon (obs-optional) */
    ST_VALUE,       /* in a field body */
    ST_VALUE_CR,    /* a CR in a field body: the end of its line? */
};

enum { KEPT_NONE, KEPT_FROM, KEPT_SENDER };

void hdrscan_init(struct hdrscan *h)
{
    memset(h, 0, sizeof(*h));
    h->state = ST_BOL;
    h->status = HDRSCAN_MORE;
}

static bool is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 5322 3.6.8: ftext is printable US-ASCII except the colon. */
static bool is_ftext(unsigned char c)
{
    return c >= 33 && c <= 126 && c != ':';
}

static void keep(struct hdrscan *h, unsigned char c)
{
    struct hdr_field *f = h->kept == KEPT_FROM ? &h->from :
                          h->kept == KEPT_SENDER ? &h->sender : NULL;

    if (f == NULL)
        return;
    if (f->len >= SMTP_HEADER_FIELD_MAX) {
        h->status = HDRSCAN_FIELD_TOO_LONG;
        return;
    }
    f->v[f->len++] = (char)c;
    f->v[f->len] = '\0';
}

static void name_char(struct hdrscan *h, unsigned char c)
{
    /* Only "from" and "sender" matter: a longer name is just "long". */
    if (h->namelen < sizeof(h->name))
        h->name[h->namelen++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    else
        h->namelen = sizeof(h->name);
}

static bool name_is(const struct hdrscan *h, const char *name)
{
    size_t n = strlen(name);

    return h->namelen == n && memcmp(h->name, name, n) == 0;
}

static void name_end(struct hdrscan *h)
{
    struct hdr_field *f = NULL;

    h->kept = KEPT_NONE;
    if (name_is(h, "from")) {
        f = &h->from;
        h->kept = KEPT_FROM;
        h->dup = "From";
    } else if (name_is(h, "sender")) {
        f = &h->sender;
        h->kept = KEPT_SENDER;
        h->dup = "Sender";
    }
    h->state = ST_VALUE;
    if (f == NULL)
        return;
    if (f->seen) {
        h->status = HDRSCAN_DUPLICATE;
        return;
    }
    f->seen = true;
}

/* The first octet of a line (after any stuffing dot). */
static void line_start(struct hdrscan *h, unsigned char c)
{
    if (c == '\r') {
        h->state = ST_EMPTY_CR;
    } else if (c == '\n') {
        h->status = HDRSCAN_DONE;
    } else if (is_wsp(c)) {
        /* A folded line continues the field before; the first line of
         * the block cannot be one (RFC 5322 2.2.3). */
        if (h->fields == 0) {
            h->status = HDRSCAN_MALFORMED;
            return;
        }
        h->state = ST_VALUE;
        keep(h, c);
    } else if (is_ftext(c)) {
        h->fields++;
        h->kept = KEPT_NONE;
        h->namelen = 0;
        name_char(h, c);
        h->state = ST_NAME;
    } else {
        h->status = HDRSCAN_MALFORMED;
    }
}

static void step(struct hdrscan *h, unsigned char c)
{
    switch (h->state) {
    case ST_BOL:
        /* RFC 5321 4.5.2: a leading dot is transparency; the final "."
         * line thus reads as the empty line that ends a header block. */
        if (c == '.') {
            h->state = ST_BOL_DOT;
            return;
        }
        line_start(h, c);
        return;
    case ST_BOL_DOT:
        line_start(h, c);
        return;
    case ST_EMPTY_CR:
        h->status = c == '\n' ? HDRSCAN_DONE : HDRSCAN_MALFORMED;
        return;
    case ST_NAME:
        if (c == ':')
            name_end(h);
        else if (is_wsp(c))
            h->state = ST_NAME_WSP;
        else if (is_ftext(c))
            name_char(h, c);
        else
            h->status = HDRSCAN_MALFORMED;
        return;
    case ST_NAME_WSP:
        if (c == ':')
            name_end(h);
        else if (!is_wsp(c))
            h->status = HDRSCAN_MALFORMED;
        return;
    case ST_VALUE_CR:
        if (c == '\n') {
            h->state = ST_BOL;
            return;
        }
        keep(h, '\r');         /* a CR inside the body; c is body text */
        h->state = ST_VALUE;
        /* fall through */
    case ST_VALUE:
        if (c == '\r')
            h->state = ST_VALUE_CR;
        else if (c == '\n')
            h->state = ST_BOL;
        else
            keep(h, c);
        return;
    }
}

enum hdrscan_status hdrscan_feed(struct hdrscan *h, const char *p, size_t len)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;

    while (i < len && h->status == HDRSCAN_MORE) {
        /* The body of a field nobody keeps: skip to its line end. */
        if (h->state == ST_VALUE && h->kept == KEPT_NONE && u[i] != '\n') {
            const unsigned char *lf = memchr(u + i, '\n', len - i);
            size_t stop = lf ? (size_t)(lf - u) : len;
            /* (A CR before the LF is skipped with the text: it ends a
             * line either way, and nobody keeps this body.) */
            if (h->octets + (stop - i) > SMTP_HEADER_BLOCK_MAX) {
                h->status = HDRSCAN_TOO_BIG;
                break;
            }
            h->octets += stop - i;
            i = stop;
            continue;
        }
        if (++h->octets > SMTP_HEADER_BLOCK_MAX) {
            h->status = HDRSCAN_TOO_BIG;
            break;
        }
        step(h, u[i++]);
    }
    return h->status;
}

/* ---- addresses ---------------------------------------------------------- */

struct ap {
    const unsigned char *p, *end;
    hdraddr_cb *cb;
    void *arg;
    int count;
};

/* One address being built: local part, then "@domain". */
struct abuf {
    char v[HDRADDR_MAX + 1];
    size_t len;
    bool over;
};

static void put(struct abuf *b, const void *s, size_t n)
{
    if (b->over || n > HDRADDR_MAX - b->len) {
        b->over = true;
        return;
    }
    memcpy(b->v + b->len, s, n);
    b->len += n;
    b->v[b->len] = '\0';
}

static bool at_end(const struct ap *a)
{
    return a->p >= a->end;
}

static int peek(const struct ap *a)
{
    return at_end(a) ? -1 : *a->p;
}

/* RFC 5322 3.2.3 atext, and RFC 6532's UTF-8 (not validated here: the
 * octets only need to compare equal). */
static bool is_atext(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c >= 0x80 && c <= 0xff) ||
           (c > 0 && c < 0x80 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* FWS (unfolded already, but a line end is white space too). */
static bool is_fws(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A comment, nested, with quoted pairs; a->p is on its "(". */
static bool skip_comment(struct ap *a)
{
    unsigned depth = 0;

    while (!at_end(a)) {
        int c = *a->p++;
        if (c == 0)
            return false;
        if (c == '\\') {
            if (at_end(a) || *a->p == 0)
                return false;
            a->p++;
        } else if (c == '(') {
            depth++;
        } else if (c == ')' && --depth == 0) {
            return true;
        }
    }
    return false;
}

/* CFWS: white space and comments. False on an unterminated comment. */
static bool skip_cfws(struct ap *a)
{
    for (;;) {
        while (!at_end(a) && is_fws(*a->p))
            a->p++;
        if (peek(a) != '(')
            return true;
        if (!skip_comment(a))
            return false;
    }
}

static bool eat(struct ap *a, int c)
{
    if (peek(a) != c)
        return false;
    a->p++;
    return true;
}

static bool atom(struct ap *a, struct abuf *b)
{
    const unsigned char *s = a->p;

    while (!at_end(a) && is_atext(*a->p))
        a->p++;
    if (a->p == s)
        return false;
    if (b != NULL)
        put(b, s, (size_t)(a->p - s));
    return true;
}

/* A quoted string; its content (quoted pairs undone, folding dropped)
 * goes to b. */
static bool quoted(struct ap *a, struct abuf *b)
{
    if (!eat(a, '"'))
        return false;
    while (!at_end(a)) {
        unsigned char c = *a->p++;
        if (c == '"')
            return true;
        if (c == 0)
            return false;
        if (c == '\\') {
            if (at_end(a) || *a->p == 0)
                return false;
            c = *a->p++;
        } else if (c == '\r' || c == '\n') {
            continue;
        }
        if (b != NULL)
            put(b, &c, 1);
    }
    return false;
}

/* word = atom / quoted-string. An RFC 2047 encoded word in a display
 * name is an atom (RFC 2047 5(3) keeps its text to atom characters); one
 * holding specials is no word, and its field is refused as unparsable:
 * a reader that does not decode it could see an address in it. */
static bool word(struct ap *a, struct abuf *b)
{
    if (peek(a) == '"')
        return quoted(a, b);
    return atom(a, b);
}

/* A phrase, obsolete form (word *(word / "." / CFWS)): how many words,
 * or -1 on a broken comment or quoted string. */
static int phrase(struct ap *a)
{
    int n = 0;

    for (;;) {
        int c;
        if (!skip_cfws(a))
            return -1;
        c = peek(a);
        if (c == '"' || is_atext(c)) {
            if (!word(a, NULL))
                return -1;
            n++;
        } else if (n > 0 && c == '.') {
            a->p++;
        } else {
            return n;
        }
    }
}

/* The local part as RFC 5322 3.4.1 writes it: unquoted if a dot-atom,
 * else quoted (so that parsing the result gives the same address). */
static void put_local(struct abuf *out, const struct abuf *lp)
{
    bool dot_atom = lp->len > 0 && lp->v[0] != '.' &&
                    lp->v[lp->len - 1] != '.';

    for (size_t i = 0; dot_atom && i < lp->len; i++)
        if (!(is_atext((unsigned char)lp->v[i]) ||
              (lp->v[i] == '.' && lp->v[i + 1] != '.')))
            dot_atom = false;
    if (dot_atom) {
        put(out, lp->v, lp->len);
        return;
    }
    put(out, "\"", 1);
    for (size_t i = 0; i < lp->len; i++) {
        if (strchr("\"\\\r\n", lp->v[i]) != NULL)
            put(out, "\\", 1);
        put(out, &lp->v[i], 1);
    }
    put(out, "\"", 1);
}

/* local-part: word *("." word), CFWS allowed around the dots. */
static bool local_part(struct ap *a, struct abuf *lp)
{
    for (;;) {
        if (!skip_cfws(a) || !word(a, lp) || !skip_cfws(a))
            return false;
        if (!eat(a, '.'))
            return true;
        put(lp, ".", 1);
    }
}

/* domain-literal: "[" *dtext "]", white space dropped. (Quoted pairs,
 * obs-dtext, are refused: no literal is one of our domains anyway.) */
static bool domain_literal(struct ap *a, struct abuf *b)
{
    put(b, "[", 1);
    a->p++;
    while (!at_end(a)) {
        unsigned char c = *a->p++;
        if (c == ']') {
            put(b, "]", 1);
            return true;
        }
        if (c == '[' || c == '\\' || c == 0)
            return false;
        if (!is_fws(c))
            put(b, &c, 1);
    }
    return false;
}

/* domain: atom *("." atom) or a domain literal, CFWS around the dots. */
static bool domain(struct ap *a, struct abuf *b)
{
    if (!skip_cfws(a))
        return false;
    if (peek(a) == '[')
        return domain_literal(a, b) && skip_cfws(a);
    for (;;) {
        if (!atom(a, b) || !skip_cfws(a))
            return false;
        if (!eat(a, '.'))
            return true;
        put(b, ".", 1);
        if (!skip_cfws(a))
            return false;
    }
}

static bool addr_spec(struct ap *a)
{
    struct abuf lp = { .len = 0 }, dom = { .len = 0 }, full = { .len = 0 };

    if (!local_part(a, &lp) || !eat(a, '@') || !domain(a, &dom))
        return false;
    put_local(&full, &lp);
    put(&full, "@", 1);
    put(&full, dom.v, dom.len);
    if (lp.over || dom.over || full.over)
        return false;
    a->count++;
    if (a->cb != NULL)
        a->cb(full.v, a->arg);
    return true;
}

/* obs-route: "@" domain *("," ["@" domain]) ":" (RFC 5322 4.4), ignored. */
static bool route(struct ap *a)
{
    struct abuf ignored = { .len = 0 };

    while (eat(a, '@')) {
        if (!domain(a, &ignored))
            return false;
        while (eat(a, ','))
            if (!skip_cfws(a))
                return false;
    }
    return eat(a, ':');
}

/* angle-addr: "<" [obs-route] addr-spec ">"; a->p is on the "<". */
static bool angle_addr(struct ap *a)
{
    a->p++;
    if (!skip_cfws(a))
        return false;
    if (peek(a) == '@' && !route(a))
        return false;
    return addr_spec(a) && eat(a, '>') && skip_cfws(a);
}

enum element { EL_ERROR, EL_EMPTY, EL_MAILBOX, EL_GROUP };

/*
 * One element of a list: mailbox = name-addr / addr-spec, or the start of
 * a group (its display name and colon). A phrase is read first, as a
 * display name; an "@" after it means it was a local part, so it is read
 * again as one.
 */
static enum element element(struct ap *a)
{
    const unsigned char *start = a->p;
    int n = phrase(a);

    if (n < 0)
        return EL_ERROR;
    switch (peek(a)) {
    case '<':
        return angle_addr(a) ? EL_MAILBOX : EL_ERROR;
    case '@':
        a->p = start;
        return addr_spec(a) ? EL_MAILBOX : EL_ERROR;
    case ':':
        a->p++;
        return n > 0 ? EL_GROUP : EL_ERROR;
    default:
        /* An empty list element (obs-mbox-list) names nobody; a phrase
         * alone (a name without an address) is an error. */
        return n == 0 ? EL_EMPTY : EL_ERROR;
    }
}

/* The mailboxes of a group, up to its ";" (no group inside a group). */
static bool group_members(struct ap *a)
{
    for (;;) {
        enum element e = element(a);
        if (e == EL_ERROR || e == EL_GROUP || !skip_cfws(a))
            return false;
        if (eat(a, ';'))
            return skip_cfws(a);
        if (!eat(a, ','))
            return false;
    }
}

int hdraddr_parse(const char *s, size_t len, hdraddr_cb *cb, void *arg)
{
    struct ap a = { (const unsigned char *)s, (const unsigned char *)s + len,
                    cb, arg, 0 };

    for (;;) {
        enum element e = element(&a);
        if (e == EL_ERROR || (e == EL_GROUP && !group_members(&a)) ||
            !skip_cfws(&a))
            return -1;
        if (at_end(&a))
            return a.count;
        if (!eat(&a, ','))
            return -1;
    }
}

/* ---- the verdict -------------------------------------------------------- */

struct judging {
    hdrfrom_owned_fn *owned;
    void *arg;
    struct hdrfrom_result *r;
    const char *field;
};

static void judge_one(const char *addr, void *arg)
{
    struct judging *j = arg;

    if (j->r->verdict != HDRFROM_OK || j->owned(addr, j->arg))
        return;
    j->r->verdict = HDRFROM_FOREIGN;
    j->r->field = j->field;
    strcpy(j->r->addr, addr);       /* at most HDRADDR_MAX */
}

/* -1 unparsable, else the number of mailboxes (foreign ones in r). */
static int judge_field(const struct hdr_field *f, const char *name,
                       hdrfrom_owned_fn *owned, void *arg,
                       struct hdrfrom_result *r)
{
    struct judging j = { owned, arg, r, name };
    int n;

    /* Parse first, judge after: an unparsable field is refused as such
     * even if an address before the error was foreign. */
    if (hdraddr_parse(f->v, f->len, NULL, NULL) < 0) {
        r->verdict = HDRFROM_UNPARSABLE;
        r->field = name;
        return -1;
    }
    n = hdraddr_parse(f->v, f->len, judge_one, &j);
    return n;
}

void hdrfrom_judge(const struct hdrscan *h, hdrfrom_owned_fn *owned,
                   void *arg, struct hdrfrom_result *r)
{
    memset(r, 0, sizeof(*r));
    switch (h->status) {
    case HDRSCAN_TOO_BIG:
        r->verdict = HDRFROM_TOO_BIG;
        return;
    case HDRSCAN_FIELD_TOO_LONG:
        r->verdict = HDRFROM_TOO_BIG;
        r->field = h->kept == KEPT_FROM ? "From" : "Sender";
        return;
    case HDRSCAN_MALFORMED:
        r->verdict = HDRFROM_MALFORMED;
        return;
    case HDRSCAN_DUPLICATE:
        r->verdict = HDRFROM_DUPLICATE;
        r->field = h->dup;
        return;
    case HDRSCAN_MORE:
    case HDRSCAN_DONE:
        break;
    }
    if (!h->from.seen) {
        r->verdict = HDRFROM_NO_FROM;
        return;
    }
    if (judge_field(&h->from, "From", owned, arg, r) == 0) {
        r->verdict = HDRFROM_NO_FROM;
        r->field = "From";
        return;
    }
    if (r->verdict != HDRFROM_OK || !h->sender.seen)
        return;
    /* RFC 5322 3.6.2: Sender: is one mailbox; an empty one is broken. */
    if (judge_field(&h->sender, "Sender", owned, arg, r) == 0) {
        r->verdict = HDRFROM_UNPARSABLE;
        r->field = "Sender";
    }
}

const char *hdrfrom_verdict_name(enum hdrfrom_verdict v)
{
    switch (v) {
    case HDRFROM_OK:          return "ok";
    case HDRFROM_FOREIGN:     return "foreign";
    case HDRFROM_NO_FROM:     return "no_from";
    case HDRFROM_UNPARSABLE:  return "unparsable";
    case HDRFROM_MALFORMED:   return "malformed";
    case HDRFROM_DUPLICATE:   return "duplicate";
    case HDRFROM_TOO_BIG:     return "too_big";
    }
    return "?";
}
