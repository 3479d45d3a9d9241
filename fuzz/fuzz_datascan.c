/*
 * The DATA scanner against a plain reference: for any input and any
 * chunking, the message ends at the first CRLF "." CRLF (counting the
 * CRLF of the DATA command), and a bare CR or LF before it is flagged.
 * This is the SMTP smuggling guarantee.
 */
#include "fuzz/fuzz.h"
#include "smtpgate/datascan.h"

#include <stdbool.h>
#include <string.h>

/* Octets up to and including the end, or 0 if there is none. */
static size_t reference_end(const uint8_t *d, size_t n, bool *bad)
{
    *bad = false;
    for (size_t i = 0; i < n; i++) {
        bool bol = i == 0 || (i >= 2 && d[i - 2] == '\r' && d[i - 1] == '\n');
        if (bol && i + 2 < n && d[i] == '.' && d[i + 1] == '\r' &&
            d[i + 2] == '\n')
            return i + 3;
        if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
            *bad = true;
        if (d[i] == '\r' && (i + 1 == n || d[i + 1] != '\n') && i + 1 < n)
            *bad = true;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct datascan s;
    size_t chunk, used = 0, clean = 0, c, end;
    bool bad;

    if (size < 1)
        return 0;
    chunk = 1 + data[0] % 32;
    data++;
    size--;
    datascan_init(&s);
    for (size_t i = 0; i < size && !s.done; i += chunk) {
        size_t n = size - i < chunk ? size - i : chunk;
        size_t u = datascan_feed(&s, (const char *)data + i, n, &c);
        if (u < n && !s.done)
            __builtin_trap();
        used += u;
        clean += c;
    }
    end = reference_end(data, size, &bad);
    if (s.done != (end != 0) || (end != 0 && used != end))
        __builtin_trap();
    if (end != 0 && s.bad != bad)
        __builtin_trap();
    if (!s.bad && clean != used)
        __builtin_trap();
    if (s.done && datascan_size(&s) != used - 3)
        __builtin_trap();
    return 0;
}
