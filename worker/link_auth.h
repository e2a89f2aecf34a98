/*
 * link_auth: what proves a neighbour knows the herd secret. Random nonces
 * from getrandom(2) and HMAC-SHA256 proofs over the whole handshake
 * transcript (both names, both nonces and the prover's role), compared in
 * constant time. Without a secret every proof is "-".
 */
#ifndef HERD_LINK_AUTH_H
#define HERD_LINK_AUTH_H

#include <stddef.h>

#include "link_proto.h"

/* Everything both sides of one handshake know; a proof covers all of it. */
struct link_transcript {
    const char *dialer; /* NUL-terminated names and hex nonces */
    const char *acceptor;
    const char *nonce_d;
    const char *nonce_a;
};

/* Writes LINK_NONCE_HEX fresh random hex digits and a NUL. 0, or -1 with errno. */
int link_nonce(char out[LINK_NONCE_HEX + 1]);

/*
 * Writes the proof of ROLE ('D' dialer, 'A' acceptor) over T: hex
 * HMAC-SHA256(secret, "HERD/1 ROLE dialer acceptor nonce_d nonce_a"), or "-"
 * when SECRET is NULL. 0, or -1 when the HMAC could not be computed.
 */
int link_proof(const char *secret, char role, const struct link_transcript *t,
               char out[LINK_PROOF_HEX + 1]);

/* Nonzero when PROOF (LEN bytes) is the proof of ROLE over T under SECRET.
 * Without a secret every proof is accepted. */
int link_proof_ok(const char *secret, char role, const struct link_transcript *t, const char *proof,
                  size_t len);

#endif
