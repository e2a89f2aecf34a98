/*
 * test_snapshot: a snapshot file round-trips the store; truncated, corrupt,
 * zero-length, foreign and future-version files are refused, set aside and
 * nothing of them reaches the worker's store; expired records are neither written nor loaded; a
 * forked save writes a 0600 file the loader accepts.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "snap_format.h"
#include "snapshot.h"
#include "store.h"

static const struct proto_time NOW = {1700000000, 0};

/* An AT line received by its origin at ORIGIN (client time ORIGIN - 0.5, diff 0.5 s). */
static void put(struct store *st, const char *id, int64_t origin)
{
    char line[256];
    struct proto_msg m;
    const struct store_rec *out;
    int n = snprintf(line, sizeof line, "AT Alpha +0.500000000 %s +34.068930-118.445127 %lld.5", id,
                     (long long)(origin - 1));
    assert_int_equal(proto_parse(line, (size_t)n, &m), PROTO_AT);
    struct proto_time o;
    assert_int_equal(proto_at_origin(&m, &o), 0);
    assert_int_equal(store_put(st, m.id, m.t, store_ns(o), store_ns(o), line, (size_t)n, &out), 1);
}

static struct store *sample(size_t n, int64_t origin)
{
    struct store *st = store_new();
    char id[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "client-%zu", i);
        put(st, id, origin + (int64_t)i);
    }
    return st;
}

/* The snapshot of ST as bytes (malloc'd), its length in *len. */
static char *encode(const struct store *st, double ttl, size_t *len, struct snap_result *res)
{
    char path[] = "/tmp/test_snapshot.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    char *buf = malloc(SNAP_WRITE_BUF);
    assert_int_equal(snap_write_fd(fd, st, NOW, ttl, buf, SNAP_WRITE_BUF, res), 0);
    free(buf);
    off_t end = lseek(fd, 0, SEEK_END);
    assert_true(end > 0);
    char *img = malloc((size_t)end);
    assert_int_equal(pread(fd, img, (size_t)end, 0), end);
    close(fd);
    *len = (size_t)end;
    return img;
}

static enum snap_bad decode(const char *img, size_t len, double ttl, struct store *st,
                            struct snap_result *res)
{
    char why[160];
    return snap_decode(img, len, NOW, ttl, st, res, why, sizeof why);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct snap_result w, r;
    size_t len;
    struct store *st = sample(20000, NOW.sec - 100); /* several blocks */
    char *img = encode(st, 0, &len, &w);
    assert_int_equal(w.records, 20000);
    assert_true(w.blocks > 1);
    assert_int_equal(w.bytes, len);
    struct store *back = store_new();
    assert_int_equal(decode(img, len, 0, back, &r), SNAP_OK);
    assert_int_equal(r.records, 20000);
    assert_int_equal(store_count(back), 20000);
    for (size_t i = 0; i < store_end(st); i++) {
        const struct store_rec *a = store_at(st, i, 0);
        if (a == NULL)
            continue;
        const struct store_rec *b = store_get(back, a->line + a->id_off, a->id_len, 0);
        assert_non_null(b);
        assert_int_equal(a->len, b->len);
        assert_memory_equal(a->line, b->line, a->len);
        assert_int_equal(a->sec, b->sec);
        assert_int_equal(a->nsec, b->nsec);
    }
    store_free(back);
    store_free(st);
    free(img);
}

static void test_empty_store_round_trip(void **state)
{
    (void)state;
    struct snap_result w, r;
    size_t len;
    struct store *st = store_new();
    char *img = encode(st, 0, &len, &w);
    assert_int_equal(len, SNAP_HEADER_LEN + SNAP_BLOCK_HDR);
    struct store *back = store_new();
    assert_int_equal(decode(img, len, 0, back, &r), SNAP_OK);
    assert_int_equal(store_count(back), 0);
    store_free(back);
    store_free(st);
    free(img);
}

