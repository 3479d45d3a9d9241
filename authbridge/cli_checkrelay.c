/*
 * checkrelay: POP-before-SMTP for qmail-smtpd, Courier's esmtpd and
 * anything else that relays when RELAYCLIENT is set, as a ucspi-tcp chain
 * program in the spirit of relay-ctrl-check:
 *
 *   tcpserver -x tcp.smtp.cdb ... authbridge checkrelay qmail-smtpd
 *
 * RELAYCLIENT already set (tcprules gave it): exec at once. Otherwise the
 * client address (TCPREMOTEIP, TCP6REMOTEIP) is looked up in Redis, one
 * HGET; a live grant sets RELAYCLIENT="" (qmail appends its value to
 * every recipient: it must be empty). Then PROG always runs: no grant,
 * Redis down, a broken configuration, all exec PROG without RELAYCLIENT
 * and say why on stderr (tcpserver passes it to the log), so the MTA
 * refuses the relay itself and local mail is never lost to us.
 *
 * The whole lookup has one deadline, redis.timeout_ms, from the start:
 * connect, the sentinels (with redis.sentinels), then AUTH, SELECT and
 * HGET pipelined in one round trip. A connection never waits longer for
 * Redis, however many sentinels do not answer.
 */
#include "authbridge/addr.h"
#include "authbridge/cli.h"
#include "authbridge/util.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Exit status when PROG cannot be executed: qmail's "temporary failure"
 * (tcpserver logs it; the client sees the connection close). */
#define EXIT_EXEC_FAILED 111

struct deadline {
    struct timespec end;
};

static void deadline_start(struct deadline *d, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, &d->end);
    d->end.tv_sec += ms / 1000;
    d->end.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (d->end.tv_nsec >= 1000000000L) {
        d->end.tv_sec++;
        d->end.tv_nsec -= 1000000000L;
    }
}

/* A deadline 1/parts of the way from now to d's. */
static void deadline_share(const struct deadline *d, unsigned parts,
                           struct deadline *out)
{
    struct timespec now;
    long long ns;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ns = (long long)(d->end.tv_sec - now.tv_sec) * 1000000000LL +
         (d->end.tv_nsec - now.tv_nsec);
    ns = ns > 0 ? ns / parts : 0;
    out->end.tv_sec = now.tv_sec + (time_t)(ns / 1000000000LL);
    out->end.tv_nsec = now.tv_nsec + (long)(ns % 1000000000LL);
    if (out->end.tv_nsec >= 1000000000L) {
        out->end.tv_sec++;
        out->end.tv_nsec -= 1000000000L;
    }
}

/* Time left, at least 1 ms while any is left; false once it is out. */
static bool deadline_left(const struct deadline *d, struct timeval *tv)
{
    struct timespec now;
    long long us;

    clock_gettime(CLOCK_MONOTONIC, &now);
    us = (long long)(d->end.tv_sec - now.tv_sec) * 1000000LL +
         (d->end.tv_nsec - now.tv_nsec) / 1000;
    if (us <= 0)
        return false;
    if (us < 1000)
        us = 1000;
    tv->tv_sec = (time_t)(us / 1000000);
    tv->tv_usec = (suseconds_t)(us % 1000000);
    return true;
}

/* ---- Redis, within the deadline -------------------------------------------- */

