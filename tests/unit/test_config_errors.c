/*
 * Unit tests for common/config*.c: every SPEC §3 error with its exact "FILE:LINE: " prefix. Needs
 * only common/config*.c, inih and cmocka; run from the repository root.
 */
#include "config_test.h"

/* ---- structure errors, each with its line ---- */

static void test_syntax_errors(void **state)
{
    (void)state;
    load_bad("[server A]\nport = 1\njunk\n", "t.ini:3: syntax error");
    load_bad("[server A\nport = 1\n", "t.ini:1: syntax error");
    load_bad("[server A] port = 1\n", "t.ini:1: syntax error");
    load_bad("[server A]\n= 1\n", "t.ini:2: syntax error");
    load_bad("[server A]\nport = 1\npeers\n[server B]\n", "t.ini:3: syntax error");
    load_bad("[herd]\nlog_level = info\n\tcontinued\n[server A]\nport = 1\n",
             "t.ini:3: syntax error");
}

static void test_syntax_error_before_later_error(void **state)
{
    (void)state;
    /* inih reports the junk line after the handler saw later lines. */
    load_bad("[server A]\njunk\nport = 1\nfoo = 2\n", "t.ini:2: syntax error");
}

static void test_line_too_long(void **state)
{
    (void)state;
    char text[600], fill[301];
    memset(fill, 'x', 300);
    fill[300] = '\0';
    snprintf(text, sizeof text, "[herd]\nsecret = %s\n[server A]\nport = 1\n", fill);
    load_bad(text, "t.ini:2: line too long");

    /* 197 bytes is inih's limit; a comment counts too. */
    fill[196] = '\0';
    snprintf(text, sizeof text, "[server A]\nport = 1\n;%s", fill);
    struct cfg_herd *h = load_ok(text);
    cfg_free(h);
    snprintf(text, sizeof text, "[server A]\nport = 1\n;%sc\r\n", fill);
    load_bad(text, "t.ini:3: line too long (more than 197 bytes)");
    snprintf(text, sizeof text, "[server A]\nport = 1\n;%s\r\n", fill);
    h = load_ok(text);
    cfg_free(h);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    load_bad("[herd]\nlog_dri = x\n[server A]\nport = 1\n",
             "t.ini:2: unknown key log_dri in [herd]");
    load_bad("[server A]\nport = 1\nprt = 2\n", "t.ini:3: unknown key prt in [server A]");
    load_bad("[server A]\nport = 1\nlog_dir = x\n", "t.ini:3: unknown key log_dir in [server A]");
    load_bad("[herd]\nport = 1\n[server A]\nport = 1\n", "t.ini:2: unknown key port in [herd]");
}

static void test_key_outside_section(void **state)
{
    (void)state;
    load_bad("; c\nport = 1\n[server A]\nport = 1\n", "t.ini:2: key port outside any section");
}

static void test_unknown_section(void **state)
{
    (void)state;
    load_bad("[server A]\nport = 1\n[servers]\n", "t.ini:3: unknown section [servers]");
    load_bad("[server A]\nport = 1\n[x]\n", "t.ini:3: unknown section [x]");
    load_bad("[HERD]\n[server A]\nport = 1\n", "t.ini:1: unknown section [HERD]");
    load_bad("[]\n", "t.ini:1: unknown section []");
}

static void test_bad_server_name(void **state)
{
    (void)state;
    load_bad("[server]\nport = 1\n", "t.ini:1: bad server name ''");
    load_bad("[server a b]\nport = 1\n", "t.ini:1: bad server name 'a b'");
    load_bad("[server a/b]\nport = 1\n", "t.ini:1: bad server name 'a/b'");
    load_bad("[server "
             "x1234567890123456789012345678901234567890123456789012345678901234]\nport = 1\n",
             "t.ini:1: bad server name");
    struct cfg_herd *h = load_ok(
        "[server x123456789012345678901234567890123456789012345678901234567890123]\nport = 1\n");
    cfg_free(h);
}

static void test_duplicate_section(void **state)
{
    (void)state;
    load_bad("[server A]\nport = 1\n\n[server A]\nport = 2\n",
             "t.ini:4: duplicate server name A (first at line 1)");
    load_bad("[herd]\n[server A]\nport = 1\n[herd]\n",
             "t.ini:4: duplicate [herd] section (first at line 1)");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    load_bad("[herd]\nsecret = a\nsecret = b\n[server A]\nport = 1\n",
             "t.ini:3: duplicate key secret in [herd] (first at line 2)");
    load_bad("[server A]\nport = 1\npeers = \nport = 1\n",
             "t.ini:4: duplicate key port in [server A] (first at line 2)");
    load_bad("[server A]\nport = 1\n[herd]\nnode = a\n[herd]\n",
             "t.ini:5: duplicate [herd] section");
}

static void test_port_range(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "0", "65536", "-1", "+5", "12.5", "abc", "1k", "", "99999999999999999999"};
    char text[128], want[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "[server A]\n\nport = %s\n", bad[i]);
        snprintf(want, sizeof want, "t.ini:3: bad value for port: ");
        load_bad(text, want);
    }
    load_bad("[server A]\nport = 70000\n",
             "t.ini:2: bad value for port: 70000 (must be an integer from 1 to 65535)");
}

static void test_missing_port(void **state)
{
    (void)state;
    load_bad("[server A]\nport = 1\n[server B]\npeers = A\n", "t.ini:3: [server B] has no port");
    load_bad("[server A]\n", "t.ini:1: [server A] has no port");
}

