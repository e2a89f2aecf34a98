/*
 * snap_format: the bytes of a snapshot file, written and checked without
 * allocating (the writer runs in a forked child of a threaded process). A
 * 40-byte header (magic, version, record and block counts, CRC), blocks of
 * AT lines each with its own CRC-32, and an empty block that ends the file.
 */
#ifndef HERD_SNAP_FORMAT_H
#define HERD_SNAP_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct store;

#define SNAP_MAGIC      "HERDSNAP"
#define SNAP_VERSION    1u
#define SNAP_HEADER_LEN 40u
#define SNAP_BLOCK_HDR  12u
#define SNAP_BLOCK_MAX  ((size_t)256 * 1024) /* payload bytes per block at most */
#define SNAP_WRITE_BUF  (SNAP_BLOCK_HDR + SNAP_BLOCK_MAX + PROTO_AT_MAX + 8)

/* Why a file was refused (snap_decode). */
enum snap_bad {
    SNAP_OK = 0,
    SNAP_EMPTY,     /* zero-length file */
    SNAP_FOREIGN,   /* not a herd snapshot (magic) */
    SNAP_FUTURE,    /* written by a newer herd (version) */
    SNAP_TRUNCATED, /* ends before its end block */
    SNAP_CORRUPT,   /* a checksum, a count or a record is wrong */
};

struct snap_result {
    uint64_t records; /* written, or loaded */
    uint64_t expired; /* skipped because client_ttl had passed */
    uint64_t refused; /* loading: not kept by the store (max_clients...) */
    uint64_t bytes;   /* of the file */
    uint64_t blocks;
};

/* The instant a record of LINE expires is at or before NOW, given TTL
 * seconds (0: records never expire). */
int snap_expired(const char *line, size_t len, struct proto_time now, double ttl);

/*
 * Writes ST to FD (at offset 0, which must be empty) through BUF (at least
 * SNAP_WRITE_BUF bytes), skipping holes and records expired at NOW. Uses
 * only write(2)/pwrite(2): safe in a forked child. 0, or -1 with errno.
 */
int snap_write_fd(int fd, const struct store *st, struct proto_time now, double ttl, char *buf,
                  size_t size, struct snap_result *res);

/*
 * Checks the whole file image BUF of LEN bytes and, as it goes, puts its
 * records not expired at NOW into ST (NULL: check only). Returns SNAP_OK or
 * why not, with a readable reason in WHY. On a refusal ST holds part of the
 * file: load into a fresh store and keep it only on SNAP_OK (snapshot.c).
 */
enum snap_bad snap_decode(const char *buf, size_t len, struct proto_time now, double ttl,
                          struct store *st, struct snap_result *res, char *why, size_t whylen);

#endif
