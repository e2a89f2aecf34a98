/*
 * snapshot: when and how the store reaches the disk. A save forks; the child
 * owns nothing but the copy-on-write image and the buffer allocated here
 * before the fork, because the worker has other threads (libcurl's resolver)
 * whose malloc or stdio locks the child may inherit held: it writes with
 * write(2), fsyncs, renames over the old file, fsyncs the folder and
 * _exits, reporting through a pipe. The parent reaps it with ev_child; one
 * child at a time, a request while one runs is served after it.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fsutil.h"
#include "log.h"
#include "mono.h"
#include "snap_format.h"
#include "store.h"

struct snap {
    struct ev_loop *loop;
    struct store *st;
    double ttl;
    double interval;
    struct snap_hooks h;
    char *buf; /* owned: SNAP_WRITE_BUF, the child's only memory */
    ev_timer tick;
    ev_child child_w;
    pid_t pid; /* the running child, 0: none */
    int pfd;   /* its result pipe, -1: none */
    double t0; /* mono_now() at its fork */
    uint64_t fork_changes, saved_changes;
    uint64_t want_id, running_id;
    double written; /* wall time the file on disk was written, 0: none */
    int failed;     /* the last save failed */
    struct snap_stats stats;
    char error[160];
    char dir[PATH_MAX];
    char path[PATH_MAX];
    char tmp[PATH_MAX];
};

/* What the child reports before it exits. */
struct child_msg {
    struct snap_result res;
    int err; /* errno of the failure, 0: written */
};

static struct proto_time wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (struct proto_time){ts.tv_sec, (int32_t)ts.tv_nsec};
}

/* tmp file, fsync, rename, fsync the folder: async-signal-safe calls only. */
static int write_file(struct snap *s, struct snap_result *res)
{
    int fd = open(s->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (snap_write_fd(fd, s->st, wall_now(), s->ttl, s->buf, SNAP_WRITE_BUF, res) < 0 ||
        fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(s->tmp);
        errno = e;
        return -1;
    }
    if (close(fd) < 0 || rename(s->tmp, s->path) < 0)
        return -1;
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

static __attribute__((noreturn)) void child_run(struct snap *s, int pfd, pid_t parent)
{
    struct child_msg m;

    memset(&m, 0, sizeof m);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a dead worker's save is not wanted */
    if (getppid() != parent)
        _exit(1);
    /* Keep only the pipe: a listening socket held here would stop the
     * next worker from binding its port. */
    if (pfd != 3 && dup2(pfd, 3) < 0)
        _exit(1);
    close_range(4, ~0U, 0);
    if (write_file(s, &m.res) < 0)
        m.err = errno ? errno : EIO;
    ssize_t n = write(3, &m, sizeof m);
    _exit(n == (ssize_t)sizeof m && m.err == 0 ? 0 : 1);
}

static void saved_ok(struct snap *s, const struct snap_result *r, double took, const char *how)
{
    s->failed = 0;
    s->saved_changes = s->fork_changes;
    s->written = ev_time(); /* wall: compared with a loaded file's mtime */
    s->stats.saves++;
    s->stats.bytes = r->bytes;
    s->stats.records = r->records;
    s->stats.duration = took;
    s->stats.error = NULL;
    log_info("snapshot: %llu records (%llu expired left out), %llu bytes in %.0f ms%s",
             (unsigned long long)r->records, (unsigned long long)r->expired,
             (unsigned long long)r->bytes, took * 1e3, how);
}

static void saved_failed(struct snap *s, const char *why)
{
    s->failed = 1;
    s->stats.failures++;
    snprintf(s->error, sizeof s->error, "%s", why);
    s->stats.error = s->error;
    log_warn("snapshot: %s not written: %s", s->path, why);
}

static void start_child(struct snap *s);

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct snap *s = w->data;
    struct child_msg m;
    char why[96];

    (void)revents;
    ev_child_stop(loop, w);
    memset(&m, 0, sizeof m);
    /* The child has exited, so the read returns at once. */
    ssize_t n = read(s->pfd, &m, sizeof m);
    close(s->pfd);
    s->pfd = -1;
    s->pid = 0;
    s->stats.running = 0;
    if (n == (ssize_t)sizeof m && m.err == 0 && WIFEXITED(w->rstatus) &&
        WEXITSTATUS(w->rstatus) == 0) {
        char how[64];
        snprintf(how, sizeof how, " (fork %.2f ms)", s->stats.fork_ms);
        saved_ok(s, &m.res, mono_now() - s->t0, how);
    } else {
        if (n == (ssize_t)sizeof m && m.err != 0)
            snprintf(why, sizeof why, "%s", strerror(m.err));
        else
            snprintf(why, sizeof why, "the writer died (status 0x%x)", (unsigned)w->rstatus);
        saved_failed(s, why);
    }
    s->stats.save_id = s->running_id;
    if (s->h.saved)
        s->h.saved(s->h.arg);
    if (s->want_id > s->stats.save_id)
        start_child(s);
}

static void start_child(struct snap *s)
{
    int p[2];
    pid_t parent = getpid();

    if (s->pid > 0)
        return;
    if (pipe2(p, O_CLOEXEC) < 0) {
        saved_failed(s, strerror(errno));
        return;
    }
    s->fork_changes = s->h.changes ? s->h.changes(s->h.arg) : 0;
    s->running_id = s->want_id;
    double t0 = mono_now();
    pid_t pid = fork();
    if (pid == 0)
        child_run(s, p[1], parent);
    double t1 = mono_now();
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        saved_failed(s, strerror(errno));
        return;
    }
    s->pid = pid;
    s->pfd = p[0];
    s->t0 = t0;
    s->stats.running = 1;
    s->stats.fork_ms = (t1 - t0) * 1e3;
    if (s->stats.fork_ms > s->stats.fork_ms_max)
        s->stats.fork_ms_max = s->stats.fork_ms;
    ev_child_set(&s->child_w, pid, 0);
    ev_child_start(s->loop, &s->child_w);
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct snap *s = t->data;

    (void)loop;
    (void)revents;
    if (s->pid == 0 && (s->failed || (s->h.changes && s->h.changes(s->h.arg) != s->saved_changes)))
        start_child(s);
}

