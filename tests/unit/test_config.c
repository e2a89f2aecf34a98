/*
 * Unit tests for common/config*.c: defaults, value syntax (durations, sizes, counts, ports),
 * undirected links, relative path resolution and the shipped etc/herd.ini. Needs only
 * common/config*.c, inih and cmocka; run from the repository root.
 */
#include "config_test.h"

/* ---- defaults and basic shape ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct cfg_herd *h = load_ok("[server A]\nport = 1\n");
    char *log = cwd_join("log"), *run = cwd_join("run"), *path = cwd_join("t.ini");
    char *dir = getcwd(NULL, 0);

    assert_string_equal(h->path, path);
    assert_string_equal(h->dir, dir);
    assert_string_equal(h->log_dir, log);
    assert_string_equal(h->run_dir, run);
    assert_null(h->node);
    assert_null(h->secret);
    assert_null(h->places_key_file);
    assert_string_equal(h->places_url, "https://places.googleapis.com/v1/places:searchNearby");
    assert_int_equal(h->log_level, LOG_INFO);
    assert_int_equal(h->max_line, 4096);
    assert_int_equal(h->max_connections, 10000);
    assert_int_equal(h->client_output_max, 1024 * 1024);
    assert_true(h->idle_timeout == 300);
    assert_int_equal(h->link_queue_max, 64 * 1024 * 1024);
    assert_true(h->link_backoff_min == 0.05 && h->link_backoff_max == 2);
    assert_true(h->link_ping_interval == 1 && h->link_timeout == 5);
    assert_true(h->places_timeout == 5 && h->places_cache_ttl == 60);
    assert_int_equal(h->places_cache_entries, 10000);
    assert_int_equal(h->places_max_connections, 8);
    assert_int_equal(h->places_max_pending, 256);
    assert_int_equal(h->max_clients, 10000000);
    assert_int_equal(h->places_max_body, 4 * 1024 * 1024);
    assert_true(h->heartbeat_interval == 1 && h->heartbeat_timeout == 5);
    assert_true(h->restart_backoff_min == 0.1 && h->restart_backoff_max == 30);
    assert_true(h->restart_reset_after == 10 && h->stop_timeout == 5);
    /* round 2 */
    assert_int_equal(h->places_api, CFG_PLACES_NEW);
    assert_non_null(strstr(h->places_fields, "places.displayName"));
    assert_int_equal(h->places_max_rate, 2);
    assert_int_equal(h->places_max_per_day, 1000);
    assert_true(h->client_ttl == 86400 && h->stop_drain == 1);
    assert_int_equal(h->max_store_memory, (size_t)1024 * 1024 * 1024);
    assert_null(h->state_dir);
    assert_true(h->snapshot_interval == 10 && h->log_link_summary == 10);
    free(log), free(run), free(path), free(dir);
    cfg_free(h);
}

static void test_places_api_and_urls(void **state)
{
    (void)state;
    struct cfg_herd *h = load_ok("[herd]\nplaces_api = legacy\n[server A]\nport = 1\n");
    assert_int_equal(h->places_api, CFG_PLACES_LEGACY);
    assert_string_equal(h->places_url,
                        "https://maps.googleapis.com/maps/api/place/nearbysearch/json");
    cfg_free(h);
    h = load_ok("[herd]\nplaces_api = NEW\nplaces_url = http://127.0.0.1:9/x\n"
                "places_fields = places.id\nstate_dir = st\nclient_ttl = 0\n"
                "[server A]\nport = 1\n");
    assert_int_equal(h->places_api, CFG_PLACES_NEW);
    assert_string_equal(h->places_url, "http://127.0.0.1:9/x");
    assert_string_equal(h->places_fields, "places.id");
    assert_non_null(h->state_dir);
    assert_true(h->state_dir[0] == '/');
    assert_true(h->client_ttl == 0);
    cfg_free(h);
    key_bad("places_api", "old");
    key_bad("places_fields", "a\tb");
}

static void test_server_defaults(void **state)
{
    (void)state;
    struct cfg_herd *h = load_ok("[server A.b-c_9]\nport = 65535\n");
    assert_int_equal(h->nservers, 1);
    assert_string_equal(h->servers[0].name, "A.b-c_9");
    assert_string_equal(h->servers[0].host, "127.0.0.1");
    assert_null(h->servers[0].node);
    assert_int_equal(h->servers[0].port, 65535);
    assert_int_equal(h->servers[0].npeers, 0);
    assert_int_equal(h->servers[0].line, 1);
    cfg_free(h);
}

