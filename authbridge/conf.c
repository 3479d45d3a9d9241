#include "conf.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libinih is built with INI_MAX_LINE 200: longer lines are our error,
 * reported as such, rather than silently split in two by the library. */
#define CONF_LINE_MAX (INI_MAX_LINE - 2)

/* A K_ENUM value's other spelling (matched ignoring case), e.g. a key
 * that used to be yes/no. */
struct enum_alias {
    const char *name;
    unsigned value;
};

enum key_type {
    K_STR,        /* free text */
    K_NAME,       /* text without spaces or control characters */
    K_PATH,       /* file name, relative to the config file's folder */
    K_UINT,       /* number in [min, max] */
    K_BOOL,
    K_ENUM,       /* one of names[] */
    K_ENDPOINT,   /* one host:port or unix:/path, names resolved */
    K_LISTEN,     /* list of numeric host:port */
    K_ENDPOINTS,  /* list of host:port, names resolved */
    K_CIDRS,
    K_DOMAINS,
};

struct key_def {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;
    unsigned min, max;
    const char *const *names;     /* K_ENUM */
    const char *dflt;             /* applied before the file is read */
};

static const char *const plaintext_names[] = {
    "tls-or-trusted", "always", "never", NULL
};
static const char *const log_names[] = { "stderr", "syslog", NULL };
/* In the order of enum sender_binding. It was a yes/no key: those
 * spellings keep their meaning ("yes" = grant, as before). */
static const char *const binding_names[] = { "no", "grant", "all", NULL };
static const struct enum_alias binding_aliases[] = {
    { "yes", SENDER_BINDING_GRANT }, { "true", SENDER_BINDING_GRANT },
    { "on", SENDER_BINDING_GRANT }, { "1", SENDER_BINDING_GRANT },
    { "false", SENDER_BINDING_NO }, { "off", SENDER_BINDING_NO },
    { "0", SENDER_BINDING_NO }, { NULL, 0 },
};

/* The aliases of each K_ENUM names[] that has some. */
static const struct {
    const char *const *names;
    const struct enum_alias *aliases;
} enum_aliases[] = {
    { binding_names, binding_aliases },
};

static const struct enum_alias *aliases_of(const char *const *names)
{
    for (size_t i = 0; i < sizeof(enum_aliases) / sizeof(enum_aliases[0]); i++)
        if (enum_aliases[i].names == names)
            return enum_aliases[i].aliases;
    return NULL;
}

#define OFF(field) offsetof(struct ab_conf, field)
#define DAEMON_KEYS(sec, s, port, tlsport)                                    \
    { sec, "user", K_NAME, OFF(s.d.user), 0, 0, NULL, "" },                   \
    { sec, "listen", K_LISTEN, OFF(s.d.listen), 0, 0, NULL, port },           \
    { sec, "listen_tls", K_LISTEN, OFF(s.d.listen_tls), 0, 0, NULL, tlsport },\
    { sec, "metrics_listen", K_LISTEN, OFF(s.d.metrics_listen), 0, 0, NULL,   \
      "" },                                                                   \
    { sec, "tls_cert", K_PATH, OFF(s.d.tls_cert), 0, 0, NULL, "" },           \
    { sec, "tls_key", K_PATH, OFF(s.d.tls_key), 0, 0, NULL, "" },             \
    { sec, "users", K_PATH, OFF(s.d.users), 0, 0, NULL, "" },                 \
    { sec, "trusted_networks", K_CIDRS, OFF(s.d.trusted_networks), 0, 0,      \
      NULL, "127.0.0.0/8, ::1/128" },                                         \
    { sec, "log", K_ENUM, OFF(s.d.log), 0, 0, log_names, "stderr" },          \
    { sec, "node", K_NAME, OFF(s.d.node), 0, 0, NULL, "" },                   \
    { sec, "max_connections", K_UINT, OFF(s.d.max_connections), 1, 1000000,   \
      NULL, "20000" },                                                        \
    { sec, "max_connections_per_addr", K_UINT,                                \
      OFF(s.d.max_connections_per_addr), 1, 1000000, NULL, "50" },            \
    { sec, "worker_threads", K_UINT, OFF(s.d.worker_threads), 0, 256, NULL,   \
      "0" },                                                                  \
    { sec, "loops", K_UINT, OFF(s.d.loops), 0, 256, NULL, "0" },              \
    { sec, "auth_cache_ttl", K_UINT, OFF(s.d.auth_cache_ttl), 0, 3600, NULL,  \
      "0" }