static void test_truncated_anywhere_refused(void **state)
{
    (void)state;
    struct snap_result w, r;
    size_t len;
    struct store *st = sample(300, NOW.sec);
    char *img = encode(st, 0, &len, &w);
    struct store *back = store_new();
    assert_int_equal(decode(img, 0, 0, back, &r), SNAP_EMPTY);
    for (size_t cut = 1; cut < len; cut++) {
        enum snap_bad b = decode(img, cut, 0, NULL, &r);
        assert_true(b == SNAP_TRUNCATED || b == SNAP_CORRUPT);
    }
    store_free(back);
    store_free(st);
    free(img);
}

static void test_corrupt_byte_refused(void **state)
{
    (void)state;
    struct snap_result w, r;
    size_t len;
    struct store *st = sample(5000, NOW.sec);
    char *img = encode(st, 0, &len, &w);
    struct store *back = store_new();
    /* A flipped bit anywhere, header, block heads, records, end block. */
    for (size_t at = 0; at < len; at += 97) {
        img[at] ^= 0x10;
        assert_int_not_equal(decode(img, len, 0, NULL, &r), SNAP_OK);
        img[at] ^= 0x10;
    }
    /* Trailing garbage fails too. */
    char *more = malloc(len + 3);
    memcpy(more, img, len);
    memcpy(more + len, "xyz", 3);
    assert_int_equal(decode(more, len + 3, 0, NULL, &r), SNAP_CORRUPT);
    assert_int_equal(decode(img, len, 0, back, &r), SNAP_OK);
    free(more);
    store_free(back);
    store_free(st);
    free(img);
}

static void test_foreign_and_future_refused(void **state)
{
    (void)state;
    struct snap_result w, r;
    size_t len;
    struct store *back = store_new();
    const char *text = "[herd]\nlog_dir = log\nthis is not a snapshot at all, honest\n";
    assert_int_equal(decode(text, strlen(text), 0, back, &r), SNAP_FOREIGN);
    assert_int_equal(decode("HERD", 4, 0, back, &r), SNAP_TRUNCATED);
    struct store *st = sample(10, NOW.sec);
    char *img = encode(st, 0, &len, &w);
    img[8] = 2; /* version 2 */
    assert_int_equal(decode(img, len, 0, back, &r), SNAP_FUTURE);
    assert_int_equal(store_count(back), 0); /* refused before any record */
    store_free(st);
    store_free(back);
    free(img);
}

static void test_expired_skipped(void **state)
{
    (void)state;
    struct snap_result w, r;
    size_t len;
    struct store *st = store_new();
    put(st, "old", NOW.sec - 1000); /* expires at NOW - 400 */
    put(st, "edge", NOW.sec - 600); /* expires exactly at NOW: expired */
    put(st, "young", NOW.sec - 10);
    char *img = encode(st, 600, &len, &w);
    assert_int_equal(w.records, 1);
    assert_int_equal(w.expired, 2);
    free(img);
    img = encode(st, 0, &len, &w); /* ttl 0: all kept */
    assert_int_equal(w.records, 3);
    struct store *back = store_new();
    assert_int_equal(decode(img, len, 600, back, &r), SNAP_OK);
    assert_int_equal(r.records, 1);
    assert_int_equal(r.expired, 2);
    assert_non_null(store_get(back, "young", 5, 0));
    assert_null(store_get(back, "old", 3, 0));
    store_free(back);
    store_free(st);
    free(img);
}

/* --- snapshot.c: load from a state_dir, set aside, fork a save --------- */

struct env {
    char dir[64];
    struct cfg_herd cfg;
    struct store *st;
    int saved;
};

static uint64_t changes(void *arg)
{
    (void)arg;
    return 0;
}

static void on_saved(void *arg)
{
    struct env *e = arg;
    e->saved++;
    ev_break(ev_default_loop(0), EVBREAK_ALL);
}

