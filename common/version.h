/*
 * version: what the build knows about itself, the same in all three
 * binaries. The Makefile generates the definitions (BUILD/gen/version.c)
 * from `git describe` (or the VERSION file in a tarball) and SYSCONFDIR.
 */
#ifndef HERD_VERSION_H
#define HERD_VERSION_H

extern const char herd_version[];
/* Where the installed herd file lives: SYSCONFDIR/herd/herd.ini. */
extern const char herd_sysconfdir[];

#endif