static const struct key_def keys[] = {
    { "redis", "address", K_ENDPOINT, OFF(redis.address), 0, 0, NULL,
      "127.0.0.1:6379" },
    { "redis", "password", K_STR, OFF(redis.password), 0, 0, NULL, "" },
    { "redis", "username", K_NAME, OFF(redis.username), 0, 0, NULL, "" },
    { "redis", "database", K_UINT, OFF(redis.database), 0, 65535, NULL, "0" },
    { "redis", "prefix", K_NAME, OFF(redis.prefix), 0, 0, NULL, "authbridge:" },
    { "redis", "timeout_ms", K_UINT, OFF(redis.timeout_ms), 10, 60000, NULL,
      "500" },
    { "redis", "sentinels", K_ENDPOINTS, OFF(redis.sentinels), 0, 0, NULL, "" },
    { "redis", "master_name", K_NAME, OFF(redis.master_name), 0, 0, NULL,
      "mymaster" },
    { "redis", "log_maxlen", K_UINT, OFF(redis.log_maxlen), 100, 100000000,
      NULL, "100000" },
    { "redis", "decisions_maxlen", K_UINT, OFF(redis.decisions_maxlen), 100,
      100000000, NULL, "100000" },

    { "grant", "ttl", K_UINT, OFF(grant.ttl), 1, 604800, NULL, "1800" },
    { "grant", "ipv6_prefix", K_UINT, OFF(grant.ipv6_prefix), 16, 128, NULL,
      "128" },
    { "grant", "replicas", K_UINT, OFF(grant.replicas), 0, 64, NULL, "0" },

    { "throttle", "window", K_UINT, OFF(throttle.window), 1, 86400, NULL,
      "900" },
    { "throttle", "delay_after", K_UINT, OFF(throttle.delay_after), 0, 1000000,
      NULL, "3" },
    { "throttle", "delay_ms", K_UINT, OFF(throttle.delay_ms), 0, 60000, NULL,
      "500" },
    { "throttle", "max_delay_ms", K_UINT, OFF(throttle.max_delay_ms), 0, 60000,
      NULL, "8000" },
    { "throttle", "block_after", K_UINT, OFF(throttle.block_after), 1, 1000000,
      NULL, "20" },
    { "throttle", "user_block_after", K_UINT, OFF(throttle.user_block_after),
      1, 1000000, NULL, "50" },

    DAEMON_KEYS("pop3d", pop3d, "0.0.0.0:110", ""),
    { "pop3d", "plaintext_auth", K_ENUM, OFF(pop3d.plaintext_auth), 0, 0,
      plaintext_names, "tls-or-trusted" },
    { "pop3d", "login_timeout", K_UINT, OFF(pop3d.login_timeout), 1, 3600,
      NULL, "60" },
    { "pop3d", "idle_timeout", K_UINT, OFF(pop3d.idle_timeout), 1, 86400,
      NULL, "600" },
    { "pop3d", "auth_fail_delay_ms", K_UINT, OFF(pop3d.auth_fail_delay_ms),
      0, 60000, NULL, "1000" },
    { "pop3d", "lock_name", K_NAME, OFF(pop3d.lock_name), 0, 0, NULL,
      "authbridge-pop3.lock" },

    DAEMON_KEYS("smtpgate", smtpgate, "0.0.0.0:25", ""),
    { "smtpgate", "hostname", K_NAME, OFF(smtpgate.hostname), 0, 0, NULL, "" },
    { "smtpgate", "downstream", K_ENDPOINT, OFF(smtpgate.downstream), 0, 0,
      NULL, "" },
    { "smtpgate", "policy_listen", K_LISTEN, OFF(smtpgate.policy_listen), 0, 0,
      NULL, "" },
    { "smtpgate", "whoson_listen", K_LISTEN, OFF(smtpgate.whoson_listen), 0, 0,
      NULL, "" },
    { "smtpgate", "dovecot_listen", K_LISTEN, OFF(smtpgate.dovecot_listen), 0,
      0, NULL, "" },
    /* A secret: K_STR, so that no error message repeats it; its characters
     * are checked in conf_require_smtpgate. */
    { "smtpgate", "dovecot_api_key", K_STR, OFF(smtpgate.dovecot_api_key), 0,
      0, NULL, "" },
    /* Protocol names are single labels: the domain list's syntax fits. */
    { "smtpgate", "dovecot_protocols", K_DOMAINS,
      OFF(smtpgate.dovecot_protocols), 0, 0, NULL, "pop3, imap" },
    { "smtpgate", "socketmap_listen", K_LISTEN, OFF(smtpgate.socketmap_listen),
      0, 0, NULL, "" },
    { "smtpgate", "local_domains", K_DOMAINS, OFF(smtpgate.local_domains), 0, 0,
      NULL, "" },
    { "smtpgate", "sender_binding", K_ENUM, OFF(smtpgate.sender_binding), 0, 0,
      binding_names, "no" },
    { "smtpgate", "header_from_check", K_BOOL, OFF(smtpgate.header_from_check),
      0, 0, NULL, "no" },
    { "smtpgate", "sender_map", K_PATH, OFF(smtpgate.sender_map), 0, 0, NULL,
      "" },
    { "smtpgate", "deny_message", K_STR, OFF(smtpgate.deny_message), 0, 0, NULL,
      "Relaying denied. Check your mail (POP3) first, or use SMTP AUTH." },
    { "smtpgate", "max_message_size", K_UINT, OFF(smtpgate.max_message_size),
      1024, 2000000000, NULL, "52428800" },
    { "smtpgate", "max_recipients", K_UINT, OFF(smtpgate.max_recipients),
      100, 100000, NULL, "100" },
    { "smtpgate", "command_timeout", K_UINT, OFF(smtpgate.command_timeout),
      1, 3600, NULL, "300" },
    { "smtpgate", "data_timeout", K_UINT, OFF(smtpgate.data_timeout),
      1, 3600, NULL, "180" },
    { "smtpgate", "downstream_timeout", K_UINT,
      OFF(smtpgate.downstream_timeout), 1, 3600, NULL, "300" },
    { "smtpgate", "auth_fail_delay_ms", K_UINT,
      OFF(smtpgate.auth_fail_delay_ms), 0, 60000, NULL, "1000" },
};

