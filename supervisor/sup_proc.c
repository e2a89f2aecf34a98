/*
 * sup_proc: one herd-worker process per server: fork and exec it with its
 * channel on fd 3, reap it with ev_child, and restart it. Restart policy: the
 * first crash restarts at once, further quick crashes wait restart_backoff_min
 * doubling to restart_backoff_max, an uptime of restart_reset_after forgets
 * them, and nothing ever gives up. Exit status 2 (config or usage error) is
 * always retried with backoff, since an immediate retry would fail the same.
 * Restarts asked for (restart, reload) are planned: no backoff, not counted
 * as crashes. Every worker gets the running generation's bytes on fd 4.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctlproto.h"
#include "mono.h"
#include "fsutil.h"
#include "log.h"
#include "net.h"
#include "sup.h"

static void restart_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void kill_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void spawn_failed(struct sup_proc *p, const char *what);

const char *sup_state_name(enum sup_state st)
{
    switch (st) {
    case SUP_STARTING: return "starting";
    case SUP_RUNNING: return "running";
    case SUP_BACKOFF: return "backoff";
    case SUP_STOPPING: return "stopping";
    case SUP_STOPPED: return "stopped";
    }
    return "unknown";
}

struct sup_proc *sup_proc_new(struct sup *s, const struct cfg_server *srv)
{
    struct sup_proc *p = calloc(1, sizeof(*p));
    struct sup_proc **tail = &s->procs;

    if (p == NULL)
        return NULL;
    p->name = strdup(srv->name);
    p->host = strdup(srv->host);
    if (p->name == NULL || p->host == NULL) {
        free(p->name);
        free(p->host);
        free(p);
        return NULL;
    }
    p->sup = s;
    p->port = srv->port;
    p->chan_fd = -1;
    p->state = SUP_STOPPED;
    ev_timer_init(&p->restart_timer, restart_cb, 0., 0.);
    ev_timer_init(&p->kill_timer, kill_cb, 0., 0.);
    ev_timer_init(&p->hb_timer, NULL, 0., 0.); /* sup_chan_start sets it up */
    p->restart_timer.data = p->kill_timer.data = p->child_w.data = p;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = p;
    return p;
}

/* Unlinks P from its supervisor's list and frees it; P has no process. */
void sup_proc_free(struct sup_proc *p)
{
    struct sup_proc **pp = &p->sup->procs;

    while (*pp != NULL && *pp != p)
        pp = &(*pp)->next;
    if (*pp == p)
        *pp = p->next;
    sup_chan_close(p);
    ev_timer_stop(p->sup->loop, &p->restart_timer);
    ev_timer_stop(p->sup->loop, &p->kill_timer);
    ev_child_stop(p->sup->loop, &p->child_w);
    json_object_put(p->stats);
    free(p->name);
    free(p->host);
    free(p);
}

struct sup_proc *sup_proc_find(struct sup *s, const char *name)
{
    for (struct sup_proc *p = s->procs; p != NULL; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

/*
 * The child between fork and exec: only async-signal-safe calls. The death
 * signal is armed first, then getppid() closes the race where the supervisor
 * died before prctl ran.
 */
static void child_exec(const struct sup_proc *p, pid_t parent, int chan, int in, int err,
                       char *const argv[])
{
    int gen = p->sup->gen.fd;

    struct sigaction dfl;
    sigset_t none;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    /* Its own process group: a terminal's Ctrl-C reaches the supervisor
     * alone, which then stops the workers in order. */
    setpgid(0, 0);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in, 0) < 0 || dup2(in, 1) < 0 || (err != 2 && dup2(err, 2) < 0))
        _exit(127);
    /* dup2 onto itself would keep close-on-exec, and either could sit on
     * the other's number: move both above 4 first. */
    chan = fcntl(chan, F_DUPFD, CTLPROTO_GEN_FD + 1);
    gen = fcntl(gen, F_DUPFD, CTLPROTO_GEN_FD + 1);
    if (chan < 0 || gen < 0 || dup2(chan, CTLPROTO_CHAN_FD) < 0 || dup2(gen, CTLPROTO_GEN_FD) < 0)
        _exit(127);
    close_range(CTLPROTO_GEN_FD + 1, ~0U, 0);
    execv(p->sup->worker_path, argv);
    {
        static const char msg[] = "herd-supervisor: cannot exec herd-worker\n";
        ssize_t rc = write(2, msg, sizeof(msg) - 1);
        (void)rc;
    }
    _exit(127);
}

/* Worker stderr: the terminal in the foreground, else the worker's own log,
 * so a crash report or an error printed before its log opens is kept. */
