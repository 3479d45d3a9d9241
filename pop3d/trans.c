/*
 * TRANSACTION state (RFC 1939 section 5) and UPDATE's answer: STAT, LIST,
 * UIDL, RETR, TOP, DELE, NOOP, RSET, QUIT; messages streamed from their
 * files with back-pressure, never read whole.
 */
#include "pop3d/session.h"
#include "pop3d/maildir.h"
#include "pop3d/server.h"

#include "authbridge/conf.h"
#include "authbridge/conn.h"
#include "authbridge/log.h"
#include "authbridge/util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <string.h>
#include <unistd.h>

struct trans_def {
    const char *keyword;
    void (*fn)(struct session *s, struct pop3_cmd *c);
    int min_args, max_args;
};

/* The message an argument names, or NULL after answering -ERR. */
static struct message *message_arg(struct session *s, const char *arg,
                                   size_t *index)
{
    struct message *m;

    if (pop3_msgno(arg, s->mb->count, index) < 0) {
        session_reply(s, "-ERR No such message.");
        return NULL;
    }
    m = &s->mb->msgs[*index];
    if (m->deleted) {
        session_reply(s, "-ERR Message %zu is deleted.", *index + 1);
        return NULL;
    }
    return m;
}

static void live_totals(const struct session *s, size_t *n, uint64_t *octets)
{
    *n = 0;
    *octets = 0;
    for (size_t i = 0; i < s->mb->count; i++)
        if (!s->mb->msgs[i].deleted) {
            (*n)++;
            *octets += s->mb->msgs[i].size;
        }
}

static void cmd_stat(struct session *s, struct pop3_cmd *c)
{
    size_t n;
    uint64_t octets;

    (void)c;
    live_totals(s, &n, &octets);
    session_reply(s, "+OK %zu %llu", n, (unsigned long long)octets);
}

/* LIST and UIDL: one message, or all that are not deleted. */
static void list_or_uidl(struct session *s, struct pop3_cmd *c, bool uidl)
{
    struct evbuffer *out = conn_output(s->conn);
    const struct message *m;
    size_t i, n;
    uint64_t octets;

    if (c->argc == 1) {
        if ((m = message_arg(s, c->argv[0], &i)) == NULL)
            return;
        if (uidl)
            session_reply(s, "+OK %zu %s", i + 1, m->uidl);
        else
            session_reply(s, "+OK %zu %llu", i + 1, (unsigned long long)m->size);
        return;
    }
    live_totals(s, &n, &octets);
    session_reply(s, "+OK %zu message%s (%llu octets)", n, n == 1 ? "" : "s",
                  (unsigned long long)octets);
    for (i = 0; i < s->mb->count; i++) {
        m = &s->mb->msgs[i];
        if (m->deleted)
            continue;
        if (uidl)
            evbuffer_add_printf(out, "%zu %s\r\n", i + 1, m->uidl);
        else
            evbuffer_add_printf(out, "%zu %llu\r\n", i + 1,
                                (unsigned long long)m->size);
    }
    evbuffer_add(out, ".\r\n", 3);
}

static void cmd_list(struct session *s, struct pop3_cmd *c)
{
    list_or_uidl(s, c, false);
}

static void cmd_uidl(struct session *s, struct pop3_cmd *c)
{
    list_or_uidl(s, c, true);
}

/* ---- RETR and TOP ---------------------------------------------------------- */

static void stream_end(struct session *s)
{
    close(s->stream_fd);
    s->stream_fd = -1;
    conn_want_drain(s->conn, 0);
    conn_set_timeouts(s->conn, s->srv->pc->idle_timeout,
                      s->srv->pc->idle_timeout);
    session_set_busy(s, false);
}

/* Fill the output up to the high-water mark; called again on drain. */
void trans_stream_more(struct session *s)
{
    static _Thread_local char in[POP3_READ_CHUNK];   /* one per loop */
    struct evbuffer *out = conn_output(s->conn);

    while (evbuffer_get_length(out) < POP3_OUTPUT_HIGH) {
        struct evbuffer_iovec v;
        ssize_t n = s->ms.done ? 0 : read(s->stream_fd, in, sizeof(in));

        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* +OK went out already: the only honest signal left is to
             * drop the connection before the terminating dot. */
            log_err("event=read_error sid=%s user=%s error=%s", s->sid,
                    log_esc(s->user), log_esc(strerror(errno)));
            close(s->stream_fd);
            s->stream_fd = -1;
            session_close(s, "read error");
            return;
        }
        if (evbuffer_reserve_space(out, 2 * (size_t)n + 8, &v, 1) < 1)
            fatalx("evbuffer_reserve_space failed");
        if (n == 0) {
            v.iov_len = msgstream_finish(&s->ms, v.iov_base);
            evbuffer_commit_space(out, &v, 1);
            s->bytes += v.iov_len;
            stream_end(s);
            return;
        }
        v.iov_len = msgstream_feed(&s->ms, in, (size_t)n, v.iov_base);
        evbuffer_commit_space(out, &v, 1);
        s->bytes += v.iov_len;
    }
}

