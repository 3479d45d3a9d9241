/*
 * The one configuration file shared by every program (INI, libinih).
 *
 * Every key of the contract in DESIGN.md is parsed and validated here;
 * unknown sections and keys, bad values and duplicate keys are errors that
 * name file:line. All errors are collected and reported, then the program
 * refuses to start. Relative paths are relative to the file's folder.
 *
 * List values (listen, trusted_networks, local_domains, ...) are comma
 * separated and may continue on following lines that start with a space.
 * A '#' or ';' preceded by a space starts a comment.
 */
#ifndef AB_CONF_H
#define AB_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addr.h"

struct endpoint {
    char *text;                   /* as written, for messages */
    int family;                   /* AF_INET, AF_INET6 or AF_UNIX */
    struct sockaddr_storage ss;   /* resolved, numeric */
    socklen_t sslen;
    char host[64];                /* numeric host for hiredis */
    unsigned port;
    char *path;                   /* AF_UNIX only */
};

struct endpoint_list {
    struct endpoint *v;
    size_t n;
};

struct strlist {
    char **v;
    size_t n;
};

enum plaintext_auth {
    PLAINTEXT_TLS_OR_TRUSTED,
    PLAINTEXT_ALWAYS,
    PLAINTEXT_NEVER,
};

/* [smtpgate] sender_binding: which relays must use the sender's own
 * address (smtpgate/relay.h). */
enum sender_binding {
    SENDER_BINDING_NO,
    SENDER_BINDING_GRANT,         /* relays allowed by a POP3 grant */
    SENDER_BINDING_ALL,           /* every relay: trusted, AUTH, grant */
};

enum log_target {
    LOGTARGET_STDERR,
    LOGTARGET_SYSLOG,
};

struct redis_conf {
    struct endpoint address;
    char *password;
    char *username;
    unsigned database;
    char *prefix;
    unsigned timeout_ms;
    struct endpoint_list sentinels;
    char *master_name;
    unsigned log_maxlen;          /* XADD MAXLEN ~ for the log stream */
    unsigned decisions_maxlen;    /* ... and for the decisions stream */
};

struct grant_conf {
    unsigned ttl;
    unsigned ipv6_prefix;
    unsigned replicas;            /* WAIT for this many replicas, 0 = off */
};

/* Failed-login counting, shared by pop3d and smtpgate AUTH via Redis. */
struct throttle_conf {
    unsigned window;              /* seconds a failure is remembered */
    unsigned delay_after;         /* failures before delays start */
    unsigned delay_ms;            /* first delay, doubled per failure */
    unsigned max_delay_ms;
    unsigned block_after;         /* failures before LOGIN-DELAY refusal */
    unsigned user_block_after;    /* failures per user (distributed guessing) */
};

/* What pop3d and smtpgate share: listeners, TLS, users, caps, logging. */
struct daemon_conf {
    char *user;
    struct endpoint_list listen;
    struct endpoint_list listen_tls;
    struct endpoint_list metrics_listen;  /* Prometheus /metrics, off if empty */
    char *tls_cert;
    char *tls_key;
    char *users;
    struct cidr_list trusted_networks;
    unsigned log;                 /* enum log_target */
    char *node;                   /* name written into grants and logs */
    unsigned max_connections;
    unsigned max_connections_per_addr;
    unsigned worker_threads;      /* password hashing pool, 0 = one per core */
    unsigned loops;               /* event loops, 0 = one per core */
    unsigned auth_cache_ttl;      /* seconds, 0 = no credential cache */
};

struct pop3d_conf {
    struct daemon_conf d;
    unsigned plaintext_auth;      /* enum plaintext_auth */
    unsigned login_timeout;       /* seconds before login */
    unsigned idle_timeout;        /* seconds after login (RFC 1939: >= 600) */
    unsigned auth_fail_delay_ms;
    char *lock_name;              /* lock file inside the Maildir */
};

struct smtpgate_conf {
    struct daemon_conf d;
    char *hostname;
    struct endpoint downstream;   /* family 0 when not set */
    struct endpoint_list policy_listen;
    struct endpoint_list whoson_listen;
    struct endpoint_list dovecot_listen;  /* Dovecot auth policy + events */
    char *dovecot_api_key;
    struct strlist dovecot_protocols;     /* logins from these grant */
    struct endpoint_list socketmap_listen;
    struct strlist local_domains;
    unsigned sender_binding;      /* enum sender_binding */
    bool header_from_check;       /* From:/Sender: bound too (SMTP gate) */
    char *sender_map;
    char *deny_message;
    unsigned max_message_size;
    unsigned max_recipients;
    unsigned command_timeout;
    unsigned data_timeout;
    unsigned downstream_timeout;
    unsigned auth_fail_delay_ms;
};

struct ab_conf {
    char *path;
    char *dir;                    /* folder of the file, for relative paths */
    int *key_lines;               /* per key: the line that set it, 0: default */
    struct redis_conf redis;
    struct grant_conf grant;
    struct throttle_conf throttle;
    struct pop3d_conf pop3d;
    struct smtpgate_conf smtpgate;
};

struct conf_errors {
    char **v;
    size_t n;
};

/*
 * Load and validate a file. Returns NULL when anything is wrong; every
 * problem is then in errs as "file:line: message".
 */
struct ab_conf *conf_load(const char *path, struct conf_errors *errs);
void conf_free(struct ab_conf *c);

/* The line of the file that set [section] key; 0 when it has its
 * default. */
int conf_key_line(const struct ab_conf *c, const char *section,
                  const char *key);

/*
 * What each program needs beyond a well-formed file, checked without
 * binding or connecting (conf_require.c): a user file, listeners that
 * can all be bound together, a `user` account that exists.
 */
void conf_require_pop3d(const struct ab_conf *c, struct conf_errors *errs);
void conf_require_smtpgate(const struct ab_conf *c, struct conf_errors *errs);

void conf_errors_add(struct conf_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void conf_errors_print(const struct conf_errors *errs);
void conf_errors_log(const struct conf_errors *errs);
void conf_errors_free(struct conf_errors *errs);

/* "host:port", "[v6]:port" or "unix:/path" -> endpoint. Hostnames are
 * resolved once when allow_names is set. 0 or -1 with a reason in err. */
int endpoint_parse(const char *text, bool allow_names, struct endpoint *out,
                   char *err, size_t errlen);
void endpoint_free(struct endpoint *e);

bool strlist_contains_ci(const struct strlist *l, const char *s, size_t len);

#endif
