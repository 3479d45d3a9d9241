/*
 * The message header as header_from_check needs it (RFC 5322): which
 * addresses the recipient will see as the author (From:) and the sender
 * (Sender:). Pure: no I/O, no allocation; unit-tested and fuzzed.
 *
 * hdrscan is fed the DATA octets as they stream (as received: CRLF lines,
 * dot-stuffed, in any chunking). It finds the end of the header block
 * (the first empty line, or the end of the message: the terminating "."
 * line unstuffs to an empty line) and keeps the unfolded bodies of the
 * From: and Sender: fields; every other field is only counted. Bounded:
 * SMTP_HEADER_BLOCK_MAX octets in all, SMTP_HEADER_FIELD_MAX a kept field.
 *
 * hdraddr_parse reads an address list (RFC 5322 3.4: display names,
 * quoted strings, comments, groups, several addresses, and the obsolete
 * forms of 4.4 a receiver must accept: CFWS around dots, empty list
 * elements, routes in angle brackets). An RFC 2047 encoded word in a
 * display name ("=?UTF-8?B?VGVycmk=?= <terri@example.net>") is an atom
 * (RFC 2047 5(3) keeps its text to atom characters); one holding
 * specials is refused with its field: a reader that does not decode it
 * could see an address in it that the gate did not.
 *
 * hdrfrom_judge decides once the header block is complete.
 */
#ifndef SMTPGATE_HDRFROM_H
#define SMTPGATE_HDRFROM_H

#include <stdbool.h>
#include <stddef.h>

#include "smtpgate/limits.h"

enum hdrscan_status {
    HDRSCAN_MORE,               /* still inside the header block */
    HDRSCAN_DONE,               /* the header block is complete */
    HDRSCAN_TOO_BIG,            /* over SMTP_HEADER_BLOCK_MAX */
    HDRSCAN_FIELD_TOO_LONG,     /* a From:/Sender: over SMTP_HEADER_FIELD_MAX */
    HDRSCAN_MALFORMED,          /* a line that is neither a field nor folded */
    HDRSCAN_DUPLICATE,          /* a second From: or Sender: (RFC 5322 3.6) */
};

struct hdr_field {
    bool seen;
    size_t len;
    char v[SMTP_HEADER_FIELD_MAX + 1];  /* unfolded body, NUL-terminated */
};

struct hdrscan {
    unsigned char state;
    unsigned char kept;         /* the field being read: none, From, Sender */
    unsigned char namelen;
    char name[8];               /* its name so far, lower case (short ones only) */
    enum hdrscan_status status;
    size_t octets;              /* of the header block, so far */
    unsigned fields;
    const char *dup;            /* HDRSCAN_DUPLICATE: "From" or "Sender" */
    struct hdr_field from, sender;
};

void hdrscan_init(struct hdrscan *h);

/* Scan p[0..len); returns h->status. Once that is not HDRSCAN_MORE,
 * further octets are ignored (the body is not looked at). */
enum hdrscan_status hdrscan_feed(struct hdrscan *h, const char *p, size_t len);

/* The longest address hdraddr_parse gives: RFC 5321's path limit, since
 * no envelope (and no sender_map key) can name a longer one. */
#define HDRADDR_MAX SMTP_PATH_MAX

/* One mailbox found, as local@domain (a local part that is not a
 * dot-atom quoted, as RFC 5322 3.4.1 would write it), NUL-terminated. */
typedef void hdraddr_cb(const char *addr, void *arg);

/* The mailboxes of the address list s[0..len), those in groups
 * included: how many (0 for an empty list), or -1 if it is not an
 * address list or an address is longer than HDRADDR_MAX. cb may be
 * NULL; on -1 it may have been called for the mailboxes before the
 * error. */
int hdraddr_parse(const char *s, size_t len, hdraddr_cb *cb, void *arg);

enum hdrfrom_verdict {
    HDRFROM_OK,                 /* every From:/Sender: address is owned */
    HDRFROM_FOREIGN,            /* r->addr in r->field is not */
    HDRFROM_NO_FROM,            /* no From: field, or one with no mailbox */
    HDRFROM_UNPARSABLE,         /* r->field is not an address list */
    HDRFROM_MALFORMED,          /* a header line that is not a field */
    HDRFROM_DUPLICATE,          /* r->field twice */
    HDRFROM_TOO_BIG,            /* the header block or r->field too long */
};

struct hdrfrom_result {
    enum hdrfrom_verdict verdict;
    const char *field;          /* "From" or "Sender", or NULL */
    char addr[HDRADDR_MAX + 1]; /* HDRFROM_FOREIGN: the first foreign one */
};

typedef bool hdrfrom_owned_fn(const char *addr, void *arg);

/* The verdict on a scan that is no longer HDRSCAN_MORE (an unfinished
 * one is judged as it stands: a message cut short still needs a From:). */
void hdrfrom_judge(const struct hdrscan *h, hdrfrom_owned_fn *owned,
                   void *arg, struct hdrfrom_result *r);

/* "ok", "foreign", "no_from", "unparsable", "malformed", "duplicate",
 * "too_big": for the log. */
const char *hdrfrom_verdict_name(enum hdrfrom_verdict v);

#endif