static const char *const sections[] = {
    "redis", "grant", "throttle", "pop3d", "smtpgate"
};

struct parse_state {
    struct ab_conf *conf;
    struct conf_errors *errs;
    FILE *fp;
    int lineno;
    bool continuation;            /* current line continues the last key */
    bool have_key;                /* a key line came since the last section */
    bool section_known;
    int seen[AB_ARRAY_LEN(keys)]; /* line that set the key, 0 = not yet */
    bool defaults;                /* applying defaults, no file:line */
};

void conf_errors_add(struct conf_errors *errs, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    errs->v = ab_realloc(errs->v, (errs->n + 1) * sizeof(*errs->v));
    errs->v[errs->n++] = ab_strdup(buf);
}

void conf_errors_print(const struct conf_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->v[i]);
}

void conf_errors_log(const struct conf_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        log_err("event=config_error msg=%s", log_esc(errs->v[i]));
}

void conf_errors_free(struct conf_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        free(errs->v[i]);
    free(errs->v);
    errs->v = NULL;
    errs->n = 0;
}

static void perr(struct parse_state *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void perr(struct parse_state *ps, const char *fmt, ...)
{
    char buf[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (ps->defaults)
        fatalx("built-in default is invalid: %s", buf);
    conf_errors_add(ps->errs, "%s:%d: %s", ps->conf->path, ps->lineno, buf);
}

/* ---- typed values ---------------------------------------------------- */

static bool is_name(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    return true;
}

static char *resolve_path(const struct ab_conf *c, const char *v)
{
    char *p;

    if (v[0] == '\0' || v[0] == '/')
        return ab_strdup(v);
    p = ab_malloc(strlen(c->dir) + strlen(v) + 2);
    sprintf(p, "%s/%s", c->dir, v);
    return p;
}

/* A valid domain: labels of letters, digits and '-', 1..63 each, no
 * leading or trailing '-'; kept lower-case, without a trailing dot. */
static int domain_normalise(char *d)
{
    size_t len = strlen(d), label = 0;

    if (len > 0 && d[len - 1] == '.')
        d[--len] = '\0';
    if (len == 0 || len > 253)
        return -1;
    for (size_t i = 0; i <= len; i++) {
        char ch = d[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > 63 || d[i - 1] == '-')
                return -1;
            label = 0;
            continue;
        }
        if (ch >= 'A' && ch <= 'Z')
            d[i] = (char)(ch + 32);
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                   ch == '-'))
            return -1;
        if (label == 0 && ch == '-')
            return -1;
        label++;
    }
    return 0;
}

