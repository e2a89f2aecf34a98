/*
 * snap_format: encodes the store as a snapshot file and checks one before
 * anything of it is used. Layout, integers little-endian:
 *
 *   header (40 bytes): "HERDSNAP", u32 version (1), u32 flags (0),
 *                      u64 records, i64 written (POSIX seconds), u32 blocks,
 *                      u32 CRC-32 of the 36 bytes before it
 *   block:             u32 payload length, u32 records, u32 CRC-32 of these
 *                      8 bytes and the payload; payload: AT lines, each
 *                      ending in '\n'
 *   end:               a block with no payload and no records, then nothing
 *
 * The writer fills the header last (pwrite at 0), so a file cut short
 * anywhere is refused, as is one whose counts do not add up.
 */
#include "snap_format.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "store.h"

static void put_u32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (char)(unsigned char)(v >> (8 * i));
}

static void put_u64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (char)(unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

static uint64_t get_u64(const char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

static uint32_t crc(uint32_t c, const char *p, size_t n)
{
    return (uint32_t)crc32_z(c, (const unsigned char *)p, n);
}

static int msg_expired(const struct proto_msg *m, struct proto_time now, double ttl)
{
    struct proto_time origin;

    if (!(ttl > 0) || proto_at_origin(m, &origin) < 0)
        return 0;
    int64_t sec = (int64_t)ttl;
    int64_t nsec = (int64_t)((ttl - (double)sec) * 1e9);
    if (origin.sec > INT64_MAX / 2 - sec)
        return 0; /* beyond any clock */
    struct proto_time end = {origin.sec + sec, origin.nsec + (int32_t)nsec};
    if (end.nsec >= 1000000000) {
        end.sec++;
        end.nsec -= 1000000000;
    }
    return proto_time_cmp(end, now) <= 0;
}

int snap_expired(const char *line, size_t len, struct proto_time now, double ttl)
{
    struct proto_msg m;

    return ttl > 0 && proto_parse(line, len, &m) == PROTO_AT && msg_expired(&m, now, ttl);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the block in BUF (payload after its 12-byte head). */
static int flush_block(int fd, char *buf, size_t payload, uint32_t count, struct snap_result *res)
{
    put_u32(buf, (uint32_t)payload);
    put_u32(buf + 4, count);
    put_u32(buf + 8, crc(crc(0, buf, 8), buf + SNAP_BLOCK_HDR, payload));
    if (write_all(fd, buf, SNAP_BLOCK_HDR + payload) < 0)
        return -1;
    res->bytes += SNAP_BLOCK_HDR + payload;
    res->blocks += payload > 0;
    res->records += count;
    return 0;
}

static void fill_header(char *h, const struct snap_result *res, struct proto_time now)
{
    memcpy(h, SNAP_MAGIC, 8);
    put_u32(h + 8, SNAP_VERSION);
    put_u32(h + 12, 0);
    put_u64(h + 16, res->records);
    put_u64(h + 24, (uint64_t)now.sec);
    put_u32(h + 32, (uint32_t)res->blocks);
    put_u32(h + 36, crc(0, h, 36));
}

int snap_write_fd(int fd, const struct store *st, struct proto_time now, double ttl, char *buf,
                  size_t size, struct snap_result *res)
{
    char head[SNAP_HEADER_LEN] = {0};
    size_t payload = 0;
    uint32_t count = 0;

    memset(res, 0, sizeof *res);
    if (size < SNAP_BLOCK_HDR + SNAP_BLOCK_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (write_all(fd, head, sizeof head) < 0) /* a zero header until the end */
        return -1;
    res->bytes = sizeof head;
    for (size_t i = 0, n = store_end(st); i < n; i++) {
        const struct store_rec *r = store_at(st, i, store_ns(now));
        if (r == NULL)
            continue;
        if (snap_expired(r->line, r->len, now, ttl)) {
            res->expired++;
            continue;
        }
        if (payload + r->len + 1 > SNAP_BLOCK_MAX) {
            if (flush_block(fd, buf, payload, count, res) < 0)
                return -1;
            payload = 0;
            count = 0;
        }
        memcpy(buf + SNAP_BLOCK_HDR + payload, r->line, r->len);
        buf[SNAP_BLOCK_HDR + payload + r->len] = '\n';
        payload += (size_t)r->len + 1;
        count++;
    }
    if ((count > 0 && flush_block(fd, buf, payload, count, res) < 0) ||
        flush_block(fd, buf, 0, 0, res) < 0)
        return -1;
    fill_header(head, res, now);
    if (pwrite(fd, head, sizeof head, 0) != (ssize_t)sizeof head)
        return -1;
    return 0;
}

struct walk {
    const char *buf;
    size_t len;
    struct proto_time now;
    double ttl;
    struct store *st; /* NULL: check only */
    struct snap_result *res;
    char *why;
    size_t whylen;
};

__attribute__((format(printf, 3, 4))) static enum snap_bad bad(struct walk *w, enum snap_bad b,
                                                               const char *fmt, ...);

static enum snap_bad bad(struct walk *w, enum snap_bad b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->why, w->whylen, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    return b;
}

/* One record: checked, then (when storing) kept unless expired. */
static int take_line(struct walk *w, const char *line, size_t len)
{
    struct proto_msg m;
    const struct store_rec *out;

    if (len > UINT16_MAX || proto_parse(line, len, &m) != PROTO_AT)
        return -1;
    if (w->st == NULL)
        return 0;
    if (msg_expired(&m, w->now, w->ttl)) {
        w->res->expired++;
        return 0;
    }
    struct proto_time origin;
    if (proto_at_origin(&m, &origin) < 0)
        return -1;
    int rc = store_put(w->st, m.id, m.t, store_ns(origin), store_ns(w->now), line, len, &out);
    if (rc == STORE_EXPIRED)
        w->res->expired++;
    else if (rc < 0)
        w->res->refused++;
    else if (rc > 0)
        w->res->records++;
    return 0;
}

static enum snap_bad walk_payload(struct walk *w, const char *p, size_t n, uint32_t count,
                                  size_t off)
{
    uint32_t lines = 0;

    if (n > 0 && p[n - 1] != '\n')
        return bad(w, SNAP_CORRUPT, "block at %zu: last record has no newline", off);
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t l = (size_t)(nl - (p + i));
        if (++lines > count || take_line(w, p + i, l) < 0)
            return bad(w, SNAP_CORRUPT, "block at %zu: record %u is not a valid AT line", off,
                       lines);
        i += l + 1;
    }
    if (lines != count)
        return bad(w, SNAP_CORRUPT, "block at %zu: %u records, header says %u", off, lines, count);
    return SNAP_OK;
}

static enum snap_bad walk_blocks(struct walk *w, uint64_t records, uint32_t blocks)
{
    size_t off = SNAP_HEADER_LEN;
    uint64_t nrec = 0, nblk = 0;

    for (;;) {
        if (w->len - off < SNAP_BLOCK_HDR)
            return bad(w, SNAP_TRUNCATED, "ends at %zu inside a block header", w->len);
        const char *h = w->buf + off;
        uint32_t plen = get_u32(h), count = get_u32(h + 4);
        if (plen > SNAP_BLOCK_MAX)
            return bad(w, SNAP_CORRUPT, "block at %zu: length %u too large", off, plen);
        if (w->len - off - SNAP_BLOCK_HDR < plen)
            return bad(w, SNAP_TRUNCATED, "ends at %zu inside the block at %zu", w->len, off);
        if (crc(crc(0, h, 8), h + SNAP_BLOCK_HDR, plen) != get_u32(h + 8))
            return bad(w, SNAP_CORRUPT, "block at %zu: checksum mismatch", off);
        if (plen == 0 && count == 0) {
            off += SNAP_BLOCK_HDR;
            break;
        }
        enum snap_bad b = walk_payload(w, h + SNAP_BLOCK_HDR, plen, count, off);
        if (b != SNAP_OK)
            return b;
        nrec += count;
        nblk++;
        off += SNAP_BLOCK_HDR + plen;
    }
    if (off != w->len)
        return bad(w, SNAP_CORRUPT, "%zu bytes after the end block", w->len - off);
    if (nrec != records || nblk != blocks)
        return bad(w, SNAP_CORRUPT, "%llu records in %llu blocks, header says %llu in %u",
                   (unsigned long long)nrec, (unsigned long long)nblk, (unsigned long long)records,
                   blocks);
    return SNAP_OK;
}

static enum snap_bad check_header(struct walk *w, uint64_t *records, uint32_t *blocks)
{
    const char *h = w->buf;
    size_t len = w->len;

    if (len == 0)
        return bad(w, SNAP_EMPTY, "the file is empty");
    if (memcmp(h, SNAP_MAGIC, len < 8 ? len : 8) != 0)
        return bad(w, SNAP_FOREIGN, "not a herd snapshot");
    if (len < SNAP_HEADER_LEN)
        return bad(w, SNAP_TRUNCATED, "only %zu bytes, shorter than a header", len);
    uint32_t version = get_u32(h + 8);
    if (version > SNAP_VERSION)
        return bad(w, SNAP_FUTURE, "format version %u, newer than this herd's %u", version,
                   SNAP_VERSION);
    if (crc(0, h, 36) != get_u32(h + 36))
        return bad(w, SNAP_CORRUPT, "header checksum mismatch");
    if (version != SNAP_VERSION || get_u32(h + 12) != 0)
        return bad(w, SNAP_CORRUPT, "format version %u, flags %u", version, get_u32(h + 12));
    *records = get_u64(h + 16);
    *blocks = get_u32(h + 32);
    return SNAP_OK;
}

enum snap_bad snap_decode(const char *buf, size_t len, struct proto_time now, double ttl,
                          struct store *st, struct snap_result *res, char *why, size_t whylen)
{
    struct walk w = {buf, len, now, ttl, st, res, why, whylen};
    uint64_t records = 0;
    uint32_t blocks = 0;

    memset(res, 0, sizeof *res);
    if (whylen > 0)
        why[0] = '\0';
    /* One pass: checking and storing together (a second parse of every
     * line would double the load time); the caller discards ST on failure. */
    enum snap_bad b = check_header(&w, &records, &blocks);
    if (b == SNAP_OK)
        b = walk_blocks(&w, records, blocks);
    if (b == SNAP_OK) {
        res->bytes = len;
        res->blocks = blocks;
    }
    return b;
}
