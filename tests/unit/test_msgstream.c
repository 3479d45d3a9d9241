/*
 * The message transform (LF->CRLF, dot-stuffing, TOP) and the size that
 * LIST reports: they must agree octet for octet, whatever the chunking.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "pop3d/msgstream.h"

/* Transform in, fed in chunks of `chunk` bytes; returns the wire bytes. */
static size_t wire(const char *in, size_t len, size_t chunk, int64_t top,
                   char *out)
{
    struct msgstream s;
    size_t o = 0;

    msgstream_init(&s, top);
    for (size_t i = 0; i < len; i += chunk) {
        size_t n = len - i < chunk ? len - i : chunk;
        o += msgstream_feed(&s, in + i, n, out + o);
    }
    return o + msgstream_finish(&s, out + o);
}

static uint64_t vsize(const char *in, size_t len, size_t chunk)
{
    struct msg_vsize v;

    msg_vsize_init(&v);
    for (size_t i = 0; i < len; i += chunk)
        msg_vsize_feed(&v, in + i, len - i < chunk ? len - i : chunk);
    return msg_vsize_finish(&v);
}

/* What a client reads back: un-stuffed, without the final ".\r\n". */
static size_t client_octets(const char *w, size_t len)
{
    size_t n = 0;
    int at_start = 1;

    assert_true(len >= 3 && memcmp(w + len - 3, ".\r\n", 3) == 0);
    for (size_t i = 0; i < len - 3; i++) {
        if (at_start && w[i] == '.') {
            at_start = 0;
            continue;
        }
        n++;
        at_start = w[i] == '\n';
    }
    return n;
}

static void lf_becomes_crlf_and_dots_are_stuffed(void **state)
{
    static const char in[] = "a\n.b\n..c\n.\nd\r\ne\n";
    char out[128];
    size_t n = wire(in, strlen(in), 1000, -1, out);

    (void)state;
    assert_int_equal(n, strlen("a\r\n..b\r\n...c\r\n..\r\nd\r\ne\r\n.\r\n"));
    assert_memory_equal(out, "a\r\n..b\r\n...c\r\n..\r\nd\r\ne\r\n.\r\n", n);
}

static void unterminated_last_line_gets_crlf(void **state)
{
    char out[64];
    size_t n = wire("abc", 3, 1000, -1, out);

    (void)state;
    assert_int_equal(n, 8);
    assert_memory_equal(out, "abc\r\n.\r\n", 8);
    assert_int_equal(vsize("abc", 3, 1000), 5);
}

static void empty_message(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(wire("", 0, 1, -1, out), 3);
    assert_memory_equal(out, ".\r\n", 3);
    assert_int_equal(vsize("", 0, 1), 0);
}

static void cr_split_across_chunks_is_not_doubled(void **state)
{
    static const char in[] = "x\r\ny\r\n";
    char out[64];

    (void)state;
    for (size_t chunk = 1; chunk <= 6; chunk++) {
        size_t n = wire(in, 6, chunk, -1, out);
        assert_int_equal(n, 9);
        assert_memory_equal(out, "x\r\ny\r\n.\r\n", 9);
        assert_int_equal(vsize(in, 6, chunk), 6);
    }
}

static void top_counts_body_lines_after_the_blank_line(void **state)
{
    static const char in[] = "H: 1\nH: 2\n\nb1\n.b2\nb3\n";
    char out[128];
    size_t n;

    (void)state;
    n = wire(in, strlen(in), 3, 2, out);
    assert_memory_equal(out, "H: 1\r\nH: 2\r\n\r\nb1\r\n..b2\r\n.\r\n", n);
    n = wire(in, strlen(in), 100, 0, out);
    assert_memory_equal(out, "H: 1\r\nH: 2\r\n\r\n.\r\n", n);
    n = wire(in, strlen(in), 100, 99, out);          /* more than there is */
    assert_int_equal(n, wire(in, strlen(in), 100, -1, out));
}

static void top_of_a_message_without_body(void **state)
{
    static const char in[] = "H: 1\r\nH: 2\r\n";
    char out[64];
    size_t n = wire(in, strlen(in), 100, 0, out);

    (void)state;
    assert_memory_equal(out, "H: 1\r\nH: 2\r\n.\r\n", n);
}

/* For random messages (lots of dots, CRs, LFs) and random chunk sizes,
 * LIST's size equals what the client reads from RETR. */
static void size_matches_the_transform_for_random_messages(void **state)
{
    static const char alphabet[] = "..\r\n\n\nab";
    char in[512], out[1100];

    (void)state;
    srand(12345);
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)rand() % sizeof(in);
        size_t chunk = 1 + (size_t)rand() % 64;
        for (size_t i = 0; i < len; i++)
            in[i] = alphabet[rand() % (sizeof(alphabet) - 1)];
        size_t n = wire(in, len, chunk, -1, out);
        if (client_octets(out, n) != vsize(in, len, 1 + (size_t)rand() % 64))
            fail_msg("round %d: size mismatch (len %zu)", round, len);
        for (size_t i = 0; i + 4 < n; i++)   /* never a premature end */
            if (memcmp(out + i, "\r\n.\r\n", 5) == 0 && i + 5 != n)
                fail_msg("round %d: early terminator at %zu", round, i);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lf_becomes_crlf_and_dots_are_stuffed),
        cmocka_unit_test(unterminated_last_line_gets_crlf),
        cmocka_unit_test(empty_message),
        cmocka_unit_test(cr_split_across_chunks_is_not_doubled),
        cmocka_unit_test(top_counts_body_lines_after_the_blank_line),
        cmocka_unit_test(top_of_a_message_without_body),
        cmocka_unit_test(size_matches_the_transform_for_random_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
