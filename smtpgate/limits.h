/*
 * Every cap smtpgate enforces, in one place, each with its reason.
 * Timeouts, the message size, the recipient count, connection caps and the
 * failed-AUTH delay come from the configuration ([smtpgate] keys, ranges
 * checked in conf.c); the fixed caps are here.
 */
#ifndef SMTPGATE_LIMITS_H
#define SMTPGATE_LIMITS_H

/* ---- the SMTP server side ------------------------------------------------ */

/* RFC 5321 4.5.3.1.4: "The maximum total length of a command line
 * including the command word and the <CRLF> is 512 octets." Longer: one
 * 500 5.5.6, then close (the rest of such a line is not a command). */
#define SMTP_LINE_MAX 512

/* RFC 4954 section 4: a server "MUST be able to accept" AUTH lines (the
 * command with an initial response, and the responses) of 12288 octets.
 * Only AUTH may use this; every other command is held to SMTP_LINE_MAX. */
#define SMTP_AUTH_LINE_MAX 12288

/* RFC 5321 4.5.3.1.1 and 4.5.3.1.2: local part 64 octets, domain 255. */
#define SMTP_LOCAL_MAX  64
#define SMTP_DOMAIN_MAX 255

/* RFC 5321 4.5.3.1.3: a path is at most 256 octets "including the
 * punctuation and element separators". */
#define SMTP_PATH_MAX 256

/* HELO/EHLO argument: a domain or an address literal; a domain is at most
 * 255 octets (4.5.3.1.2), and the literal is shorter. It is logged and
 * passed downstream (XCLIENT HELO=), so it is bounded. */
#define SMTP_HELO_MAX 255

/* A client that sends this many unknown, malformed or out-of-sequence
 * commands is not a mail client (or is a probe): 421 and close. Postfix's
 * smtpd_hard_error_limit defaults to 20; a bad command is cheap to send,
 * so ours is tighter. */
#define SMTP_BAD_CMDS_MAX 10

/* Errors of any kind in one session: bad commands and refused
 * recipients (a relay refusal, a sender that is not the user's). At this
 * many, 421 and close, as Postfix's smtpd_hard_error_limit (20): one
 * transaction took 120,000 refused RCPTs in 5 s without it. A mail
 * client with a stale address list meets it only past 20 refusals;
 * temporary failures (ours) do not count. */
#define SMTP_HARD_ERRORS_MAX 20

/* Failed AUTH attempts on one connection before 421 and close: guessing
 * must reconnect and pay the accept and the delay again. */
#define SMTP_AUTH_FAILS_MAX 3

/* RFC 5321 4.5.3.1.8: servers must accept at least 100 recipients; more
 * get 452 4.5.3 (the client sends them in the next transaction). The
 * configured max_recipients may be higher, never lower (conf.c). */
#define SMTP_RCPT_RFC_MIN 100

/*
 * RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with CRLF. We
 * PASS longer lines through: DATA is streamed, never held as lines, so a
 * long line costs no memory here; the MTA applies its own policy
 * (Postfix folds at line_length_limit). Refusing them would bounce real
 * mail from broken clients. The message-size cap bounds the total.
 * (Not a cap; written down because it is a deliberate choice.)
 */

/* DATA streaming back-pressure: stop reading the client when this much
 * is waiting to be written to the MTA, read again below the low mark. */
#define SMTP_DS_OUTPUT_HIGH (256 * 1024)
#define SMTP_DS_OUTPUT_LOW  (64 * 1024)

/* Replies queued for a client that does not read them, before its
 * commands stop being read (RFC 2920 pipelining needs a batch's replies,
 * a few KB): a client pipelining NOOPs without reading would otherwise
 * grow our output without end. Reading resumes below the low mark; the
 * command timeout ends a client that never reads again. */
#define SMTP_OUTPUT_HIGH (64 * 1024)
#define SMTP_OUTPUT_LOW  (16 * 1024)

/* SIGTERM: sessions get this long to finish the command at hand (a DATA
 * in flight) before the process exits anyway. */
#define SMTP_SHUTDOWN_GRACE_S 30

