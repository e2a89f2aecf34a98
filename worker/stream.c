/*
 * stream: plaintext read(2)/write(2) and TLS records behind one interface.
 * A TLS read loops until the session has nothing more: a record holds at
 * most 16 KiB, and returning early would leave decrypted bytes inside
 * OpenSSL that no socket event announces.
 */
#include "stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A read(2) or write(2) that failed with errno (not EINTR). */
static enum stream_rc sys_failed(char *why, size_t whylen)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return STREAM_AGAIN;
    snprintf(why, whylen, "%s", strerror(errno));
    return STREAM_ERROR;
}

static enum stream_rc plain_read(int fd, char *buf, size_t len, size_t *n, char *why, size_t whylen)
{
    for (;;) {
        ssize_t r = read(fd, buf, len);
        if (r > 0) {
            *n = (size_t)r;
            return STREAM_OK;
        }
        if (r == 0)
            return STREAM_EOF;
        if (errno != EINTR)
            return sys_failed(why, whylen);
    }
}

static enum stream_rc tls_rc_map(enum tls_rc rc, int reading)
{
    switch (rc) {
    case TLS_DONE: return STREAM_OK;
    case TLS_WANT_READ: return STREAM_AGAIN; /* a write: see stream_write */
    case TLS_WANT_WRITE: return reading ? STREAM_AGAIN_WRITE : STREAM_AGAIN;
    case TLS_CLOSED: return STREAM_EOF;
    case TLS_ERROR: break;
    }
    return STREAM_ERROR;
}

enum stream_rc stream_read(int fd, struct tls_conn *tls, char *buf, size_t len, size_t *n,
                           char *why, size_t whylen)
{
    *n = 0;
    if (tls == NULL)
        return plain_read(fd, buf, len, n, why, whylen);
    while (*n < len) {
        size_t got = 0;
        enum tls_rc rc = tls_read(tls, buf + *n, len - *n, &got, why, whylen);
        if (rc != TLS_DONE) {
            /* Bytes read before a pause or the end are handed over first;
             * the next call reports the rest again. */
            return *n > 0 ? STREAM_OK : tls_rc_map(rc, 1);
        }
        *n += got;
    }
    return STREAM_OK;
}

enum stream_rc stream_write(int fd, struct tls_conn *tls, const char *buf, size_t len, size_t *n,
                            char *why, size_t whylen)
{
    *n = 0;
    while (*n < len) {
        if (tls != NULL) {
            size_t put = 0;
            /* TLS 1.3 without renegotiation: a write that wants a read is a
             * write that waits (the read side is watched anyway). */
            enum tls_rc rc = tls_write(tls, buf + *n, len - *n, &put, why, whylen);
            if (rc != TLS_DONE)
                return tls_rc_map(rc, 0);
            *n += put;
            continue;
        }
        ssize_t w = write(fd, buf + *n, len - *n);
        if (w >= 0) {
            *n += (size_t)w;
            continue;
        }
        if (errno != EINTR)
            return sys_failed(why, whylen);
    }
    return STREAM_OK;
}

int stream_looks_like_tls(const char *data, size_t len)
{
    const unsigned char *d = (const unsigned char *)data;
    return len >= 3 && d[0] == TLS_HANDSHAKE_BYTE && d[1] == 0x03 && d[2] >= 0x01 && d[2] <= 0x04;
}
