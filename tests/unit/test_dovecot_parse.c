/*
 * The Dovecot door's pure parts: the HTTP/1.1 framing and request, the
 * JSON reader (Dovecot's attribute nesting, events), the renewal table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtpgate/http.h"
#include "smtpgate/json.h"
#include "smtpgate/limits.h"
#include "smtpgate/renew.h"

static const struct reqconn_limits lim = {
    .line_max = HTTP_LINE_MAX, .lines_max = HTTP_HEADERS_MAX + 2,
    .request_max = HTTP_HEAD_MAX + HTTP_BODY_MAX, .frame = http_frame,
};

static char buf[HTTP_HEAD_MAX + HTTP_BODY_MAX + 64];
static char *parts[HTTP_HEADERS_MAX + 2];

static int frame(const char *text, size_t len, size_t *n, size_t *used)
{
    memcpy(buf, text, len);
    return http_frame(buf, len, &lim, parts, n, used);
}

#define FRAME(s, n, used) frame(s, strlen(s), n, used)

static const char dovecot_allow[] =
    "POST /?command=allow HTTP/1.1\r\n"
    "Host: 127.0.0.1:10033\r\n"
    "Date: Tue, 01 Dec 2026 09:53:58 GMT\r\n"
    "User-Agent: dovecot/auth-policy-client\r\n"
    "Content-Length: 16\r\n"
    "Connection: Keep-Alive\r\n"
    "Content-Type: application/json\r\n"
    "X-API-Key: SECRET\r\n"
    "\r\n"
    "{\"remote\":\"1.2\"}";

/* ---- framing ---------------------------------------------------------------- */

static void a_dovecot_request_is_one_frame_with_its_body_last(void **state)
{
    size_t n, used;

    (void)state;
    assert_int_equal(FRAME(dovecot_allow, &n, &used), 1);
    assert_int_equal(used, strlen(dovecot_allow));
    assert_int_equal(n, 9);
    assert_string_equal(parts[0], "POST /?command=allow HTTP/1.1");
    assert_string_equal(parts[7], "X-API-Key: SECRET");
    assert_string_equal(parts[8], "{\"remote\":\"1.2\"}");
}

static void an_incomplete_request_waits_touching_nothing(void **state)
{
    size_t n, used, len = strlen(dovecot_allow);

    (void)state;
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(frame(dovecot_allow, cut, &n, &used), 0);
        assert_memory_equal(buf, dovecot_allow, cut);
    }
}

static void pipelined_requests_frame_one_at_a_time(void **state)
{
    char two[2 * sizeof(dovecot_allow)];
    size_t n, used;

    (void)state;
    snprintf(two, sizeof(two), "%s%s", dovecot_allow, dovecot_allow);
    assert_int_equal(FRAME(two, &n, &used), 1);
    assert_int_equal(used, strlen(dovecot_allow));
}

static void a_refusal_is_one_part_the_status_line(void **state)
{
    static const struct { const char *req, *status; } cases[] = {
        { "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
          "501 Not Implemented" },
        { "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-length: 3\r\n\r\n",
          "400 Bad Request" },
        { "POST / HTTP/1.1\nHost: x\n\n", "400 Bad Request" },
        { "POST / HTTP/1.1\r\nHost: a\rb\r\n\r\n", "400 Bad Request" },
        { "POST / HTTP/1.1\r\n x: folded\r\n\r\n", "400 Bad Request" },
        { "POST / HTTP/1.1\r\nno colon\r\n\r\n", "400 Bad Request" },
        { "POST / HTTP/1.1\r\nBad Name: x\r\n\r\n", "400 Bad Request" },
        { "\r\n", "400 Bad Request" },
        { "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "400 Bad Request" },
        { "POST / HTTP/1.1\r\nContent-Length: 16385\r\n\r\n",
          "413 Content Too Large" },
        { "POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
          "400 Bad Request" },
    };
    size_t n, used;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(FRAME(cases[i].req, &n, &used), 1);
        assert_int_equal(n, 1);
        assert_string_equal(parts[0], cases[i].status);
        assert_int_equal(used, strlen(cases[i].req));
    }
}

