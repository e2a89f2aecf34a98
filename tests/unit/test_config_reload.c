/*
 * Unit tests for common/config*.c: what reload compares and applies: cfg_server_changed, the key
 * classes, cfg_apply_live. Needs only common/config*.c, inih and cmocka; run from the repository
 * root.
 */
#include "config_test.h"

/* ---- cfg_server_changed ---- */

#define BASE "[server A]\nport = 1\npeers = B\n[server B]\nport = 2\n[server C]\nport = 3\n"

/* Does server NAME of BASE (with HERD_A prepended) differ in TEXT_B? */
static int changed(const char *herd_a, const char *text_b, const char *name)
{
    char text_a[1024];
    snprintf(text_a, sizeof text_a, "%s%s", herd_a, BASE);
    struct cfg_herd *ha = load_ok(text_a), *hb = load_ok(text_b);
    int r = cfg_server_changed(ha, cfg_find(ha, name), hb, cfg_find(hb, name));
    cfg_free(ha);
    cfg_free(hb);
    return r;
}

static void test_changed_same(void **state)
{
    (void)state;
    assert_false(changed("", BASE, "A"));
    /* Order of sections and of peers does not matter, nor which side names the link. */
    assert_false(changed("",
                         "[server C]\nport = 3\n[server B]\nport = 2\npeers = A\n"
                         "[server A]\nport = 1\n",
                         "A"));
    /* A server that is not a neighbour may change or appear. */
    assert_false(changed("", BASE "[server D]\nport = 4\npeers = C\n", "A"));
    assert_false(changed("",
                         "[server A]\nport = 1\npeers = B\n[server B]\nport = 2\n"
                         "[server C]\nport = 33\n",
                         "A"));
}

static void test_changed_own(void **state)
{
    (void)state;
    assert_true(changed("", "[server A]\nport = 9\npeers = B\n[server B]\nport = 2\n", "A"));
    assert_true(
        changed("", "[server A]\nport = 1\nhost = ::1\npeers = B\n[server B]\nport = 2\n", "A"));
    assert_true(
        changed("", "[server A]\nport = 1\nnode = n\npeers = B\n[server B]\nport = 2\n", "A"));
}

static void test_changed_peers(void **state)
{
    (void)state;
    assert_true(changed("",
                        "[server A]\nport = 1\npeers = B C\n[server B]\nport = 2\n"
                        "[server C]\nport = 3\n",
                        "A"));
    assert_true(
        changed("", "[server A]\nport = 1\n[server B]\nport = 2\n[server C]\nport = 3\n", "B"));
    assert_true(changed("", "[server A]\nport = 1\npeers = B\n[server B]\nport = 22\n", "A"));
    assert_true(changed("",
                        "[server A]\nport = 1\npeers = B\n[server B]\nport = 2\n"
                        "host = 10.1.1.1\n",
                        "A"));
}

static void test_changed_herd(void **state)
{
    (void)state;
    /* Restart class: every worker restarts (one at a time). */
    assert_true(changed("", "[herd]\nsecret = x\n" BASE, "C"));
    assert_true(changed("", "[herd]\nlog_dir = /x\n" BASE, "C"));
    assert_true(changed("", "[herd]\nstate_dir = /x\n" BASE, "C"));
    /* Live class: applied in place, nobody restarts. */
    assert_false(changed("", "[herd]\nlog_level = debug\n" BASE, "C"));
    assert_false(changed("", "[herd]\nheartbeat_interval = 2\n" BASE, "C"));
    assert_false(changed("", "[herd]\nplaces_timeout = 2\n" BASE, "C"));
    assert_false(changed("", "[herd]\nidle_timeout = 2\n" BASE, "C"));
    assert_false(changed("", "[herd]\nmax_line_length = 2k\n" BASE, "C"));
    assert_false(changed("[herd]\nplaces_key_file = k\n", BASE, "C"));
    assert_false(
        changed("[herd]\nsecret = x\n", "[herd]\nsecret = x\nsecret_previous = y\n" BASE, "C"));
    /* Supervisor-only settings, run_dir and [herd] node do not restart a worker. */
    assert_false(changed("",
                         "[herd]\nheartbeat_timeout = 9\nrestart_backoff_min = 1\n"
                         "restart_backoff_max = 60\nrestart_reset_after = 1m\n"
                         "stop_timeout = 1\nnode = n1\nrun_dir = /elsewhere\n" BASE,
                         "C"));
    assert_false(changed("[herd]\nlog_dir = log\n", BASE, "C"));
}

