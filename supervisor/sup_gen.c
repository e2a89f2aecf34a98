/*
 * sup_gen: the validated bytes of the herd file as a generation (see
 * sup_gen.h): read once, parsed with cfg_load_string, kept in a sealed memfd
 * so that no process can change what a worker will read.
 */
#include "sup_gen.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fsutil.h"

static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    *text = fs_read_fd(fd, SUP_GEN_MAX, len);
    if (*text == NULL)
        snprintf(err, errlen, "%s: cannot read: %s", path,
                 errno == EINVAL ? "syntax error (NUL byte)" : strerror(errno));
    close(fd);
    return *text == NULL ? -1 : 0;
}

static int make_memfd(const char *text, size_t len)
{
    int fd = memfd_create("herd-config", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    size_t off = 0;

    if (fd < 0)
        return -1;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int sup_gen_load(const char *path, struct sup_gen *g, struct cfg_herd **cfg, char *err,
                 size_t errlen)
{
    char abs[PATH_MAX];
    char *text = NULL;
    size_t len = 0;

    *cfg = NULL;
    /* The path workers and herdctl compare: symlinks resolved, like cfg_load. */
    if (realpath(path, abs) == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (read_file(abs, &text, &len, err, errlen) != 0)
        return -1;
    if (cfg_load_string(text, abs, cfg, err, errlen) != 0) {
        free(text);
        return -1;
    }
    g->fd = make_memfd(text, len);
    if (g->fd < 0) {
        snprintf(err, errlen, "%s: cannot keep its generation: %s", abs, strerror(errno));
        cfg_free(*cfg);
        *cfg = NULL;
        free(text);
        return -1;
    }
    g->text = text;
    g->len = len;
    return 0;
}

void sup_gen_free(struct sup_gen *g)
{
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    free(g->text);
    g->text = NULL;
    g->len = 0;
}

int sup_gen_disk_differs(const struct sup_gen *g, const char *path)
{
    char err[64];
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (read_file(path, &text, &len, err, sizeof(err)) != 0)
        return -1;
    rc = len != g->len || memcmp(text, g->text, len) != 0;
    free(text);
    return rc;
}
