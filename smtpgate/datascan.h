/*
 * The DATA scanner: finds the one end of a message that RFC 5321 4.1.1.4
 * defines, CRLF "." CRLF, and notices every bare CR and bare LF on the way.
 *
 * SMTP smuggling (2023): MTAs disagree about what ends DATA. One that
 * also takes "\n.\n" or "\r.\r" as the end would see a message boundary
 * where we see message text, and the rest of "our" message would become
 * a second message the gate never judged. So the gate forwards nothing
 * past the first bare CR or LF, and never the end-of-data dot of such a
 * message: the session refuses it (550 5.6.0) and drops the MTA
 * connection, so the MTA never sees a boundary the gate did not.
 *
 * The scanner does not unstuff dots ("..") and keeps no lines: bytes are
 * forwarded as received; the MTA unstuffs. Long lines pass (limits.h).
 *
 * Pure: no I/O, no allocation; unit-tested, and fed straight from the
 * input buffer's chains (no copy).
 */
#ifndef SMTPGATE_DATASCAN_H
#define SMTPGATE_DATASCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct datascan {
    unsigned char state;
    bool bad;             /* a bare CR or LF was seen (sticky) */
    bool done;            /* CRLF.CRLF found */
    uint64_t clean;       /* octets before the first bare CR/LF */
    uint64_t total;       /* octets consumed, the final ".\r\n" included */
};

/* The body starts right after the DATA command's CRLF: a "." line at the
 * very start ends an empty message. */
void datascan_init(struct datascan *s);

/*
 * Scan p[0..len): returns how many octets belong to this message (all of
 * them, or up to and including the terminating ".\r\n"). Of those, the
 * ones before the first bare CR/LF are "clean": *clean_out gets how many
 * of the returned octets are clean (a prefix). Stop calling once
 * s->done; the octets after the end are the next command.
 */
size_t datascan_feed(struct datascan *s, const char *p, size_t len,
                     size_t *clean_out);

/* Message size as RFC 1870 counts it: the octets before the final
 * ".\r\n" (dot-stuffing included, as received). */
uint64_t datascan_size(const struct datascan *s);

#endif
