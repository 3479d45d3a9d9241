/*
 * RFC 5321 paths (MAIL FROM:<...>, RCPT TO:<...>) parsed strictly, and the
 * one question that decides whether a recipient is ours: is it in a local
 * domain with nothing in it that could route it elsewhere?
 *
 * Pure functions: no I/O, no allocation; unit-tested with a table of
 * open-relay probes (tests/unit/test_rcpt.c).
 *
 * Choices the RFC leaves open, made here on purpose:
 *  - One trailing dot on the domain ("user@example.net.", the absolute
 *    form, RFC 1035) names the same domain: it is removed, and the
 *    mailbox we judge is the mailbox we forward, so the MTA can never
 *    see a different domain than the gate did. Two dots are a syntax
 *    error (an empty label).
 *  - A source route ("<@a,@b:user@c>") is stripped as RFC 5321 4.1.1.3
 *    and appendix C ask, but a recipient that came with one is never
 *    local: routes are how relays were tricked.
 *  - A quoted local part ("\"a@b\"@example.net") is never local, whatever
 *    it holds: MTAs unquote and re-parse it. Legitimate quoted local parts
 *    are vanishingly rare; they still pass with a relay right.
 *  - An address literal ("user@[192.0.2.1]") is never local: the gate
 *    cannot know which addresses the MTA calls its own. With a relay
 *    right it is forwarded and the MTA decides.
 *  - Local domains match exactly, case-insensitively: "sub.example.net"
 *    is not local because "example.net" is.
 *  - No SMTPUTF8: an octet above 127 anywhere in a path is a syntax error.
 */
#ifndef SMTPGATE_RCPT_H
#define SMTPGATE_RCPT_H

#include <stdbool.h>
#include <stddef.h>

#include "authbridge/conf.h"
#include "smtpgate/limits.h"

enum path_use {
    PATH_REVERSE,         /* MAIL FROM: "<>" allowed */
    PATH_FORWARD,         /* RCPT TO: unqualified "<postmaster>" allowed */
};

enum path_error {
    PATH_OK,
    PATH_NO_BRACKETS,     /* not "<...>" */
    PATH_SYNTAX,          /* anything else malformed */
    PATH_TOO_LONG,        /* path, local part or domain over its cap */
    PATH_UNQUALIFIED,     /* "<user>" without a domain */
    PATH_8BIT,            /* an octet above 127 (no SMTPUTF8 here) */
    PATH_NULL_RCPT,       /* "<>" as a recipient */
};

struct smtp_path {
    bool null;            /* "<>" (MAIL only) */
    bool postmaster;      /* unqualified "<postmaster>", any case (RCPT) */
    bool route;           /* a source route was given (and stripped) */
    bool quoted;          /* the local part is a quoted string */
    bool literal;         /* the domain is an address literal */
    bool trailing_dot;    /* one trailing dot was removed */
    /* local@domain as forwarded: no route, no trailing dot; "" for "<>",
     * "postmaster" as written for the unqualified form. */
    char mailbox[SMTP_PATH_MAX + 1];
    size_t at;            /* index of the '@' in mailbox (0 if none) */
};

/*
 * Parse one path at s[0..len): it must start with '<'. On PATH_OK, *end is
 * the index just after the closing '>' (ESMTP parameters may follow).
 */
enum path_error smtp_path_parse(const char *s, size_t len, enum path_use use,
                                struct smtp_path *out, size_t *end);

/* A reply line (code, enhanced code, text) for a path error. */
const char *smtp_path_error_reply(enum path_error e, enum path_use use);

enum rcpt_class {
    RCPT_LOCAL,           /* ours: inbound mail, accepted from anyone */
    RCPT_REMOTE,          /* a relay: needs trusted/auth/grant */
};

/*
 * Local only if the domain is in local_domains (case-insensitive) and the
 * path hides no routing: no route, no quoted local part, no '%' or '!' in
 * the local part, no address literal. Unqualified postmaster is local
 * (RFC 5321 4.5.1). *why names the reason for logs: "local",
 * "postmaster", "remote_domain", "route", "quoted", "percent", "bang",
 * "literal".
 */
enum rcpt_class rcpt_classify(const struct smtp_path *p,
                              const struct strlist *local_domains,
                              const char **why);

/* The domain part of a qualified mailbox ("" for null/postmaster). */
const char *smtp_path_domain(const struct smtp_path *p);

#endif
