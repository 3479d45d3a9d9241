/*
 * SMTP AUTH (RFC 4954) message decoding for the PLAIN (RFC 4616) and
 * LOGIN mechanisms: strict base64, and the PLAIN message split.
 * Pure functions, unit-tested; the session does the exchange.
 */
#ifndef SMTPGATE_SASL_H
#define SMTPGATE_SASL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * RFC 4648 base64 with padding, no spaces or line breaks. Writes at most
 * outlen octets; returns the decoded length, or -1 for malformed input
 * or when it does not fit. "=" alone (RFC 4954: an empty initial
 * response) decodes to 0 octets.
 */
long sasl_base64_decode(const char *in, size_t len, unsigned char *out,
                        size_t outlen);

/*
 * RFC 4616: authzid NUL authcid NUL passwd. The message is split in
 * place; authzid may be empty (or must equal authcid: we do not let one
 * user act for another). 0, or -1 when malformed. No NUL may appear in
 * the password, and the user may not be empty.
 */
int sasl_plain_split(unsigned char *msg, size_t len, const char **user,
                     const char **pass, size_t *passlen);

/* A user name we pass to the password check: 1..255 octets, printable
 * ASCII or UTF-8, no ':' (the user file's separator), no space. */
bool sasl_user_valid(const char *user);

#endif
