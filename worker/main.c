/*
 * herd-worker: one server of the herd. Reads the herd file, listens on its
 * port, serves clients, keeps links to its neighbours and, when started by
 * herd-supervisor, reports on the channel it was handed. Exit status: 0 after
 * a graceful stop, 1 on a runtime failure (port taken...), 2 on a usage or
 * configuration error (the supervisor tells the two apart).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "chan.h"
#include "client.h"
#include "config.h"
#include "fsutil.h"
#include "links.h"
#include "log.h"
#include "places.h"
#include "server.h"
#include "store.h"
#include "worker.h"

struct worker *worker_self;

struct opts {
    const char *config;
    const char *name;
    int config_fd;  /* -1: read config; else the supervisor's generation (config names it) */
    int channel_fd; /* -1: standalone */
    int log_stderr;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: herd-worker -c FILE [--config-fd FD] [--channel FD] [--log-stderr] NAME\n"
               "Runs the server NAME of the herd described in FILE.\n\n"
               "  -c, --config FILE   the herd's INI file\n"
               "      --config-fd FD  read the file's text from FD instead (FILE names it)\n"
               "      --channel FD    report to herd-supervisor on this fd\n"
               "      --log-stderr    copy log lines to stderr\n"
               "  -h, --help          this text\n\n"
               "Exit status: 0 stopped, 1 runtime failure, 2 usage or configuration error.\n");
}

static int parse_fd(const char *s, int *fd)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX)
        return -1;
    *fd = (int)v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"channel", required_argument, NULL, 'C'},
        {"config-fd", required_argument, NULL, 'F'},
        {"log-stderr", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct opts){.channel_fd = -1, .config_fd = -1};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'C':
            if (parse_fd(optarg, &o->channel_fd) < 0) {
                fprintf(stderr, "herd-worker: bad --channel: %s\n", optarg);
                return -1;
            }
            break;
        case 'F':
            if (parse_fd(optarg, &o->config_fd) < 0) {
                fprintf(stderr, "herd-worker: bad --config-fd: %s\n", optarg);
                return -1;
            }
            break;
        case 'e': o->log_stderr = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (o->config == NULL || optind != argc - 1) {
        usage(stderr);
        return -1;
    }
    o->name = argv[optind];
    return 0;
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop;
    (void)revents;
    worker_stop(worker_self, strsignal(sig->signum));
}

static void on_reopen_signal(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop;
    (void)sig;
    (void)revents;
    if (log_reopen() < 0)
        fprintf(stderr, "herd-worker: cannot reopen log: %s\n", strerror(errno));
    else
        log_info("log reopened");
}

const struct worker_stats *worker_stats(struct worker *w)
{
    w->stats.clients = w->store ? store_count(w->store) : 0;
    w->stats.connections = w->server ? server_clients(w->server) : 0;
    if (w->links) {
        links_count(w->links, &w->stats.links_up, &w->stats.links_total);
        w->stats.links_syncing = links_syncing(w->links);
    }
    return &w->stats;
}

void worker_store_failed(struct worker *w, const char *id, size_t len)
{
    static ev_tstamp last = -1;
    static uint64_t quiet;
    int err = errno;
    ev_tstamp now = ev_now(w->loop);
    if (last >= 0 && now - last < 1.0) {
        quiet++;
        return;
    }
    log_warn("store: update of %.*s not kept: %s (and %llu more since the last warning)",
             (int)(len < 64 ? len : 64), id, err == ENOSPC ? "max_clients reached" : strerror(err),
             (unsigned long long)quiet);
    last = now;
    quiet = 0;
}

void worker_stop(struct worker *w, const char *why)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    log_info("stopping: %s", why);
    if (w->server) {
        server_stop_listening(w->server);
        server_flush(w->server);
    }
    ev_break(w->loop, EVBREAK_ALL);
}