static void body_and_header_caps_hold_at_both_sides(void **state)
{
    static char req[HTTP_HEAD_MAX + HTTP_BODY_MAX + 256];
    size_t n, used;
    int h;

    (void)state;
    h = snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nContent-Length: %d"
                 "\r\n\r\n", HTTP_BODY_MAX);
    memset(req + h, '{', HTTP_BODY_MAX);
    assert_int_equal(frame(req, (size_t)h + HTTP_BODY_MAX, &n, &used), 1);
    assert_int_equal(n, 3);
    assert_int_equal(strlen(parts[2]), HTTP_BODY_MAX);
    /* A line of HTTP_LINE_MAX is taken, one more is 431. */
    h = snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nX: ");
    memset(req + h, 'a', HTTP_LINE_MAX - 3);
    memcpy(req + h + HTTP_LINE_MAX - 3, "\r\n\r\n", 5);
    assert_int_equal(FRAME(req, &n, &used), 1);
    assert_int_equal(n, 3);
    memmove(req + h + 1, req + h, strlen(req + h) + 1);
    assert_int_equal(FRAME(req, &n, &used), 1);
    assert_int_equal(n, 1);
    assert_string_equal(parts[0], "431 Request Header Fields Too Large");
    /* A header block that never ends is refused at the cap. */
    h = snprintf(req, sizeof(req), "POST / HTTP/1.1\r\n");
    while (h < HTTP_HEAD_MAX) {
        int l = snprintf(req + h, sizeof(req) - (size_t)h, "X: ");
        memset(req + h + l, 'a', 1000 - l - 2);
        memcpy(req + h + 1000 - 2, "\r\n", 2);
        h += 1000;
    }
    assert_int_equal(frame(req, HTTP_HEAD_MAX, &n, &used), 1);
    assert_int_equal(n, 1);
    assert_string_equal(parts[0], "431 Request Header Fields Too Large");
}

static void too_many_headers_are_431(void **state)
{
    char req[4096];
    size_t n, used;
    int o = snprintf(req, sizeof(req), "POST / HTTP/1.1\r\n");

    (void)state;
    for (int i = 0; i < HTTP_HEADERS_MAX; i++)
        o += snprintf(req + o, sizeof(req) - (size_t)o, "X-%d: y\r\n", i);
    snprintf(req + o, sizeof(req) - (size_t)o, "\r\n");
    assert_int_equal(FRAME(req, &n, &used), 1);
    assert_int_equal(n, HTTP_HEADERS_MAX + 2);
    snprintf(req + o, sizeof(req) - (size_t)o, "X-last: y\r\n\r\n");
    assert_int_equal(FRAME(req, &n, &used), 1);
    assert_int_equal(n, 1);
}

/* ---- the request ----------------------------------------------------------------- */

static void a_request_gives_method_path_query_key_and_body(void **state)
{
    struct http_req r;
    size_t n, used;

    (void)state;
    assert_int_equal(FRAME(dovecot_allow, &n, &used), 1);
    assert_null(http_parse(parts, n, &r));
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/");
    assert_string_equal(r.query, "command=allow");
    assert_int_equal(r.minor, 1);
    assert_string_equal(r.api_key, "SECRET");
    assert_null(r.authorization);
    assert_false(r.close);
    assert_int_equal(r.body_len, 16);
    assert_string_equal(r.body, "{\"remote\":\"1.2\"}");
}

static const char *parse_text(const char *req, struct http_req *r)
{
    size_t n, used;

    if (FRAME(req, &n, &used) != 1)
        return "incomplete";
    return n == 1 ? parts[0] : http_parse(parts, n, r);
}

