/*
 * log: buffered, timestamped log lines for one process. The buffer is bounded:
 * when a line would not fit, the buffer is written out first, so a burst costs
 * a write(2) instead of memory. Timestamps are cached per second because a
 * busy worker logs every line it receives and sends.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mono.h"

#define LOG_BUF_SIZE   ((size_t)256 * 1024)
#define LOG_LINE_MAX   8192
#define LOG_SHOWN_MAX  1024 /* bytes of a protocol line shown in the log */
#define LOG_PREFIX_MAX 1024 /* bytes of a log_line prefix kept */
#define LOG_HEAD_MAX   128  /* stamp, level and tag (a tag is under 64 bytes) */

static struct {
    char *path;
    char tag[64];
    int fd;
    int also_stderr;
    int own_stderr;
    enum log_level level;
    size_t used;
    size_t tag_len;
    time_t stamp_sec;
    char stamp[32]; /* "YYYY-MM-DDTHH:MM:SS" of stamp_sec */
    size_t stamp_len;
    char buf[LOG_BUF_SIZE];
} lg = {.fd = -1, .level = LOG_INFO, .stamp_sec = -1};

static const char *const level_names[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a failing log */
        }
        p += n;
        len -= (size_t)n;
    }
}

size_t log_buffered(void)
{
    return lg.used;
}

void log_flush(void)
{
    if (lg.used == 0)
        return;
    write_all(lg.fd >= 0 ? lg.fd : STDERR_FILENO, lg.buf, lg.used);
    if (lg.also_stderr && lg.fd >= 0)
        write_all(STDERR_FILENO, lg.buf, lg.used);
    lg.used = 0;
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
}

int log_open(const char *path, const char *tag, enum log_level level, int also_stderr)
{
    log_close();
    snprintf(lg.tag, sizeof lg.tag, "%s", tag ? tag : "");
    lg.tag_len = strlen(lg.tag);
    lg.level = level;
    lg.also_stderr = also_stderr;
    if (path == NULL)
        return 0;
    int fd = open_path(path);
    if (fd < 0)
        return -1;
    lg.path = strdup(path);
    if (lg.path == NULL) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    lg.fd = fd;
    return 0;
}

void log_close(void)
{
    log_flush();
    if (lg.fd >= 0)
        close(lg.fd);
    lg.fd = -1;
    free(lg.path);
    lg.path = NULL;
}

int log_reopen(void)
{
    log_flush();
    if (lg.path == NULL)
        return 0;
    int fd = open_path(lg.path);
    if (fd < 0)
        return -1;
    if (lg.fd >= 0)
        close(lg.fd);
    lg.fd = fd;
    if (lg.own_stderr)
        dup2(fd, STDERR_FILENO);
    return 0;
}

void log_own_stderr(void)
{
    if (lg.fd < 0)
        return;
    lg.own_stderr = 1;
    lg.also_stderr = 0; /* stderr is the file: do not write lines twice */
    dup2(lg.fd, STDERR_FILENO);
}

void log_set_level(enum log_level level)
{
    lg.level = level;
}

int log_enabled(enum log_level level)
{
    return level <= lg.level;
}

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL TAG: " at dst, which has room for
 * LOG_HEAD_MAX bytes. By hand, not snprintf: a busy worker logs two lines per
 * request, and printf's machinery was most of a request's cost. */
static size_t put_head(char *dst, enum log_level level)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != lg.stamp_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        lg.stamp_len = strftime(lg.stamp, sizeof lg.stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        lg.stamp_sec = ts.tv_sec;
    }
    size_t n = lg.stamp_len;
    long ms = ts.tv_nsec / 1000000;
    memcpy(dst, lg.stamp, n);
    dst[n++] = '.';
    dst[n++] = (char)('0' + ms / 100);
    dst[n++] = (char)('0' + ms / 10 % 10);
    dst[n++] = (char)('0' + ms % 10);
    dst[n++] = 'Z';
    dst[n++] = ' ';
    memcpy(dst + n, level_names[level], 5);
    n += 5;
    dst[n++] = ' ';
    memcpy(dst + n, lg.tag, lg.tag_len);
    n += lg.tag_len;
    dst[n++] = ':';
    dst[n++] = ' ';
    return n;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    if (LOG_BUF_SIZE - lg.used < LOG_LINE_MAX)
        log_flush();
    char *p = lg.buf + lg.used;
    size_t room = LOG_LINE_MAX - 1; /* keep one byte for '\n' */
    size_t n = put_head(p, level);
    int m = vsnprintf(p + n, room - n, fmt, ap);
    if (m > 0)
        n += (size_t)m < room - n ? (size_t)m : room - n - 1;
    p[n++] = '\n';
    lg.used += n;
    if (level <= LOG_WARN && lg.fd < 0)
        log_flush();
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

/* Copies LINE into dst escaped (\\, \", \xNN for anything not printable) so a
 * log line stays one printable line; dst has room for 4 * LEN bytes. Runs of
 * plain bytes are copied whole. */
static size_t escape(char *dst, const char *line, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    static unsigned char plain[256]; /* 1: copied as is */
    if (plain['a'] == 0)
        for (int c = 0x20; c < 0x7f; c++)
            plain[c] = c != '\\' && c != '"';
    size_t o = 0, i = 0;
    while (i < len) {
        size_t run = i;
        while (run < len && plain[(unsigned char)line[run]])
            run++;
        memcpy(dst + o, line + i, run - i);
        o += run - i;
        if (run == len)
            break;
        unsigned char c = (unsigned char)line[run];
        i = run + 1;
        dst[o++] = '\\';
        if (c == '\\' || c == '"') {
            dst[o++] = (char)c;
        } else {
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    return o;
}

/* Built straight into the buffer: the hot path of a worker that logs every
 * line it receives and sends. */
void log_line(enum log_level level, const char *prefix, const char *line, size_t len)
{
    if (!log_enabled(level))
        return;
    size_t shown = len < LOG_SHOWN_MAX ? len : LOG_SHOWN_MAX;
    size_t plen = strnlen(prefix, LOG_PREFIX_MAX);
    if (LOG_BUF_SIZE - lg.used < LOG_HEAD_MAX + plen + 4 * shown + 64)
        log_flush();
    char *p = lg.buf + lg.used;
    size_t n = put_head(p, level);
    memcpy(p + n, prefix, plen);
    n += plen;
    p[n++] = ' ';
    p[n++] = '"';
    n += escape(p + n, line, shown);
    p[n++] = '"';
    if (shown < len) {
        int m = snprintf(p + n, 48, "... (%zu bytes)", len);
        n += m > 0 ? (size_t)m : 0;
    }
    p[n++] = '\n';
    lg.used += n;
    if (level <= LOG_WARN && lg.fd < 0)
        log_flush();
}

void log_line_limited(struct log_limit *l, enum log_level level, const char *what, const char *line,
                      size_t len)
{
    uint64_t quiet;
    char prefix[256];
    if (!log_enabled(level) || !log_limit(l, 1.0, &quiet))
        return;
    snprintf(prefix, sizeof prefix, "%s (%llu more since the last warning):", what,
             (unsigned long long)quiet);
    log_line(level, prefix, line, len);
}

int log_limit(struct log_limit *l, double interval, uint64_t *quiet)
{
    double now = mono_now();
    if (now < l->next) {
        l->held++;
        return 0;
    }
    *quiet = l->held;
    l->held = 0;
    l->next = now + interval;
    return 1;
}
