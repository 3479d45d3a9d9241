/*
 * POP3 command lines: split into keyword and arguments, strict numbers.
 * Pure functions: no I/O, unit-tested and fuzzed.
 */
#ifndef POP3D_COMMAND_H
#define POP3D_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POP3_MAX_ARGS 3

struct pop3_cmd {
    char keyword[5];              /* upper-cased, 3 or 4 letters */
    int argc;
    char *argv[POP3_MAX_ARGS];    /* point into the line */
    char *rest;                   /* everything after "KEYWORD " (PASS) */
};

/*
 * Take the keyword: 3-4 ASCII letters (RFC 1939), case-insensitive,
 * followed by the end of the line or one space; rest is what follows
 * (PASS takes it whole: passwords may hold spaces). 0, or -1.
 */
int pop3_parse(char *line, struct pop3_cmd *cmd);

/*
 * Split rest in place into arguments separated by single spaces; empty
 * arguments and more than max are errors (trailing spaces are not).
 * 0 or -1.
 */
int pop3_split_args(struct pop3_cmd *cmd, int max);

/*
 * A message number: decimal digits only, 1..count. "0", "-1", "+1",
 * "1x", "" and anything above count (or above 2^32) give -1.
 */
int pop3_msgno(const char *arg, size_t count, size_t *index);

/* A non-negative line count for TOP (0..2^32-1); -1 if malformed. */
int pop3_linecount(const char *arg, uint64_t *n);

#endif