static struct snap *env_snap(struct env *e)
{
    char err[256];
    e->cfg.state_dir = e->dir;
    e->cfg.snapshot_interval = 10;
    e->cfg.client_ttl = 0;
    e->st = store_new();
    const struct snap_hooks hooks = {changes, on_saved, NULL, e};
    struct snap *s = snap_new(ev_default_loop(0), &e->cfg, "Alpha", e->st, &hooks, err, sizeof err);
    assert_non_null(s);
    return s;
}

static void write_text(const char *path, const char *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static size_t count_bad(const char *dir)
{
    char pat[128];
    glob_t g;
    snprintf(pat, sizeof pat, "%s/Alpha.snap.bad-*", dir);
    size_t n = glob(pat, 0, NULL, &g) == 0 ? g.gl_pathc : 0;
    globfree(&g);
    return n;
}

static void test_bad_file_set_aside(void **state)
{
    (void)state;
    struct env e;
    char path[128];
    memset(&e, 0, sizeof e);
    snprintf(e.dir, sizeof e.dir, "/tmp/test_snapshot_dir.%d", (int)getpid());
    struct snap *s = env_snap(&e);
    struct stat sb;
    assert_int_equal(stat(e.dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/Alpha.snap", e.dir);
    struct store *mine = e.st;
    assert_int_equal(snap_load(s, &e.st), 0); /* missing: empty start */
    write_text(path, "", 0);
    assert_int_equal(snap_load(s, &e.st), 0);
    assert_int_equal(count_bad(e.dir), 1);
    assert_int_not_equal(access(path, F_OK), 0);
    write_text(path, "garbage garbage garbage garbage garbage garbage", 47);
    assert_int_equal(snap_load(s, &e.st), 0);
    assert_int_equal(count_bad(e.dir), 2);
    /* Sound up to its last block: nothing of it reaches the worker's store. */
    struct snap_result w;
    size_t len;
    struct store *big = sample(20000, NOW.sec);
    char *img = encode(big, 0, &len, &w);
    img[len - SNAP_BLOCK_HDR - 5] ^= 1;
    write_text(path, img, len);
    assert_int_equal(snap_load(s, &e.st), 0);
    assert_int_equal(count_bad(e.dir), 3);
    assert_ptr_equal(e.st, mine);
    assert_int_equal(store_count(e.st), 0);
    free(img);
    store_free(big);
    snap_free(s);
    store_free(e.st);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e.dir);
    assert_int_equal(system(cmd), 0);
}

static void test_forked_save_then_load(void **state)
{
    (void)state;
    struct env e;
    char path[128];
    char id[32];
    memset(&e, 0, sizeof e);
    snprintf(e.dir, sizeof e.dir, "/tmp/test_snapshot_fork.%d", (int)getpid());
    struct snap *s = env_snap(&e);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "c%d", i);
        put(e.st, id, NOW.sec + i);
    }
    snap_force(s, 7);
    ev_run(ev_default_loop(0), 0);
    struct snap_stats ss;
    snap_get_stats(s, &ss);
    assert_int_equal(e.saved, 1);
    assert_null(ss.error);
    assert_int_equal(ss.save_id, 7);
    assert_int_equal(ss.records, 1000);
    assert_int_equal(ss.saves, 1);
    assert_false(ss.running);
    snprintf(path, sizeof path, "%s/Alpha.snap", e.dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal((uint64_t)sb.st_size, ss.bytes);
    snap_free(s);
    store_free(e.st);

    s = env_snap(&e); /* a new worker */
    assert_int_equal(snap_load(s, &e.st), 1000);
    assert_non_null(store_get(e.st, "c999", 4, 0));
    snap_get_stats(s, &ss);
    assert_true(ss.age >= 0);
    snap_free(s);
    store_free(e.st);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e.dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_store_round_trip),
        cmocka_unit_test(test_truncated_anywhere_refused),
        cmocka_unit_test(test_corrupt_byte_refused),
        cmocka_unit_test(test_foreign_and_future_refused),
        cmocka_unit_test(test_expired_skipped),
        cmocka_unit_test(test_bad_file_set_aside),
        cmocka_unit_test(test_forked_save_then_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