static void request_lines_and_versions(void **state)
{
    struct http_req r;

    (void)state;
    assert_string_equal(parse_text("POST / HTTP/2.0\r\n\r\n", &r),
                        "505 HTTP Version Not Supported");
    assert_string_equal(parse_text("POST /  HTTP/1.1\r\n\r\n", &r),
                        "400 Bad Request");
    assert_string_equal(parse_text("POST x HTTP/1.1\r\n\r\n", &r),
                        "400 Bad Request");
    assert_string_equal(parse_text("PO(ST / HTTP/1.1\r\n\r\n", &r),
                        "400 Bad Request");
    assert_string_equal(parse_text("POST / FTP/1.1\r\n\r\n", &r),
                        "400 Bad Request");
    assert_null(parse_text("POST /a?b HTTP/1.0\r\n\r\n", &r));
    assert_true(r.close);
    assert_string_equal(r.query, "b");
    assert_null(parse_text("POST / HTTP/1.1\r\nConnection: TE, close\r\n\r\n",
                           &r));
    assert_true(r.close);
    assert_string_equal(parse_text("POST / HTTP/1.1\r\nX-API-Key: a\r\n"
                                   "x-api-key: b\r\n\r\n", &r),
                        "400 Bad Request");
    assert_null(parse_text("POST / HTTP/1.1\r\nX-Api-Key:  k  \r\n\r\n", &r));
    assert_string_equal(r.api_key, "k");
}

static void query_parameters(void **state)
{
    char v[16];

    (void)state;
    assert_true(http_query_param("command=allow", "command", v, sizeof(v)));
    assert_string_equal(v, "allow");
    assert_true(http_query_param("x=1&command=report", "command", v,
                                 sizeof(v)));
    assert_string_equal(v, "report");
    assert_false(http_query_param("commands=x", "command", v, sizeof(v)));
    assert_false(http_query_param("", "command", v, sizeof(v)));
    assert_false(http_query_param("command=0123456789abcdef", "command", v,
                                  sizeof(v)));
}

static void basic_authentication_gives_the_password(void **state)
{
    char pw[32];

    (void)state;
    /* base64("dovecot:SECRET"), "x:a:b", ":" */
    assert_true(http_basic_password("Basic ZG92ZWNvdDpTRUNSRVQ=", pw,
                                    sizeof(pw)));
    assert_string_equal(pw, "SECRET");
    assert_true(http_basic_password("basic eDphOmI=", pw, sizeof(pw)));
    assert_string_equal(pw, "a:b");
    assert_true(http_basic_password("Basic Og==", pw, sizeof(pw)));
    assert_string_equal(pw, "");
    assert_false(http_basic_password("Basic eA==", pw, sizeof(pw)));
    assert_false(http_basic_password("Bearer ZG92ZWNvdDpTRUNSRVQ=", pw,
                                     sizeof(pw)));
    assert_false(http_basic_password("Basic !!!!", pw, sizeof(pw)));
    assert_false(http_basic_password(NULL, pw, sizeof(pw)));
}

static void responses(void **state)
{
    char out[256];

    (void)state;
    assert_int_equal(http_response(out, sizeof(out), "200 OK",
                                   "{\"status\":0}", false), 83);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Type: application/"
                        "json\r\nContent-Length: 12\r\n\r\n{\"status\":0}");
    http_response(out, sizeof(out), "403 Forbidden", "", true);
    assert_string_equal(out, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                        "Connection: close\r\n\r\n");
    assert_int_equal(http_response(out, 10, "200 OK", "", false), 0);
}

/* ---- JSON ------------------------------------------------------------------------ */

static const char *parse_json(const char *text, struct json_doc *d)
{
    static char b[4096];

    snprintf(b, sizeof(b), "%s", text);
    return json_parse(b, strlen(b), d);
}

