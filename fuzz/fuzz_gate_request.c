/*
 * What smtpgate reads from other programs: policy and WHOSON requests
 * (framing and attributes), socketmap netstrings (framing, map and key,
 * the key as an address) and the MTA's reply lines and EHLO keywords.
 */
#include "fuzz/fuzz.h"
#include "smtpgate/policy.h"
#include "smtpgate/reqconn.h"
#include "smtpgate/smtp_parse.h"
#include "smtpgate/socketmap.h"
#include "smtpgate/whoson.h"

#include <string.h>

static const struct reqconn_limits lim = {
    .line_max = 2048, .lines_max = 64, .request_max = 16384, .idle_s = 1,
};

static void replies(const char *text, size_t len)
{
    struct smtp_reply_line r;
    unsigned ext = 0, xc = 0, xf = 0;

    if (smtp_reply_line_parse(text, len, &r) < 0)
        return;
    if (r.code < 200 || r.code > 599 || r.text + r.textlen != text + len)
        __builtin_trap();
    if (smtp_enhanced_len(r.text, r.textlen, r.code) > r.textlen)
        __builtin_trap();
    smtp_ehlo_line(r.text, r.textlen, &ext, &xc, &xf);
}

static const struct reqconn_limits smap_lim = {
    .line_max = 1024, .lines_max = 1, .request_max = 1030, .idle_s = 1,
};

/* Every netstring in the input, as the door takes them one after another. */
static void netstrings(char *buf, size_t len)
{
    char *parts[1];
    size_t n, used;
    struct socketmap_req r;
    struct ab_addr a;

    while (len > 0 && socketmap_frame(buf, len, &smap_lim, parts, &n,
                                      &used) == 1) {
        if (n != 1 || used > len || used < 3 ||
            strlen(parts[0]) > smap_lim.line_max)
            __builtin_trap();
        if (socketmap_parse(parts[0], &r) == NULL) {
            if (r.key == NULL || *r.key == '\0' || strchr(r.key, ' '))
                __builtin_trap();
            socketmap_key_addr(r.key, &a);
        }
        buf += used;
        len -= used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[65536 + 1];
    char *lines[64];
    size_t n, used, len = size < sizeof(buf) - 1 ? size : sizeof(buf) - 1;
    struct policy_req pr;
    struct whoson_req wr;

    memcpy(buf, data, len);
    netstrings(buf, len);
    memcpy(buf, data, len);
    replies(buf, strnlen(buf, len));
    if (reqblock_parse(buf, len, &lim, lines, &n, &used) != 1)
        return 0;
    if (used > len || n > lim.lines_max)
        __builtin_trap();
    policy_parse(lines, n, &pr);
    if (n > 0)
        whoson_parse(lines[0], &wr);
    return 0;
}
