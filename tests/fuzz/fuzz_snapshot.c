/*
 * libFuzzer target for worker/snap_format.c: the loader of a snapshot file,
 * the one input a worker reads from disk at start. Beyond "no crash", it
 * checks what snapshot.c relies on: checking alone and loading agree on
 * every input (so the refusal snapshot.c acts on is the whole file's), a
 * refusal says why, an accepted file puts at most what it counts, and what
 * was loaded written out again loads back to the same records.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snap_format.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct proto_time NOW = {1700000000, 0};

/* ST written out and read back must hold the same records. */
static void round_trip(const struct store *st, uint64_t records)
{
    static char *buf;
    struct snap_result w, r;
    char why[160];
    int fd = memfd_create("fuzz_snapshot", MFD_CLOEXEC);

    if (fd < 0)
        return;
    if (buf == NULL && (buf = malloc(SNAP_WRITE_BUF)) == NULL)
        abort();
    if (snap_write_fd(fd, st, NOW, 0, buf, SNAP_WRITE_BUF, &w) != 0 || w.records != records)
        abort();
    char *img = malloc(w.bytes);
    if (img == NULL || pread(fd, img, w.bytes, 0) != (ssize_t)w.bytes)
        abort();
    close(fd);
    struct store *back = store_new();
    if (snap_decode(img, w.bytes, NOW, 0, back, &r, why, sizeof why) != SNAP_OK ||
        store_count(back) != store_count(st))
        abort();
    for (size_t i = 0; i < store_end(st); i++) {
        const struct store_rec *a = store_at(st, i, 0);
        if (a == NULL)
            continue;
        const struct store_rec *b = store_get(back, a->line + a->id_off, a->id_len, 0);
        if (b == NULL || b->len != a->len || memcmp(a->line, b->line, a->len) != 0)
            abort();
    }
    store_free(back);
    free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct snap_result res;
    char why[160];
    struct store *st = store_new();
    /* The input in a buffer of its own size, so any over-read is caught. */
    char *img = malloc(size ? size : 1);

    if (st == NULL || img == NULL)
        abort();
    memcpy(img, data, size);
    /* ttl of an hour: some records expire, exercising that path too. */
    enum snap_bad b = snap_decode(img, size, NOW, 3600, st, &res, why, sizeof why);
    struct snap_result only;
    if (snap_decode(img, size, NOW, 3600, NULL, &only, why, sizeof why) != b)
        abort();
    if (b != SNAP_OK && why[0] == '\0')
        abort(); /* a refusal always says why */
    if (b == SNAP_OK && store_count(st) > res.records)
        abort();
    if (b == SNAP_OK)
        round_trip(st, store_count(st));
    store_free(st);
    free(img);
    return 0;
}
