/*
 * What smtpgate reads from other programs: policy and WHOSON requests
 * (framing and attributes) and the MTA's reply lines and EHLO keywords.
 */
#include "fuzz/fuzz.h"
#include "smtpgate/policy.h"
#include "smtpgate/reqconn.h"
#include "smtpgate/smtp_parse.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[65536 + 1];
    char *lines[64];
    size_t n, used, len = size < sizeof(buf) - 1 ? size : sizeof(buf) - 1;
    struct policy_req pr;
    struct whoson_req wr;

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
