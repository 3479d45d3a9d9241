/* The POP3 command line: keyword, arguments, numbers. (SASL decoding is
 * fuzzed with the SMTP command line: the same core code.) */
#include "fuzz/fuzz.h"
#include "pop3d/command.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pop3_cmd c;
    size_t len, idx;
    uint64_t n;
    char *line = fuzz_cstr(data, size, &len);

    if (pop3_parse(line, &c) < 0)
        return 0;
    if (pop3_split_args(&c, 3) < 0)
        return 0;
    for (int i = 0; i < c.argc; i++) {
        if (pop3_msgno(c.argv[i], 1000, &idx) == 0 && idx >= 1000)
            __builtin_trap();
        pop3_linecount(c.argv[i], &n);
    }
    return 0;
}
