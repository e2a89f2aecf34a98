/*
 * buf: a byte queue with a hard cap, for connection input and output. Data
 * lives in data[start, end); appending compacts or grows, never past the cap
 * the caller passes, so no peer can make a buffer grow without bound.
 */
#ifndef HERD_BUF_H
#define HERD_BUF_H

#include <stddef.h>

struct buf {
    char *data; /* owned; NULL while empty and released */
    size_t start;
    size_t end;
    size_t cap;
};

static inline size_t buf_len(const struct buf *b)
{
    return b->end - b->start;
}
static inline char *buf_head(const struct buf *b)
{
    return b->data + b->start;
}

/* Makes room for N more bytes without exceeding MAX bytes held. 0, or -1
 * (over MAX or out of memory). */
int buf_reserve(struct buf *b, size_t n, size_t max);

/* Appends LEN bytes, holding at most MAX. 0 or -1 as buf_reserve. */
int buf_append(struct buf *b, const void *p, size_t len, size_t max);

/* Drops N bytes from the front; an emptied buffer larger than KEEP is freed. */
void buf_consume(struct buf *b, size_t n, size_t keep);

void buf_free(struct buf *b);

#endif
