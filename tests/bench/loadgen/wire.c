/*
 * loadgen's wire text (see wire.h). Fields are split on spaces and numbers
 * read digit by digit, every read bounded by the line's length.
 */
#include "wire.h"

#include <stdio.h>
#include <string.h>

size_t lg_fmt_u64(char *dst, uint64_t v)
{
    char tmp[LG_U64_MAX_LEN];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

size_t lg_fmt_time(char *dst, uint64_t ns)
{
    size_t n = lg_fmt_u64(dst, ns / 1000000000ULL);
    uint64_t frac = ns % 1000000000ULL;
    dst[n++] = '.';
    for (int i = 8; i >= 0; i--) {
        dst[n + (size_t)i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return n + 9;
}

#define LOCATION "+34.068930-118.445127"

size_t lg_fmt_iamat(char *line, const char *prefix, const char *id, size_t idlen, const char *time,
                    size_t timelen)
{
    size_t n = 6, plen = strnlen(prefix, LG_PREFIX_MAX);
    memcpy(line, "IAMAT ", 6);
    memcpy(line + n, prefix, plen);
    n += plen;
    memcpy(line + n, id, idlen);
    n += idlen;
    memcpy(line + n, " " LOCATION " ", sizeof LOCATION + 1);
    n += sizeof LOCATION + 1;
    memcpy(line + n, time, timelen);
    n += timelen;
    line[n++] = '\n';
    return n;
}

static uint64_t parse_time_ns(const char *p, size_t len)
{
    uint64_t sec = 0, frac = 0;
    size_t i = 0, digits = 0;
    for (; i < len && p[i] >= '0' && p[i] <= '9' && i < 18; i++)
        sec = sec * 10 + (uint64_t)(p[i] - '0');
    if (i == 0)
        return 0;
    if (i < len && p[i] == '.')
        for (i++; i < len && p[i] >= '0' && p[i] <= '9' && digits < 9; i++, digits++)
            frac = frac * 10 + (uint64_t)(p[i] - '0');
    for (; digits < 9; digits++)
        frac *= 10;
    return sec * 1000000000ULL + frac;
}

int lg_at_times(const char *line, size_t len, const char *prefix, uint64_t *sent, uint64_t *got)
{
    const char *f[6];
    size_t fl[6], n = 0, i = 0;
    while (i < len && n < 6) {
        while (i < len && line[i] == ' ')
            i++;
        f[n] = line + i;
        while (i < len && line[i] != ' ')
            i++;
        fl[n] = (size_t)(line + i - f[n]);
        if (fl[n] > 0)
            n++;
    }
    size_t plen = strlen(prefix);
    if (n < 6 || fl[3] < plen || memcmp(f[3], prefix, plen) != 0)
        return 0;
    *sent = parse_time_ns(f[5], fl[5]);
    /* DIFF is the first server's receive time minus SENT: what is left of
     * the latency was spent inside the herd. */
    uint64_t diff = fl[2] > 1 ? parse_time_ns(f[2] + 1, fl[2] - 1) : 0;
    *got = f[2][0] == '-' ? *sent - diff : *sent + diff;
    return 1;
}

static size_t reply(char *out, size_t size, const char *text)
{
    size_t n = strlen(text);
    if (n >= size)
        return 0;
    memcpy(out, text, n);
    return n;
}

size_t lg_link_reply(const char *line, size_t len, const char *name, char *out, size_t size,
                     int *authed)
{
    if (len > 13 && memcmp(line, "HERD/1 HELLO ", 13) == 0) {
        int n = snprintf(out, size, "HERD/1 WELCOME %s %032x\n", name, 0x5eed);
        return n > 0 && (size_t)n < size ? (size_t)n : 0;
    }
    if (len >= 11 && memcmp(line, "HERD/1 AUTH", 11) == 0) {
        *authed = 1;
        return reply(out, size, "HERD/1 OK -\n");
    }
    if (len >= 11 && memcmp(line, "HERD/1 PING", 11) == 0)
        return reply(out, size, "HERD/1 PONG\n");
    return 0;
}