struct snap *snap_new(struct ev_loop *loop, const struct cfg_herd *cfg, const char *name,
                      struct store *st, const struct snap_hooks *hooks, char *err, size_t errlen)
{
    struct snap *s = calloc(1, sizeof *s);

    if (s == NULL || (s->buf = malloc(SNAP_WRITE_BUF)) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(s);
        return NULL;
    }
    if (snprintf(s->dir, sizeof s->dir, "%s", cfg->state_dir) >= (int)sizeof s->dir ||
        fs_join(s->path, sizeof s->path, cfg->state_dir, name, ".snap") < 0 ||
        fs_join(s->tmp, sizeof s->tmp, cfg->state_dir, name, ".snap.tmp") < 0 ||
        fs_mkdir_p(cfg->state_dir, 0700) < 0) {
        snprintf(err, errlen, "state_dir %s: %s", cfg->state_dir, strerror(errno));
        snap_free(s);
        return NULL;
    }
    s->loop = loop;
    s->st = st;
    s->ttl = cfg->client_ttl;
    s->interval = cfg->snapshot_interval > 0 ? cfg->snapshot_interval : 10.0;
    s->h = *hooks;
    s->pfd = -1;
    s->stats.age = -1;
    /* zlib may build its CRC tables on first use: not in the child. */
    (void)crc32(0, NULL, 0);
    ev_timer_init(&s->tick, tick_cb, s->interval, s->interval);
    ev_child_init(&s->child_w, child_cb, 0, 0);
    s->tick.data = s->child_w.data = s;
    return s;
}

/* Renames the bad file NAME.snap.bad-TIMESTAMP, so it is kept to look at. */
static void set_aside(struct snap *s, const char *why)
{
    char stamp[32], dst[PATH_MAX + 48];
    struct tm tm;
    time_t now = time(NULL);

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    for (int i = 0; i < 100; i++) {
        if (i == 0)
            snprintf(dst, sizeof dst, "%s.bad-%s", s->path, stamp);
        else
            snprintf(dst, sizeof dst, "%s.bad-%s-%d", s->path, stamp, i);
        if (access(dst, F_OK) != 0)
            break;
    }
    if (rename(s->path, dst) < 0)
        log_warn("snapshot: %s is unusable (%s) and cannot be set aside: %s; starting empty",
                 s->path, why, strerror(errno));
    else
        log_warn("snapshot: %s is unusable (%s): set aside as %s; starting empty", s->path, why,
                 dst);
}