static void test_all_keys(void **state)
{
    (void)state;
    struct cfg_herd *h = load_ok("[herd]\nnode = alpha\nsecret = s3cr;et\nlog_level = debug\n"
                                 "places_url = http://127.0.0.1:9/x\nlog_dir = /var/log/herd\n"
                                 "[server A]\nport = 7\nhost = 10.0.0.1\nnode = beta\n");
    assert_string_equal(h->node, "alpha");
    assert_string_equal(h->secret, "s3cr;et");
    assert_int_equal(h->log_level, LOG_DEBUG);
    assert_string_equal(h->places_url, "http://127.0.0.1:9/x");
    assert_string_equal(h->log_dir, "/var/log/herd");
    assert_string_equal(h->servers[0].host, "10.0.0.1");
    assert_string_equal(h->servers[0].node, "beta");
    cfg_free(h);
    h = load_ok("[server A]\nport = 7\nhost = node-1.herd.example.\n");
    assert_string_equal(h->servers[0].host, "node-1.herd.example.");
    cfg_free(h);
}

static void test_layout_tolerance(void **state)
{
    (void)state;
    /* BOM, CRLF, indentation, comments, ':' separator, comment after a header. */
    struct cfg_herd *h = load_ok("\xEF\xBB\xBF; top\r\n# hash\r\n[herd] ; c\r\n"
                                 "   log_level: warn   ; why\r\n\r\n"
                                 "  [ server  A ]\r\n\tport = 12000 ; c\r\n    peers = B\r\n"
                                 "[server B]\nport=12001");
    assert_int_equal(h->log_level, LOG_WARN);
    assert_int_equal(h->nservers, 2);
    assert_string_equal(h->servers[0].name, "A");
    assert_int_equal(h->servers[0].line, 6);
    assert_int_equal(h->servers[1].port, 12001);
    assert_peers(h, "A", "B");
    cfg_free(h);
}

static void test_log_levels(void **state)
{
    (void)state;
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        struct cfg_herd *h = with_key("log_level", names[i]);
        assert_non_null(h);
        assert_int_equal(h->log_level, i);
        assert_string_equal(cfg_level_name(h->log_level), names[i]);
        cfg_free(h);
    }
    key_bad("log_level", "verbose");
    load_bad("[herd]\nlog_level = trace\n[server A]\nport = 1\n",
             "t.ini:2: bad value for log_level: trace (must be error, warn, info or debug)");
}

/* ---- value syntax ---- */

static void test_durations(void **state)
{
    (void)state;
    size_t off = offsetof(struct cfg_herd, idle_timeout);
    assert_true(dur("idle_timeout", "5", off) == 5);
    assert_true(dur("idle_timeout", "0.25", off) == 0.25);
    assert_true(dur("idle_timeout", ".5", off) == 0.5);
    assert_true(dur("idle_timeout", "250ms", off) == 0.25);
    assert_true(dur("idle_timeout", "5s", off) == 5);
    assert_true(dur("idle_timeout", "2m", off) == 120);
    assert_true(dur("idle_timeout", "1h", off) == 3600);
    assert_true(dur("idle_timeout", "1ms", off) == 0.001);
    off = offsetof(struct cfg_herd, stop_timeout);
    assert_true(dur("stop_timeout", "1.5m", off) == 90);
}

static void test_durations_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {"0",   "-1",     "+5",   "1e3", "0x10",       "inf",
                                      "nan", "5 s",    "5sec", "5S",  "1.2.3",      ".",
                                      "s",   "0.0001", "2d",   "31d", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        key_bad("idle_timeout", bad[i]);
    load_bad("[herd]\nplaces_timeout = 5x\n[server A]\nport = 1\n",
             "t.ini:2: bad value for places_timeout: 5x (unknown unit, use ms, s, m or h)");
    load_bad("[herd]\nlink_timeout = 0\n[server A]\nport = 1\n",
             "t.ini:2: bad value for link_timeout: 0 (must be from 0.001 to 3600 seconds)");
    load_bad("[herd]\nheartbeat_interval =\n[server A]\nport = 1\n",
             "t.ini:2: bad value for heartbeat_interval: \"\" (not a number)");
}

