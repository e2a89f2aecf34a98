/*
 * test_store: the client store keeps the newest record per client, numbers
 * records stably (holes included), expires records client_ttl after their
 * origin instant, evicts the oldest origin first when full, and survives
 * growth and deletion.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"

#define SEC 1000000000LL
/* A "now" well after every origin instant these tests use. */
#define T0 (1700000000LL * SEC)

static int put_at(struct store *st, const char *id, int64_t sec, int32_t nsec, const char *server,
                  int64_t origin, int64_t now, const struct store_rec **out)
{
    char line[256];
    int n = snprintf(line, sizeof line, "AT %s +0.000000001 %s +1.0-2.0 %lld.%09d", server, id,
                     (long long)sec, (int)nsec);
    const char *p = strstr(line, id);
    struct proto_str pid = {p, strlen(id)};
    struct proto_time t = {sec, nsec};
    return store_put(st, pid, t, origin, now, line, (size_t)n, out);
}

static int put(struct store *st, const char *id, int64_t sec, int32_t nsec, const char *server,
               const struct store_rec **out)
{
    return put_at(st, id, sec, nsec, server, T0, T0, out);
}

static const struct store_rec *get(struct store *st, const char *id, int64_t now)
{
    return store_get(st, id, strlen(id), now);
}

static void test_newer_wins(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    assert_int_equal(put(st, "kiwi", 100, 5, "A", &r), 1);
    assert_int_equal(put(st, "kiwi", 100, 5, "B", &r), 0); /* equal: not newer */
    assert_string_equal(r->line + 3, "A +0.000000001 kiwi +1.0-2.0 100.000000005");
    assert_int_equal(put(st, "kiwi", 100, 4, "C", &r), 0); /* older */
    assert_int_equal(put(st, "kiwi", 100, 6, "D", &r), 1); /* newer by 1 ns */
    r = get(st, "kiwi", T0);
    assert_non_null(r);
    assert_memory_equal(r->line, "AT D", 4);
    assert_int_equal(store_count(st), 1);
    store_free(st);
}

static void test_unknown_and_prefix(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    assert_null(get(st, "x", T0));
    put(st, "kiwi", 1, 0, "A", &r);
    assert_null(get(st, "kiw", T0));
    assert_null(get(st, "kiwis", T0));
    assert_memory_equal(r->line + r->id_off, "kiwi", r->id_len);
    store_free(st);
}

static void test_growth_keeps_numbers(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    char id[32];
    for (int i = 0; i < 50000; i++) {
        snprintf(id, sizeof id, "client-%d", i);
        assert_int_equal(put(st, id, 10, 0, "A", &r), 1);
    }
    assert_int_equal(store_count(st), 50000);
    snprintf(id, sizeof id, "client-%d", 777);
    put(st, id, 11, 0, "B", &r);
    assert_ptr_equal(store_at(st, 777, T0), r);
    assert_null(store_at(st, 50000, T0));
    for (int i = 0; i < 50000; i += 97) {
        snprintf(id, sizeof id, "client-%d", i);
        r = get(st, id, T0);
        assert_non_null(r);
        assert_memory_equal(r->line + r->id_off, id, strlen(id));
    }
    store_free(st);
}

static void test_full_store_evicts_oldest_origin(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    struct store_stats ss;
    store_set_max(st, 2);
    assert_int_equal(put_at(st, "a", 1, 0, "A", T0 - 30 * SEC, T0, &r), 1);
    assert_int_equal(put_at(st, "b", 1, 0, "A", T0 - 20 * SEC, T0, &r), 1);
    assert_int_equal(put_at(st, "a", 2, 0, "B", T0 - 10 * SEC, T0, &r), 1); /* a is now newer */
    assert_int_equal(put_at(st, "c", 1, 0, "A", T0, T0, &r), 1);            /* never refused */
    assert_non_null(get(st, "c", T0));
    assert_non_null(get(st, "a", T0));
    assert_null(get(st, "b", T0)); /* the oldest origin went */
    assert_int_equal(store_count(st), 2);
    store_get_stats(st, &ss);
    assert_int_equal(ss.evicted, 1);
    assert_int_equal(ss.expired, 0);
    store_free(st);
}

