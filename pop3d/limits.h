/*
 * Every cap pop3d enforces, in one place, each with its reason.
 * Timeouts, connection caps and the failed-login delay come from the
 * configuration (which may lower or raise them within sane ranges);
 * their defaults and reasons are in conf.c and the README.
 */
#ifndef POP3D_LIMITS_H
#define POP3D_LIMITS_H

/* RFC 2449 section 4: a command line "MUST NOT exceed 255 octets,
 * including the terminating CRLF". Longer: one -ERR, then close. */
#define POP3_LINE_MAX 253

/* RFC 5034 section 4: SASL responses sent on their own line may exceed
 * the command limit; a PLAIN response of user, authzid and a long
 * password in base64 fits easily in this. */
#define POP3_SASL_LINE_MAX 4096

/* RFC 2449 section 4 again: "Keywords and arguments ... each argument may
 * be up to 40 characters long". User names get more room (USER_NAME_MAX,
 * as every server gives them); the line limit bounds the total anyway. */
#define POP3_ARG_MAX 40

/* Dovecot's numbers: a client that sends this many unknown or malformed
 * commands is not a mail client; disconnect. */
#define POP3_BAD_CMDS_AUTH  3     /* before login */
#define POP3_BAD_CMDS_TRANS 20    /* after login */

/* Failed logins on one connection before it is closed (scripted guessing
 * must reconnect, and pay the accept and the delay again). */
#define POP3_AUTH_FAILS_MAX 3

/* RFC 1939 section 3: the autologout timer after login "MUST be of at
 * least 10 minutes"; before login a client has less business idling. */
#define POP3_IDLE_RFC_MIN 600

/* A snapshot larger than this lists only the oldest messages: memory per
 * session stays bounded whatever a mailbox holds. */
#define POP3_MAX_MESSAGES 200000

/* RETR/TOP streaming: file reads of this size (the transform may double
 * it, and 2 x 32 KiB stays under malloc's 128 KiB mmap threshold: no page
 * faults per chunk), and at most this much queued for one client before
 * waiting for it to read (back-pressure). */
#define POP3_READ_CHUNK   (32 * 1024)
/* Names tried for a new/ message whose cur/ name is taken (a collision
 * is rare; each retry draws a new random tag). */
#define POP3_MOVE_ATTEMPTS 8

#define POP3_OUTPUT_HIGH  (256 * 1024)
#define POP3_OUTPUT_LOW   (64 * 1024)

/* The Maildir lock is refreshed this often while held, and counts as
 * stale (its holder died or hung) when older than POP3_LOCK_STALE. */
#define POP3_LOCK_REFRESH 60
#define POP3_LOCK_STALE   300

/* UIDL: RFC 1939 section 7, 1 to 70 characters in 0x21..0x7E. */
#define POP3_UIDL_MAX 70

#endif
