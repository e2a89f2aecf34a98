/*
 * worker: one herd-worker process, from its configuration to its exit. Owns
 * the process-wide state (loop, configuration, store, Places proxy, conn
 * pool, listener, links, supervisor channel), builds it in order, wires the
 * modules' callbacks together and takes it down again, draining on a
 * graceful stop.
 */
#ifndef HERD_WORKER_H
#define HERD_WORKER_H

struct worker_opts {
    const char *config; /* the herd's INI file (names it, with config_fd) */
    int config_fd;      /* -1: read config; else the supervisor's generation's bytes */
    const char *name;   /* the server to run */
    int channel_fd;     /* the supervisor channel; -1: standalone */
    int log_stderr;     /* copy log lines to stderr */
};

/* Runs the server until it stops. Returns the exit status: 0 after a
 * graceful stop, 1 on a runtime failure (port taken...), 2 on a
 * configuration error (the supervisor tells the two apart). */
int worker_run(const struct worker_opts *o);

#endif
