/*
 * What the Dovecot door reads: an HTTP/1.1 request (framing, request line,
 * headers) and its JSON body, then the lookups the door makes.
 */
#include "fuzz/fuzz.h"
#include "smtpgate/http.h"
#include "smtpgate/json.h"
#include "smtpgate/limits.h"

#include <string.h>

static const struct reqconn_limits lim = {
    .line_max = HTTP_LINE_MAX, .lines_max = HTTP_HEADERS_MAX + 2,
    .request_max = HTTP_HEAD_MAX + HTTP_BODY_MAX, .frame = http_frame,
};

static void body(char *b, size_t len)
{
    struct json_doc doc;
    const char *s;

    if (json_parse(b, len, &doc) != NULL)
        return;
    if (doc.n > JSON_MEMBERS_MAX)
        __builtin_trap();
    for (size_t i = 0; i < doc.n; i++) {
        if (strlen(doc.m[i].path) >= JSON_PATH_MAX)
            __builtin_trap();
        if ((s = doc.m[i].str) != NULL && (s < b || s > b + len))
            __builtin_trap();
    }
    json_get_str(&doc, "remote");
    json_get_str(&doc, "fields/user");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[HTTP_HEAD_MAX + HTTP_BODY_MAX];
    char *parts[HTTP_HEADERS_MAX + 2], pw[256], cmd[16];
    size_t n, used, len = size < sizeof(buf) ? size : sizeof(buf);
    struct http_req req;

    memcpy(buf, data, len);
    if (http_frame(buf, len, &lim, parts, &n, &used) != 1)
        return 0;
    if (used > len || n > lim.lines_max || n == 0)
        __builtin_trap();
    if (n == 1 || http_parse(parts, n, &req) != NULL)
        return 0;
    if (req.body_len > HTTP_BODY_MAX || req.body + req.body_len > buf + len)
        __builtin_trap();
    http_query_param(req.query, "command", cmd, sizeof(cmd));
    http_basic_password(req.authorization, pw, sizeof(pw));
    body(req.body, req.body_len);
    return 0;
}
