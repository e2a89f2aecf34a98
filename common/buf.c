/*
 * buf: capped byte queues. Growth doubles up to the cap; consumed space at the
 * front is reclaimed by compacting before growing.
 */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

int buf_reserve(struct buf *b, size_t n, size_t max)
{
    size_t len = buf_len(b);
    if (n > max || len > max - n)
        return -1;
    if (b->cap - b->end >= n)
        return 0;
    if (b->start > 0) {
        memmove(b->data, b->data + b->start, len);
        b->start = 0;
        b->end = len;
        if (b->cap - b->end >= n)
            return 0;
    }
    size_t want = b->cap ? b->cap : 256;
    while (want < len + n)
        want *= 2;
    if (want > max)
        want = max;
    char *p = realloc(b->data, want);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = want;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t len, size_t max)
{
    if (len == 0)
        return 0;
    if (buf_reserve(b, len, max) < 0)
        return -1;
    memcpy(b->data + b->end, p, len);
    b->end += len;
    return 0;
}

void buf_consume(struct buf *b, size_t n, size_t keep)
{
    b->start += n;
    if (b->start < b->end)
        return;
    b->start = b->end = 0;
    if (b->cap > keep)
        buf_free(b);
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->start = b->end = b->cap = 0;
}