static void start_stream(struct session *s, size_t i, int64_t top_lines)
{
    const struct message *m = &s->mb->msgs[i];
    int fd = maildir_open_message(s->mb, i);

    if (fd < 0) {
        log_err("event=message_unreadable sid=%s user=%s msg=%s error=%s",
                s->sid, log_esc(s->user), log_esc(m->name),
                log_esc(strerror(errno)));
        session_reply(s, "-ERR [SYS/TEMP] Cannot read message %zu now.", i + 1);
        return;
    }
    if (top_lines < 0)
        session_reply(s, "+OK %llu octets", (unsigned long long)m->size);
    else
        session_reply(s, "+OK Top of message %zu follows", i + 1);
    s->stream_fd = fd;
    msgstream_init(&s->ms, top_lines);
    /* Downloading is activity: time out only a reader that stalls. */
    conn_set_timeouts(s->conn, 0, s->srv->pc->idle_timeout);
    conn_want_drain(s->conn, POP3_OUTPUT_LOW);
    session_set_busy(s, true);
    trans_stream_more(s);
}

static void cmd_retr(struct session *s, struct pop3_cmd *c)
{
    size_t i;

    if (message_arg(s, c->argv[0], &i) == NULL)
        return;
    s->retr++;
    start_stream(s, i, -1);
}

static void cmd_top(struct session *s, struct pop3_cmd *c)
{
    uint64_t lines;
    size_t i;

    if (pop3_linecount(c->argv[1], &lines) < 0) {
        session_bad_command(s, "-ERR Usage: TOP msg lines");
        return;
    }
    if (message_arg(s, c->argv[0], &i) == NULL)
        return;
    start_stream(s, i, (int64_t)lines);
}

/* ---- marks ------------------------------------------------------------------- */

static void cmd_dele(struct session *s, struct pop3_cmd *c)
{
    struct message *m;
    size_t i;

    if ((m = message_arg(s, c->argv[0], &i)) == NULL)
        return;
    m->deleted = true;
    s->dele++;
    session_reply(s, "+OK Message %zu deleted.", i + 1);
}

static void cmd_noop(struct session *s, struct pop3_cmd *c)
{
    (void)c;
    session_reply(s, "+OK");
}

static void cmd_rset(struct session *s, struct pop3_cmd *c)
{
    (void)c;
    for (size_t i = 0; i < s->mb->count; i++)
        s->mb->msgs[i].deleted = false;
    s->dele = 0;
    session_reply(s, "+OK %zu message%s (%llu octets).", s->mb->count,
                  s->mb->count == 1 ? "" : "s",
                  (unsigned long long)s->mb->total);
}

static void cmd_quit(struct session *s, struct pop3_cmd *c)
{
    (void)c;
    session_quit_update(s);
}

void trans_update_done(struct session *s, int rc, unsigned removed,
                       const char *err)
{
    log_info("event=logout sid=%s user=%s rip=%s reason=quit retr=%u del=%u "
             "bytes=%llu grant=%s%s%s", s->sid, log_esc(s->user), s->peer_text,
             s->retr, removed, (unsigned long long)s->bytes,
             s->grant_ok ? "ok" : "failed", rc ? " error=" : "",
             rc ? log_esc(err) : "");
    if (s->dead)
        return;
    if (rc == 0)
        session_reply(s, "+OK Bye, %u message%s deleted.", removed,
                      removed == 1 ? "" : "s");
    else
        session_reply(s, "-ERR [SYS/TEMP] Some deleted messages were not "
                      "removed; they will be there next time.");
    session_close(s, "quit");
}

static const struct trans_def trans_cmds[] = {
    { "STAT", cmd_stat, 0, 0 },
    { "LIST", cmd_list, 0, 1 },
    { "UIDL", cmd_uidl, 0, 1 },
    { "RETR", cmd_retr, 1, 1 },
    { "TOP",  cmd_top,  2, 2 },
    { "DELE", cmd_dele, 1, 1 },
    { "NOOP", cmd_noop, 0, 0 },
    { "RSET", cmd_rset, 0, 0 },
    { "QUIT", cmd_quit, 0, 0 },
};

bool trans_dispatch(struct session *s, struct pop3_cmd *c, bool *known)
{
    static const char *const auth_only[] = {
        "USER", "PASS", "APOP", "AUTH", "STLS"
    };

    for (size_t i = 0; i < AB_ARRAY_LEN(trans_cmds); i++) {
        const struct trans_def *d = &trans_cmds[i];
        if (strcmp(d->keyword, c->keyword) != 0)
            continue;
        if (pop3_split_args(c, d->max_args) < 0 || c->argc < d->min_args) {
            session_bad_command(s, "-ERR Syntax error in arguments.");
            return true;
        }
        d->fn(s, c);
        return true;
    }
    *known = false;
    for (size_t i = 0; i < AB_ARRAY_LEN(auth_only); i++)
        *known |= strcmp(auth_only[i], c->keyword) == 0;
    return false;
}