bool strlist_contains_ci(const struct strlist *l, const char *s, size_t len)
{
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->v[i]) == len && ab_strncaseeq(l->v[i], s, len))
            return true;
    return false;
}

typedef int (*item_fn)(struct parse_state *ps, const struct key_def *k,
                       void *field, const char *item);

static int item_listen(struct parse_state *ps, const struct key_def *k,
                       void *field, const char *item)
{
    struct endpoint_list *l = field;
    struct endpoint e;
    char err[256];

    if (endpoint_parse(item, k->type == K_ENDPOINTS, &e, err, sizeof(err)) < 0) {
        perr(ps, "%s: %s", k->name, err);
        return -1;
    }
    l->v = ab_realloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = e;
    return 0;
}

static int item_cidr(struct parse_state *ps, const struct key_def *k,
                     void *field, const char *item)
{
    struct cidr_list *l = field;
    struct cidr c;
    char err[256];

    if (cidr_parse(item, &c, err, sizeof(err)) < 0) {
        perr(ps, "%s: %s", k->name, err);
        return -1;
    }
    l->v = ab_realloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = c;
    return 0;
}

static int item_domain(struct parse_state *ps, const struct key_def *k,
                       void *field, const char *item)
{
    struct strlist *l = field;
    char *d = ab_strdup(item);

    if (domain_normalise(d) < 0) {
        perr(ps, "%s: '%s' is not a %s name", k->name, item,
             strcmp(k->name, "dovecot_protocols") == 0 ? "protocol" : "domain");
        free(d);
        return -1;
    }
    l->v = ab_realloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = d;
    return 0;
}

static void list_clear(const struct key_def *k, void *field)
{
    switch (k->type) {
    case K_LISTEN:
    case K_ENDPOINTS: {
        struct endpoint_list *l = field;
        for (size_t i = 0; i < l->n; i++)
            endpoint_free(&l->v[i]);
        free(l->v);
        memset(l, 0, sizeof(*l));
        break;
    }
    case K_CIDRS: {
        struct cidr_list *l = field;
        free(l->v);
        memset(l, 0, sizeof(*l));
        break;
    }
    case K_DOMAINS: {
        struct strlist *l = field;
        for (size_t i = 0; i < l->n; i++)
            free(l->v[i]);
        free(l->v);
        memset(l, 0, sizeof(*l));
        break;
    }
    default:
        break;
    }
}

/*
 * Comma-separated items. An empty item ("a,,b") is an error: the daemon
 * would not do what the line seems to say (one of two meant items is
 * missing). A comma ending a line (the list goes on below) or starting
 * a continuation line is layout, not an item.
 */
