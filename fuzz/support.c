#include "fuzz/fuzz.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

char *fuzz_cstr(const uint8_t *data, size_t size, size_t *len)
{
    static char buf[65536 + 1];

    if (size > sizeof(buf) - 1)
        size = sizeof(buf) - 1;
    memcpy(buf, data, size);
    buf[size] = '\0';
    *len = size;
    return buf;
}

const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];

    if (fd < 0) {
        fd = memfd_create("fuzz", 0);
        if (fd < 0)
            return NULL;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        return NULL;
    return path;
}
