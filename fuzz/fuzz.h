/*
 * Every fuzz target defines LLVMFuzzerTestOneInput. Built with clang's
 * libFuzzer by `make fuzz`; built with replay.c by `make check`, which
 * runs the committed corpus (seeds and every input that once crashed)
 * as a regression test.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a NUL-terminated string (a static buffer, cut at 64 KiB). */
char *fuzz_cstr(const uint8_t *data, size_t size, size_t *len);

/* The input as a file (memfd); returns its /proc path, or NULL. */
const char *fuzz_file(const uint8_t *data, size_t size);

#endif