static int set_list(struct parse_state *ps, const struct key_def *k,
                    void *field, const char *value)
{
    item_fn fn = k->type == K_CIDRS ? item_cidr :
                 k->type == K_DOMAINS ? item_domain : item_listen;
    char *copy = ab_strdup(value), *p = copy;
    int rc = 0;

    for (unsigned i = 0; p != NULL; i++) {
        char *comma = strchr(p, ',');
        char *item;
        if (comma != NULL)
            *comma = '\0';
        item = ab_trim(p);
        p = comma ? comma + 1 : NULL;
        if (*item != '\0') {
            if (fn(ps, k, field, item) < 0)
                rc = -1;
        } else if ((p == NULL && i > 0) || (i == 0 && ps->continuation) ||
                   (i == 0 && p == NULL)) {
            continue;             /* layout, or an empty value */
        } else {
            perr(ps, "%s: empty item in the list (two commas in a row, or "
                 "one at the start)", k->name);
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

static int set_scalar(struct parse_state *ps, const struct key_def *k,
                      void *field, const char *value)
{
    char err[256];
    uint64_t n;

    switch (k->type) {
    case K_NAME:
        if (!is_name(value)) {
            perr(ps, "%s: '%s' must not contain spaces or control characters",
                 k->name, value);
            return -1;
        }
        /* fall through */
    case K_STR:
        free(*(char **)field);
        *(char **)field = ab_strdup(value);
        return 0;
    case K_PATH:
        free(*(char **)field);
        *(char **)field = resolve_path(ps->conf, value);
        return 0;
    case K_UINT:
        if (ab_parse_uint(value, k->min, k->max, &n) < 0) {
            perr(ps, "%s: '%s' is not a number from %u to %u", k->name, value,
                 k->min, k->max);
            return -1;
        }
        *(unsigned *)field = (unsigned)n;
        return 0;
    case K_BOOL:
        if (ab_strcaseeq(value, "yes") || ab_strcaseeq(value, "true") ||
            ab_strcaseeq(value, "on") || strcmp(value, "1") == 0)
            *(bool *)field = true;
        else if (ab_strcaseeq(value, "no") || ab_strcaseeq(value, "false") ||
                 ab_strcaseeq(value, "off") || strcmp(value, "0") == 0)
            *(bool *)field = false;
        else {
            perr(ps, "%s: '%s' is not yes or no", k->name, value);
            return -1;
        }
        return 0;
    case K_ENUM:
        for (unsigned i = 0; k->names[i]; i++) {
            if (strcmp(value, k->names[i]) == 0) {
                *(unsigned *)field = i;
                return 0;
            }
        }
        for (const struct enum_alias *a = aliases_of(k->names); a && a->name;
             a++) {
            if (ab_strcaseeq(value, a->name)) {
                *(unsigned *)field = a->value;
                return 0;
            }
        }
        err[0] = '\0';
        for (unsigned i = 0; k->names[i]; i++)
            snprintf(err + strlen(err), sizeof(err) - strlen(err), "%s%s",
                     i ? ", " : "", k->names[i]);
        perr(ps, "%s: '%s' is not one of: %s", k->name, value, err);
        return -1;
    case K_ENDPOINT: {
        struct endpoint *e = field;
        endpoint_free(e);
        if (value[0] == '\0')
            return 0;
        if (endpoint_parse(value, true, e, err, sizeof(err)) < 0) {
            perr(ps, "%s: %s", k->name, err);
            return -1;
        }
        return 0;
    }
    default:
        fatalx("set_scalar: type %d", k->type);
    }
}

static bool is_list(const struct key_def *k)
{
    return k->type == K_LISTEN || k->type == K_ENDPOINTS ||
           k->type == K_CIDRS || k->type == K_DOMAINS;
}

static int key_apply(struct parse_state *ps, size_t i, const char *value)
{
    const struct key_def *k = &keys[i];
    void *field = (char *)ps->conf + k->offset;

    if (ps->continuation) {
        if (!is_list(k)) {
            perr(ps, "%s: only list values may continue on the next line",
                 k->name);
            return -1;
        }
        return set_list(ps, k, field, value);
    }
    if (ps->seen[i]) {
        perr(ps, "%s: given twice in [%s]", k->name, k->section);
        return -1;
    }
    ps->seen[i] = ps->defaults ? 0 : ps->lineno;
    if (is_list(k)) {
        list_clear(k, field);     /* the file replaces the default list */
        return set_list(ps, k, field, value);
    }
    return set_scalar(ps, k, field, value);
}

static int ini_cb(void *user, const char *section, const char *name,
                  const char *value)
{
    struct parse_state *ps = user;

    if (!ps->section_known)
        return 1;                 /* already reported at the section line */
    for (size_t i = 0; i < AB_ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].section, section) == 0 &&
            strcmp(keys[i].name, name) == 0) {
            key_apply(ps, i, value);
            return 1;
        }
    if (section[0] == '\0')
        perr(ps, "'%s' is outside any [section]", name);
    else
        perr(ps, "unknown key '%s' in [%s]", name, section);
    return 1;
}

/* ---- the line reader: counts lines and checks syntax for libinih ------ */

static bool section_known(const char *name, size_t len)
{
    for (size_t i = 0; i < AB_ARRAY_LEN(sections); i++)
        if (strlen(sections[i]) == len && memcmp(sections[i], name, len) == 0)
            return true;
    return false;
}

/* Cut a '#' or ';' comment that follows a space (inih only knows ';'). */
static void strip_comment(char *line)
{
    for (char *p = line + 1; *p; p++)
        if ((*p == '#' || *p == ';') && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
}

static bool valid_key_line(const char *s)
{
    const char *eq = strchr(s, '=');
    const char *p = s;

    if (eq == NULL || eq == s)
        return false;
    while (p < eq && ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      *p == '_'))
        p++;
    while (p < eq && (*p == ' ' || *p == '\t'))
        p++;
    return p == eq;
}

/* Check one line; returns what inih should see (possibly "" to skip it). */
static const char *check_line(struct parse_state *ps, char *line)
{
    char *s;

    ps->continuation = false;
    if (line[0] == '#' || line[0] == ';')
        return "";
    strip_comment(line);
    s = ab_trim(line);
    if (*s == '\0')
        return "";
    /* An indented line continues the previous list value; an indented
     * "key = value" is just an indented key (inih would take it as a
     * continuation of the previous key, a classic surprise). */
    if ((line[0] == ' ' || line[0] == '\t') && strchr(s, '=') == NULL &&
        s[0] != '[') {
        /* inih would read it as a key line without '=' and drop it. */
        if (!ps->have_key) {
            perr(ps, "indented line '%s' continues no key", s);
            return "";
        }
        ps->continuation = true;
        return line;
    }
    ps->have_key = false;
    if (*s == '[') {
        size_t len = strlen(s);
        if (len < 3 || s[len - 1] != ']') {
            perr(ps, "malformed section header '%s'", s);
            ps->section_known = false;
            return "";
        }
        ps->section_known = section_known(s + 1, len - 2);
        if (!ps->section_known)
            perr(ps, "unknown section [%.*s]", (int)(len - 2), s + 1);
        return s;
    }
    if (!valid_key_line(s)) {
        perr(ps, "expected 'key = value' (lower-case key), got '%s'", s);
        return "";
    }
    ps->have_key = true;
    return s;
}

static char *conf_reader(char *str, int num, void *stream)
{
    struct parse_state *ps = stream;
    char line[4096];
    size_t len;
    const char *out;

    if (fgets(line, sizeof(line), ps->fp) == NULL)
        return NULL;
    ps->lineno++;
    len = strlen(line);
    if (len > 0 && line[len - 1] == '\n')
        line[--len] = '\0';
    else if (!feof(ps->fp)) {
        int ch;                   /* swallow the rest of an endless line */
        while ((ch = fgetc(ps->fp)) != EOF && ch != '\n')
            ;
        len = CONF_LINE_MAX + 1;
    }
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    if (memchr(line, '\0', len) != NULL && strlen(line) != len) {
        perr(ps, "NUL byte in line");
        out = "";
    } else if (len > CONF_LINE_MAX) {
        perr(ps, "line longer than %d characters (continue lists on an "
             "indented next line)", CONF_LINE_MAX);
        out = "";
    } else {
        out = check_line(ps, line);
    }
    snprintf(str, (size_t)num, "%s\n", out);
    return str;
}

/* ---- load ------------------------------------------------------------ */

static void apply_defaults(struct parse_state *ps)
{
    ps->defaults = true;
    ps->section_known = true;
    for (size_t i = 0; i < AB_ARRAY_LEN(keys); i++)
        key_apply(ps, i, keys[i].dflt);
    ps->defaults = false;
}

static void default_node(char **node)
{
    char host[256];

    if (**node != '\0')
        return;
    if (gethostname(host, sizeof(host)) < 0)
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = '\0';
    free(*node);
    *node = ab_strdup(host);
}

/* The line that set a key, for errors found after the whole file is read. */
static int key_line(const struct parse_state *ps, const char *section,
                    const char *name)
{
    for (size_t i = 0; i < AB_ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].section, section) == 0 &&
            strcmp(keys[i].name, name) == 0)
            return ps->seen[i];
    fatalx("key_line: no key [%s] %s", section, name);
}

