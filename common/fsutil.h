/*
 * fsutil: small file-system helpers shared by supervisor and worker.
 */
#ifndef HERD_FSUTIL_H
#define HERD_FSUTIL_H

#include <stddef.h>

/* mkdir -p PATH with MODE for the folders it makes. 0 or -1 with errno. */
int fs_mkdir_p(const char *path, unsigned mode);

/* DIR "/" NAME SUFFIX into buf. 0, or -1 when it does not fit. */
int fs_join(char *buf, size_t size, const char *dir, const char *name, const char *suffix);

/*
 * The whole content of FD read with pread from offset 0 (a shared memfd's
 * offset stays put), NUL-terminated, in a new buffer; *len its length. NULL
 * with errno set (EFBIG beyond MAX bytes, EINVAL for a NUL byte inside).
 */
char *fs_read_fd(int fd, size_t max, size_t *len);

#endif