static int open_log(const struct cfg_herd *cfg, const char *name, int also_stderr)
{
    char path[PATH_MAX];
    if (fs_mkdir_p(cfg->log_dir, 0755) < 0 ||
        fs_join(path, sizeof path, cfg->log_dir, name, ".log") < 0 ||
        log_open(path, name, cfg->log_level, also_stderr) < 0) {
        fprintf(stderr, "herd-worker: %s: log in %s: %s\n", name, cfg->log_dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Builds every module; returns the exit status to use on failure, or 0. */
static int worker_setup(struct worker *w, const struct opts *o)
{
    char err[256];
    w->store = store_new();
    if (w->store == NULL) {
        log_error("out of memory");
        return 1;
    }
    store_set_max(w->store, w->cfg->max_clients);
    w->places = places_new(w->loop, w->cfg, err, sizeof err);
    if (w->places == NULL) {
        log_error("places: %s", err);
        return 1;
    }
    if (o->channel_fd >= 0) {
        w->chan = chan_open(w, o->channel_fd, err, sizeof err);
        if (w->chan == NULL) {
            log_error("channel: %s", err);
            return 2;
        }
    }
    w->server = server_new(w, &client_ops, err, sizeof err);
    if (w->server == NULL) {
        log_error("cannot listen on %s:%u: %s", w->self->host, (unsigned)w->self->port, err);
        return 1;
    }
    w->links = links_new(w, err, sizeof err);
    if (w->links == NULL) {
        log_error("links: %s", err);
        return 1;
    }
    log_info("listening on %s:%u (pid %ld, %zu neighbours)", w->self->host, (unsigned)w->self->port,
             (long)getpid(), w->self->npeers);
    links_start(w->links);
    if (w->chan)
        chan_ready(w->chan);
    return 0;
}

static void worker_teardown(struct worker *w)
{
    links_free(w->links);
    server_free(w->server);
    chan_free(w->chan);
    places_free(w->places);
    store_free(w->store);
    log_info("stopped");
    log_close();
    cfg_free(w->cfg);
}

/* The supervisor's generation: the bytes it validated, named by FILE. */
static int load_fd(const struct opts *o, struct worker *w, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = fs_read_fd(o->config_fd, 16 << 20, &len);
    if (text == NULL) {
        snprintf(err, errlen, "herd-worker: --config-fd %d: %s", o->config_fd, strerror(errno));
        return -1;
    }
    close(o->config_fd);
    int rc = cfg_load_string(text, o->config, &w->cfg, err, errlen);
    free(text);
    return rc;
}

static int load(const struct opts *o, struct worker *w)
{
    char err[512];
    if ((o->config_fd >= 0 ? load_fd(o, w, err, sizeof err)
                           : cfg_load(o->config, &w->cfg, err, sizeof err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    long idx = cfg_index(w->cfg, o->name);
    if (idx < 0) {
        fprintf(stderr, "herd-worker: %s: no [server %s] in %s\n", o->name, o->name, o->config);
        cfg_free(w->cfg);
        return -1;
    }
    w->self_index = (size_t)idx;
    w->self = &w->cfg->servers[idx];
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    static struct worker w;
    if (parse_opts(argc, argv, &o) < 0 || load(&o, &w) < 0)
        return 2;
    worker_self = &w;
    char comm[16];
    snprintf(comm, sizeof comm, "herd-%s", w.self->name);
    prctl(PR_SET_NAME, comm, 0, 0, 0); /* ps -e and top show the server */
    signal(SIGPIPE, SIG_IGN);
    /* Output buffers of a few hundred KiB come and go with every pipelined
     * WHATSAT burst: serve them from the heap, not fresh mmaps that fault
     * their pages in again each time (a third of the time in the cache
     * benchmark). Memory stays bounded by client_output_max per client. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    if (open_log(w.cfg, w.self->name, o.log_stderr) < 0) {
        cfg_free(w.cfg);
        return 1;
    }
    if (o.channel_fd >= 0 && !isatty(STDERR_FILENO))
        log_own_stderr(); /* detached: stderr is our log, keep it so after rotation */
    w.loop = ev_default_loop(EVFLAG_AUTO);
    ev_signal sterm, sint, susr1;
    ev_signal_init(&sterm, on_stop_signal, SIGTERM);
    ev_signal_init(&sint, on_stop_signal, SIGINT);
    ev_signal_init(&susr1, on_reopen_signal, SIGUSR1);
    ev_signal_start(w.loop, &sterm);
    ev_signal_start(w.loop, &sint);
    ev_signal_start(w.loop, &susr1);
    int rc = worker_setup(&w, &o);
    if (rc == 0)
        ev_run(w.loop, 0);
    worker_teardown(&w);
    return rc;
}
