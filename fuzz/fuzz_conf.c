/* The configuration file: any bytes give a config or errors, never a crash. */
#include "fuzz/fuzz.h"
#include "authbridge/conf.h"
#include "authbridge/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conf_errors errs = { 0 };
    const char *path = fuzz_file(data, size);
    struct ab_conf *c;

    if (path == NULL)
        return 0;
    c = conf_load(path, &errs);
    if (c != NULL) {
        if (errs.n != 0)
            __builtin_trap();     /* a config comes without errors */
        conf_require_pop3d(c, &errs);
        conf_require_smtpgate(c, &errs);
        conf_free(c);
    } else if (errs.n == 0) {
        __builtin_trap();         /* a refusal always says why */
    }
    conf_errors_free(&errs);
    return 0;
}