static void test_eviction_order_sampled(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    char id[32];
    store_set_max(st, 1000);
    for (int i = 0; i < 1000; i++) { /* even: old origins, odd: recent */
        snprintf(id, sizeof id, "c%d", i);
        int64_t origin = i % 2 ? T0 - i : T0 - 1000 * SEC - i;
        assert_int_equal(put_at(st, id, 1, 0, "A", origin, T0, &r), 1);
    }
    for (int i = 0; i < 250; i++) {
        snprintf(id, sizeof id, "new%d", i);
        assert_int_equal(put_at(st, id, 1, 0, "A", T0, T0, &r), 1);
    }
    assert_int_equal(store_count(st), 1000);
    int old_left = 0, recent_left = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "c%d", i);
        if (get(st, id, T0) != NULL && i % 2)
            recent_left++;
        else if (get(st, id, T0) != NULL)
            old_left++;
    }
    assert_int_equal(old_left + recent_left, 750);
    assert_true(recent_left >= 490); /* sampling 16: an old record almost always */
    for (int i = 0; i < 250; i++) {
        snprintf(id, sizeof id, "new%d", i);
        assert_non_null(get(st, id, T0));
    }
    store_free(st);
}

static void test_memory_bound(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    char id[32];
    struct store_stats ss;
    size_t max = 256 * 1024;
    store_set_max_memory(st, max);
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof id, "client-%d", i);
        assert_int_equal(put_at(st, id, 1, 0, "A", T0 - 20000 + i, T0, &r), 1);
        assert_true(store_bytes(st) <= max);
    }
    assert_non_null(get(st, "client-19999", T0));
    assert_null(get(st, "client-0", T0));
    store_get_stats(st, &ss);
    assert_int_equal(ss.evicted + store_count(st), 20000);
    assert_true(store_count(st) > 500);
    store_set_max_memory(st, max / 2); /* lowered live: steps trim it */
    while (store_expire_step(st, T0, 1000))
        ;
    assert_true(store_bytes(st) <= max / 2);
    store_free(st);
}

static void test_expiry_lazy_and_exact(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    struct store_stats ss;
    store_set_ttl(st, 2.0);
    /* A client clock far in the past: expiry follows the origin instant. */
    assert_int_equal(put_at(st, "kiwi", 5, 0, "A", T0, T0, &r), 1);
    assert_non_null(get(st, "kiwi", T0 + 2 * SEC - 1));
    assert_non_null(store_at(st, 0, T0 + 2 * SEC - 1));
    assert_null(store_at(st, 0, T0 + 2 * SEC));
    assert_null(get(st, "kiwi", T0 + 2 * SEC));
    assert_int_equal(store_count(st), 0);
    store_get_stats(st, &ss);
    assert_int_equal(ss.expired, 1);
    /* A newer IAMAT stores normally, even with an older client time. */
    assert_int_equal(put_at(st, "kiwi", 4, 0, "A", T0 + 3 * SEC, T0 + 3 * SEC, &r), 1);
    assert_non_null(get(st, "kiwi", T0 + 3 * SEC));
    /* Held but expired (not yet reaped): a put with any client time replaces it. */
    assert_int_equal(put_at(st, "kiwi", 1, 0, "B", T0 + 6 * SEC, T0 + 6 * SEC, &r), 1);
    assert_memory_equal(get(st, "kiwi", T0 + 6 * SEC)->line, "AT B", 4);
    store_set_ttl(st, 0); /* never */
    assert_non_null(get(st, "kiwi", T0 + 1000000 * SEC));
    store_free(st);
}

static void test_expired_on_arrival_dropped(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r = NULL;
    struct store_stats ss;
    store_set_ttl(st, 2.0);
    assert_int_equal(put_at(st, "kiwi", 9, 0, "A", T0 - 2 * SEC, T0, &r), STORE_EXPIRED);
    assert_null(get(st, "kiwi", T0));
    assert_int_equal(store_count(st), 0);
    store_get_stats(st, &ss);
    assert_int_equal(ss.expired_arrival, 1);
    assert_int_equal(put_at(st, "kiwi", 9, 0, "A", T0 - 2 * SEC + 1, T0, &r), 1);
    store_free(st);
}

