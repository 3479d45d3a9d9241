/*
 * The synchronous connection for the admin command (redis.h): Sentinel
 * discovery, AUTH and SELECT. Apart from redis.c, so the command links
 * hiredis alone, not the daemons' async connection (libevent, libcrypto).
 */
#include "redis.h"
#include "conf.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

/* ---- synchronous, for the admin command ---------------------------------- */

static redisContext *sync_open(const char *host, unsigned port, const char *path,
                               unsigned timeout_ms)
{
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    redisContext *c;

    c = path ? redisConnectUnixWithTimeout(path, tv)
             : redisConnectWithTimeout(host, (int)port, tv);
    if (c != NULL && !c->err)
        redisSetTimeout(c, tv);
    return c;
}

static int sync_find_master(const struct redis_conf *conf, char *host,
                            size_t hostlen, unsigned *port)
{
    for (size_t i = 0; i < conf->sentinels.n; i++) {
        const struct endpoint *s = &conf->sentinels.v[i];
        redisContext *c = sync_open(s->host, s->port, NULL, conf->timeout_ms);
        redisReply *r;
        uint64_t p;

        if (c == NULL || c->err) {
            redisFree(c);
            continue;
        }
        r = redisCommand(c, "SENTINEL get-master-addr-by-name %s",
                         conf->master_name);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING &&
            ab_parse_uint(r->element[1]->str, 1, 65535, &p) == 0) {
            snprintf(host, hostlen, "%s", r->element[0]->str);
            *port = (unsigned)p;
            freeReplyObject(r);
            redisFree(c);
            return 0;
        }
        freeReplyObject(r);
        redisFree(c);
    }
    return -1;
}

static int sync_setup(redisContext *c, const struct redis_conf *conf,
                      char *err, size_t errlen)
{
    redisReply *r = NULL;
    char db[16];

    if (conf->password[0] && conf->username[0])
        r = redisCommand(c, "AUTH %s %s", conf->username, conf->password);
    else if (conf->password[0])
        r = redisCommand(c, "AUTH %s", conf->password);
    if (r && r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "AUTH refused: %s", r->str);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    if (conf->database == 0)
        return 0;
    snprintf(db, sizeof(db), "%u", conf->database);
    r = redisCommand(c, "SELECT %s", db);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "SELECT %s failed: %s", db,
                 r ? r->str : c->errstr);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

redisContext *rconn_sync_connect(const struct redis_conf *conf, char *err,
                                 size_t errlen)
{
    char host[64];
    unsigned port;
    const char *where = conf->address.text;
    redisContext *c;

    if (conf->sentinels.n > 0) {
        if (sync_find_master(conf, host, sizeof(host), &port) < 0) {
            snprintf(err, errlen, "no sentinel knows master '%s'",
                     conf->master_name);
            return NULL;
        }
        c = sync_open(host, port, NULL, conf->timeout_ms);
        where = host;
    } else {
        c = sync_open(conf->address.host, conf->address.port,
                      conf->address.path, conf->timeout_ms);
    }
    if (c == NULL || c->err) {
        snprintf(err, errlen, "cannot connect to Redis at %s: %s", where,
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    if (sync_setup(c, conf, err, errlen) < 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}