/* header_from_check: the header block read before the From: decision.
 * RFC 5322 sets no cap; Postfix keeps 102400 octets of a header
 * (header_size_limit), so this reads at least what Postfix would. A
 * longer block fails the check (550 5.6.0): a From: hidden behind
 * padding must not pass unseen, and nothing past the cap is looked at. */
#define SMTP_HEADER_BLOCK_MAX (128 * 1024)

/* One From: or Sender: field, unfolded, kept for parsing (the other
 * fields are only counted). RFC 5322 2.1.1: a line is at most 998
 * octets; a field naming several authors folds over a few. Longer fails
 * the check like an oversized header block. */
#define SMTP_HEADER_FIELD_MAX 4096

/* ---- the downstream (MTA) side ---------------------------------------- */

/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with CRLF. Our
 * MTA is trusted, but a broken one must not make us buffer without end:
 * a longer line is a protocol error (451 to the client). */
#define DS_REPLY_LINE_MAX 512

/* Lines in one reply (an EHLO reply lists ~15 extensions). */
#define DS_REPLY_LINES_MAX 64

/* Reply text kept to pass back to the client (all lines together). */
#define DS_REPLY_TEXT_MAX 4096

/* Commands queued or in flight on one MTA connection: a session has at
 * most MAIL, RCPT and RSET outstanding; room to spare. */
#define DS_QUEUE_MAX 8

/* Seconds to wait for the MTA's answer to QUIT at session end, before
 * just closing. */
#define DS_QUIT_WAIT_S 5

/* Idle MTA connections kept for the next session (a connect, a greeting
 * and an EHLO saved per session), and for how long: well below the idle
 * timeouts of MTAs (Postfix smtpd_timeout 300 s, RFC 5321 4.5.3.2.7's
 * 5 minutes), so the MTA never closes one under us in practice. */
#define DS_POOL_MAX    64
#define DS_POOL_IDLE_S 10

/* ---- the decisions stream ------------------------------------------------ */

/* Decisions reach the Redis decisions stream at most once per this many
 * ms for each client address (refusals: anyone can cause them, as often
 * as they like) and each front door, client, port, user and path (allowed
 * relays: tens of thousands a second on a busy gate, which would make the
 * capped stream seconds long); one entry then says how many it stands
 * for. The text log keeps every one. */
#define RELAY_SAMPLE_MS 60000

/* Keys remembered for that; a full table is written out and emptied (a
 * flood of new addresses then costs a few extra entries, never memory). */
#define RELAY_SAMPLE_ADDRS 10000

/* ---- policy service, WHOSON and socketmap --------------------------------- */

/* SMTPD_POLICY_README: one request is ~30 "name=value" lines of well under
 * 100 octets each (Postfix caps the SMTP values it copies at 2048). A
 * request that breaks these caps is not from Postfix: close. */
#define POLICY_LINE_MAX    2048
#define POLICY_ATTRS_MAX   64
#define POLICY_REQUEST_MAX (16 * 1024)

/* Concurrent policy connections: one per Postfix smtpd process
 * (default_process_limit 100), with a wide margin; from one address (one
 * MTA host) a quarter of that, so no single peer takes them all. */
#define POLICY_CONNS_MAX          4096
#define POLICY_CONNS_PER_ADDR_MAX 1024

/* Idle policy connection: Postfix closes its own after
 * smtpd_policy_service_max_idle (300 s); ours is a backstop. */
#define POLICY_IDLE_S 600

/* WHOSON: "QUERY 2001:db8::1" or "LOGIN <addr> <user>": short lines, one
 * per request, then the empty line. */
#define WHOSON_LINE_MAX    512
#define WHOSON_REQUEST_MAX 1024
#define WHOSON_CONNS_MAX   1024
#define WHOSON_CONNS_PER_ADDR_MAX 256
/* Bad requests on one WHOSON connection before it is closed: each is
 * answered '*' and logged, so without a cap a client could make us log
 * without end. */
#define WHOSON_BAD_MAX 10
#define WHOSON_IDLE_S      300