static redisContext *open_within(const struct deadline *d, const char *host,
                                 unsigned port, const char *path,
                                 char *why, size_t whylen)
{
    struct timeval tv;
    redisContext *c;

    if (!deadline_left(d, &tv)) {
        snprintf(why, whylen, "Redis: no answer within redis.timeout_ms");
        return NULL;
    }
    c = path ? redisConnectUnixWithTimeout(path, tv)
             : redisConnectWithTimeout(host, (int)port, tv);
    if (c == NULL || c->err) {
        snprintf(why, whylen, "Redis at %s: %s", path ? path : host,
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Replies to the commands appended so far, each by the deadline. */
static redisReply *reply_within(const struct deadline *d, redisContext *c,
                                char *why, size_t whylen)
{
    struct timeval tv;
    void *r = NULL;

    if (!deadline_left(d, &tv) || redisSetTimeout(c, tv) != REDIS_OK ||
        redisGetReply(c, &r) != REDIS_OK || r == NULL) {
        snprintf(why, whylen, "Redis: %s", c->err && c->errstr[0] &&
                 !(c->err == REDIS_ERR_IO && (errno == EAGAIN ||
                                              errno == EWOULDBLOCK)) ?
                 c->errstr : "no answer within redis.timeout_ms");
        return NULL;
    }
    return r;
}

/* The master, as the first sentinel that answers names it. Each
 * sentinel gets a share of the time left (the master keeps one), so one
 * that hangs cannot take it all from the others. */
static redisContext *open_master(const struct redis_conf *rc,
                                 const struct deadline *d, char *why,
                                 size_t whylen)
{
    size_t n = rc->sentinels.n;
    char host[64];

    for (size_t i = 0; i < n; i++) {
        const struct endpoint *s = &rc->sentinels.v[i];
        struct deadline mine;
        redisContext *c;
        redisReply *r;

        deadline_share(d, (unsigned)(n - i + 1), &mine);
        if ((c = open_within(&mine, s->host, s->port, NULL, why,
                             whylen)) == NULL)
            continue;
        redisAppendCommand(c, "SENTINEL get-master-addr-by-name %s",
                           rc->master_name);
        r = reply_within(&mine, c, why, whylen);
        redisFree(c);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING &&
            snprintf(host, sizeof(host), "%s", r->element[0]->str) <
                (int)sizeof(host)) {
            unsigned port = (unsigned)strtoul(r->element[1]->str, NULL, 10);
            freeReplyObject(r);
            return open_within(d, host, port, NULL, why, whylen);
        }
        freeReplyObject(r);
    }
    if (why[0] == '\0')
        snprintf(why, whylen, "no sentinel knows master '%s'",
                 rc->master_name);
    return NULL;
}

/* AUTH and SELECT (when configured) and HGET, in one round trip. The
 * user of a live grant into user (empty: none); -1 with why on failure. */
static int lookup(const struct ab_conf *conf, const char *key, char *user,
                  size_t userlen, char *why, size_t whylen)
{
    const struct redis_conf *rc = &conf->redis;
    struct deadline d;
    redisContext *c;
    redisReply *r = NULL;
    int n = 0, ret = -1;

    deadline_start(&d, rc->timeout_ms);
    c = rc->sentinels.n > 0 ? open_master(rc, &d, why, whylen) :
        open_within(&d, rc->address.host, rc->address.port, rc->address.path,
                    why, whylen);
    if (c == NULL)
        return -1;
    if (rc->password[0] && rc->username[0])
        n += redisAppendCommand(c, "AUTH %s %s", rc->username,
                                rc->password) == REDIS_OK;
    else if (rc->password[0])
        n += redisAppendCommand(c, "AUTH %s", rc->password) == REDIS_OK;
    if (rc->database != 0)
        n += redisAppendCommand(c, "SELECT %u", rc->database) == REDIS_OK;
    redisAppendCommand(c, "HGET %s user", key);
    for (int i = 0; i <= n; i++) {
        freeReplyObject(r);
        if ((r = reply_within(&d, c, why, whylen)) == NULL)
            goto out;
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(why, whylen, "Redis: %s", r->str);
            goto out;
        }
    }
    snprintf(user, userlen, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    ret = 0;
out:
    freeReplyObject(r);
    redisFree(c);
    return ret;
}

/* ---- the decision ---------------------------------------------------------------- */

/* What ucspi-tcp (and couriertcpd) say the client is. */
static const char *client_text(void)
{
    const char *proto = getenv("PROTO");
    const char *v4 = getenv("TCPREMOTEIP"), *v6 = getenv("TCP6REMOTEIP");

    if (proto && strcmp(proto, "TCP6") == 0 && v6)
        return v6;
    return v4 ? v4 : v6;
}

/* One line on stderr, key=value like the daemons' logs. */
static void say(const char *client, const char *result, const char *user,
                const char *why)
{
    fprintf(stderr, "authbridge checkrelay: pid=%ld client=%s relay=%s%s%s"
            "%s%s\n", (long)getpid(), client, result, user ? " user=" : "",
            user ? user : "", why ? " why=" : "", why ? why : "");
}

/* Quotes and control bytes out of what goes into the log line. */
static void clean(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '"')
            *s = '?';
}

static void decide(const struct ab_conf *conf, const char *conf_err)
{
    const char *text = client_text();
    char key[GRANT_KEY_MAX], user[256] = "", why[256] = "", quoted[260];
    struct ab_addr a;

    if (text == NULL || addr_parse(text, &a) < 0) {
        say(text ? "invalid" : "unknown", "no", NULL,
            "\"no client address (TCPREMOTEIP) from tcpserver\"");
        return;
    }
    if (conf == NULL) {
        say(text, "no", NULL, conf_err);
        return;
    }
    if (grant_key(conf->redis.prefix, &a, conf->grant.ipv6_prefix, key,
                  sizeof(key)) < 0 ||
        lookup(conf, key, user, sizeof(user), why, sizeof(why)) < 0) {
        clean(why);
        snprintf(quoted, sizeof(quoted), "\"%s\"", why);
        say(text, "tempfail", NULL, quoted);
        return;
    }
    if (user[0] == '\0') {
        say(text, "no", NULL, "\"no live grant\"");
        return;
    }
    clean(user);
    setenv("RELAYCLIENT", "", 1);
    say(text, "yes", user, NULL);
}

int cmd_checkrelay(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: authbridge [-c FILE] checkrelay PROG [ARG...]\n");
        return EX_USAGE;
    }
    /* cli_conf is NULL when the file could not be loaded (main printed
     * why): relaying is lost, not the mail service. */
    if (getenv("RELAYCLIENT") == NULL)
        decide(cli_conf, "\"configuration unusable (authbridge -t)\"");
    signal(SIGPIPE, cli_sigpipe);     /* as PROG would have had it */
    execvp(argv[1], argv + 1);
    fprintf(stderr, "authbridge checkrelay: cannot run %s: %s\n", argv[1],
            strerror(errno));
    return EXIT_EXEC_FAILED;
}
