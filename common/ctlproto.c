/*
 * ctlproto: paths, signal names, wait-status text and the pid-file lock probe
 * shared by herd-supervisor and herdctl (see ctlproto.h).
 */
#include "ctlproto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

int ctlproto_path(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= len)
        return -1;
    return 0;
}

int ctlproto_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int ctlproto_signum(const char *s)
{
    long n;

    if (ctlproto_parse_long(s, 1, NSIG - 1, &n) == 0)
        return (int)n;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (int sig = 1; sig < NSIG; sig++) {
        const char *abbrev = sigabbrev_np(sig);

        if (abbrev != NULL && strcasecmp(abbrev, s) == 0)
            return sig;
    }
    return -1;
}

void ctlproto_signame(int sig, char *buf, size_t len)
{
    const char *abbrev = sigabbrev_np(sig);

    if (abbrev != NULL)
        snprintf(buf, len, "SIG%s", abbrev);
    else
        snprintf(buf, len, "SIG%d", sig);
}

void ctlproto_describe_status(int status, char *buf, size_t len)
{
    char name[32];

    if (WIFEXITED(status)) {
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        ctlproto_signame(WTERMSIG(status), name, sizeof(name));
        snprintf(buf, len, "%s%s", name, WCOREDUMP(status) ? " (core dumped)" : "");
    } else {
        snprintf(buf, len, "status %d", status);
    }
}

static int read_pid_fd(int fd, pid_t *pid)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    long v;

    if (n <= 0)
        return -1;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (ctlproto_parse_long(buf, 1, INT_MAX, &v) != 0)
        return -1;
    *pid = (pid_t)v;
    return 0;
}

int ctlproto_read_pid(const char *path, pid_t *pid)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -1;
    rc = read_pid_fd(fd, pid);
    close(fd);
    return rc;
}

int ctlproto_lock_held(const char *path, pid_t *pid)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;

    *pid = 0;
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    /* A shared probe: the supervisor holds LOCK_EX for its whole life and the
     * kernel drops it however the process dies, so a free lock means stale. */
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        flock(fd, LOCK_UN);
    } else if (errno == EWOULDBLOCK) {
        if (read_pid_fd(fd, pid) != 0)
            *pid = 0;
        rc = 1;
    } else {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    close(fd);
    return rc;
}
