/*
 * The admin command's shared parts: one verb per cli_*.c file, all of
 * them reading and writing the daemons' Redis schema with synchronous
 * hiredis (fine for a command; the daemons are asynchronous).
 *
 * Exit status, for every verb: 0 done, 1 nothing found (why: smtpgate
 * would refuse), 2 bad usage or configuration, 3 Redis unreachable or
 * failing.
 */
#ifndef AB_CLI_H
#define AB_CLI_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "authbridge/conf.h"
#include "authbridge/grant.h"

#define CLI_DEFAULT_CONF "/etc/authbridge/authbridge.conf"

enum { EX_OK = 0, EX_NONE = 1, EX_USAGE = 2, EX_REDIS = 3 };

/* Set by main before a verb runs. */
extern const struct ab_conf *cli_conf;
extern struct grant_settings cli_settings;
/* SIGPIPE's disposition before main ignored it (postlogin restores it
 * for the program it runs). */
extern void (*cli_sigpipe)(int);

/* One line on stderr, control bytes escaped, then exit(code). */
_Noreturn void die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- Redis (cli_redis.c) -------------------------------------------------- */

redisContext *connect_or_die(void);
redisReply *command_or_die(redisContext *c, int argc, const char **argv);
redisReply *reply_or_die(redisContext *c);
/* Run a MULTI ... EXEC body; returns EXEC's reply. */
redisReply *transaction_or_die(redisContext *c, const struct grant_cmds *g);

/* ---- grants (cli_grants.c) ------------------------------------------------ */

struct grant_row {
    char *addr, *user, *node, *method;
    long long since, renewed, logins, ttl;
    int tls;
};

struct rows {
    struct grant_row *v;
    size_t n;
};

/* A row from HGETALL + TTL replies of key; false when there is no grant. */
bool grant_row_from(struct grant_row *row, const char *key,
                    const redisReply *h, const redisReply *ttl);
void grant_row_free(struct grant_row *g);
/* Every live grant (SCAN + HGETALL + TTL). */
void scan_grants(redisContext *c, struct rows *out);
void rows_free(struct rows *r);
/* The address part of a full grant key. */
const char *addr_of_key(const char *key);
/* The key an admin means by ADDR (an address or an IPv6 /prefix); dies
 * with EX_USAGE on anything else. */
void key_for_arg(const char *arg, char *key, size_t keylen);

/* ---- formatting (cli_format.c) -------------------------------------------- */

const char *fmt_time(long long t, char *buf, size_t len);
const char *fmt_duration(long long s, char *buf, size_t len);
void json_str(const char *s);
/* Text from Redis made safe for a terminal (cli_format.c): a new string. */
char *text_safe(const char *s, bool quote);
void print_safe(const char *s, bool quote);

/* ---- the verbs ------------------------------------------------------------ */

int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_grant(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_stats(int argc, char **argv);
/* Runs also when the configuration cannot be loaded (cli_conf NULL). */
int cmd_postlogin(int argc, char **argv);
int cmd_why(int argc, char **argv);
/* Runs also when the configuration cannot be loaded: it execs its
 * program whatever the file says (cli_checkrelay.c). */
int cmd_checkrelay(int argc, char **argv);

#endif