static void dovecot_attributes_flatten_into_paths(void **state)
{
    struct json_doc d;

    (void)state;
    assert_null(parse_json("{\"a\":{\"b\":\"x\",\"c\":\"y\"},\"login\":"
                           "\"alice\",\"remote\":\"192.0.2.7\",\"z\":{\"q\":"
                           "\"1\"},\"tls\":false,\"n\":-1.5e3,\"o\":null}",
                           &d));
    assert_int_equal(d.n, 8);
    assert_string_equal(json_get_str(&d, "a/b"), "x");
    assert_string_equal(json_get_str(&d, "a/c"), "y");
    assert_string_equal(json_get_str(&d, "z/q"), "1");
    assert_string_equal(json_get_str(&d, "remote"), "192.0.2.7");
    assert_int_equal(json_get(&d, "tls")->type, JSON_FALSE);
    assert_int_equal(json_get(&d, "n")->type, JSON_NUMBER);
    assert_int_equal(json_get(&d, "o")->type, JSON_NULL);
    assert_null(json_get_str(&d, "tls"));
    assert_null(json_get(&d, "a"));
}

static void an_event_gives_its_fields_and_skips_arrays(void **state)
{
    struct json_doc d;

    (void)state;
    assert_null(parse_json(
        "{\"event\":\"imap_command_finished\",\"hostname\":\"vm\","
        "\"start_time\":1796118844.408901,\"categories\":[\"imap\","
        "\"service:imap\"],\"fields\":{\"user\":\"alice\",\"remote_ip\":"
        "\"127.0.0.1\",\"remote_port\":35254,\"reason_code\":"
        "[\"imap:cmd_noop\",{\"deep\":[[]]}]}}", &d));
    assert_string_equal(json_get_str(&d, "event"), "imap_command_finished");
    assert_string_equal(json_get_str(&d, "fields/user"), "alice");
    assert_string_equal(json_get_str(&d, "fields/remote_ip"), "127.0.0.1");
    assert_null(json_get(&d, "categories"));
    assert_null(json_get(&d, "fields/reason_code/deep"));
}

static void strings_are_unescaped(void **state)
{
    struct json_doc d;

    (void)state;
    assert_null(parse_json("{\"s\":\"a\\\"b\\\\c\\/d\\n\\u00e9\\u20ac"
                           "\\ud83d\\ude00\"}", &d));
    assert_string_equal(json_get_str(&d, "s"),
                        "a\"b\\c/d\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_null(parse_json("{\"k\\u0041\":\"v\"}", &d));
    assert_string_equal(json_get_str(&d, "kA"), "v");
    assert_null(parse_json(" {\"\":\"\"} \n", &d));
    assert_string_equal(json_get_str(&d, ""), "");
}

static void what_is_not_json_is_refused(void **state)
{
    static const char *const bad[] = {
        "", "[]", "\"x\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}",
        "{\"a\":1}x", "{\"a\":01}", "{\"a\":1.}", "{\"a\":-}", "{\"a\":1e}",
        "{\"a\":tru}", "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}",
        "{\"a\":\"\\u0000\"}", "{\"a\":1,\"a\":2}",
        "{\"a\":{\"b\":1},\"a/b\":2}", "{\"a\":\"unterminated}",
        "{'a':1}", "{\"a\":[1,]}", "{\"a\":[1 2]}",
    };
    struct json_doc d;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse_json(bad[i], &d) == NULL)
            fail_msg("accepted: %s", bad[i]);
}