static void test_every_duration_key(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "idle_timeout",        "link_backoff_min",    "link_backoff_max",    "link_ping_interval",
        "link_timeout",        "places_timeout",      "heartbeat_interval",  "heartbeat_timeout",
        "restart_backoff_min", "restart_backoff_max", "restart_reset_after", "stop_timeout"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        key_bad(keys[i], "0");
        key_bad(keys[i], "-2s");
        key_bad(keys[i], "soon");
    }
}

static void test_cache_ttl(void **state)
{
    (void)state;
    size_t off = offsetof(struct cfg_herd, places_cache_ttl);
    assert_true(dur("places_cache_ttl", "0", off) == 0);
    assert_true(dur("places_cache_ttl", "10m", off) == 600);
    key_bad("places_cache_ttl", "-1");
}

static void test_sizes(void **state)
{
    (void)state;
    size_t off = offsetof(struct cfg_herd, max_line);
    assert_int_equal(size_of("max_line_length", "256", off), 256);
    assert_int_equal(size_of("max_line_length", "1k", off), 1024);
    assert_int_equal(size_of("max_line_length", "8K", off), 8192);
    assert_int_equal(size_of("max_line_length", "1m", off), 1048576);
    assert_int_equal(size_of("max_line_length", "1048576", off), 1048576);
    off = offsetof(struct cfg_herd, client_output_max);
    assert_int_equal(size_of("client_output_max", "2M", off), 2 * 1024 * 1024);
    off = offsetof(struct cfg_herd, link_queue_max);
    assert_int_equal(size_of("link_queue_max", "128M", off), 128u * 1024 * 1024);
    off = offsetof(struct cfg_herd, places_max_body);
    assert_int_equal(size_of("places_max_body", "512k", off), 512 * 1024);
}

static void test_sizes_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {"15",
                                      "1048577",
                                      "2M",
                                      "1G",
                                      "-1",
                                      "+1k",
                                      "1.5k",
                                      "1 k",
                                      "1kb",
                                      "0x100",
                                      "99999999999999999999999",
                                      ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        key_bad("max_line_length", bad[i]);
    load_bad("[herd]\nmax_line_length = 255\n[server A]\nport = 1\n",
             "t.ini:2: bad value for max_line_length: 255 (must be from 256 to 1048576 bytes)");
    key_bad("client_output_max", "1023");
    key_bad("places_max_body", "1G");
    key_bad("link_queue_max", "1k");
}

static void test_counts(void **state)
{
    (void)state;
    size_t off = offsetof(struct cfg_herd, max_connections);
    assert_int_equal(size_of("max_connections", "100", off), 100);
    off = offsetof(struct cfg_herd, places_cache_entries);
    assert_int_equal(size_of("places_cache_entries", "0", off), 0);
    off = offsetof(struct cfg_herd, places_max_connections);
    assert_int_equal(size_of("places_max_connections", "64", off), 64);
    key_bad("max_connections", "1k");
    key_bad("max_connections", "0");
    key_bad("max_connections", "12.0");
    key_bad("places_max_connections", "0");
    key_bad("places_cache_entries", "-1");
}

static void test_string_values_bad(void **state)
{
    (void)state;
    key_bad("secret", "");
    key_bad("node", "a b");
    key_bad("node", "");
    key_bad("log_dir", "");
    key_bad("places_url", "ftp://x");
    key_bad("places_url", "https://");
    key_bad("places_url", "maps.googleapis.com");
    load_bad("[server A]\nport = 1\nhost = a b\n", "t.ini:3: bad value for host: a b");
    load_bad("[server A]\nport = 1\nhost = -node1.example\n",
             "t.ini:3: bad value for host: -node1.example (a numeric IPv4 or IPv6 address, "
             "or a DNS name)");
    load_bad("[server A]\nport = 1\nhost = node_1.example\n",
             "t.ini:3: bad value for host: node_1.example (a numeric IPv4 or IPv6 address, "
             "or a DNS name)");
    load_bad("[server A]\nport = 1\nhost = 10.0.0.300\n",
             "t.ini:3: bad value for host: 10.0.0.300 (a numeric IPv4 or IPv6 address, "
             "or a DNS name)");
    load_bad("[server A]\nport = 1\nnode = x/y\n", "t.ini:3: bad value for node: x/y");
}

