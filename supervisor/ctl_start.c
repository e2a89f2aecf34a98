/*
 * ctl_start: herdctl start and stop. start runs herd-supervisor (which goes
 * to the background itself and exits once its socket listens), then polls
 * status until every worker is ready, or one keeps failing, or time is up.
 * stop asks over the socket (or signals the pid file's holder) and waits for
 * the pid file's flock to be released: the kernel drops it only when the
 * supervisor is gone, and the supervisor goes only after its workers.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "ctlproto.h"
#include "fsutil.h"

#define TAIL_LINES 10

void ctl_tail(FILE *f, const char *path, int lines)
{
    char buf[8192];
    struct stat st;
    off_t from;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *p;

    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(f, "    (cannot read %s: %s)\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    from = st.st_size > (off_t)sizeof(buf) - 1 ? st.st_size - (off_t)sizeof(buf) + 1 : 0;
    n = pread(fd, buf, sizeof(buf) - 1, from);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    if (buf[n - 1] == '\n')
        buf[--n] = '\0';
    for (p = buf + n; p > buf && lines > 0; p--)
        if (p[-1] == '\n' && --lines == 0)
            break;
    fprintf(f, "  last lines of %s:\n", path);
    for (char *line = strtok(p, "\n"); line != NULL; line = strtok(NULL, "\n"))
        fprintf(f, "    %s\n", line);
}

/* Runs herd-supervisor -c FILE and returns its exit status (0: it is up). */
static int launch(const struct ctl *c)
{
    char self[PATH_MAX], path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    pid_t pid;
    int st;

    if (n < 0)
        return -1;
    self[n] = '\0';
    if (fs_join(path, sizeof(path), dirname(self), "herd-supervisor", "") != 0)
        return -1;
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);

        if (null >= 0)
            dup2(null, 0);
        execl(path, "herd-supervisor", "-c", c->cfg->path, (char *)NULL);
        fprintf(stderr, "herdctl: %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static void report_failed(json_object *srv, const char *why)
{
    fprintf(stderr, "herdctl: %s %s (%s)\n", ctl_str(srv, "name", "?"), why,
            ctl_str(srv, "last_exit", "no exit yet"));
    ctl_tail(stderr, ctl_str(srv, "log", "?"), TAIL_LINES);
}

/* Names every worker that is not running; 1 when one is in backoff. */
static int report_not_running(json_object *st, int backoff_only)
{
    json_object *servers;
    int any = 0;

    if (!json_object_object_get_ex(st, "servers", &servers))
        return 0;
    for (size_t i = 0; i < json_object_array_length(servers); i++) {
        json_object *srv = json_object_array_get_idx(servers, i);
        const char *state = ctl_str(srv, "state", "");

        if (strcmp(state, "backoff") == 0)
            any = 1;
        if (!backoff_only && strcmp(state, "running") != 0)
            report_failed(srv, "is not ready");
    }
    if (!any || !backoff_only)
        return any;
    for (size_t i = 0; i < json_object_array_length(servers); i++) {
        json_object *srv = json_object_array_get_idx(servers, i);

        if (strcmp(ctl_str(srv, "state", ""), "backoff") == 0)
            report_failed(srv, "failed to start");
    }
    fprintf(stderr, "herdctl: the supervisor keeps retrying; \"herdctl stop\" stops it\n");
    return 1;
}

static int supervisor_gone(const struct ctl *c)
{
    pid_t pid;
    char log[PATH_MAX];

    if (ctlproto_lock_held(c->pid_path, &pid) != 0)
        return 0;
    fprintf(stderr, "herdctl: herd-supervisor exited\n");
    if (fs_join(log, sizeof(log), c->cfg->log_dir, "supervisor", ".log") == 0)
        ctl_tail(stderr, log, TAIL_LINES);
    return 1;
}

#define LINK_SETTLE_S 1.5 /* longest wait for links once every worker listens */

/* Every server has all its links up (neighbours on other machines may be
 * down for good, so this is only waited for up to LINK_SETTLE_S). */
static int links_settled(json_object *reply)
{
    json_object *servers;
    if (!json_object_object_get_ex(reply, "servers", &servers) ||
        !json_object_is_type(servers, json_type_array))
        return 1;
    for (size_t i = 0; i < json_object_array_length(servers); i++) {
        json_object *srv = json_object_array_get_idx(servers, i);
        if (ctl_int(srv, "links_up", 0) < ctl_int(srv, "links_total", 0))
            return 0;
    }
    return 1;
}

/* Polls status until every worker listens (0) or that will not happen (1). */
static int wait_up(const struct ctl *c)
{
    double deadline = ctl_now() + c->timeout;
    double settle = ctl_now() + LINK_SETTLE_S;
    char err[256];

    for (;;) {
        json_object *st = NULL;
        int rc = ctl_request(c, "status", &st, err, sizeof(err));
        int done = -1;

        if (rc == 0 && ctl_all_running(st)) {
            /* Every worker listens: give the links a moment to come up so
             * the table shows the herd as it will be, not 0/N everywhere. */
            if (!links_settled(st) && ctl_now() < settle) {
                json_object_put(st);
                ctl_sleep_ms(50);
                continue;
            }
            ctl_print_status(stdout, st);
            done = CTL_EXIT_OK;
        } else if (rc == 0 && report_not_running(st, 1)) {
            ctl_print_status(stdout, st);
            done = CTL_EXIT_FAIL;
        } else if (rc != 0 && supervisor_gone(c)) {
            done = CTL_EXIT_FAIL;
        } else if (ctl_now() > deadline) {
            fprintf(stderr, "herdctl: not every worker is ready after %.0f s\n", c->timeout);
            if (rc == 0)
                report_not_running(st, 0);
            else
                fprintf(stderr, "herdctl: %s\n", err);
            done = CTL_EXIT_FAIL;
        }
        json_object_put(st);
        if (done >= 0)
            return done;
        ctl_sleep_ms(50);
    }
}

int ctl_start(struct ctl *c)
{
    pid_t pid;
    int held = ctlproto_lock_held(c->pid_path, &pid), rc;

    if (held == 1) {
        printf("herd: already running (pid %d)\n", (int)pid);
        return CTL_EXIT_OK;
    }
    if (held < 0) {
        fprintf(stderr, "herdctl: %s: %s\n", c->pid_path, strerror(errno));
        return CTL_EXIT_FAIL;
    }
    rc = launch(c);
    if (rc != 0) {
        fprintf(stderr, "herdctl: herd-supervisor did not start (exit %d)\n", rc);
        return rc == CTL_EXIT_USAGE ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
    }
    return wait_up(c);
}

/* Waits for the lock to go and PID with it, up to DEADLINE; 1 when gone. */
static int wait_gone(const struct ctl *c, pid_t pid, double deadline)
{
    pid_t holder;

    while (ctlproto_lock_held(c->pid_path, &holder) == 1 || ctl_pid_alive(pid)) {
        if (ctl_now() > deadline)
            return 0;
        ctl_sleep_ms(20);
    }
    return 1;
}

int ctl_stop(struct ctl *c)
{
    json_object *reply = NULL;
    char err[256];
    pid_t pid = 0;
    /* -t is how long the operator will wait; past it the supervisor gets
     * SIGKILL and its workers follow it (PR_SET_PDEATHSIG). */
    double patience = c->timeout_set ? c->timeout : c->cfg->stop_timeout + c->timeout;
    int rc = ctl_request(c, "stop", &reply, err, sizeof(err));

    if (rc == CTL_NOT_ALLOWED) {
        fprintf(stderr, "herdctl: not allowed: %s: %s\n", c->sock_path, err);
        return CTL_EXIT_NOT_ALLOWED;
    }
    if (rc == 0 && ctl_bool(reply, "ok")) {
        pid = (pid_t)ctl_int(reply, "pid", 0);
    } else {
        int held = ctlproto_lock_held(c->pid_path, &pid);

        if (held == 0) {
            json_object_put(reply);
            printf("herd: not running\n");
            return CTL_EXIT_OK;
        }
        /* Alive but not answering (socket gone?): the signal does the same. */
        if (held == 1 && pid > 0 && kill(pid, 0) != 0 && errno == EPERM) {
            fprintf(stderr, "herdctl: not allowed: supervisor pid %d is another user's\n",
                    (int)pid);
            json_object_put(reply);
            return CTL_EXIT_NOT_ALLOWED;
        }
        if (held < 0 || pid <= 0 || kill(pid, SIGTERM) != 0) {
            fprintf(stderr, "herdctl: cannot stop the supervisor: %s\n", err);
            json_object_put(reply);
            return CTL_EXIT_FAIL;
        }
    }
    json_object_put(reply);
    if (!wait_gone(c, pid, ctl_now() + patience)) {
        fprintf(stderr, "herdctl: supervisor pid %d still up after %.0f s: SIGKILL\n", (int)pid,
                patience);
        kill(pid, SIGKILL); /* its workers follow: PR_SET_PDEATHSIG */
        if (!wait_gone(c, pid, ctl_now() + 2))
            return CTL_EXIT_FAIL;
    }
    printf("herd: stopped\n");
    return CTL_EXIT_OK;
}
