/*
 * The gate's SMTP command line: verb, MAIL/RCPT paths and parameters,
 * the local/remote question, HELO names, AUTH responses. Besides not
 * crashing: a recipient judged local never hides routing.
 */
#include "fuzz/fuzz.h"
#include "smtpgate/rcpt.h"
#include "authbridge/sasl.h"
#include "smtpgate/smtp_parse.h"

#include <string.h>

static char *domains_v[] = { "example.net", "example.org" };
static const struct strlist domains = { domains_v, 2 };

static void check_local(const struct smtp_path *p)
{
    const char *why;
    const char *domain = smtp_path_domain(p);

    if (strlen(p->mailbox) > SMTP_PATH_MAX)
        __builtin_trap();
    if (rcpt_classify(p, &domains, &why) != RCPT_LOCAL || p->postmaster)
        return;
    if (p->route || p->quoted || p->literal ||
        memchr(p->mailbox, '%', p->at) || memchr(p->mailbox, '!', p->at) ||
        strchr(domain, '@') || !strlist_contains_ci(&domains, domain,
                                                    strlen(domain)))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len;
    char *line = fuzz_cstr(data, size, &len);
    struct smtp_cmd c;
    struct smtp_path p;
    struct smtp_mail_params mp;
    unsigned char out[4096];
    const char *user, *pass;
    size_t passlen;
    long n;

    if (smtp_cmd_split(line, len, &c) < 0)
        return 0;
    smtp_helo_valid(c.args, c.argslen);
    if (strcmp(c.verb, "MAIL") == 0 &&
        smtp_parse_mail(c.args, c.argslen, &p, &mp) == NULL)
        check_local(&p);
    if (strcmp(c.verb, "RCPT") == 0 &&
        smtp_parse_rcpt(c.args, c.argslen, &p) == NULL)
        check_local(&p);
    n = sasl_base64_decode(c.args, c.argslen, out, sizeof(out) - 1);
    if (n >= 0 && (size_t)n < sizeof(out)) {
        out[n] = '\0';
        sasl_plain_split(out, (size_t)n, &user, &pass, &passlen);
    }
    return 0;
}
