/*
 * SMTP text syntax, both directions: client command lines (verb, MAIL and
 * RCPT arguments, ESMTP parameters, HELO names) and server reply lines
 * (codes, continuation, enhanced status codes, EHLO keywords), plus xtext
 * for XCLIENT/XFORWARD values.
 *
 * Pure functions: no I/O, no allocation; unit-tested (test_smtp_parse.c).
 * Errors come back as complete reply lines ("501 5.5.4 ..."), so the
 * session writes exactly what the parser decided.
 */
#ifndef SMTPGATE_SMTP_PARSE_H
#define SMTPGATE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtpgate/rcpt.h"

/* ---- commands ------------------------------------------------------------ */

#define SMTP_VERB_MAX 16

struct smtp_cmd {
    char verb[SMTP_VERB_MAX + 1];   /* upper-cased */
    const char *args;               /* after the single space; "" if none */
    size_t argslen;                 /* trailing spaces removed */
};

/*
 * A verb is 1..16 ASCII letters, then the end of the line or one space.
 * -1 for anything else (the session answers 500 5.5.2).
 */
int smtp_cmd_split(const char *line, size_t len, struct smtp_cmd *cmd);

enum smtp_body {
    BODY_UNSPECIFIED,
    BODY_7BIT,
    BODY_8BITMIME,
};

/* MAIL FROM parameters we take (RFC 1870 SIZE, RFC 6152 BODY, RFC 4954
 * AUTH). AUTH= is accepted and dropped: we never AUTH to the MTA, and the
 * MTA learns the login through XCLIENT LOGIN=. */
struct smtp_mail_params {
    bool has_size;
    uint64_t size;
    enum smtp_body body;
    bool has_auth;
};

/*
 * "FROM:<path> [params]" (MAIL) and "TO:<path>" (RCPT; no parameters:
 * we advertise no extension that has any). Spaces after the colon are
 * tolerated, as every MTA does; missing brackets are not. Returns NULL, or
 * the reply line for the error.
 */
const char *smtp_parse_mail(const char *args, size_t len,
                            struct smtp_path *path,
                            struct smtp_mail_params *mp);
const char *smtp_parse_rcpt(const char *args, size_t len,
                            struct smtp_path *path);

/* HELO/EHLO argument: 1..SMTP_HELO_MAX printable ASCII octets, no space.
 * RFC 5321 asks for a domain or literal; clients send far worse, and
 * refusing it would only break them. */
bool smtp_helo_valid(const char *s, size_t len);

/* ---- replies (from the MTA) ---------------------------------------------- */

struct smtp_reply_line {
    int code;                       /* 200..599 */
    bool last;                      /* "250 " rather than "250-" */
    const char *text;               /* after the separator */
    size_t textlen;
};

/* "ddd-text", "ddd text" or "ddd"; code 200..599. 0 or -1. */
int smtp_reply_line_parse(const char *line, size_t len,
                          struct smtp_reply_line *out);

/* Length of an RFC 3463 code ("5.7.1") at the start of text, including
 * the space after it; 0 if there is none, or if its class digit does not
 * match the reply code's first digit. */
size_t smtp_enhanced_len(const char *text, size_t len, int code);

/* EHLO keywords we care about (RFC 5321 4.1.1.1 ehlo-line). */
enum {
    EXT_PIPELINING = 1 << 0,
    EXT_SIZE       = 1 << 1,
    EXT_8BITMIME   = 1 << 2,
    EXT_XCLIENT    = 1 << 3,
    EXT_XFORWARD   = 1 << 4,
    EXT_ENHANCED   = 1 << 5,
};

/* XCLIENT / XFORWARD attributes (Postfix XCLIENT_README, XFORWARD_README). */
enum {
    XATTR_NAME  = 1 << 0,
    XATTR_ADDR  = 1 << 1,
    XATTR_PROTO = 1 << 2,
    XATTR_HELO  = 1 << 3,
    XATTR_LOGIN = 1 << 4,
    XATTR_PORT  = 1 << 5,
};

/*
 * One line of an EHLO reply (the text after "250-"): adds its extension
 * to *ext, and for XCLIENT/XFORWARD the attributes listed to *xclient /
 * *xforward. Unknown keywords are ignored.
 */
void smtp_ehlo_line(const char *text, size_t len, unsigned *ext,
                    unsigned *xclient, unsigned *xforward);

/*
 * RFC 3461 section 4 xtext: '!'..'~' except '+' and '=' as is, anything
 * else "+HH". Returns the length written (out is NUL-terminated), or
 * (size_t)-1 if it does not fit in outlen.
 */
size_t smtp_xtext(const char *in, char *out, size_t outlen);

#endif