int conf_key_line(const struct ab_conf *c, const char *section,
                  const char *key)
{
    for (size_t i = 0; i < AB_ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].section, section) == 0 &&
            strcmp(keys[i].name, key) == 0)
            return c->key_lines ? c->key_lines[i] : 0;
    fatalx("conf_key_line: no key [%s] %s", section, key);
}

static void check_cross(struct parse_state *ps)
{
    struct ab_conf *c = ps->conf;
    const struct throttle_conf *t = &c->throttle;

    default_node(&c->pop3d.d.node);
    default_node(&c->smtpgate.d.node);
    if (c->smtpgate.hostname[0] == '\0') {
        free(c->smtpgate.hostname);
        c->smtpgate.hostname = ab_strdup(c->smtpgate.d.node);
    }
    /* The defaults pass these checks: a failing one names a key of the file. */
    if (strlen(c->redis.prefix) > 128) {
        ps->lineno = key_line(ps, "redis", "prefix");
        perr(ps, "prefix: longer than 128 characters");
    }
    if (t->max_delay_ms < t->delay_ms) {
        ps->lineno = key_line(ps, "throttle", "max_delay_ms");
        if (ps->lineno != 0)
            perr(ps, "max_delay_ms: below delay_ms (%u)", t->delay_ms);
        else {
            ps->lineno = key_line(ps, "throttle", "delay_ms");
            perr(ps, "delay_ms: above max_delay_ms (%u)", t->max_delay_ms);
        }
    }
}