static void test_expire_steps_bounded(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    struct store_stats ss;
    char id[32];
    store_set_ttl(st, 1.0);
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof id, "c%d", i);
        /* Odd ones expire together; even ones a minute later. */
        put_at(st, id, 1, 0, "A", i % 2 ? T0 : T0 + 60 * SEC, T0, &r);
    }
    assert_int_equal(store_expire_step(st, T0 + SEC - 1, 1000), 0); /* nothing due */
    int steps = 0;
    uint64_t before = 0;
    while (store_expire_step(st, T0 + SEC, 1000)) {
        store_get_stats(st, &ss);
        assert_true(ss.expired - before <= 1000);
        before = ss.expired;
        steps++;
    }
    assert_true(steps >= 50);
    store_get_stats(st, &ss);
    assert_int_equal(ss.expired, 50000);
    assert_int_equal(store_count(st), 50000);
    assert_int_equal(store_expire_step(st, T0 + 2 * SEC, 1000), 0); /* nothing due again */
    for (int i = 0; i < 100000; i++) { /* the index still finds the rest */
        snprintf(id, sizeof id, "c%d", i);
        if (i % 2)
            assert_null(get(st, id, T0 + SEC));
        else
            assert_non_null(get(st, id, T0 + SEC));
    }
    store_free(st);
}

static void test_resize_with_holes(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    char id[32];
    store_set_ttl(st, 10.0);
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "old%d", i);
        put_at(st, id, 1, 0, "A", i % 3 ? T0 + 100 * SEC : T0, T0, &r);
    }
    while (store_expire_step(st, T0 + 10 * SEC, 100))
        ;
    assert_int_equal(store_count(st), 2000);
    size_t end = store_end(st);
    for (int i = 0; i < 1000; i++) { /* new IDs refill the holes first */
        snprintf(id, sizeof id, "new%d", i);
        assert_int_equal(put_at(st, id, 1, 0, "A", T0 + 100 * SEC, T0 + 10 * SEC, &r), 1);
    }
    assert_int_equal(store_end(st), end);
    for (int i = 0; i < 100000; i++) { /* and growth rehashes around them */
        snprintf(id, sizeof id, "more%d", i);
        assert_int_equal(put_at(st, id, 1, 0, "A", T0 + 100 * SEC, T0 + 10 * SEC, &r), 1);
    }
    assert_int_equal(store_count(st), 103000);
    size_t live = 0;
    for (size_t i = 0; i < store_end(st); i++) {
        r = store_at(st, i, T0 + 10 * SEC);
        if (r == NULL)
            continue;
        live++;
        assert_ptr_equal(store_get(st, r->line + r->id_off, r->id_len, T0 + 10 * SEC), r);
    }
    assert_int_equal(live, 103000);
    store_free(st);
}

/* A resync walks by number while records expire, are evicted and are
 * added: it must see each record that lived from its start to its end
 * exactly once, and never a dead one. */
static void test_walk_during_deletions(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct store *st = store_new();
    const struct store_rec *r;
    char id[32];
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    store_set_ttl(st, 100.0);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "%d", i);
        put_at(st, id, 1, 0, "A", T0 + (int64_t)i * SEC / 100, T0, &r); /* 100 a second */
    }
    store_set_max(st, N);
    size_t end = store_end(st);
    int64_t now = T0;
    int added = 0;
    for (size_t cur = 0; cur < end; cur++) {
        if (cur % 10 == 0) { /* between batches: time passes, records come and go */
            now += SEC / 20;
            store_expire_step(st, now + 100 * SEC, 50);
            snprintf(id, sizeof id, "x%d", added++);
            put_at(st, id, 1, 0, "A", now + 100 * SEC, now + 100 * SEC, &r);
        }
        r = store_at(st, cur, now + 100 * SEC);
        if (r == NULL || r->line[r->id_off] == 'x')
            continue;
        int k = (int)strtol(r->line + r->id_off, NULL, 10);
        assert_true(k >= 0 && k < N);
        seen[k]++;
    }
    int alive = 0;
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "%d", i);
        assert_true(seen[i] <= 1);
        if (get(st, id, now + 100 * SEC) != NULL) {
            alive++;
            assert_int_equal(seen[i], 1);
        }
    }
    assert_true(alive > N / 4 && alive < N);
    store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newer_wins),
        cmocka_unit_test(test_unknown_and_prefix),
        cmocka_unit_test(test_growth_keeps_numbers),
        cmocka_unit_test(test_full_store_evicts_oldest_origin),
        cmocka_unit_test(test_eviction_order_sampled),
        cmocka_unit_test(test_memory_bound),
        cmocka_unit_test(test_expiry_lazy_and_exact),
        cmocka_unit_test(test_expired_on_arrival_dropped),
        cmocka_unit_test(test_expire_steps_bounded),
        cmocka_unit_test(test_resize_with_holes),
        cmocka_unit_test(test_walk_during_deletions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