/* Socketmap (Postfix socketmap_table(5), Sendmail's socket map class):
 * a request is one netstring "<map> <key>". Keys are client addresses
 * (45 octets as text at most, "IPv6:" prefix and all) and, from
 * Postfix's check_client_access, host names (255 octets at most, RFC
 * 1035 2.3.4) and their parent domains: 1024 octets of payload is four
 * times what an MTA sends. A longer netstring is refused (PERM, then
 * close: skipping it would mean reading it). */
#define SOCKETMAP_REQUEST_MAX 1024
/* The netstring around it: "1024:" + payload + ",". */
#define SOCKETMAP_FRAME_MAX (SOCKETMAP_REQUEST_MAX + 6)

/* One connection per Postfix smtpd process or Sendmail SMTP session
 * (each session is a child process with its own map connection): as for
 * the policy service. */
#define SOCKETMAP_CONNS_MAX          4096
#define SOCKETMAP_CONNS_PER_ADDR_MAX 1024

/* PERM answers on one socketmap connection before it is closed: each is
 * logged, and an MTA sends none (its keys are addresses and host names),
 * so without a cap a client could make us log without end (as WHOSON). */
#define SOCKETMAP_BAD_MAX 10

/* Postfix closes an idle socketmap connection after 10 s; Sendmail keeps
 * its connection for the whole SMTP session, which its own timeouts
 * bound (an hour for a slow DATA). Ours is a backstop, as for policy. */
#define SOCKETMAP_IDLE_S 600

/* Answers queued for a policy, WHOSON or socketmap peer that does not
 * read them, before its requests stop being read: a real client reads
 * each answer before its next request, so a few KB is dozens of answers
 * of slack. A peer pipelining requests without reading would otherwise
 * make us queue without end (3-byte requests, 40-byte answers). */
#define REQ_OUT_HIGH (4 * 1024)

/* ---- the Dovecot door (HTTP/1.1: auth policy requests, event posts) ---- */

/* Dovecot's HTTP client sends ~7 header lines of well under 200 octets
 * (Host, Date, User-Agent, Content-Length, Connection, Content-Type, the
 * API header or Authorization). A header block over these caps is not
 * from Dovecot: 431, then close. */
#define HTTP_HEAD_MAX    8192
#define HTTP_LINE_MAX    1024
#define HTTP_HEADERS_MAX 32

/* A policy request is ~250 octets with the README's attributes; an
 * imap_command_finished event ~600, more with a long command argument
 * (cmd_args holds the command line, which Dovecot caps at
 * imap_max_line_length, 64 KB by default). Over the cap: 413 and close;
 * an event lost that way costs nothing, the next command renews. */
#define HTTP_BODY_MAX    (16 * 1024)

/* The JSON of a body: Dovecot's attributes nest one level per '/' in a
 * key ("a/b="), events two (fields/...). Members counted after
 * flattening; the request's few are far below these. */
#define JSON_DEPTH_MAX   8
#define JSON_MEMBERS_MAX 64
#define JSON_PATH_MAX    128

/* Concurrent connections: Dovecot's auth process keeps up to 100 to its
 * policy server (http_client max_parallel_connections), the stats
 * process a few for the event exporter; one Dovecot host may use them
 * all, and a cluster has several hosts. */
#define DOVECOT_CONNS_MAX          4096
#define DOVECOT_CONNS_PER_ADDR_MAX 512

/* Idle keep-alive connection: Dovecot closes its own after 10 s
 * (max_idle_time_msecs); ours is a backstop, and also ends a peer that
 * stops reading its answers. */
#define DOVECOT_IDLE_S 60

/* IMAP session renewals: one grant write per address per interval
 * (a minute, or grant.ttl/3 when shorter), remembered in a fixed table
 * (a power of two) of this many addresses; a busy table forgets its
 * oldest entries, which costs an early renewal, never a missed one. At
 * most this many renewals wait for Redis at once; events beyond are
 * answered and dropped (the session's next command renews). */
#define RENEW_EVERY_MAX_MS  60000
#define RENEW_SLOTS         32768
#define RENEW_INFLIGHT_MAX  1024


#endif
