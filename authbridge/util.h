/*
 * Small helpers shared by every program: strict number parsing, string
 * duplication that cannot fail silently, monotonic time.
 */
#ifndef AB_UTIL_H
#define AB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Parse a decimal unsigned number in [min, max]. The whole string must be
 * digits: no sign, no spaces, no leading '+', no trailing garbage.
 * Returns 0 on success, -1 otherwise (and *out is untouched).
 */
int ab_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* The same for a counted string (protocol arguments are not NUL-terminated). */
int ab_parse_uint_n(const char *s, size_t len, uint64_t min, uint64_t max,
                    uint64_t *out);

/* malloc/strdup/calloc that abort on exhaustion: callers never see NULL. */
void *ab_malloc(size_t n);
void *ab_calloc(size_t n, size_t size);
void *ab_realloc(void *p, size_t n);
char *ab_strdup(const char *s);
char *ab_strndup(const char *s, size_t n);

/* Milliseconds on the monotonic clock: for deadlines, never for display. */
uint64_t ab_now_ms(void);

/* Trim ASCII spaces and tabs at both ends, in place; returns s. */
char *ab_trim(char *s);

/* Case-insensitive ASCII comparison (locale-independent). */
bool ab_strcaseeq(const char *a, const char *b);
bool ab_strncaseeq(const char *a, const char *b, size_t n);

/* Constant-time comparison of two byte strings of equal length. */
bool ab_ct_equal(const void *a, const void *b, size_t n);

/* Write n random bytes (getrandom); aborts if the kernel cannot supply them. */
void ab_random(void *buf, size_t n);

#endif