static void test_ordered_limits(void **state)
{
    (void)state;
    load_bad("[herd]\nlink_backoff_min = 5s\n[server A]\nport = 1\n",
             "t.ini:2: bad value for link_backoff_min: 5s (must be at most link_backoff_max, "
             "which is 2 seconds)");
    load_bad("[herd]\nlink_backoff_min = 1\nlink_backoff_max = 500ms\n[server A]\nport = 1\n",
             "t.ini:3: bad value for link_backoff_max: 500ms (must be at least link_backoff_min, "
             "which is 1 seconds)");
    load_bad("[herd]\nrestart_backoff_max = 50ms\n[server A]\nport = 1\n",
             "t.ini:2: bad value for restart_backoff_max: ");
    load_bad("[herd]\nheartbeat_timeout = 1\n[server A]\nport = 1\n",
             "t.ini:2: bad value for heartbeat_timeout: 1 (must be above heartbeat_interval");
    load_bad("[herd]\nlink_ping_interval = 5s\n[server A]\nport = 1\n",
             "t.ini:2: bad value for link_ping_interval: 5s (must be below link_timeout");
    load_bad("[herd]\nmax_line_length = 1M\nclient_output_max = 64k\n[server A]\nport = 1\n",
             "t.ini:3: bad value for client_output_max: 64k");
    struct cfg_herd *h = load_ok("[herd]\nlink_backoff_min = 2s\nlink_backoff_max = 2s\n"
                                 "[server A]\nport = 1\n");
    cfg_free(h);
}

/* ---- links ---- */

static void test_links_undirected(void **state)
{
    (void)state;
    struct cfg_herd *h = load_ok("[server C]\nport = 3\n"
                                 "[server A]\nport = 1\npeers = C, B\n"
                                 "[server B]\nport = 2\npeers = A\n"
                                 "[server D]\nport = 4\npeers = C\n");
    assert_peers(h, "A", "C B");
    assert_peers(h, "B", "A");
    assert_peers(h, "C", "A D");
    assert_peers(h, "D", "C");
    for (size_t i = 0; i < h->nservers; i++) {
        const struct cfg_server *s = &h->servers[i];
        for (size_t j = 1; j < s->npeers; j++)
            assert_true(s->peers[j - 1] < s->peers[j]);
    }
    cfg_free(h);
}

static void test_peer_separators(void **state)
{
    (void)state;
    struct cfg_herd *h = load_ok("[server A]\nport = 1\npeers = B,C\t D ,, E,B\n"
                                 "[server B]\nport = 2\n[server C]\nport = 3\n"
                                 "[server D]\nport = 4\n[server E]\nport = 5\npeers =\n");
    assert_peers(h, "A", "B C D E");
    assert_peers(h, "E", "A");
    cfg_free(h);
}

/* ---- files and paths ---- */

