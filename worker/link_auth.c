/*
 * link_auth: nonces and HMAC proofs for the link handshake. The message
 * names the prover's role so a proof cannot be reflected back as the other
 * side's, and carries both fresh nonces so it cannot be replayed on another
 * connection.
 */
#include "link_auth.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

_Static_assert(LINK_NONCE_HEX == 2 * LINK_NONCE_BYTES, "a nonce is its bytes in hex");

static const char HEX[] = "0123456789abcdef";

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[p[i] >> 4];
        out[2 * i + 1] = HEX[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int link_nonce(char out[LINK_NONCE_HEX + 1])
{
    unsigned char raw[LINK_NONCE_BYTES];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    to_hex(raw, sizeof raw, out);
    return 0;
}

int link_proof(const char *secret, char role, const struct link_transcript *t,
               char out[LINK_PROOF_HEX + 1])
{
    if (secret == NULL) {
        memcpy(out, "-", 2);
        return 0;
    }
    char msg[5 * (LINK_NAME_MAX + 8)];
    int n = snprintf(msg, sizeof msg, "%s %c %s %s %s %s", LINK_VERSION, role, t->dialer,
                     t->acceptor, t->nonce_d, t->nonce_a);
    size_t klen = strlen(secret);
    if (n < 0 || (size_t)n >= sizeof msg || klen > INT_MAX)
        return -1;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (HMAC(EVP_sha256(), secret, (int)klen, (const unsigned char *)msg, (size_t)n, md, &mdlen) ==
            NULL ||
        mdlen * 2 != LINK_PROOF_HEX)
        return -1;
    to_hex(md, mdlen, out);
    return 0;
}

int link_proof_ok(const char *secret, char role, const struct link_transcript *t, const char *proof,
                  size_t len)
{
    if (secret == NULL)
        return 1;
    char want[LINK_PROOF_HEX + 1];
    if (len != LINK_PROOF_HEX || link_proof(secret, role, t, want) < 0)
        return 0;
    return CRYPTO_memcmp(want, proof, LINK_PROOF_HEX) == 0;
}
