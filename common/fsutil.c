/*
 * fsutil: path joining, mkdir -p and a bounded whole-fd read, with every
 * length checked.
 */
#include "fsutil.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_mkdir_p(const char *path, unsigned mode)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int fs_join(char *buf, size_t size, const char *dir, const char *name, const char *suffix)
{
    int n = snprintf(buf, size, "%s/%s%s", dir, name, suffix ? suffix : "");
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

char *fs_read_fd(int fd, size_t max, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);

    while (buf != NULL) {
        if (n == cap) {
            char *bigger = cap >= max ? NULL : realloc(buf, cap * 2 + 1);
            if (bigger == NULL) {
                free(buf);
                errno = cap >= max ? EFBIG : ENOMEM;
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = pread(fd, buf + n, cap - n, (off_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (buf == NULL)
        return NULL;
    if (n > max || memchr(buf, '\0', n) != NULL) {
        free(buf);
        errno = n > max ? EFBIG : EINVAL;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}
