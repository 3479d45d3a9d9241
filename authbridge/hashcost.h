/*
 * What a password check costs, so that an unknown user costs at least as
 * much as the costliest known one (a user file may mix {PLAIN},
 * {SHA512-CRYPT}, {BLF-CRYPT}... and each scheme takes its own time).
 *
 * A crypt hash's cost depends on its method and parameters, not its
 * salt: "$6$rounds=10000$salt$hash" is class "$6$rounds=10000". Costs are
 * measured, not guessed: no table ranks yescrypt against bcrypt against
 * SHA-512 with rounds on every machine.
 */
#ifndef AB_HASHCOST_H
#define AB_HASHCOST_H

#include <stddef.h>
#include <stdint.h>

/* Distinct classes measured per user file; more are rare (a file's
 * history of schemes), and beyond it the first ones seen count. */
#define HASHCOST_CLASSES_MAX 8

/* The cost class of a crypt hash, into out (at most len - 1 octets). */
void hashcost_class(const char *hash, char *out, size_t len);

/* Blocking (crypt_r), so a worker thread or start-up only: the CPU time
 * of checking a password against hash, the least of two tries. */
uint64_t hashcost_measure_ns(const char *hash);

#endif
