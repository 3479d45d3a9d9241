/*
 * A five-state machine over the octets of DATA. Most octets are in the
 * middle of a line, where two memchr() calls (for CR, then for an LF
 * before it) skip a whole line at a time; the per-octet switch only runs
 * at line ends.
 *
 * "Clean" is everything before the octet that makes the stream
 * non-canonical: a bare LF itself, or the octet after a bare CR. A bare
 * CR that ended one chunk may thus already be counted clean (and been
 * forwarded) before the next chunk shows it was bare; that is harmless,
 * because nothing after it is ever forwarded: without a following line
 * end and dot, no boundary can form.
 */
#include "smtpgate/datascan.h"

#include <string.h>

enum {
    ST_BOL,     /* at the start of a line (after CRLF) */
    ST_MID,     /* inside a line */
    ST_CR,      /* after a CR, expecting LF */
    ST_DOT,     /* a '.' at the start of a line */
    ST_DOTCR,   /* ".\r" at the start of a line: LF ends the message */
};

void datascan_init(struct datascan *s)
{
    memset(s, 0, sizeof(*s));
    s->state = ST_BOL;
}

static void mark_bad(struct datascan *s, size_t i, size_t *first_bad)
{
    if (s->bad)
        return;
    s->bad = true;
    *first_bad = i;
}

/* Inside a line: jump to the next CR; an LF before it is bare. */
static size_t scan_mid(struct datascan *s, const char *p, size_t i, size_t len,
                       size_t *first_bad)
{
    const char *cr = memchr(p + i, '\r', len - i);
    size_t stop = cr ? (size_t)(cr - p) : len;
    const char *lf = memchr(p + i, '\n', stop - i);

    if (lf != NULL) {
        /* A bare LF is not a line end: the next '.' is not at a line
         * start, so stay in the middle of the line. */
        mark_bad(s, (size_t)(lf - p), first_bad);
        return (size_t)(lf - p) + 1;
    }
    if (cr != NULL) {
        s->state = ST_CR;
        return stop + 1;
    }
    return len;
}

/* One octet at a line boundary; returns the next index (i itself when
 * the octet must be looked at again in ST_MID). */
static size_t step(struct datascan *s, unsigned char ch, size_t i,
                   size_t *first_bad)
{
    switch (s->state) {
    case ST_BOL:
        s->state = ch == '.' ? ST_DOT : ch == '\r' ? ST_CR : ST_MID;
        if (ch == '\n')
            mark_bad(s, i, first_bad);
        return i + 1;
    case ST_CR:
        if (ch == '\n') {
            s->state = ST_BOL;
            return i + 1;
        }
        mark_bad(s, i, first_bad);            /* the CR before was bare */
        s->state = ST_MID;
        return i;
    case ST_DOT:
        s->state = ch == '\r' ? ST_DOTCR : ST_MID;
        if (ch == '\n')
            mark_bad(s, i, first_bad);
        return i + 1;
    case ST_DOTCR:
        if (ch == '\n') {
            s->done = true;
            return i + 1;
        }
        mark_bad(s, i, first_bad);
        s->state = ST_MID;
        return i;
    }
    return i + 1;
}

size_t datascan_feed(struct datascan *s, const char *p, size_t len,
                     size_t *clean_out)
{
    bool was_bad = s->bad;
    size_t i = 0, first_bad = 0;

    while (i < len && !s->done) {
        if (s->state == ST_MID)
            i = scan_mid(s, p, i, len, &first_bad);
        else
            i = step(s, (unsigned char)p[i], i, &first_bad);
    }
    *clean_out = was_bad ? 0 : s->bad ? first_bad : i;
    s->clean += *clean_out;
    s->total += i;
    return i;
}

uint64_t datascan_size(const struct datascan *s)
{
    return s->done ? s->total - 3 : s->total;
}
