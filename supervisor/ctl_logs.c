/*
 * ctl_logs: herdctl logs NAME [-f] [-n N]: the last N lines of
 * LOG_DIR/NAME.log (NAME "supervisor": supervisor.log), and with -f what
 * follows, across rotation like `tail -F`: a file replaced under the name
 * (logrotate's rename, then reopen-logs) is followed from its start once the
 * old one is read out, a truncated one (copytruncate) from its new end.
 * herdctl is a command, not an event loop: -f polls every FOLLOW_MS.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "fsutil.h"

#define FOLLOW_MS 200
#define CHUNK     65536

/* Whether NAME is a server of the file (or the supervisor's own log). */
static int known_name(const struct ctl *c, const char *name)
{
    if (strcmp(name, "supervisor") == 0 || c->degraded)
        return 1;
    for (size_t i = 0; i < c->cfg->nservers; i++)
        if (strcmp(c->cfg->servers[i].name, name) == 0)
            return 1;
    return 0;
}

/* The offset where the last LINES lines of FD (SIZE bytes) start. */
static off_t tail_start(int fd, off_t size, long lines)
{
    char buf[CHUNK];
    off_t end = size;
    int last = 1; /* the file's final byte: a newline there ends no line shown */

    if (lines == 0)
        return size;
    while (end > 0) {
        off_t from = end > CHUNK ? end - CHUNK : 0;
        ssize_t n = pread(fd, buf, (size_t)(end - from), from);

        if (n <= 0)
            return from;
        for (ssize_t i = n - 1; i >= 0; i--) {
            if (buf[i] != '\n')
                continue;
            if (last && from + i == size - 1)
                continue;
            if (--lines == 0)
                return from + i + 1;
        }
        last = 0;
        end = from;
    }
    return 0;
}

/* Copies FD from its offset to EOF onto stdout; -1 when stdout failed. */
static int copy_out(int fd)
{
    char buf[CHUNK];
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return 0;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            return -1;
    }
    return fflush(stdout) == 0 ? 0 : -1;
}

/* The file now under PATH when it is not FD's any more (rotated), else -1. */
static int replaced(const char *path, int fd)
{
    struct stat now, had;
    int nfd;

    if (stat(path, &now) != 0 || fstat(fd, &had) != 0)
        return -1;
    if (now.st_ino == had.st_ino && now.st_dev == had.st_dev)
        return -1;
    nfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nfd >= 0)
        fprintf(stderr, "herdctl: %s has been replaced; following the new file\n", path);
    return nfd;
}

static int follow(const char *path, int fd)
{
    for (;;) {
        struct stat st;
        off_t pos;
        int nfd;

        if (fd < 0) {
            fd = open(path, O_RDONLY | O_CLOEXEC);
        } else {
            if (copy_out(fd) != 0)
                break;
            pos = lseek(fd, 0, SEEK_CUR);
            if (fstat(fd, &st) == 0 && st.st_size < pos) {
                fprintf(stderr, "herdctl: %s: file truncated\n", path);
                lseek(fd, 0, SEEK_SET);
                continue;
            }
            /* Drained above: what the old file got is out; switch now. */
            if ((nfd = replaced(path, fd)) >= 0) {
                close(fd);
                fd = nfd;
                continue;
            }
        }
        ctl_sleep_ms(FOLLOW_MS);
    }
    if (fd >= 0)
        close(fd);
    return CTL_EXIT_FAIL;
}

int ctl_logs(const struct ctl *c, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    int fd;

    if (!known_name(c, name)) {
        fprintf(stderr, "herdctl: no server \"%s\" in %s\n", name, c->cfg->path);
        return CTL_EXIT_USAGE;
    }
    if (fs_join(path, sizeof(path), c->cfg->log_dir, name, ".log") != 0) {
        fprintf(stderr, "herdctl: log_dir too long\n");
        return CTL_EXIT_USAGE;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && !(c->follow && errno == ENOENT)) {
        fprintf(stderr, "herdctl: %s: %s\n", path, strerror(errno));
        return CTL_EXIT_FAIL;
    }
    if (fd >= 0 && fstat(fd, &st) == 0)
        lseek(fd, tail_start(fd, st.st_size, c->lines), SEEK_SET);
    if (c->follow)
        return follow(path, fd);
    if (copy_out(fd) != 0) {
        close(fd);
        return CTL_EXIT_FAIL;
    }
    close(fd);
    return CTL_EXIT_OK;
}