static char *dir_of(const char *path)
{
    char abs[PATH_MAX];
    char *slash;

    if (realpath(path, abs) == NULL)
        snprintf(abs, sizeof(abs), "%s", path);
    slash = strrchr(abs, '/');
    if (slash == NULL)
        return ab_strdup(".");
    if (slash == abs)
        return ab_strdup("/");
    return ab_strndup(abs, (size_t)(slash - abs));
}

struct ab_conf *conf_load(const char *path, struct conf_errors *errs)
{
    struct parse_state ps;
    struct ab_conf *c = ab_calloc(1, sizeof(*c));
    size_t before = errs->n;

    c->path = ab_strdup(path);
    c->dir = dir_of(path);
    memset(&ps, 0, sizeof(ps));
    ps.conf = c;
    ps.errs = errs;
    apply_defaults(&ps);

    ps.fp = fopen(path, "r");
    if (ps.fp == NULL) {
        conf_errors_add(errs, "%s: %s", path, strerror(errno));
        conf_free(c);
        return NULL;
    }
    ps.section_known = true;
    ini_parse_stream(conf_reader, &ps, ini_cb, &ps);
    fclose(ps.fp);
    check_cross(&ps);
    c->key_lines = ab_malloc(sizeof(ps.seen));
    memcpy(c->key_lines, ps.seen, sizeof(ps.seen));
    if (errs->n > before) {
        conf_free(c);
        return NULL;
    }
    return c;
}

void conf_free(struct ab_conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < AB_ARRAY_LEN(keys); i++) {
        const struct key_def *k = &keys[i];
        void *field = (char *)c + k->offset;
        if (is_list(k))
            list_clear(k, field);
        else if (k->type == K_ENDPOINT)
            endpoint_free(field);
        else if (k->type == K_STR || k->type == K_NAME || k->type == K_PATH)
            free(*(char **)field);
    }
    free(c->path);
    free(c->dir);
    free(c->key_lines);
    free(c);
}
