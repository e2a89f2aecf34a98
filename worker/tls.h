/*
 * tls: TLS 1.3 for links (SPEC §5), with OpenSSL's libssl. A tls_ctx is the
 * worker's configuration (link_tls = psk: an external pre-shared key derived
 * from the secret; cert: mutual certificates from tls_ca); a tls_conn is one
 * non-blocking session on a socket the caller owns. Nothing here waits or
 * touches an event loop: every call returns at once and says what it waits
 * for, and conn.c drives it from its watchers.
 */
#ifndef HERD_TLS_H
#define HERD_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct tls_ctx;
struct tls_conn;

/* What a call needs before it can go on. */
enum tls_rc {
    TLS_DONE = 0,   /* finished (handshake) or moved bytes (read, write) */
    TLS_WANT_READ,  /* call again when the socket is readable */
    TLS_WANT_WRITE, /* call again when the socket is writable */
    TLS_CLOSED,     /* the peer closed cleanly (close_notify) */
    TLS_ERROR,      /* the session is broken: close the socket */
};

/* The first byte of a TLS record carrying a handshake (a ClientHello). */
#define TLS_HANDSHAKE_BYTE 0x16

/*
 * The context for SELF in CFG, or NULL with *err set when it cannot be
 * built (no secret for psk, an unreadable certificate...). Reads the
 * certificate files: call before the loop runs. CFG->link_tls must not be
 * CFG_TLS_OFF.
 */
struct tls_ctx *tls_ctx_new(const struct cfg_herd *cfg, const struct cfg_server *self, char *err,
                            size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

/* A session on FD (non-blocking), as the dialler or as the acceptor. NULL:
 * no memory. The fd stays the caller's; CTX's cfg must outlive the session. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, int server);
void tls_conn_free(struct tls_conn *t);

/* Drives the handshake. On TLS_ERROR, WHY says what failed. */
enum tls_rc tls_handshake(struct tls_conn *t, char *why, size_t whylen);

/* Reads up to LEN bytes; *N gets how many (TLS_DONE). */
enum tls_rc tls_read(struct tls_conn *t, void *buf, size_t len, size_t *n, char *why,
                     size_t whylen);

/* Writes up to LEN bytes (a part may be written); *N gets how many. */
enum tls_rc tls_write(struct tls_conn *t, const void *buf, size_t len, size_t *n, char *why,
                      size_t whylen);

/* Sends close_notify, without waiting for the peer's. */
void tls_shutdown(struct tls_conn *t);

/* After the handshake (cert mode): the peer's certificate names NAME or
 * HOST in its subjectAltName (a DNS name, or an IP address for a numeric
 * HOST). 1 yes, 0 no. In psk mode the key proved the peer: always 1. */
int tls_peer_names(const struct tls_conn *t, const char *name, const char *host);

/* "TLSv1.3 TLS_AES_128_GCM_SHA256 psk" for the log. */
void tls_describe(const struct tls_conn *t, char *out, size_t outlen);

#endif
