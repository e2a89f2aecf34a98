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

#endif
