/*
 * config_value: syntax of one configuration value, and path resolution.
 * Numbers are digits only: no sign, no exponent, no hex, so
 * what strtod/strtoull would quietly accept ("0x10", "1e3", " 5", "inf") is
 * refused here.
 */
#include "config_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DIGITS "0123456789"

const char *cfgv_duration(const char *s, double *out)
{
    size_t n = strspn(s, DIGITS ".");
    size_t dots = 0;
    for (size_t i = 0; i < n; i++)
        dots += s[i] == '.';
    if (n == 0 || dots > 1 || n == dots)
        return "not a number";

    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s + n)
        return "not a number";
    if (errno == ERANGE)
        return "out of range";

    const char *unit = s + n;
    double mul;
    if (*unit == '\0' || strcmp(unit, "s") == 0)
        mul = 1.0;
    else if (strcmp(unit, "ms") == 0)
        mul = 0.001;
    else if (strcmp(unit, "m") == 0)
        mul = 60.0;
    else if (strcmp(unit, "h") == 0)
        mul = 3600.0;
    else
        return "unknown unit, use ms, s, m or h";
    *out = v * mul;
    return NULL;
}

/* Leading digits of S as an integer; *rest gets what follows them. */
static const char *parse_digits(const char *s, unsigned long long *out, const char **rest)
{
    size_t n = strspn(s, DIGITS);
    if (n == 0)
        return "not a number";
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end != s + n)
        return "not a number";
    if (errno == ERANGE)
        return "too large";
    *out = v;
    *rest = end;
    return NULL;
}

const char *cfgv_size(const char *s, size_t *out)
{
    unsigned long long v, mul;
    const char *unit = NULL;
    const char *why = parse_digits(s, &v, &unit);
    if (why)
        return why;
    if (*unit == '\0')
        mul = 1;
    else if (strcmp(unit, "k") == 0 || strcmp(unit, "K") == 0)
        mul = 1024;
    else if (strcmp(unit, "m") == 0 || strcmp(unit, "M") == 0)
        mul = 1024ULL * 1024;
    else
        return "unknown unit, use k or M";
    if (v > ULLONG_MAX / mul)
        return "too large";
    v *= mul;
#if SIZE_MAX < ULLONG_MAX
    if (v > SIZE_MAX)
        return "too large";
#endif
    *out = (size_t)v;
    return NULL;
}

const char *cfgv_count(const char *s, size_t *out)
{
    unsigned long long v;
    const char *rest = NULL;
    const char *why = parse_digits(s, &v, &rest);
    if (why)
        return why;
    if (*rest != '\0')
        return "not an integer";
#if SIZE_MAX < ULLONG_MAX
    if (v > SIZE_MAX)
        return "too large";
#endif
    *out = (size_t)v;
    return NULL;
}

const char *cfgv_port(const char *s, uint16_t *out)
{
    size_t n;
    const char *why = cfgv_count(s, &n);
    if (why || n < 1 || n > 65535)
        return "must be an integer from 1 to 65535";
    *out = (uint16_t)n;
    return NULL;
}

const char *cfgv_level(const char *s, enum log_level *out)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {
        {"error", LOG_ERROR}, {"warn", LOG_WARN},   {"warning", LOG_WARN},
        {"info", LOG_INFO},   {"debug", LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return NULL;
        }
    }
    return "must be error, warn, info or debug";
}

const char *cfgv_places_api(const char *s, enum cfg_places_api *out)
{
    if (strcasecmp(s, "new") == 0)
        *out = CFG_PLACES_NEW;
    else if (strcasecmp(s, "legacy") == 0)
        *out = CFG_PLACES_LEGACY;
    else
        return "must be new or legacy";
    return NULL;
}

const char *cfgv_link_tls(const char *s, enum cfg_link_tls *out)
{
    if (strcasecmp(s, "off") == 0)
        *out = CFG_TLS_OFF;
    else if (strcasecmp(s, "psk") == 0)
        *out = CFG_TLS_PSK;
    else if (strcasecmp(s, "cert") == 0)
        *out = CFG_TLS_CERT;
    else
        return "must be off, psk or cert";
    return NULL;
}

