/*
 * config_test.h: what the config unit tests share: loading a text as
 * "t.ini", checking an error's exact "FILE:LINE: " prefix, a temp folder for
 * the file tests. Included by test_config*.c only.
 */
#ifndef HERD_CONFIG_TEST_H
#define HERD_CONFIG_TEST_H

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

#define ERRLEN 512

static char errbuf[ERRLEN];

/* Loads TEXT as "t.ini"; the herd, or NULL with errbuf set. */
static inline struct cfg_herd *load(const char *text)
{
    struct cfg_herd *h = (struct cfg_herd *)1;
    int rc = cfg_load_string(text, "t.ini", &h, errbuf, sizeof errbuf);
    if (rc != 0) {
        assert_int_equal(rc, -1);
        assert_null(h);
        return NULL;
    }
    assert_non_null(h);
    return h;
}

static inline struct cfg_herd *load_ok(const char *text)
{
    struct cfg_herd *h = load(text);
    if (!h)
        fail_msg("unexpected error: %s", errbuf);
    return h;
}

/* TEXT must be refused with a message that starts with WANT. */
static inline void load_bad(const char *text, const char *want)
{
    char got[ERRLEN];
    struct cfg_herd *h = load(text);
    if (h) {
        cfg_free(h);
        fail_msg("accepted, wanted %s", want);
    }
    snprintf(got, sizeof got, "%.*s", (int)strlen(want), errbuf);
    assert_string_equal(got, want);
}

/* A [herd] key set to VALUE, followed by one valid server. */
static inline struct cfg_herd *with_key(const char *key, const char *value)
{
    char text[512];
    snprintf(text, sizeof text, "[herd]\n%s = %s\n[server A]\nport = 1\n", key, value);
    return load(text);
}

static inline void key_bad(const char *key, const char *value)
{
    char text[512], want[256];
    snprintf(text, sizeof text, "[herd]\n%s = %s\n[server A]\nport = 1\n", key, value);
    snprintf(want, sizeof want, "t.ini:2: bad value for %s: ", key);
    load_bad(text, want);
}

static inline double dur(const char *key, const char *value, size_t off)
{
    struct cfg_herd *h = with_key(key, value);
    if (!h) {
        fail_msg("%s = %s refused: %s", key, value, errbuf);
        return -1;
    }
    double d = *(double *)(void *)((char *)h + off);
    cfg_free(h);
    return d;
}

static inline size_t size_of(const char *key, const char *value, size_t off)
{
    struct cfg_herd *h = with_key(key, value);
    if (!h) {
        fail_msg("%s = %s refused: %s", key, value, errbuf);
        return 0;
    }
    size_t z = *(size_t *)(void *)((char *)h + off);
    cfg_free(h);
    return z;
}

static inline char *cwd_join(const char *rest)
{
    char *cwd = getcwd(NULL, 0);
    char *r = malloc(strlen(cwd) + strlen(rest) + 2);
    assert_non_null(cwd);
    assert_non_null(r);
    snprintf(r, strlen(cwd) + strlen(rest) + 2, "%s/%s", cwd, rest);
    free(cwd);
    return r;
}

static inline void assert_peers(const struct cfg_herd *h, const char *name, const char *want)
{
    char got[256] = "";
    const struct cfg_server *s = cfg_find(h, name);
    assert_non_null(s);
    for (size_t i = 0; i < s->npeers; i++) {
        size_t n = strlen(got);
        snprintf(got + n, sizeof got - n, "%s%s", i ? " " : "", h->servers[s->peers[i]].name);
    }
    assert_string_equal(got, want);
}

/* A fresh folder under /tmp for files; FILE written into it. */
static char tmpdir[64];

static inline int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/herd-cfg-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int remove_tmpdir(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static inline void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

#endif
