/*
 * The RETR/TOP transform: for any message and chunking, what a client
 * reads back equals the size LIST announced, and no terminator appears
 * before the end.
 */
#include "fuzz/fuzz.h"
#include "pop3d/msgstream.h"

#include <stdlib.h>
#include <string.h>

static size_t unstuffed(const char *w, size_t len)
{
    size_t n = 0;
    int at_start = 1;

    for (size_t i = 0; i < len - 3; i++) {   /* len >= 3: checked */
        if (at_start && w[i] == '.') {
            at_start = 0;
            continue;
        }
        n++;
        at_start = w[i] == '\n';
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[2 * 65536 + 8];
    struct msgstream s;
    struct msg_vsize v;
    size_t chunk, o = 0;

    if (size < 1 || size > 65536)
        return 0;
    chunk = 1 + data[0] % 64;
    data++;
    size--;
    msgstream_init(&s, -1);
    msg_vsize_init(&v);
    for (size_t i = 0; i < size; i += chunk) {
        size_t n = size - i < chunk ? size - i : chunk;
        o += msgstream_feed(&s, (const char *)data + i, n, out + o);
        msg_vsize_feed(&v, (const char *)data + i, n);
    }
    o += msgstream_finish(&s, out + o);
    if (o < 3 || memcmp(out + o - 3, ".\r\n", 3) != 0)
        __builtin_trap();
    if (unstuffed(out, o) != msg_vsize_finish(&v))
        __builtin_trap();
    for (size_t i = 0; i + 5 < o; i++)
        if (memcmp(out + i, "\r\n.\r\n", 5) == 0)
            __builtin_trap();
    return 0;
}
