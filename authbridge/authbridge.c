/*
 * authbridge: the admin command. One verb per cli_*.c file (cli.h); this
 * file reads the options and the configuration and runs the verb.
 */
#include "authbridge/cli.h"
#include "authbridge/util.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: authbridge [-c FILE] [-t] COMMAND [ARGS]\n"
        "  list [--json]                 live grants: address, user, since, expires in\n"
        "  show ADDR                     one grant with all fields (exit 1: none)\n"
        "  grant ADDR USER [--ttl SECS]  create or renew a grant, as pop3d does\n"
        "  revoke ADDR | --user USER     remove grants; prints how many\n"
        "  watch                         follow grants and decisions live\n"
        "  stats                         live grants, grants and decisions counted\n"
        "  postlogin PROG [ARG...]       grant the login in the environment, then\n"
        "                                exec PROG (always)\n"
        "  why ADDR [--from S] [--rcpt R] [--json]\n"
        "                                what smtpgate would decide for ADDR, and why\n"
        "                                (exit 1: it would refuse)\n"
        "  checkrelay PROG [ARG...]      RELAYCLIENT for a granted TCPREMOTEIP, then exec PROG\n"
        "  -c FILE  configuration (default " CLI_DEFAULT_CONF ")\n"
        "  -t       check the configuration and exit\n");
}

static const struct verb {
    const char *name;
    int (*fn)(int argc, char **argv);
    bool without_conf;            /* runs when the file cannot be loaded */
} verbs[] = {
    { "list", cmd_list, false },     { "show", cmd_show, false },
    { "grant", cmd_grant, false },   { "revoke", cmd_revoke, false },
    { "watch", cmd_watch, false },   { "stats", cmd_stats, false },
    { "postlogin", cmd_postlogin, true },
    { "why", cmd_why, false },
    { "checkrelay", cmd_checkrelay, true },
};

static const struct verb *verb_named(const char *name)
{
    for (size_t i = 0; i < AB_ARRAY_LEN(verbs); i++)
        if (strcmp(name, verbs[i].name) == 0)
            return &verbs[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const char *path = CLI_DEFAULT_CONF;
    struct conf_errors errs = { 0 };
    struct ab_conf *c;
    const struct verb *v = NULL;
    bool test_only = false;
    int ch, rc;

    cli_sigpipe = signal(SIGPIPE, SIG_IGN);
    while ((ch = getopt(argc, argv, "+c:th")) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case 't': test_only = true; break;
        case 'h': usage(stdout); return EX_OK;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (!test_only && optind < argc && (v = verb_named(argv[optind])) == NULL)
        die(EX_USAGE, "unknown command '%s' (try: authbridge -h)", argv[optind]);
    c = conf_load(path, &errs);
    if (c == NULL) {
        conf_errors_print(&errs);
        conf_errors_free(&errs);
        if (v != NULL && v->without_conf)
            return v->fn(argc - optind, argv + optind);
        return test_only ? 1 : EX_USAGE;
    }
    if (test_only) {
        printf("%s: configuration OK\n", path);
        conf_free(c);
        return EX_OK;
    }
    cli_conf = c;
    cli_settings = (struct grant_settings){
        .prefix = c->redis.prefix, .node = c->pop3d.d.node, .ttl = c->grant.ttl,
        .ipv6_prefix = c->grant.ipv6_prefix, .log_maxlen = c->redis.log_maxlen,
        .decisions_maxlen = c->redis.decisions_maxlen,
        .timeout_ms = c->redis.timeout_ms,
    };
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    rc = v->fn(argc - optind, argv + optind);
    conf_free(c);
    return rc;
}
