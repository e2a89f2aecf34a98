/*
 * herd-supervisor: validates the configuration, takes the flock on
 * run_dir/herd.pid (one supervisor per run_dir), goes to the background
 * unless -f, opens the control socket and runs one herd-worker per server on
 * libev's default loop until SIGTERM, SIGINT or a "stop" request; then it
 * stops the workers, removes its socket and pid file, and exits 0. The file
 * is read once into a generation (sup_gen.h), which every worker runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctlproto.h"
#include "mono.h"
#include "fsutil.h"
#include "log.h"
#include "sup.h"
#include "version.h"

#define DEFAULT_CONFIG "etc/herd.ini"

int sup_selected(const char *node, const struct cfg_server *srv)
{
    return node == NULL || (srv->node != NULL && strcmp(srv->node, node) == 0);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: herd-supervisor [-c FILE] [-f] [--node NAME]\n"
            "Runs one herd-worker per server of FILE and restarts any that dies.\n\n"
            "  -c, --config FILE  configuration (default $HERD_CONFIG, then %s)\n"
            "  -f, --foreground   stay in the foreground, log to stderr as well\n"
            "      --node NAME    run only the servers whose node is NAME\n"
            "  -h, --help         this help\n"
            "      --version      print the version\n\n"
            "Exit status: 0 stopped cleanly, 1 could not run (already running, no\n"
            "socket), 2 bad configuration or usage.\n"
            "Signals: TERM/INT stop the herd (twice: SIGKILL now), HUP reopens logs.\n",
            DEFAULT_CONFIG);
}

struct opts {
    const char *config;
    const char *node;
    int foreground;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"foreground", no_argument, NULL, 'f'},
        {"node", required_argument, NULL, 'n'},   {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    int ch;

    o->config = getenv("HERD_CONFIG") ? getenv("HERD_CONFIG") : DEFAULT_CONFIG;
    while ((ch = getopt_long(argc, argv, "c:fh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'f': o->foreground = 1; break;
        case 'n': o->node = optarg; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("herd-supervisor %s\n", herd_version); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc) {
        fprintf(stderr, "herd-supervisor: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        exit(2);
    }
    return 0;
}

/* herd-worker lives next to us: the same bin/ in the tree or installed. */
static int find_worker(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (n < 0)
        return -1;
    self[n] = '\0';
    if (snprintf(out, len, "%s/herd-worker", dirname(self)) >= (int)len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return access(out, X_OK);
}

/* 0 with the lock held in s->pid_fd, 1 when another supervisor holds it. */
static int lock_pidfile(struct sup *s, pid_t *holder)
{
    for (int tries = 0; tries < 20; tries++) {
        struct stat a, b;
        int fd = open(s->pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

        if (fd < 0)
            return -1;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            if (errno != EWOULDBLOCK)
                return -1;
            /* herdctl's probe holds LOCK_SH for an instant: try a few times. */
            if (tries >= 4) {
                if (ctlproto_read_pid(s->pid_path, holder) != 0)
                    *holder = 0;
                return 1;
            }
            usleep(20000);
            continue;
        }
        /* A supervisor that was exiting may have unlinked the file we opened:
         * the lock only counts on the file that is at the path now. */
        if (fstat(fd, &a) == 0 && stat(s->pid_path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev) {
            s->pid_fd = fd;
            return 0;
        }
        close(fd);
    }
    errno = EAGAIN;
    return -1;
}

static int write_pid(struct sup *s)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

    if (ftruncate(s->pid_fd, 0) != 0 || pwrite(s->pid_fd, buf, (size_t)n, 0) != n)
        return -1;
    return 0;
}

/*
 * Goes to the background: the parent waits on a pipe until the child says
 * it is up (exit 0) or dies (its exit status), so whoever started us learns
 * whether it worked. The child keeps the lock: flock follows the open file.
 */
static int daemonize(int *notify)
{
    int p[2], st;
    pid_t pid;
    char c = 0;

    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    log_flush();
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        while (read(p[0], &c, 1) < 0 && errno == EINTR)
            ;
        if (c == 'R')
            _exit(0);
        if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) != 0)
            _exit(WEXITSTATUS(st));
        _exit(1);
    }
    close(p[0]);
    setsid();
    /* Every path we use is absolute; a daemon must not pin its starter's
     * folder (an unmount, a temp dir being removed). */
    if (chdir("/") != 0)
        return -1;
    *notify = p[1];
    return 0;
}