/* Every key has a class; live differences are seen by class. */
static void test_key_classes(void **state)
{
    (void)state;
    size_t n = cfg_nkeys();
    int live = 0, restart = 0, sup = 0;
    for (size_t i = 0; i < n; i++) {
        enum cfg_kclass k = cfg_key_class(i);
        assert_non_null(cfg_key_name(i));
        live += k == CFG_K_LIVE;
        restart += k == CFG_K_RESTART;
        sup += k == CFG_K_SUP;
    }
    assert_int_equal(live + restart + sup, (int)n);
    assert_true(live > 20 && restart >= 3 && sup >= 5);
    assert_null(cfg_key_name(n));
    struct cfg_herd *a = load_ok(BASE), *b = load_ok("[herd]\nlog_level = debug\n" BASE);
    assert_true(cfg_herd_differs(a, b, CFG_K_LIVE));
    assert_false(cfg_herd_differs(a, b, CFG_K_RESTART | CFG_K_SUP));
    cfg_free(a);
    cfg_free(b);
    load_bad("[herd]\nsecret_previous = old\n" BASE, "t.ini:2: secret_previous without secret");
}

/* cfg_apply_live copies live values in place and leaves the rest. */
static void test_apply_live(void **state)
{
    (void)state;
    struct cfg_herd *cur = load_ok("[herd]\nsecret = s\nplaces_url = http://a/\n" BASE);
    struct cfg_herd *next = load_ok("[herd]\nsecret = t\nsecret_previous = s\n"
                                    "log_level = debug\nidle_timeout = 7\nmax_clients = 12\n"
                                    "places_url = http://b/\nplaces_api = legacy\n"
                                    "heartbeat_timeout = 9\n"
                                    "[server A]\nport = 5\n");
    struct cfg_server *servers = cur->servers;
    assert_int_equal(cfg_apply_live(cur, next), 0);
    assert_int_equal(cur->log_level, LOG_DEBUG);
    assert_true(cur->idle_timeout == 7.0);
    assert_int_equal(cur->max_clients, 12);
    assert_string_equal(cur->places_url, "http://b/");
    assert_ptr_not_equal(cur->places_url, next->places_url);
    assert_int_equal(cur->places_api, CFG_PLACES_LEGACY);
    assert_string_equal(cur->secret_previous, "s");
    /* Restart and supervisor keys, and the servers, stay. */
    assert_string_equal(cur->secret, "s");
    assert_true(cur->heartbeat_timeout == 5.0);
    assert_ptr_equal(cur->servers, servers);
    assert_int_equal(cur->nservers, 3);
    assert_int_equal(cur->servers[0].port, 1);
    assert_false(cfg_herd_differs(cur, next, CFG_K_LIVE));
    /* And back: a string that becomes unset is freed and NULL. */
    struct cfg_herd *base = load_ok("[herd]\nsecret = s\n" BASE);
    assert_int_equal(cfg_apply_live(cur, base), 0);
    assert_null(cur->secret_previous);
    assert_int_equal(cur->log_level, LOG_INFO);
    assert_false(cfg_herd_differs(cur, base, CFG_K_LIVE));
    cfg_free(base);
    cfg_free(next);
    cfg_free(cur);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_changed_same),  cmocka_unit_test(test_changed_own),
        cmocka_unit_test(test_changed_peers), cmocka_unit_test(test_changed_herd),
        cmocka_unit_test(test_key_classes),   cmocka_unit_test(test_apply_live),
    };
    return cmocka_run_group_tests_name("config_reload", tests, make_tmpdir, remove_tmpdir);
}
