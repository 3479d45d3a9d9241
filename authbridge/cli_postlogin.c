/*
 * postlogin PROG [ARG...]: the last link of a login chain before the mail
 * server proper (qmail-popup -> checkpassword -> authbridge postlogin
 * qmail-pop3d Maildir; Courier's login -> authbridge postlogin
 * courierpop3d ...; a Dovecot post-login script). It writes the grant for
 * the client, then execs PROG, whose first words to the client are its
 * OK: the grant is in Redis before the client can read it.
 *
 * PROG is ALWAYS exec'd, with its arguments, environment, descriptors
 * and signal dispositions as they came to us: when the environment lacks
 * the client or the user, the configuration cannot be read or Redis is
 * down or slow, the reason goes to stderr (the server's log: stdout is
 * the client's connection) and the login goes on without a grant. A hook
 * that fails must never lock a customer out of their mail.
 *
 *   client  TCPREMOTEIP (ucspi-tcp, Courier), TCP6REMOTEIP (tcpserver6),
 *           IP (Dovecot)
 *   user    AUTHENTICATED (Courier), else USER (checkpassword, Dovecot):
 *           AUTHENTICATED first, as only a login sets it, while a USER
 *           may be left over from the shell that started the server
 *
 * The grant is the store's schema (grant_cmds_put, method POSTLOGIN),
 * written within redis.timeout_ms in all, Sentinel included: a child
 * process does the Redis work and is killed at the deadline, so no step
 * of it (a sentinel that does not answer, a frozen master) can hold the
 * login longer, and PROG inherits no socket of ours.
 */
#include "authbridge/cli.h"
#include "authbridge/addr.h"
#include "authbridge/redis.h"
#include "authbridge/users.h"
#include "authbridge/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One line on stderr; the login goes on. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fputs("authbridge postlogin: ", stderr);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    fputc('\n', stderr);
}

static const char *first_env(const char *const *names)
{
    for (; *names; names++) {
        const char *v = getenv(*names);
        if (v != NULL && v[0] != '\0')
            return v;
    }
    return NULL;
}

/* The client and the user from the environment; false (noted) if not. */
static bool who(struct grant_info *g)
{
    static const char *const addrs[] = { "TCPREMOTEIP", "TCP6REMOTEIP", "IP",
                                         NULL };
    static const char *const users[] = { "AUTHENTICATED", "USER", NULL };
    const char *a = first_env(addrs), *u = first_env(users);

    if (a == NULL || addr_parse(a, &g->addr) < 0) {
        note("no grant: %s", a ? "the client address is not an IP address"
             : "no client address (TCPREMOTEIP, TCP6REMOTEIP or IP)");
        return false;
    }
    if (u == NULL || !users_valid_name(u)) {
        note("no grant for %s: %s", a, u ? "not a valid user name" :
             "no user (USER or AUTHENTICATED)");
        return false;
    }
    g->user = u;
    return true;
}

/* In the child: one MULTI/EXEC. 0, or 1 with the reason noted. */
static int write_grant(const struct grant_info *g)
{
    struct grant_cmds cmds;
    redisContext *c;
    redisReply *r = NULL;
    char err[256];
    int rc = 1;

    grant_cmds_put(&cmds, &cli_settings, g, (long long)time(NULL),
                   cli_conf->grant.ttl);
    if ((c = rconn_sync_connect(&cli_conf->redis, err, sizeof(err))) == NULL) {
        note("no grant for %s user %s: %s", addr_of_key(cmds.key), g->user, err);
        return 1;
    }
    redisAppendCommand(c, "MULTI");
    for (int i = 0; i < cmds.n; i++)
        redisAppendCommandArgv(c, cmds.cmd[i].argc, cmds.cmd[i].argv, NULL);
    redisAppendCommand(c, "EXEC");
    for (int i = 0; i < cmds.n + 2; i++) {
        freeReplyObject(r);
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL)
            break;
    }
    if (r != NULL && r->type == REDIS_REPLY_ARRAY)
        rc = 0;
    for (size_t i = 0; r && rc == 0 && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ERROR)
            rc = 1;
    if (rc != 0)
        note("no grant for %s user %s: Redis: %s", addr_of_key(cmds.key),
             g->user, c->err ? c->errstr : r && r->type == REDIS_REPLY_ERROR
             ? r->str : "the transaction failed");
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* The child's word on the pipe by the deadline: 1 written, 0 not (it
 * said why), -1 no word in time. */
static int child_result(int fd, unsigned timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t end = ab_now_ms() + timeout_ms, now;
    char ok = 0;
    int n;

    while ((now = ab_now_ms()) < end) {
        n = poll(&p, 1, (int)(end - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        return read(fd, &ok, 1) == 1 ? ok == 'y' : -1;
    }
    return -1;
}

/* The grant, within redis.timeout_ms, from a child process. */
static void grant_in_time(const struct grant_info *g)
{
    unsigned ms = cli_conf->redis.timeout_ms;
    char addr[ADDR_TEXT_MAX];
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
        note("no grant: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        close(p[0]);
        char ok = write_grant(g) == 0 ? 'y' : 'n';
        (void)!write(p[1], &ok, 1);
        _exit(0);
    }
    close(p[1]);
    if (child_result(p[0], ms) < 0) {
        kill(pid, SIGKILL);
        addr_format(&g->addr, addr);
        note("no grant for %s user %s: no answer from Redis within %u ms",
             addr, g->user, ms);
    }
    close(p[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

int cmd_postlogin(int argc, char **argv)
{
    struct grant_info g = { .method = "POSTLOGIN", .tls = false };

    if (argc < 2)
        die(EX_USAGE, "usage: postlogin PROG [ARG...]");
    if (cli_conf == NULL)
        note("no grant: the configuration cannot be used (see above)");
    else if (who(&g))
        grant_in_time(&g);
    fflush(stderr);
    signal(SIGPIPE, cli_sigpipe);     /* as PROG would have had it */
    execvp(argv[1], argv + 1);
    note("cannot run %s: %s", argv[1], strerror(errno));
    return 111;                       /* qmail's "temporary failure" */
}