static void depth_members_and_paths_are_capped(void **state)
{
    char text[4096];
    struct json_doc d;
    int o = 0;

    (void)state;
    for (int i = 0; i < JSON_DEPTH_MAX; i++)
        o += snprintf(text + o, sizeof(text) - (size_t)o, "{\"k\":");
    o += snprintf(text + o, sizeof(text) - (size_t)o, "1");
    for (int i = 0; i < JSON_DEPTH_MAX; i++)
        text[o++] = '}';
    text[o] = '\0';
    assert_null(parse_json(text, &d));          /* the cap itself */
    memmove(text + 5, text, strlen(text) + 1);
    memcpy(text, "{\"k\":", 5);
    strcat(text, "}");
    assert_string_equal(parse_json(text, &d), "nested too deep");

    o = snprintf(text, sizeof(text), "{");
    for (int i = 0; i < JSON_MEMBERS_MAX; i++)
        o += snprintf(text + o, sizeof(text) - (size_t)o, "\"m%d\":%d,", i, i);
    text[o - 1] = '}';
    assert_null(parse_json(text, &d));
    assert_int_equal(d.n, JSON_MEMBERS_MAX);
    snprintf(text + o - 1, sizeof(text) - (size_t)o, ",\"last\":1}");
    assert_string_equal(parse_json(text, &d), "too many members");

    o = snprintf(text, sizeof(text), "{\"");
    memset(text + o, 'p', JSON_PATH_MAX - 1);
    snprintf(text + o + JSON_PATH_MAX - 1, 16, "\":1}");
    assert_null(parse_json(text, &d));
    snprintf(text + o + JSON_PATH_MAX - 1, 16, "q\":1}");
    assert_string_equal(parse_json(text, &d), "member path too long");
}

/* ---- renewals ---------------------------------------------------------------- */

static struct ab_addr v4(unsigned char last)
{
    struct ab_addr a = { AF_INET, { 192, 0, 2, last } };
    return a;
}

static void an_address_is_renewed_once_per_interval(void **state)
{
    struct renew_table *t = renew_table_new();
    struct ab_addr a = v4(7), b = v4(8);

    (void)state;
    assert_true(renew_due(t, &a, 1000, 60000));
    assert_false(renew_due(t, &a, 1001, 60000));
    assert_false(renew_due(t, &a, 60999, 60000));
    assert_true(renew_due(t, &b, 1001, 60000));
    assert_true(renew_due(t, &a, 61000, 60000));
    renew_forget(t, &a);
    assert_true(renew_due(t, &a, 61001, 60000));
    renew_table_free(t);
}

static void a_full_table_forgets_and_never_misses(void **state)
{
    struct renew_table *t = renew_table_new();
    struct ab_addr a;

    (void)state;
    /* Far more addresses than slots: each is due the first time. */
    for (unsigned i = 0; i < 4 * RENEW_SLOTS; i++) {
        a = (struct ab_addr){ AF_INET6, { 0x20, 0x01, 0x0d, 0xb8 } };
        memcpy(a.b + 12, &i, sizeof(i));
        assert_true(renew_due(t, &a, 1000 + i, 60000));
    }
    renew_table_free(t);
}

static void the_interval_is_a_minute_or_a_third_of_the_ttl(void **state)
{
    (void)state;
    assert_int_equal(renew_every_ms(1800), 60000);
    assert_int_equal(renew_every_ms(180), 60000);
    assert_int_equal(renew_every_ms(90), 30000);
    assert_int_equal(renew_every_ms(3), 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_dovecot_request_is_one_frame_with_its_body_last),
        cmocka_unit_test(an_incomplete_request_waits_touching_nothing),
        cmocka_unit_test(pipelined_requests_frame_one_at_a_time),
        cmocka_unit_test(a_refusal_is_one_part_the_status_line),
        cmocka_unit_test(body_and_header_caps_hold_at_both_sides),
        cmocka_unit_test(too_many_headers_are_431),
        cmocka_unit_test(a_request_gives_method_path_query_key_and_body),
        cmocka_unit_test(request_lines_and_versions),
        cmocka_unit_test(query_parameters),
        cmocka_unit_test(basic_authentication_gives_the_password),
        cmocka_unit_test(responses),
        cmocka_unit_test(dovecot_attributes_flatten_into_paths),
        cmocka_unit_test(an_event_gives_its_fields_and_skips_arrays),
        cmocka_unit_test(strings_are_unescaped),
        cmocka_unit_test(what_is_not_json_is_refused),
        cmocka_unit_test(depth_members_and_paths_are_capped),
        cmocka_unit_test(an_address_is_renewed_once_per_interval),
        cmocka_unit_test(a_full_table_forgets_and_never_misses),
        cmocka_unit_test(the_interval_is_a_minute_or_a_third_of_the_ttl),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
