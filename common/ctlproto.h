/*
 * ctlproto: what herd-supervisor and herdctl agree on besides the JSON of
 * docs/control-protocol.md: where the control socket and the pid/lock file
 * live, request and reply size limits, signal names, how a wait status reads,
 * and how to tell from the pid file's flock whether a supervisor is alive.
 */
#ifndef HERD_CTLPROTO_H
#define HERD_CTLPROTO_H

#include <stddef.h>
#include <sys/types.h>

#define CTLPROTO_SOCK_NAME "herd.sock"
#define CTLPROTO_PID_NAME  "herd.pid"
#define CTLPROTO_REQ_MAX   512       /* one request line, "\n" included */
#define CTLPROTO_REPLY_MAX (1 << 20) /* one JSON reply */
#define CTLPROTO_CHAN_FD   3         /* the worker's end of its channel */
#define CTLPROTO_GEN_FD    4         /* the worker's copy of the generation (a memfd) */
#define CTLPROTO_CHAN_MAX  (2 << 20) /* longest channel line either way, "\n" included */

/* DIR "/" NAME into BUF. 0, or -1 when it does not fit. */
int ctlproto_path(char *buf, size_t len, const char *dir, const char *name);

/*
 * Signal number of "KILL", "SIGKILL", "sigkill" or "9"; -1 when S names no
 * signal.
 */
int ctlproto_signum(const char *s);

/* "SIGKILL" for 9 into BUF; "SIG<n>" for a signal without a name. */
void ctlproto_signame(int sig, char *buf, size_t len);

/* "exit 1", "SIGSEGV (core dumped)" for a waitpid status. */
void ctlproto_describe_status(int status, char *buf, size_t len);

/*
 * Whether a supervisor holds the lock on the pid file PATH. Returns 1 when
 * one does (*pid its pid, 0 when the file does not say yet), 0 when nobody
 * does (no file, or a stale one left by a crash), -1 with errno on error.
 */
int ctlproto_lock_held(const char *path, pid_t *pid);

/* Reads a pid file: 0 with *pid, or -1. */
int ctlproto_read_pid(const char *path, pid_t *pid);

/* Parses a whole decimal number in [min, max]: 0, or -1 for anything else. */
int ctlproto_parse_long(const char *s, long min, long max, long *out);

#endif
