/*
 * places_key: reading, redacting and wiping the Places API key. The key is
 * a credential: it is never logged, never sent to a client, and its copies
 * are zeroed before their memory is freed.
 */
#include "places_key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* A Google key is 39 bytes; a bigger file is not a key file. */
#define PLACES_KEY_MAX 4096

void places_key_redact(const char *key, char *s, size_t size)
{
    static const char red[] = "REDACTED";
    size_t klen = key ? strlen(key) : 0, o = 0;
    const char *p = s;
    char *out;

    if (klen == 0 || size == 0 || !strstr(s, key))
        return;
    out = malloc(size);
    if (!out) {
        /* Cannot rewrite it: say nothing rather than risk the key. */
        snprintf(s, size, "(details withheld)");
        return;
    }
    while (*p && o + 1 < size) {
        if (strncmp(p, key, klen) == 0) {
            size_t n = sizeof red - 1 < size - 1 - o ? sizeof red - 1 : size - 1 - o;
            memcpy(out + o, red, n);
            o += n;
            p += klen;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    memcpy(s, out, o + 1);
    free(out);
}

void places_key_free(char *key)
{
    if (!key)
        return;
    explicit_bzero(key, strlen(key));
    free(key);
}

/* Drops trailing white space (an editor's final newline). */
static void places_key_trim(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n' ||
                     s[n - 1] == '\f' || s[n - 1] == '\v'))
        s[--n] = '\0';
}

/* A key is one non-empty line of printable characters. */
static int places_key_ok(const char *key)
{
    if (*key == '\0')
        return 0;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* Reads up to PLACES_KEY_MAX bytes of FD into BUF (NUL-terminated). */
static int places_key_read_all(int fd, char *buf)
{
    size_t got = 0;

    while (got < PLACES_KEY_MAX) {
        ssize_t n = read(fd, buf + got, PLACES_KEY_MAX - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return 0;
}

static int places_key_read_file(const char *path, char **key, char *err, size_t errlen)
{
    char buf[PLACES_KEY_MAX + 1];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    buf[0] = '\0';
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "places_key_file %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > PLACES_KEY_MAX) {
        snprintf(err, errlen, "places_key_file %s: not a file holding one key", path);
        goto fail;
    }
    if (st.st_mode & 077)
        log_warn("places: key file %s is accessible by group or others (mode %03o): "
                 "chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
    if (places_key_read_all(fd, buf) < 0) {
        snprintf(err, errlen, "places_key_file %s: %s", path, strerror(errno));
        goto fail;
    }
    places_key_trim(buf);
    if (buf[0] == '\0') {
        snprintf(err, errlen, "places_key_file %s: is empty", path);
        goto fail;
    }
    if (!places_key_ok(buf)) {
        snprintf(err, errlen, "places_key_file %s: must hold the key on one line", path);
        goto fail;
    }
    *key = strdup(buf);
    if (!*key) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    close(fd);
    explicit_bzero(buf, sizeof buf);
    log_info("places: API key read from %s", path);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    explicit_bzero(buf, sizeof buf);
    return -1;
}

int places_key_load(const struct cfg_herd *cfg, char **key, char *err, size_t errlen)
{
    const char *env = getenv("HERD_PLACES_KEY");

    *key = NULL;
    if (env && *env) {
        char *k = strdup(env);
        if (!k) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        places_key_trim(k);
        if (!places_key_ok(k)) {
            places_key_free(k);
            snprintf(err, errlen, "HERD_PLACES_KEY must hold the key on one line");
            return -1;
        }
        *key = k;
        log_info("places: API key taken from HERD_PLACES_KEY");
        return 0;
    }
    if (cfg->places_key_file)
        return places_key_read_file(cfg->places_key_file, key, err, errlen);
    log_warn("places: no API key (set HERD_PLACES_KEY or places_key_file): "
             "WHATSAT will answer REQUEST_DENIED");
    return 0;
}
