#include "tls.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>

const char *tls_error_text(unsigned long e, char *buf, size_t len)
{
    if (e == 0)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(e, buf, len);
    return buf;
}

SSL_CTX *tls_server_ctx(const char *cert, const char *key, char *err,
                        size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[256];

    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new: %s",
                 tls_error_text(ERR_get_error(), why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                        SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* A partial write may be retried from a moved buffer (evbuffers). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                     SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "%s: %s", cert,
                 tls_error_text(ERR_get_error(), why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen, "%s does not match %s", key, cert);
        else
            snprintf(err, errlen, "%s: %s", key,
                     tls_error_text(ERR_get_error(), why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "%s does not match %s", key, cert);
        goto fail;
    }
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}
