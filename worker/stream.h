/*
 * stream: bytes in and out of a non-blocking socket, plaintext or TLS, with
 * one result convention, so conn.c does not care which. A read fills as
 * much of the buffer as is there now; a write writes as much as the socket
 * takes. Nothing here keeps state: the fd and the TLS session are the
 * caller's.
 */
#ifndef HERD_STREAM_H
#define HERD_STREAM_H

#include <stddef.h>

#include "tls.h"

enum stream_rc {
    STREAM_OK = 0, /* bytes moved (*n > 0) */
    STREAM_AGAIN,  /* nothing now: wait for the socket to be readable (read) or writable (write) */
    STREAM_AGAIN_WRITE, /* a TLS read needs the socket writable first */
    STREAM_EOF,         /* the peer is done sending (TLS: close_notify) */
    STREAM_ERROR,       /* broken: close; WHY says why */
};

/* Reads up to LEN bytes from FD, through TLS when it is not NULL. */
enum stream_rc stream_read(int fd, struct tls_conn *tls, char *buf, size_t len, size_t *n,
                           char *why, size_t whylen);

/* Writes up to LEN bytes; *N gets how many were taken (maybe fewer with
 * STREAM_AGAIN). */
enum stream_rc stream_write(int fd, struct tls_conn *tls, const char *buf, size_t len, size_t *n,
                            char *why, size_t whylen);

/* The first bytes of DATA are a TLS record carrying a handshake
 * (0x16 0x03 0x01..0x04): someone dialled us with TLS. */
int stream_looks_like_tls(const char *data, size_t len);

#endif