int cfgv_text_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < ' ' || *p >= 0x7f)
            return 0;
    return *s != '\0';
}

/* Nonzero when S has 1..MAX characters, all ASCII letters, digits or from EXTRA. */
static int chars_ok(const char *s, size_t max, const char *extra)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && strchr(extra, c) == NULL)
            return 0;
    }
    return n >= 1 && n <= max;
}

int cfgv_name_ok(const char *s)
{
    return chars_ok(s, 64, "_.-");
}

/* One RFC 1123 label: 1..63 letters, digits and '-', no '-' at either end. */
static int label_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return 0;
    return 1;
}

/* A numeric IPv4 or IPv6 address, or a DNS name (RFC 1123 labels, a final
 * dot allowed): a worker resolves names without blocking its loop. */
int cfgv_host_ok(const char *s)
{
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1)
        return 1;
    size_t len = strlen(s);
    if (len == 0 || len > 253)
        return 0;
    const char *p = s;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (!label_ok(p, n))
            return 0;
        if (dot == NULL)
            break;
        p = dot + 1; /* "name." ends with an empty rest: fine */
    }
    /* all digits and dots would be a malformed IPv4 literal, not a name */
    return strspn(s, "0123456789.") != len;
}

int cfgv_url_ok(const char *s)
{
    size_t skip;
    if (strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else if (strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else
        return 0;
    if (s[skip] == '\0')
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p == 0x7f)
            return 0;
    }
    return 1;
}

/* Length of DIR[0..len) without its last component ("/a/b" -> "/a", "/a" -> "/"). */
static size_t parent_len(const char *dir, size_t len)
{
    while (len > 1 && dir[len - 1] == '/')
        len--;
    while (len > 0 && dir[len - 1] != '/')
        len--;
    while (len > 1 && dir[len - 1] == '/')
        len--;
    return len;
}

char *cfgv_resolve(const char *dir, const char *p)
{
    size_t dlen = 0;
    if (p[0] != '/') {
        dlen = strlen(dir);
        for (;;) {
            if (p[0] == '.' && (p[1] == '/' || p[1] == '\0'))
                p += 1;
            else if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0')) {
                p += 2;
                dlen = parent_len(dir, dlen);
            } else
                break;
            while (*p == '/')
                p++;
        }
    }
    size_t plen = strlen(p);
    while (plen > 1 && p[plen - 1] == '/')
        plen--;
    char *r = malloc(dlen + plen + 2);
    if (!r)
        return NULL;
    size_t n = dlen;
    memcpy(r, dir, dlen);
    if (plen > 0 && n > 0 && r[n - 1] != '/' && p[0] != '/')
        r[n++] = '/';
    memcpy(r + n, p, plen);
    n += plen;
    if (n == 0)
        r[n++] = '/';
    r[n] = '\0';
    return r;
}

/* DIR made absolute without touching the file system. */
static char *absolute_dir(const char *dir)
{
    if (dir[0] == '/')
        return cfgv_resolve("", dir);
    char *cwd = getcwd(NULL, 0);
    if (!cwd)
        return NULL;
    char *r = cfgv_resolve(cwd, dir);
    free(cwd);
    if (!r)
        errno = ENOMEM;
    return r;
}

int cfgv_split_path(const char *path, int must_exist, char **dir, char **abs)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *folder = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    *dir = *abs = NULL;
    if (!folder)
        goto fail;
    *dir = must_exist ? realpath(folder, NULL) : absolute_dir(folder);
    if (!*dir)
        goto fail;
    *abs = cfgv_resolve(*dir, base);
    if (!*abs) {
        errno = ENOMEM;
        goto fail;
    }
    free(folder);
    return 0;
fail:
    free(folder);
    free(*dir);
    *dir = NULL;
    return -1;
}