/* Up: releases the waiting parent and drops the terminal's stdio. */
static void detach_done(int notify)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (notify >= 0) {
        ssize_t rc = write(notify, "R", 1);

        (void)rc;
        close(notify);
    }
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        close(null);
    }
}

static const char *sup_signame(int signum)
{
    return signum == SIGINT ? "SIGINT" : signum == SIGTERM ? "SIGTERM" : "signal";
}

static void stop_sig_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct sup *s = w->data;

    (void)loop;
    (void)revents;
    if (s->stopping) {
        log_warn("second %s: SIGKILL to every worker", sup_signame(w->signum));
        for (struct sup_proc *p = s->procs; p != NULL; p = p->next)
            sup_proc_kill_now(p);
        return;
    }
    sup_shutdown(s, sup_signame(w->signum));
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    log_info("SIGHUP: reopening logs");
    sup_reopen_logs(w->data);
}

static void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    log_flush();
}

void sup_shutdown(struct sup *s, const char *why)
{
    struct sup_proc *p, *next;

    if (s->stopping)
        return;
    s->stopping = 1;
    log_info("stopping the herd (%s)", why);
    for (p = s->procs; p != NULL; p = next) {
        next = p->next;
        sup_proc_stop(p, SUP_WANT_STOP);
    }
    sup_job_poke(s); /* a running job ends, refused */
    sup_check_stopped(s);
}

void sup_check_stopped(struct sup *s)
{
    if (!s->stopping)
        return;
    for (struct sup_proc *p = s->procs; p != NULL; p = p->next)
        if (p->pid > 0)
            return;
    ev_break(s->loop, EVBREAK_ALL);
}

void sup_reopen_logs(struct sup *s)
{
    if (log_reopen() != 0)
        log_error("reopening %s: %s", s->log_path, strerror(errno));
    /* A worker not yet ready may not handle SIGUSR1 yet (it would die of
     * it): it gets the signal once it says ready. */
    for (struct sup_proc *p = s->procs; p != NULL; p = p->next) {
        if (p->state == SUP_RUNNING)
            kill(p->pid, SIGUSR1);
        else if (p->pid > 0)
            p->reopen_pending = 1;
    }
}

static void watch_signals(struct sup *s)
{
    ev_signal_init(&s->sig_term, stop_sig_cb, SIGTERM);
    ev_signal_init(&s->sig_int, stop_sig_cb, SIGINT);
    ev_signal_init(&s->sig_hup, hup_cb, SIGHUP);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    ev_signal_start(s->loop, &s->sig_term);
    ev_signal_start(s->loop, &s->sig_int);
    ev_signal_start(s->loop, &s->sig_hup);
    ev_prepare_init(&s->flush_w, flush_cb);
    ev_prepare_start(s->loop, &s->flush_w);
}

