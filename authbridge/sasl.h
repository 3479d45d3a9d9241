/*
 * SASL message decoding shared by pop3d's AUTH (RFC 5034) and smtpgate's
 * SMTP AUTH (RFC 4954): strict base64, and the PLAIN (RFC 4616) message
 * split. Pure functions, unit-tested and fuzzed; the sessions do the
 * exchanges.
 */
#ifndef AB_SASL_H
#define AB_SASL_H

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
 * the password, and the user must be users_valid_name().
 */
int sasl_plain_split(unsigned char *msg, size_t len, const char **user,
                     const char **pass, size_t *passlen);

#endif
