/*
 * The admin command's Redis calls: each either returns a reply or ends
 * the command with a one-line message and exit status 3.
 */
#include "authbridge/cli.h"
#include "authbridge/redis.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const struct ab_conf *cli_conf;
struct grant_settings cli_settings;
void (*cli_sigpipe)(int) = SIG_DFL;

/* One line on stderr: what the user typed may hold control characters. */
void die(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fputs("authbridge: ", stderr);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    }
    fputc('\n', stderr);
    exit(code);
}

/* ---- Redis helpers --------------------------------------------------------- */

/* Where the commands go, for error messages. */
static const char *redis_where(void)
{
    static char where[160];

    if (cli_conf->redis.sentinels.n > 0)
        snprintf(where, sizeof(where), "master '%s'", cli_conf->redis.master_name);
    else
        snprintf(where, sizeof(where), "%s", cli_conf->redis.address.text);
    return where;
}

/* The connection failed or timed out (the socket has redis.timeout_ms). */
static _Noreturn void redis_failed(const redisContext *c)
{
    if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
        die(EX_REDIS, "Redis at %s: no reply within %u ms", redis_where(),
            cli_conf->redis.timeout_ms);
    die(EX_REDIS, "Redis at %s: %s", redis_where(),
        c->errstr[0] ? c->errstr : "no reply");
}

redisContext *connect_or_die(void)
{
    char err[256];
    redisContext *c = rconn_sync_connect(&cli_conf->redis, err, sizeof(err));

    if (c == NULL)
        die(EX_REDIS, "%s", err);
    return c;
}

redisReply *command_or_die(redisContext *c, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);

    if (r == NULL)
        redis_failed(c);
    if (r->type == REDIS_REPLY_ERROR)
        die(EX_REDIS, "Redis: %s", r->str);
    return r;
}

redisReply *reply_or_die(redisContext *c)
{
    void *r = NULL;

    if (redisGetReply(c, &r) != REDIS_OK || r == NULL)
        redis_failed(c);
    if (((redisReply *)r)->type == REDIS_REPLY_ERROR)
        die(EX_REDIS, "Redis: %s", ((redisReply *)r)->str);
    return r;
}

redisReply *transaction_or_die(redisContext *c, const struct grant_cmds *g)
{
    redisAppendCommand(c, "MULTI");
    for (int i = 0; i < g->n; i++)
        redisAppendCommandArgv(c, g->cmd[i].argc, g->cmd[i].argv, NULL);
    redisAppendCommand(c, "EXEC");
    for (int i = 0; i < g->n + 1; i++)
        freeReplyObject(reply_or_die(c));
    redisReply *r = reply_or_die(c);
    if (r->type != REDIS_REPLY_ARRAY)
        die(EX_REDIS, "Redis: transaction aborted");
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ERROR)
            die(EX_REDIS, "Redis: %s", r->element[i]->str);
    return r;
}
