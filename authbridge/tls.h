/*
 * Server TLS contexts (OpenSSL 3): TLS 1.2 or newer, no compression, no
 * client-initiated renegotiation, server cipher preference. A context is
 * reference counted (SSL_CTX_up_ref), so SIGHUP can load a new certificate
 * for new connections while existing sessions keep theirs.
 */
#ifndef AB_TLS_H
#define AB_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* NULL with a reason in err (file, OpenSSL's message). */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, char *err,
                        size_t errlen);

/* The last OpenSSL error as text (for logs). */
const char *tls_error_text(unsigned long e, char *buf, size_t len);

#endif
