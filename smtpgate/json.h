/*
 * A small strict JSON reader (RFC 8259) for the Dovecot door's request
 * bodies. The body is one object; its members are flattened into paths
 * the way Dovecot's auth_policy_request_attributes nests them ("a/b=x"
 * is sent as {"a":{"b":"x"}} and read back as the path "a/b"; an event's
 * {"fields":{"user":...}} gives "fields/user"). Values inside arrays are
 * checked but not kept: nothing we read is in one.
 *
 * Anything that is not JSON is refused (the answer is a 400): trailing
 * bytes, control characters in strings, lone surrogates, "\u0000" (the
 * values are C strings), duplicate paths (which one would be meant?),
 * and bodies over the caps of limits.h (depth, members, path length).
 */
#ifndef SMTPGATE_JSON_H
#define SMTPGATE_JSON_H

#include <stddef.h>

#include "smtpgate/limits.h"

enum json_type {
    JSON_STRING,
    JSON_NUMBER,
    JSON_TRUE,
    JSON_FALSE,
    JSON_NULL,
};

struct json_member {
    char path[JSON_PATH_MAX];
    enum json_type type;
    const char *str;             /* JSON_STRING: unescaped, in the body */
};

struct json_doc {
    struct json_member m[JSON_MEMBERS_MAX];
    size_t n;
};

/*
 * Pure: parse body[0..len). Strings are unescaped in place, so the
 * body must stay untouched while doc is used. NULL, or why the body is
 * not acceptable (for the log).
 */
const char *json_parse(char *body, size_t len, struct json_doc *doc);

/* The member at path, or NULL. */
const struct json_member *json_get(const struct json_doc *doc,
                                   const char *path);
/* The string at path; NULL when absent or not a string. */
const char *json_get_str(const struct json_doc *doc, const char *path);

#endif
