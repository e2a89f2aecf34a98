/*
 * log: one process-wide log file with UTC ISO-8601 millisecond timestamps and
 * levels. Lines are buffered in memory and written by log_flush(), which a
 * worker calls at most every 20 ms (or at 32 KiB; see worker/server.c); log_reopen()
 * flushes, then reopens the path so logrotate's create + reopen loses nothing.
 */
#ifndef HERD_LOG_H
#define HERD_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/*
 * Opens PATH for appending (NULL: stderr only). TAG starts every message
 * ("Riley", "supervisor"). With also_stderr, lines are copied to stderr.
 * Returns 0, or -1 with errno set.
 */
int log_open(const char *path, const char *tag, enum log_level level, int also_stderr);

/* Flushes and closes. */
void log_close(void);

/* Flushes, closes and opens the same path again. Returns 0 or -1 with errno.
 * With log_own_stderr() on, stderr is moved to the new file as well. */
int log_reopen(void);

/* Points stderr (fd 2) at the log file now and after every reopen, so crash
 * reports of a detached process follow the log through rotation. */
void log_own_stderr(void);

/* Writes every buffered line out. */
void log_flush(void);

/* Bytes buffered and not yet written. */
size_t log_buffered(void);

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

/* Formats one line; the newline is added. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/*
 * Logs "PREFIX \"LINE\"" with LINE's bytes escaped (\\, \", \xNN for
 * anything not printable), cut to a readable length with its full size said.
 */
void log_line(enum log_level level, const char *prefix, const char *line, size_t len);

/*
 * A warning that a peer can trigger once per request is logged at most once
 * per INTERVAL seconds: log_limit() says whether one may go out now and, when
 * it may, how many were held back since the last (*QUIET). Zero-initialise.
 */
struct log_limit {
    double next; /* monotonic: when the next one may go out */
    uint64_t held;
};
int log_limit(struct log_limit *l, double interval, uint64_t *quiet);

/* log_line at most once a second through L: "WHAT (N more since the last
 * warning): \"LINE\"" with LINE escaped. */
void log_line_limited(struct log_limit *l, enum log_level level, const char *what, const char *line,
                      size_t len);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

#endif
