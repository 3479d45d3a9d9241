/*
 * The From: check's header scanner and address parser (smtpgate/hdrfrom.c).
 * Besides not crashing:
 *   - the scanner's answer does not depend on how DATA is chunked;
 *   - it never keeps more than SMTP_HEADER_FIELD_MAX octets a field;
 *   - every address the parser gives is local@domain, within
 *     HDRADDR_MAX, and parses again to itself (so what is judged is
 *     exactly one address, written one way);
 *   - the verdict is OK only if every From:/Sender: address is owned.
 * The first input octet picks the chunk size; the rest is DATA, and is
 * also parsed whole as one field body.
 */
#include "fuzz/fuzz.h"
#include "smtpgate/hdrfrom.h"

#include <string.h>
#include <strings.h>

static struct hdrscan whole, chunked;

static bool owned(const char *addr, void *arg)
{
    size_t n = strlen(addr);

    (void)arg;
    return n > 12 && strcasecmp(addr + n - 12, "@example.net") == 0;
}

static void same_again(const char *addr, void *arg)
{
    const char *want = arg;

    if (strcmp(addr, want) != 0)
        __builtin_trap();
}

static void check_address(const char *addr, void *arg)
{
    char copy[HDRADDR_MAX + 1];
    size_t n = strlen(addr);

    (void)arg;
    if (n == 0 || n > HDRADDR_MAX || strchr(addr, '@') == NULL)
        __builtin_trap();
    memcpy(copy, addr, n + 1);
    if (hdraddr_parse(copy, n, same_again, copy) != 1)
        __builtin_trap();
}

static void all_owned(const char *addr, void *arg)
{
    if (!owned(addr, NULL))
        *(bool *)arg = false;
}

static void check_verdict(const struct hdrscan *h)
{
    struct hdrfrom_result r;
    bool ok = true;

    hdrfrom_judge(h, owned, NULL, &r);
    if (r.verdict == HDRFROM_FOREIGN && owned(r.addr, NULL))
        __builtin_trap();
    if (r.verdict != HDRFROM_OK)
        return;
    if (!h->from.seen || h->from.len > SMTP_HEADER_FIELD_MAX ||
        hdraddr_parse(h->from.v, h->from.len, all_owned, &ok) <= 0 || !ok)
        __builtin_trap();
    if (h->sender.seen &&
        (hdraddr_parse(h->sender.v, h->sender.len, all_owned, &ok) <= 0 || !ok))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t chunk;
    enum hdrscan_status st;

    if (size < 1)
        return 0;
    chunk = 1 + data[0] % 64;
    data++;
    size--;

    hdrscan_init(&whole);
    st = hdrscan_feed(&whole, (const char *)data, size);
    hdrscan_init(&chunked);
    for (size_t i = 0; i < size; i += chunk)
        hdrscan_feed(&chunked, (const char *)data + i,
                     size - i < chunk ? size - i : chunk);
    if (chunked.status != st || chunked.from.seen != whole.from.seen ||
        chunked.from.len != whole.from.len ||
        memcmp(chunked.from.v, whole.from.v, whole.from.len) != 0 ||
        chunked.sender.len != whole.sender.len ||
        memcmp(chunked.sender.v, whole.sender.v, whole.sender.len) != 0)
        __builtin_trap();
    if (st != HDRSCAN_MORE)
        check_verdict(&whole);

    hdraddr_parse((const char *)data, size, check_address, NULL);
    return 0;
}