/* Loads and checks everything that can fail before anything starts. */
static int prepare(struct sup *s, const struct opts *o)
{
    char err[1024];
    size_t n = 0;

    if (sup_gen_load(o->config, &s->gen, &s->cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    s->gen.no = 1;
    s->node_arg = o->node;
    s->node = o->node != NULL ? o->node : s->cfg->node;
    for (size_t i = 0; i < s->cfg->nservers; i++)
        n += sup_selected(s->node, &s->cfg->servers[i]) != 0;
    if (n == 0) {
        fprintf(stderr, "%s: no server for node \"%s\"\n", s->cfg->path, s->node);
        return 2;
    }
    if (find_worker(s->worker_path, sizeof(s->worker_path)) != 0) {
        fprintf(stderr, "herd-supervisor: %s: %s\n", s->worker_path, strerror(errno));
        return 1;
    }
    if (ctlproto_path(s->sock_path, sizeof(s->sock_path), s->cfg->run_dir, CTLPROTO_SOCK_NAME) ||
        ctlproto_path(s->pid_path, sizeof(s->pid_path), s->cfg->run_dir, CTLPROTO_PID_NAME) ||
        ctlproto_path(s->log_path, sizeof(s->log_path), s->cfg->log_dir, "supervisor.log")) {
        fprintf(stderr, "herd-supervisor: run_dir or log_dir path too long\n");
        return 1;
    }
    if (fs_mkdir_p(s->cfg->run_dir, 0755) != 0 || fs_mkdir_p(s->cfg->log_dir, 0755) != 0) {
        fprintf(stderr, "herd-supervisor: creating %s or %s: %s\n", s->cfg->run_dir,
                s->cfg->log_dir, strerror(errno));
        return 1;
    }
    return 0;
}

/* An error before we are up: to the log and to whoever waits on stderr. */
__attribute__((format(printf, 2, 3))) static void say_error(const struct sup *s, const char *fmt,
                                                            ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    /* clang-analyzer 14 misreads glibc's va_list here (a false positive). */
    vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    log_error("%s", msg);
    if (!s->foreground) /* in the foreground the log goes to stderr already */
        fprintf(stderr, "herd-supervisor: %s\n", msg);
}

/* Takes the lock, detaches, opens the socket; 0 or an exit status. */
static int bring_up(struct sup *s, int *notify)
{
    char err[1024];
    pid_t holder = 0;
    int rc = lock_pidfile(s, &holder);

    if (rc == 1) {
        fprintf(stderr, "herd-supervisor: already running (pid %d)\n", (int)holder);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "herd-supervisor: %s: %s\n", s->pid_path, strerror(errno));
        return 1;
    }
    /* In the background, stderr is whoever started us: it gets only a
     * refusal to start (below), never the running log. */
    if (log_open(s->log_path, "supervisor", s->cfg->log_level, s->foreground) != 0) {
        fprintf(stderr, "herd-supervisor: %s: %s\n", s->log_path, strerror(errno));
        return 1;
    }
    s->log_opened = 1;
    if (!s->foreground && daemonize(notify) != 0) {
        say_error(s, "cannot go to the background: %s", strerror(errno));
        return 1;
    }
    if (write_pid(s) != 0)
        log_warn("%s: cannot write the pid: %s", s->pid_path, strerror(errno));
    s->loop = ev_default_loop(0);
    if (s->loop == NULL) {
        say_error(s, "cannot create the event loop");
        return 1;
    }
    if (sup_ctl_open(s, err, sizeof(err)) != 0) {
        say_error(s, "control socket: %s", err);
        return 1;
    }
    return 0;
}

static void start_workers(struct sup *s)
{
    for (size_t i = 0; i < s->cfg->nservers; i++) {
        const struct cfg_server *srv = &s->cfg->servers[i];
        struct sup_proc *p;

        if (!sup_selected(s->node, srv))
            continue;
        p = sup_proc_new(s, srv);
        if (p == NULL)
            log_error("%s: out of memory", srv->name);
        else
            sup_proc_spawn(p);
    }
}

/* Makes sure fds 0-2 are open, so no socket or log lands on them. */
static void hold_stdio(void)
{
    int fd;

    do {
        fd = open("/dev/null", O_RDWR);
    } while (fd >= 0 && fd <= 2);
    if (fd > 2)
        close(fd);
}

int main(int argc, char **argv)
{
    static struct sup sup;
    struct sup *s = &sup;
    struct opts o = {0};
    int notify = -1, rc;

    hold_stdio();
    parse_args(argc, argv, &o);
    s->pid_fd = s->ctl_fd = -1;
    s->gen.fd = -1;
    s->foreground = o.foreground;
    if ((rc = prepare(s, &o)) != 0 || (rc = bring_up(s, &notify)) != 0)
        goto out;
    signal(SIGPIPE, SIG_IGN);
    s->started = mono_now();
    watch_signals(s);
    log_info("herd-supervisor pid %d: %s, control socket %s", (int)getpid(), s->cfg->path,
             s->sock_path);
    const struct cfg_server *open_link = cfg_plaintext_across_machines(s->cfg);
    if (open_link != NULL)
        log_warn("links may cross machines in plaintext ([server %s] host %s): anyone on the "
                 "path can read and alter them; set link_tls = psk",
                 open_link->name, open_link->host);
    start_workers(s);
    if (!s->foreground)
        detach_done(notify);
    ev_run(s->loop, 0);
    log_info("herd stopped");
    rc = 0;
out:
    if (s->loop != NULL)
        sup_ctl_close(s);
    while (s->procs != NULL)
        sup_proc_free(s->procs);
    if (s->pid_fd >= 0) {
        unlink(s->pid_path); /* while the lock is still ours */
        close(s->pid_fd);
    }
    if (s->log_opened)
        log_close();
    cfg_free(s->cfg);
    sup_gen_free(&s->gen);
    return rc;
}
