/*
 * test_store: the client store keeps the newest record per client, numbers
 * records stably, and survives growth.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"

static int put(struct store *st, const char *id, int64_t sec, int32_t nsec, const char *server,
               const struct store_rec **out)
{
    char line[256];
    int n = snprintf(line, sizeof line, "AT %s +0.000000001 %s +1.0-2.0 %lld.%09d", server, id,
                     (long long)sec, (int)nsec);
    const char *p = strstr(line, id);
    struct proto_str pid = { p, strlen(id) };
    struct proto_time t = { sec, nsec };
    return store_put(st, pid, t, line, (size_t)n, out);
}

static void test_newer_wins(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    assert_int_equal(put(st, "kiwi", 100, 5, "A", &r), 1);
    assert_int_equal(put(st, "kiwi", 100, 5, "B", &r), 0);  /* equal: not newer */
    assert_string_equal(r->line + 3, "A +0.000000001 kiwi +1.0-2.0 100.000000005");
    assert_int_equal(put(st, "kiwi", 100, 4, "C", &r), 0);  /* older */
    assert_int_equal(put(st, "kiwi", 100, 6, "D", &r), 1);  /* newer by 1 ns */
    r = store_get(st, "kiwi", 4);
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
    assert_null(store_get(st, "x", 1));
    put(st, "kiwi", 1, 0, "A", &r);
    assert_null(store_get(st, "kiw", 3));
    assert_null(store_get(st, "kiwis", 5));
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
    assert_ptr_equal(store_at(st, 777), r);
    assert_null(store_at(st, 50000));
    for (int i = 0; i < 50000; i += 97) {
        snprintf(id, sizeof id, "client-%d", i);
        r = store_get(st, id, strlen(id));
        assert_non_null(r);
        assert_memory_equal(r->line + r->id_off, id, strlen(id));
    }
    store_free(st);
}

static void test_max_refuses_new_ids_only(void **state)
{
    (void)state;
    struct store *st = store_new();
    const struct store_rec *r;
    store_set_max(st, 2);
    assert_int_equal(put(st, "a", 1, 0, "A", &r), 1);
    assert_int_equal(put(st, "b", 1, 0, "A", &r), 1);
    errno = 0;
    assert_int_equal(put(st, "c", 1, 0, "A", &r), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(put(st, "a", 2, 0, "B", &r), 1); /* known IDs still update */
    assert_null(store_get(st, "c", 1));
    assert_int_equal(store_count(st), 2);
    store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newer_wins),
        cmocka_unit_test(test_unknown_and_prefix),
        cmocka_unit_test(test_growth_keeps_numbers),
        cmocka_unit_test(test_max_refuses_new_ids_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