static void test_duplicate_port(void **state)
{
    (void)state;
    load_bad("[server A]\nport = 5\n[server B]\nhost = 127.0.0.1\nport = 5\n",
             "t.ini:5: duplicate port 5 on 127.0.0.1: server A (line 2) has it already");
    load_bad("[server A]\nport = 5\nhost = 0.0.0.0\n[server B]\nport = 5\nhost = 10.0.0.2\n",
             "t.ini:5: duplicate port 5");
    load_bad("[server A]\nport = 5\nhost = ::1\n[server B]\nport = 5\nhost = ::1\n",
             "t.ini:5: duplicate port 5");
    struct cfg_herd *h = load_ok("[server A]\nport = 5\nhost = 10.0.0.1\n"
                                 "[server B]\nport = 5\nhost = 10.0.0.2\n");
    cfg_free(h);
}

static void test_no_servers(void **state)
{
    (void)state;
    load_bad("", "t.ini: no [server NAME] section");
    load_bad("[herd]\nlog_level = info\n", "t.ini: no [server NAME] section");
}

static void test_unknown_peer(void **state)
{
    (void)state;
    load_bad("[server A]\nport = 1\npeers = B, C\n[server B]\nport = 2\n",
             "t.ini:3: unknown peer C in [server A]");
    load_bad("[server A]\nport = 1\npeers = a\n", "t.ini:3: unknown peer a in [server A]");
}

static void test_self_link(void **state)
{
    (void)state;
    load_bad("[server A]\npeers = A\nport = 1\n",
             "t.ini:2: link to itself: [server A] names itself in peers");
}

static void test_earliest_error_wins(void **state)
{
    (void)state;
    /* Whole-file checks all run; the message is for the earliest line. */
    load_bad("[server A]\nport = 1\npeers = Z\n[server B]\n", "t.ini:3: unknown peer Z");
    load_bad("[server B]\n[server A]\nport = 1\npeers = Z\n", "t.ini:1: [server B] has no port");
    load_bad("[herd]\nlink_backoff_min = 9\n[server A]\nport = 1\npeers = Z\n",
             "t.ini:2: bad value for link_backoff_min");
}

static void test_error_buffer_small(void **state)
{
    (void)state;
    char small[8];
    struct cfg_herd *h = NULL;
    assert_int_equal(cfg_load_string("[x]\n", "t.ini", &h, small, sizeof small), -1);
    assert_string_equal(small, "t.ini:1");
    assert_int_equal(cfg_load_string("[x]\n", "t.ini", &h, NULL, 0), -1);
    assert_null(h);
}

static void test_nul_byte(void **state)
{
    (void)state;
    char path[128];
    struct cfg_herd *h = NULL;
    static const char text[] = "[server A]\nport = 1\x00 junk\n";
    snprintf(path, sizeof path, "%s/nul.ini", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, sizeof text - 1, f), sizeof text - 1);
    fclose(f);
    assert_int_equal(cfg_load(path, &h, errbuf, sizeof errbuf), -1);
    char want[192];
    snprintf(want, sizeof want, "%s:2: syntax error (NUL byte)", path);
    assert_string_equal(errbuf, want);
}

/* ---- link_tls (SPEC §5) ---- */

static void test_link_tls(void **state)
{
    (void)state;
    load_bad("[herd]\nlink_tls = tls\n[server A]\nport = 1\n",
             "t.ini:2: bad value for link_tls: tls (must be off, psk or cert)");
    load_bad("[herd]\nlink_tls = psk\n[server A]\nport = 1\n",
             "t.ini:2: link_tls = psk without secret: the pre-shared key is derived from it");
    load_bad("[herd]\nlink_tls = cert\ntls_ca = ca.pem\n[server A]\nport = 1\n",
             "t.ini:4: [server A]: link_tls = cert needs tls_ca, tls_cert and tls_key (in [herd] "
             "or in [server A])");
    load_bad("[herd]\n[server A]\nport = 1\ntls_key =\n", "t.ini:4: bad value for tls_key");

    struct cfg_herd *h = load_ok("[herd]\nlink_tls = PSK\nsecret = s3cret\n[server A]\nport = 1\n");
    assert_int_equal(h->link_tls, CFG_TLS_PSK);
    cfg_free(h);
    h = load_ok("[herd]\nlink_tls = cert\ntls_ca = /etc/herd/ca.pem\ntls_cert = a.pem\n"
                "tls_key = a.key\n[server A]\nport = 1\n[server B]\nport = 2\n"
                "tls_cert = /srv/b.pem\ntls_key = /srv/b.key\n");
    assert_int_equal(h->link_tls, CFG_TLS_CERT);
    assert_string_equal(h->servers[0].tls_ca, "/etc/herd/ca.pem");
    assert_non_null(strstr(h->servers[0].tls_cert, "/a.pem")); /* relative: the file's folder */
    assert_string_equal(h->servers[1].tls_cert, "/srv/b.pem");
    assert_string_equal(h->servers[1].tls_key, "/srv/b.key");
    assert_string_equal(h->servers[1].tls_ca, "/etc/herd/ca.pem");
    cfg_free(h);
    h = load_ok("[server A]\nport = 1\n");
    assert_int_equal(h->link_tls, CFG_TLS_OFF);
    cfg_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_link_tls),
        cmocka_unit_test(test_syntax_error_before_later_error),
        cmocka_unit_test(test_line_too_long),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_key_outside_section),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_bad_server_name),
        cmocka_unit_test(test_duplicate_section),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_port_range),
        cmocka_unit_test(test_missing_port),
        cmocka_unit_test(test_duplicate_port),
        cmocka_unit_test(test_no_servers),
        cmocka_unit_test(test_unknown_peer),
        cmocka_unit_test(test_self_link),
        cmocka_unit_test(test_earliest_error_wins),
        cmocka_unit_test(test_error_buffer_small),
        cmocka_unit_test(test_nul_byte),
    };
    return cmocka_run_group_tests_name("config_errors", tests, make_tmpdir, remove_tmpdir);
}
