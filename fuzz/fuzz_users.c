/* The user file, and checks against whatever it loaded. */
#include "fuzz/fuzz.h"
#include "authbridge/conf.h"
#include "authbridge/users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conf_errors errs = { 0 };
    const char *path = fuzz_file(data, size);
    struct userdb *db;

    if (path == NULL)
        return 0;
    db = userdb_load(path, &errs);
    if (db != NULL) {
        /* {PLAIN} only: crypt with real costs would make this crawl. */
        if (!userdb_has_plain(db) || userdb_count(db) > 50) {
            userdb_unref(db);
            conf_errors_free(&errs);
            return 0;
        }
        userdb_verify_apop(db, "a", "<1.2@x>", "0123456789abcdef0123456789abcdef");
        userdb_unref(db);
    }
    conf_errors_free(&errs);
    return 0;
}
