/*
 * The grant schema's commands (grant.h): the key of an address and the
 * exact commands of a write. Pure, no I/O, shared by the async store
 * (grant.c) and the admin command, which links only this: grant.c needs
 * the async Redis connection (libevent, and libcrypto for its scripts),
 * and every run of `authbridge checkrelay` would pay for loading them.
 */
#include "grant.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* ---- the schema -------------------------------------------------------- */

int grant_key(const char *prefix, const struct ab_addr *a, unsigned ipv6_prefix,
              char *out, size_t outlen)
{
    char text[ADDR_TEXT_MAX];
    int n;

    addr_grant_text(a, ipv6_prefix, text);
    n = snprintf(out, outlen, "%sgrant:%s", prefix, text);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* The address part of a key: what log entries and admins call "addr". */
static const char *addr_of_key(const char *prefix, const char *key)
{
    return key + strlen(prefix) + strlen("grant:");
}

static void cmds_common(struct grant_cmds *c, const struct grant_settings *s)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->logkey, sizeof(c->logkey), "%slog", s->prefix);
    snprintf(c->maxlen, sizeof(c->maxlen), "%u", s->log_maxlen);
}

/* Append one command; argv is NULL-terminated. */
static void cmds_add(struct grant_cmds *c, const char *const *argv)
{
    int i = 0;

    for (; argv[i] != NULL; i++)
        c->argv[c->n][i] = argv[i];
    c->cmd[c->n].argc = i;
    c->cmd[c->n].argv = c->argv[c->n];
    c->cmd[c->n].argvlen = NULL;
    c->n++;
}

const char grant_put_script[] =
    "redis.call('HSETNX', KEYS[1], 'since', ARGV[2])\n"
    "redis.call('HSET', KEYS[1], 'user', ARGV[1], 'renewed', ARGV[2],\n"
    "           'node', ARGV[3], 'method', ARGV[4], 'tls', ARGV[5])\n"
    "local n = redis.call('HINCRBY', KEYS[1], 'logins', 1)\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[6])\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'event',\n"
    "           'grant', 'addr', ARGV[8], 'user', ARGV[1], 'method', ARGV[4],\n"
    "           'tls', ARGV[5], 'node', ARGV[3], 'ttl', ARGV[6])\n"
    "return n\n";

static void script_args(struct grant_cmds *c, const struct grant_info *g,
                        const char *node, const char *addr)
{
    const char *v[] = { c->key, c->logkey, g->user, c->when, node, g->method,
                        c->tls, c->ttl, c->maxlen, addr };

    memcpy(c->script_argv, v, sizeof(v));
    c->script_argc = (int)AB_ARRAY_LEN(v);
}

void grant_cmds_put(struct grant_cmds *c, const struct grant_settings *s,
                    const struct grant_info *g, long long when, unsigned ttl)
{
    const char *addr, *node = g->node ? g->node : s->node;

    cmds_common(c, s);
    if (grant_key(s->prefix, &g->addr, s->ipv6_prefix, c->key,
                  sizeof(c->key)) < 0)
        fatalx("grant key does not fit in %d bytes", GRANT_KEY_MAX);
    addr = addr_of_key(s->prefix, c->key);
    snprintf(c->when, sizeof(c->when), "%lld", when);
    snprintf(c->ttl, sizeof(c->ttl), "%u", ttl);
    c->tls[0] = g->tls ? '1' : '0';
    cmds_add(c, (const char *[]){ "HSETNX", c->key, "since", c->when, NULL });
    cmds_add(c, (const char *[]){ "HSET", c->key, "user", g->user,
             "renewed", c->when, "node", node, "method", g->method,
             "tls", c->tls, NULL });
    cmds_add(c, (const char *[]){ "HINCRBY", c->key, "logins", "1", NULL });
    cmds_add(c, (const char *[]){ "EXPIRE", c->key, c->ttl, NULL });
    cmds_add(c, (const char *[]){ "XADD", c->logkey, "MAXLEN", "~", c->maxlen,
             "*", "event", "grant", "addr", addr, "user", g->user,
             "method", g->method, "tls", c->tls, "node", node,
             "ttl", c->ttl, NULL });
    script_args(c, g, node, addr);
}

void grant_cmds_revoke(struct grant_cmds *c, const struct grant_settings *s,
                       const char *key, const char *by)
{
    cmds_common(c, s);
    snprintf(c->key, sizeof(c->key), "%s", key);
    cmds_add(c, (const char *[]){ "DEL", c->key, NULL });
    cmds_add(c, (const char *[]){ "XADD", c->logkey, "MAXLEN", "~", c->maxlen,
             "*", "event", "revoke", "addr", addr_of_key(s->prefix, c->key),
             "by", by, "node", s->node, NULL });
}