static void test_relative_paths(void **state)
{
    (void)state;
    char sub[128], path[160], want[192], *real;
    snprintf(sub, sizeof sub, "%s/etc", tmpdir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/herd.ini", sub);
    write_file(path, "[herd]\nlog_dir = ../var/log\nrun_dir = /srv/run/\n"
                     "places_key_file = ./keys/places.key\n[server A]\nport = 1\n");
    struct cfg_herd *h = NULL;
    assert_int_equal(cfg_load(path, &h, errbuf, sizeof errbuf), 0);
    real = realpath(tmpdir, NULL);
    snprintf(want, sizeof want, "%s/var/log", real);
    assert_string_equal(h->log_dir, want);
    assert_string_equal(h->run_dir, "/srv/run");
    snprintf(want, sizeof want, "%s/etc/keys/places.key", real);
    assert_string_equal(h->places_key_file, want);
    snprintf(want, sizeof want, "%s/etc", real);
    assert_string_equal(h->dir, want);
    snprintf(want, sizeof want, "%s/etc/herd.ini", real);
    assert_string_equal(h->path, want);
    free(real);
    cfg_free(h);
}

static void test_string_path_anchor(void **state)
{
    (void)state;
    struct cfg_herd *h = NULL;
    assert_int_equal(cfg_load_string("[herd]\nrun_dir = ../r\n[server A]\nport = 1\n",
                                     "no/such/dir/x.ini", &h, errbuf, sizeof errbuf),
                     0);
    char *log = cwd_join("no/such/dir/log"), *run = cwd_join("no/such/r");
    assert_string_equal(h->log_dir, log);
    assert_string_equal(h->run_dir, run);
    free(log), free(run);
    cfg_free(h);
    assert_int_equal(
        cfg_load_string("[server A]\nport = 1\n", "/abs/h.ini", &h, errbuf, sizeof errbuf), 0);
    assert_string_equal(h->dir, "/abs");
    assert_string_equal(h->log_dir, "/abs/log");
    assert_string_equal(h->path, "/abs/h.ini");
    cfg_free(h);
}

static void test_file_errors_carry_path(void **state)
{
    (void)state;
    char path[160], want[256];
    struct cfg_herd *h = NULL;
    snprintf(path, sizeof path, "%s/bad.ini", tmpdir);
    write_file(path, "[server A]\nport = 1\n\n[server B]\nport = 1\n");
    assert_int_equal(cfg_load(path, &h, errbuf, sizeof errbuf), -1);
    assert_null(h);
    snprintf(want, sizeof want, "%s:5: duplicate port 1", path);
    errbuf[strlen(want)] = '\0';
    assert_string_equal(errbuf, want);
}

static void test_cannot_open(void **state)
{
    (void)state;
    char path[160], want[256];
    struct cfg_herd *h = (struct cfg_herd *)1;
    snprintf(path, sizeof path, "%s/missing.ini", tmpdir);
    assert_int_equal(cfg_load(path, &h, errbuf, sizeof errbuf), -1);
    assert_null(h);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    assert_string_equal(errbuf, want);

    assert_int_equal(cfg_load(tmpdir, &h, errbuf, sizeof errbuf), -1);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", tmpdir);
    assert_string_equal(errbuf, want);
}

static void test_shipped_ini(void **state)
{
    (void)state;
    struct cfg_herd *h = NULL;
    static const char *const names[] = {"Riley", "Jaquez", "Juzang", "Campbell", "Bernard"};
    if (cfg_load("etc/herd.ini", &h, errbuf, sizeof errbuf) != 0)
        fail_msg("%s", errbuf);
    assert_int_equal(h->nservers, 5);
    for (int i = 0; i < 5; i++) {
        const struct cfg_server *s = cfg_find(h, names[i]);
        assert_non_null(s);
        assert_int_equal(s->port, 12000 + i);
        assert_string_equal(s->host, "127.0.0.1");
    }
    assert_peers(h, "Riley", "Jaquez Juzang");
    assert_peers(h, "Jaquez", "Riley Bernard");
    assert_peers(h, "Juzang", "Riley Campbell Bernard");
    assert_peers(h, "Campbell", "Juzang Bernard");
    assert_peers(h, "Bernard", "Jaquez Juzang Campbell");
    size_t n = strlen(h->log_dir);
    assert_true(n > 8 && strcmp(h->log_dir + n - 8, "/var/log") == 0);
    assert_null(strstr(h->log_dir, ".."));
    n = strlen(h->run_dir);
    assert_true(n > 8 && strcmp(h->run_dir + n - 8, "/var/run") == 0);
    assert_null(h->secret);
    assert_null(h->places_key_file);
    assert_int_equal(h->max_line, 4096);
    cfg_free(h);
}

/* ---- lookups ---- */

static void test_find_and_index(void **state)
{
    (void)state;
    struct cfg_herd *h = load_ok("[server A]\nport = 1\n[server B]\nport = 2\n");
    assert_int_equal(cfg_index(h, "A"), 0);
    assert_int_equal(cfg_index(h, "B"), 1);
    assert_int_equal(cfg_index(h, "b"), -1);
    assert_int_equal(cfg_index(h, ""), -1);
    assert_ptr_equal(cfg_find(h, "B"), &h->servers[1]);
    assert_null(cfg_find(h, "C"));
    assert_string_equal(cfg_level_name(LOG_ERROR), "error");
    assert_string_equal(cfg_level_name((enum log_level)42), "unknown");
    cfg_free(h);
    cfg_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_server_defaults),
        cmocka_unit_test(test_places_api_and_urls),
        cmocka_unit_test(test_all_keys),
        cmocka_unit_test(test_layout_tolerance),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_durations_bad),
        cmocka_unit_test(test_every_duration_key),
        cmocka_unit_test(test_cache_ttl),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_sizes_bad),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_string_values_bad),
        cmocka_unit_test(test_ordered_limits),
        cmocka_unit_test(test_links_undirected),
        cmocka_unit_test(test_peer_separators),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_string_path_anchor),
        cmocka_unit_test(test_file_errors_carry_path),
        cmocka_unit_test(test_cannot_open),
        cmocka_unit_test(test_shipped_ini),
        cmocka_unit_test(test_find_and_index),
    };
    return cmocka_run_group_tests_name("config", tests, make_tmpdir, remove_tmpdir);
}