static int open_stderr(const struct sup_proc *p)
{
    char path[PATH_MAX];

    if (p->sup->foreground)
        return 2;
    if (fs_join(path, sizeof(path), p->sup->cfg->log_dir, p->name, ".log") != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents);

/* The parent's half of a successful fork. */
static void started(struct sup_proc *p, pid_t pid, int chan)
{
    struct sup *s = p->sup;

    if (p->started > 0 && p->planned != NULL)
        p->planned_restarts++;
    else if (p->started > 0)
        p->restarts++;
    p->last_cause = p->started > 0 ? (p->planned != NULL ? p->planned : "crash") : NULL;
    p->planned = NULL;
    p->gen = s->gen.no;
    p->live_wait = 0; /* a new process runs the new generation already */
    p->hb_after_ready = 0;
    p->pid = pid;
    p->state = SUP_STARTING;
    p->hb_killed = 0;
    p->started = mono_now();
    json_object_put(p->stats); /* a new process: old counters mean nothing */
    p->stats = NULL;
    ev_child_init(&p->child_w, child_cb, pid, 0);
    p->child_w.data = p;
    ev_child_start(s->loop, &p->child_w);
    sup_chan_start(p, chan);
    log_info("%s: started pid %d (port %u)", p->name, (int)pid, (unsigned)p->port);
}

/* P listens where the running generation says from this start on. */
static void take_address(struct sup_proc *p)
{
    const struct cfg_server *srv = cfg_find(p->sup->cfg, p->name);
    char *host = srv != NULL ? strdup(srv->host) : NULL;

    if (host == NULL)
        return;
    free(p->host);
    p->host = host;
    p->port = srv->port;
}

/* Forks and execs P's worker: herd-worker -c FILE --config-fd 4 --channel 3 NAME. */
void sup_proc_spawn(struct sup_proc *p)
{
    struct sup *s = p->sup;
    char argv0[256];
    char *argv[] = {argv0, "-c", s->cfg->path, "--config-fd", "4", "--channel", "3", p->name, NULL};
    int fds[2] = {-1, -1}, in = -1, err = -1;
    pid_t parent = getpid(), pid;
    const char *what = "socketpair";

    ev_timer_stop(s->loop, &p->restart_timer);
    if (s->stopping || p->held) {
        p->state = SUP_STOPPED;
        return;
    }
    take_address(p);
    /* ps -o args shows argv[0]: name the server there. */
    snprintf(argv0, sizeof(argv0), "herd-worker: %s", p->name);
    if (net_socketpair(fds) != 0)
        goto fail;
    what = "/dev/null";
    if ((in = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        goto fail;
    what = "worker log";
    if ((err = open_stderr(p)) < 0)
        goto fail;
    what = "fork";
    log_flush(); /* the child must not inherit unwritten lines */
    if ((pid = fork()) < 0)
        goto fail;
    if (pid == 0)
        child_exec(p, parent, fds[1], in, err, argv);
    close(fds[1]);
    close(in);
    if (err != 2)
        close(err);
    started(p, pid, fds[0]);
    return;
fail:
    spawn_failed(p, what);
    if (fds[0] >= 0) {
        close(fds[0]);
        close(fds[1]);
    }
    if (in >= 0)
        close(in);
    if (err >= 0 && err != 2)
        close(err);
}

/* Delay before the next try after a crash, and the count behind it. */
static double next_delay(struct sup_proc *p, double up, int cfg_error)
{
    const struct cfg_herd *cfg = p->sup->cfg;
    double d = cfg->restart_backoff_min;
    unsigned doublings;

    if (up >= cfg->restart_reset_after)
        p->fails = 0;
    p->fails++;
    if (p->fails == 1 && !cfg_error)
        return 0.0;
    doublings = cfg_error ? p->fails - 1 : p->fails - 2;
    for (unsigned i = 0; i < doublings && d < cfg->restart_backoff_max; i++)
        d *= 2;
    return d < cfg->restart_backoff_max ? d : cfg->restart_backoff_max;
}

/* No process could be made (out of fds, memory, processes): a crash with
 * backoff, since trying again at once would fail the same way. */
static void spawn_failed(struct sup_proc *p, const char *what)
{
    log_error("%s: cannot start: %s: %s", p->name, what, strerror(errno));
    p->has_exit = 1;
    p->last_status = 127 << 8;
    p->exit_hb = 0;
    p->state = SUP_BACKOFF;
    p->backoff = next_delay(p, 0, 1);
    ev_timer_set(&p->restart_timer, p->backoff, 0.);
    ev_timer_start(p->sup->loop, &p->restart_timer);
}

static void crashed(struct sup_proc *p, double up)
{
    int st = p->last_status;
    int cfg_error = WIFEXITED(st) && WEXITSTATUS(st) == 2;

    p->backoff = next_delay(p, up, cfg_error);
    if (p->backoff <= 0) {
        log_info("%s: restarting at once", p->name);
        sup_proc_spawn(p);
        return;
    }
    log_warn("%s: restarting in %.3f s (%u quick exits%s)", p->name, p->backoff, p->fails,
             cfg_error ? ", configuration or usage error" : "");
    p->state = SUP_BACKOFF;
    ev_timer_set(&p->restart_timer, p->backoff, 0.);
    ev_timer_start(p->sup->loop, &p->restart_timer);
}

static void log_exit(const struct sup_proc *p, pid_t pid, double up)
{
    char how[64];

    ctlproto_describe_status(p->last_status, how, sizeof(how));
    if (p->want == SUP_WANT_RUN)
        log_warn("%s: pid %d exited unexpectedly after %.3f s: %s%s", p->name, (int)pid, up, how,
                 p->hb_killed ? " (heartbeat timeout)" : "");
    else
        log_info("%s: pid %d stopped: %s", p->name, (int)pid, how);
}

static void child_exited(struct sup_proc *p, double up);

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct sup_proc *p = w->data;
    struct sup *s = p->sup;

    (void)loop;
    (void)revents;
    child_exited(p, mono_now() - p->started);
    /* After the restart policy ran: a status now shows the new pid or the wait. */
    sup_ctl_proc_event(s);
    sup_job_poke(s);
}

static void child_exited(struct sup_proc *p, double up)
{
    struct ev_loop *loop = p->sup->loop;
    ev_child *w = &p->child_w;
    pid_t pid = p->pid;

    ev_child_stop(loop, w);
    ev_timer_stop(loop, &p->kill_timer);
    sup_chan_close(p);
    p->pid = 0;
    p->has_exit = 1;
    p->last_status = w->rstatus;
    p->exit_hb = p->hb_killed;
    log_exit(p, pid, up);
    if (p->want == SUP_WANT_REMOVE) {
        struct sup *s = p->sup;

        sup_proc_free(p);
        sup_check_stopped(s);
        return;
    }
    if (p->want == SUP_WANT_STOP || p->sup->stopping) {
        p->state = SUP_STOPPED;
        sup_check_stopped(p->sup);
        return;
    }
    if (p->want == SUP_WANT_RESTART) {
        p->want = SUP_WANT_RUN;
        p->fails = 0;
        sup_proc_spawn(p);
        return;
    }
    p->planned = NULL; /* a crash (or kill) mid-restart is a crash */
    crashed(p, up);
}

static void restart_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct sup_proc *p = t->data;

    (void)loop;
    (void)revents;
    if (!p->sup->stopping)
        sup_proc_spawn(p);
}

static void kill_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct sup_proc *p = t->data;

    (void)loop;
    (void)revents;
    if (p->pid > 0) {
        log_warn("%s: pid %d still running %.1f s after SIGTERM: SIGKILL", p->name, (int)p->pid,
                 p->sup->cfg->stop_timeout);
        kill(p->pid, SIGKILL);
    }
}

/* Asks P's process to stop; WANT says what follows its exit. */
void sup_proc_stop(struct sup_proc *p, enum sup_want want)
{
    struct sup *s = p->sup;

    p->want = want;
    if (p->pid == 0) {
        ev_timer_stop(s->loop, &p->restart_timer);
        if (want == SUP_WANT_REMOVE) {
            sup_proc_free(p);
        } else if (want == SUP_WANT_RESTART) {
            p->want = SUP_WANT_RUN;
            p->fails = 0;
            sup_proc_spawn(p);
        } else {
            p->state = SUP_STOPPED;
        }
        return;
    }
    if (p->state == SUP_STOPPING)
        return;
    p->state = SUP_STOPPING;
    ev_timer_stop(s->loop, &p->hb_timer);
    kill(p->pid, SIGTERM);
    ev_timer_set(&p->kill_timer, s->cfg->stop_timeout, 0.);
    ev_timer_start(s->loop, &p->kill_timer);
}

void sup_proc_restart(struct sup_proc *p, const char *cause)
{
    p->planned = cause;
    sup_proc_stop(p, SUP_WANT_RESTART);
}

void sup_proc_kill_now(struct sup_proc *p)
{
    if (p->pid > 0)
        kill(p->pid, SIGKILL);
}
