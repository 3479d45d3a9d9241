/*
 * A Maildir message on the wire: LF line ends become CRLF (CRLF stays),
 * lines starting with '.' are dot-stuffed, an unterminated last line gets
 * its CRLF, and ".\r\n" closes the answer (RFC 1939 section 3). Works on
 * chunks, so a message is streamed, never read whole. TOP's line limit
 * counts body lines after the first empty line.
 *
 * The size LIST and STAT report is what the client reads back after
 * un-stuffing: the octets with CRLF line ends (msg_vsize_*). It matches
 * the transform exactly; unit tests hold the two together.
 */
#ifndef POP3D_MSGSTREAM_H
#define POP3D_MSGSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msgstream {
    bool at_line_start;
    bool prev_cr;
    bool in_body;
    bool done;              /* TOP limit reached: ignore further input */
    uint64_t line_len;
    int64_t lines_left;     /* body lines still to send; -1: all */
};

/* top_lines < 0: the whole message (RETR). */
void msgstream_init(struct msgstream *s, int64_t top_lines);
/* out must hold 2 * len bytes; returns the bytes written. */
size_t msgstream_feed(struct msgstream *s, const char *in, size_t len, char *out);
/* The end of the answer; out must hold 5 bytes; returns the bytes written. */
size_t msgstream_finish(struct msgstream *s, char *out);

struct msg_vsize {
    uint64_t size;
    bool prev_cr;
    bool at_line_start;
};

void msg_vsize_init(struct msg_vsize *v);
void msg_vsize_feed(struct msg_vsize *v, const char *in, size_t len);
uint64_t msg_vsize_finish(const struct msg_vsize *v);

#endif