/* Loads the mapped file into a fresh store; swaps it in when all was sound. */
static uint64_t load_map(struct snap *s, struct store **stp, const char *map, const struct stat *sb)
{
    char why[160];
    struct snap_result r = {0};
    double t0 = mono_now();
    struct store *fresh = s->h.make_store ? s->h.make_store(s->h.arg) : store_new();

    if (fresh == NULL) {
        log_warn("snapshot: out of memory loading %s; starting empty", s->path);
        return 0;
    }
    enum snap_bad b =
        snap_decode(map, (size_t)sb->st_size, wall_now(), s->ttl, fresh, &r, why, sizeof why);
    if (b != SNAP_OK) {
        store_free(fresh); /* never half-loaded */
        set_aside(s, why);
        return 0;
    }
    store_free(*stp);
    *stp = s->st = fresh;
    s->written = (double)sb->st_mtim.tv_sec + (double)sb->st_mtim.tv_nsec * 1e-9;
    s->stats.bytes = r.bytes;
    s->stats.records = r.records;
    log_info("snapshot: loaded %llu records from %s (%llu expired skipped, %llu not kept) in "
             "%.0f ms",
             (unsigned long long)r.records, s->path, (unsigned long long)r.expired,
             (unsigned long long)r.refused, (mono_now() - t0) * 1e3);
    return r.records;
}

uint64_t snap_load(struct snap *s, struct store **stp)
{
    struct stat sb;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        if (errno == ENOENT)
            log_info("snapshot: no %s yet: starting empty", s->path);
        else
            log_warn("snapshot: %s: %s; starting empty", s->path, strerror(errno));
        return 0;
    }
    uint64_t n = 0;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        log_warn("snapshot: %s is not a readable file; starting empty", s->path);
    } else if (sb.st_size == 0) {
        set_aside(s, "the file is empty");
    } else {
        size_t len = (size_t)sb.st_size;
        void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (map == MAP_FAILED) {
            log_warn("snapshot: %s: mmap: %s; starting empty", s->path, strerror(errno));
        } else {
            n = load_map(s, stp, map, &sb);
            munmap(map, len);
        }
    }
    close(fd);
    /* What was loaded is on disk already: no need to write it again. */
    s->saved_changes = s->h.changes ? s->h.changes(s->h.arg) : 0;
    return n;
}

void snap_start(struct snap *s)
{
    ev_timer_start(s->loop, &s->tick);
}

void snap_reconfigure(struct snap *s, const struct cfg_herd *cfg)
{
    if (s == NULL)
        return;
    s->ttl = cfg->client_ttl;
    s->interval = cfg->snapshot_interval > 0 ? cfg->snapshot_interval : 10.0;
    s->tick.repeat = s->interval;
    if (ev_is_active(&s->tick))
        ev_timer_again(s->loop, &s->tick);
}

void snap_force(struct snap *s, uint64_t id)
{
    if (id > s->want_id)
        s->want_id = id;
    if (s->pid == 0)
        start_child(s);
}

/* Kills the running child, if any, and waits for it (the loop has stopped,
 * so libev cannot reap it first; if it did already, waitpid says ECHILD). */
static void abandon_child(struct snap *s)
{
    if (s->pid <= 0)
        return;
    ev_child_stop(s->loop, &s->child_w);
    if (waitpid(s->pid, NULL, WNOHANG) == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    close(s->pfd);
    s->pfd = -1;
    s->pid = 0;
    s->stats.running = 0;
}

void snap_stop_save(struct snap *s)
{
    struct snap_result r = {0};

    if (s == NULL)
        return;
    ev_timer_stop(s->loop, &s->tick);
    abandon_child(s);
    uint64_t now = s->h.changes ? s->h.changes(s->h.arg) : 0;
    if (!s->failed && now == s->saved_changes) {
        log_info("snapshot: unchanged since the last one, %s kept as it is", s->path);
        return;
    }
    double t0 = mono_now();
    s->fork_changes = now;
    if (write_file(s, &r) < 0)
        saved_failed(s, strerror(errno));
    else
        saved_ok(s, &r, mono_now() - t0, " (at stop)");
}

void snap_get_stats(const struct snap *s, struct snap_stats *out)
{
    *out = s->stats;
    out->age = s->written > 0 ? ev_time() - s->written : -1;
}

void snap_free(struct snap *s)
{
    if (s == NULL)
        return;
    if (s->loop != NULL) {
        ev_timer_stop(s->loop, &s->tick);
        abandon_child(s);
    }
    free(s->buf);
    free(s);
}
