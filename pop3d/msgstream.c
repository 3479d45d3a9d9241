#include "pop3d/msgstream.h"

#include <string.h>

void msgstream_init(struct msgstream *s, int64_t top_lines)
{
    memset(s, 0, sizeof(*s));
    s->at_line_start = true;
    s->lines_left = top_lines;
}

/* A line just ended: the first empty one separates header and body. */
static void line_done(struct msgstream *s)
{
    uint64_t content = s->line_len - (s->prev_cr ? 1 : 0);

    if (!s->in_body) {
        if (content == 0)
            s->in_body = true;
    } else if (s->lines_left > 0) {
        s->lines_left--;
    }
    s->at_line_start = true;
    s->prev_cr = false;
    s->line_len = 0;
}

size_t msgstream_feed(struct msgstream *s, const char *in, size_t len, char *out)
{
    const char *p = in, *end = in + len;
    char *o = out;

    while (p < end && !s->done) {
        const char *nl;
        size_t n;

        if (s->at_line_start) {
            if (s->in_body && s->lines_left == 0) {
                s->done = true;
                break;
            }
            if (*p == '.')
                *o++ = '.';
            s->at_line_start = false;
        }
        nl = memchr(p, '\n', (size_t)(end - p));
        n = (size_t)((nl ? nl : end) - p);
        memcpy(o, p, n);
        o += n;
        if (n > 0) {
            s->line_len += n;
            s->prev_cr = p[n - 1] == '\r';
        }
        p += n;
        if (nl == NULL)
            break;
        if (!s->prev_cr)
            *o++ = '\r';
        *o++ = '\n';
        p++;
        line_done(s);
    }
    return (size_t)(o - out);
}

size_t msgstream_finish(struct msgstream *s, char *out)
{
    size_t n = 0;

    if (!s->at_line_start) {
        out[n++] = '\r';
        out[n++] = '\n';
    }
    memcpy(out + n, ".\r\n", 3);
    return n + 3;
}

void msg_vsize_init(struct msg_vsize *v)
{
    v->size = 0;
    v->prev_cr = false;
    v->at_line_start = true;
}

void msg_vsize_feed(struct msg_vsize *v, const char *in, size_t len)
{
    const char *p = in, *end = in + len;

    if (len == 0)
        return;
    v->size += len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        bool cr_before = nl > in ? nl[-1] == '\r' : v->prev_cr;
        if (!cr_before)
            v->size++;            /* the CR the transform inserts */
        p = nl + 1;
    }
    v->prev_cr = end[-1] == '\r';
    v->at_line_start = end[-1] == '\n';
}

uint64_t msg_vsize_finish(const struct msg_vsize *v)
{
    return v->size + (v->at_line_start ? 0 : 2);
}
