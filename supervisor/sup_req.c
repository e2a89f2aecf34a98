/*
 * sup_req: the control requests (status, stop, start NAME, stop NAME,
 * restart [--no-wait] NAME... | --all, kill NAME SIGNAL, reopen-logs,
 * reload [--force], save [NAME]) and their JSON replies, as documented in
 * docs/control-protocol.md. Every reply has "ok"; a refusal has "error".
 * kill, restart and reload answer once their effect is visible (sup_wait).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctlproto.h"
#include "mono.h"
#include "fsutil.h"
#include "log.h"
#include "sup.h"
#include "version.h"

#define REQ_WORDS 32
#define KILL_WAIT 5.0    /* seconds for kill to see the process gone */
#define JOB_WAIT  3600.0 /* a job bounds itself; this is a backstop */

static json_object *reply_new(int ok)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "ok", json_object_new_boolean(ok));
    return o;
}

__attribute__((format(printf, 1, 2))) static json_object *reply_error(const char *fmt, ...)
{
    char msg[256];
    json_object *o = reply_new(0);
    va_list ap;

    va_start(ap, fmt);
    /* clang-analyzer 14 misreads glibc's va_list here (a false positive). */
    vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    json_object_object_add(o, "error", json_object_new_string(msg));
    return o;
}

static void add_double(json_object *o, const char *key, double v)
{
    char text[32];

    /* Milliseconds are all anyone reads; json-c would print 17 digits. */
    snprintf(text, sizeof(text), "%.3f", v);
    json_object_object_add(o, key, json_object_new_double_s(v, text));
}

static void add_exit(json_object *o, const struct sup_proc *p)
{
    char text[64], sig[32];
    int st = p->last_status;

    if (!p->has_exit) {
        json_object_object_add(o, "last_exit", NULL);
        return;
    }
    ctlproto_describe_status(st, text, sizeof(text));
    if (p->exit_hb)
        strncat(text, " (heartbeat timeout)", sizeof(text) - strlen(text) - 1);
    json_object_object_add(o, "last_exit", json_object_new_string(text));
    if (WIFEXITED(st))
        json_object_object_add(o, "last_exit_code", json_object_new_int(WEXITSTATUS(st)));
    if (WIFSIGNALED(st)) {
        ctlproto_signame(WTERMSIG(st), sig, sizeof(sig));
        json_object_object_add(o, "last_exit_signal", json_object_new_string(sig));
    }
    json_object_object_add(o, "config_error",
                           json_object_new_boolean(WIFEXITED(st) && WEXITSTATUS(st) == 2));
}

/* Copies the gauges status tables show from the last heartbeat. */
static void add_gauges(json_object *o, const struct sup_proc *p)
{
    static const char *const keys[] = {"clients",       "connections", "links_up", "links_total",
                                       "links_syncing", "requests",    "snapshot"};
    json_object *v;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (p->pid > 0 && p->stats != NULL && json_object_object_get_ex(p->stats, keys[i], &v))
            json_object_object_add(o, keys[i], json_object_get(v));
        else
            json_object_object_add(o, keys[i], NULL);
    }
    json_object_object_add(o, "stats",
                           p->pid > 0 && p->stats != NULL ? json_object_get(p->stats) : NULL);
}

static json_object *proc_json(struct sup *s, const struct sup_proc *p)
{
    json_object *o = json_object_new_object(), *ver;
    ev_tstamp now = mono_now();
    char log[PATH_MAX];

    json_object_object_add(o, "name", json_object_new_string(p->name));
    json_object_object_add(o, "host", json_object_new_string(p->host));
    json_object_object_add(o, "port", json_object_new_int(p->port));
    json_object_object_add(o, "pid", p->pid > 0 ? json_object_new_int(p->pid) : NULL);
    json_object_object_add(o, "state", json_object_new_string(sup_state_name(p->state)));
    if (p->pid > 0)
        add_double(o, "uptime", now - p->started);
    else
        json_object_object_add(o, "uptime", NULL);
    json_object_object_add(o, "restarts", json_object_new_int64(p->restarts));
    json_object_object_add(o, "planned_restarts", json_object_new_int64(p->planned_restarts));
    json_object_object_add(o, "last_start",
                           p->last_cause ? json_object_new_string(p->last_cause) : NULL);
    json_object_object_add(o, "held", json_object_new_boolean(p->held));
    json_object_object_add(o, "generation", json_object_new_int64(p->gen));
    json_object_object_add(o, "quick_exits", json_object_new_int64(p->fails));
    add_exit(o, p);
    if (p->state == SUP_BACKOFF) {
        add_double(o, "backoff", p->backoff);
        add_double(o, "next_try", ev_timer_remaining(s->loop, (ev_timer *)&p->restart_timer));
    }
    if (p->pid > 0 && p->last_msg > 0)
        add_double(o, "heartbeat_age", now - p->last_msg);
    /* Late: a whole heartbeat missed (frozen, or its loop blocked). */
    json_object_object_add(
        o, "heartbeat_late",
        json_object_new_boolean(p->pid > 0 && p->last_msg > 0 &&
                                now - p->last_msg > 2 * s->cfg->heartbeat_interval + 0.25));
    /* The worker's own version (its heartbeat): a half-rolled upgrade shows. */
    if (p->pid <= 0 || p->stats == NULL || !json_object_object_get_ex(p->stats, "version", &ver))
        ver = NULL;
    json_object_object_add(o, "version", json_object_get(ver));
    if (fs_join(log, sizeof(log), s->cfg->log_dir, p->name, ".log") == 0)
        json_object_object_add(o, "log", json_object_new_string(log));
    add_gauges(o, p);
    return o;
}

json_object *sup_req_status(struct sup *s)
{
    json_object *o = reply_new(1), *sup = json_object_new_object();
    json_object *servers = json_object_new_array();

    json_object_object_add(o, "schema", json_object_new_int(1));
    json_object_object_add(sup, "pid", json_object_new_int(getpid()));
    json_object_object_add(sup, "version", json_object_new_string(herd_version));
    add_double(sup, "heartbeat_interval", s->cfg->heartbeat_interval);
    add_double(sup, "uptime", mono_now() - s->started);
    json_object_object_add(sup, "state",
                           json_object_new_string(s->stopping ? "stopping" : "running"));
    json_object_object_add(sup, "config", json_object_new_string(s->cfg->path));
    json_object_object_add(sup, "generation", json_object_new_int64(s->gen.no));
    {
        int d = sup_gen_disk_differs(&s->gen, s->cfg->path);

        json_object_object_add(sup, "config_on_disk",
                               json_object_new_string(d == 0   ? "same"
                                                      : d == 1 ? "changed"
                                                               : "unreadable"));
    }
    json_object_object_add(sup, "job", json_object_new_boolean(s->job != NULL));
    json_object_object_add(sup, "node", s->node ? json_object_new_string(s->node) : NULL);
    json_object_object_add(sup, "socket", json_object_new_string(s->sock_path));
    json_object_object_add(sup, "log", json_object_new_string(s->log_path));
    json_object_object_add(o, "supervisor", sup);
    for (struct sup_proc *p = s->procs; p != NULL; p = p->next)
        json_object_array_add(servers, proc_json(s, p));
    json_object_object_add(o, "servers", servers);
    return o;
}

/* A job waits: its reply is made when it ends. */
static json_object *job_wait(struct sup_wait *wait, unsigned id)
{
    wait->kind = SUP_WAIT_JOB;
    wait->job = id;
    wait->deadline = JOB_WAIT;
    return NULL;
}

/* restart [--no-wait] [--force] NAME... | --all: a rolling job. */
static json_object *req_restart(struct sup *s, char **w, size_t n, struct sup_wait *wait)
{
    int all = 0, no_wait = 0, force = 0;
    size_t first = 1;
    struct sup_job *j;
    json_object *o;

    for (; first < n && strncmp(w[first], "--", 2) == 0; first++) {
        all |= strcmp(w[first], "--all") == 0;
        no_wait |= strcmp(w[first], "--no-wait") == 0;
        force |= strcmp(w[first], "--force") == 0;
    }
    if ((first == n) == !all)
        return reply_error("%s", "usage: restart [--no-wait] [--force] NAME... | --all");
    if (s->stopping)
        return reply_error("%s", "the supervisor is stopping");
    if (s->job != NULL)
        return reply_error("%s", "a reload or rolling restart is already running");
    for (size_t i = first; i < n; i++) {
        struct sup_proc *p = sup_proc_find(s, w[i]);

        if (p == NULL)
            return reply_error("no server \"%s\"", w[i]);
        if (p->want == SUP_WANT_REMOVE)
            return reply_error("\"%s\" is being removed", w[i]);
        if (p->held)
            return reply_error("\"%s\" is stopped: start it with start %s", w[i], w[i]);
    }
    if ((j = sup_job_new(s, force, no_wait, "restart")) == NULL)
        return reply_error("%s", "out of memory");
    o = reply_new(1);
    for (struct sup_proc *p = s->procs; all && p != NULL; p = p->next)
        if (!p->held && p->want != SUP_WANT_REMOVE)
            sup_job_add_restart(j, p);
    for (size_t i = first; i < n; i++)
        sup_job_add_restart(j, sup_proc_find(s, w[i]));
    log_info("control: restart%s%s", all ? " --all" : "", no_wait ? " --no-wait" : "");
    job_wait(wait, sup_job_start(j, o));
    json_object_put(o);
    return NULL;
}

/* Signals a worker survives (stop/continue, its log reopen, ignored ones). */
static int survivable(int sig)
{
    static const int keep[] = {SIGCONT, SIGSTOP,  SIGTSTP, SIGTTIN, SIGTTOU,
                               SIGUSR1, SIGWINCH, SIGCHLD, SIGURG,  SIGPIPE};

    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        if (keep[i] == sig)
            return 1;
    return 0;
}

static json_object *req_kill(struct sup *s, const char *name, const char *signame,
                             struct sup_wait *wait)
{
    struct sup_proc *p = sup_proc_find(s, name);
    int sig = signame ? ctlproto_signum(signame) : SIGKILL;
    char canon[32];
    json_object *o;

    if (p == NULL)
        return reply_error("no server \"%s\"", name);
    if (sig < 0)
        return reply_error("unknown signal \"%s\"", signame);
    if (p->pid <= 0)
        return reply_error("\"%s\" has no process now", name);
    ctlproto_signame(sig, canon, sizeof(canon));
    log_info("control: kill %s (pid %d) %s", name, (int)p->pid, canon);
    if (kill(p->pid, sig) != 0)
        return reply_error("kill: %s", strerror(errno));
    o = reply_new(1);
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "pid", json_object_new_int(p->pid));
    json_object_object_add(o, "signal", json_object_new_string(canon));
    /* The reply waits until the supervisor has seen the process end (a
     * signal that should but does not: KILL_WAIT, then "exited": false). */
    if (survivable(sig))
        return o;
    wait->kind = SUP_WAIT_DEATH;
    snprintf(wait->name, sizeof(wait->name), "%s", name);
    wait->pid = p->pid;
    wait->deadline = KILL_WAIT;
    return o;
}

/* Asks P's worker for a snapshot now; it answers with save_id in its
 * heartbeat's "snapshot" once written. 0, or -1 when it cannot be asked. */
static int ask_save(struct sup_proc *p, uint64_t id)
{
    json_object *m;

    if (p->state != SUP_RUNNING)
        return -1;
    m = json_object_new_object();
    json_object_object_add(m, "type", json_object_new_string("save"));
    json_object_object_add(m, "id", json_object_new_int64((int64_t)id));
    return sup_chan_send(p, m); /* behind a config line being written, never inside it */
}

/* save [NAME]: the reply lists the workers asked and the id to wait for. */
static json_object *req_save(struct sup *s, const char *name)
{
    static uint64_t seq;
    json_object *o, *asked = json_object_new_array(), *e;

    if (s->cfg->state_dir == NULL) {
        json_object_put(asked);
        return reply_error("%s", "state_dir is not set: there is nothing to save to");
    }
    if (name != NULL && sup_proc_find(s, name) == NULL) {
        json_object_put(asked);
        return reply_error("no server \"%s\"", name);
    }
    seq++;
    log_info("control: save %s", name ? name : "(all)");
    for (struct sup_proc *p = s->procs; p != NULL; p = p->next) {
        if (name != NULL && strcmp(p->name, name) != 0)
            continue;
        if (ask_save(p, seq) < 0) {
            if (name != NULL) {
                json_object_put(asked);
                return reply_error("\"%s\" is not running", name);
            }
            continue;
        }
        e = json_object_new_object();
        json_object_object_add(e, "name", json_object_new_string(p->name));
        json_object_object_add(e, "pid", json_object_new_int(p->pid));
        json_object_array_add(asked, e);
    }
    o = reply_new(1);
    json_object_object_add(o, "id", json_object_new_int64((int64_t)seq));
    json_object_object_add(o, "servers", asked);
    return o;
}

/* start NAME / stop NAME: an operator's hold, kept across reloads. */
static json_object *req_hold(struct sup *s, const char *what, const char *name,
                             struct sup_wait *wait)
{
    struct sup_proc *p = sup_proc_find(s, name);
    json_object *o;

    if (p == NULL)
        return reply_error("no server \"%s\"", name);
    if (s->stopping)
        return reply_error("%s", "the supervisor is stopping");
    if (p->want == SUP_WANT_REMOVE)
        return reply_error("\"%s\" is being removed", name);
    log_info("control: %s %s", what, name);
    o = reply_new(1);
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "pid", p->pid > 0 ? json_object_new_int(p->pid) : NULL);
    if (strcmp(what, "start") == 0) {
        p->held = 0;
        if (p->pid <= 0)
            sup_proc_restart(p, "start");
        else if (p->want == SUP_WANT_STOP) {
            p->want = SUP_WANT_RESTART;
            p->planned = "start";
        }
        return o;
    }
    p->held = 1;
    if (p->pid > 0) {
        wait->kind = SUP_WAIT_DEATH;
        snprintf(wait->name, sizeof(wait->name), "%s", name);
        wait->pid = p->pid;
        wait->deadline = s->cfg->stop_timeout + KILL_WAIT;
    }
    sup_proc_stop(p, SUP_WANT_STOP);
    return o;
}

static json_object *req_simple(struct sup *s, const char *what, int force, struct sup_wait *wait)
{
    json_object *o = reply_new(1);
    unsigned id = 0;

    if (strcmp(what, "stop") == 0) {
        json_object_object_add(o, "pid", json_object_new_int(getpid()));
        sup_shutdown(s, "stop request");
    } else if (strcmp(what, "reopen-logs") == 0) {
        log_info("control: reopen-logs");
        sup_reopen_logs(s);
    } else if (strcmp(what, "reload") == 0) {
        if (sup_reload(s, force, o, &id) != 0)
            return o;
        json_object_put(o);
        return job_wait(wait, id);
    }
    return o;
}

json_object *sup_req_handle(struct sup *s, const char *line, struct sup_wait *wait)
{
    char buf[CTLPROTO_REQ_MAX], *save = NULL, *w[REQ_WORDS];
    size_t n = 0;

    memset(wait, 0, sizeof(*wait));
    snprintf(buf, sizeof(buf), "%s", line);
    for (char *t = strtok_r(buf, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
        if (n == REQ_WORDS)
            return reply_error("%s", "too many words in request");
        w[n++] = t;
    }
    if (n == 0)
        return reply_error("%s", "empty request");
    if (n == 1 && strcmp(w[0], "status") == 0)
        return sup_req_status(s);
    if (n == 1 && (strcmp(w[0], "stop") == 0 || strcmp(w[0], "reopen-logs") == 0 ||
                   strcmp(w[0], "reload") == 0))
        return req_simple(s, w[0], 0, wait);
    if (n == 2 && strcmp(w[0], "reload") == 0 && strcmp(w[1], "--force") == 0)
        return req_simple(s, w[0], 1, wait);
    if (n == 2 && (strcmp(w[0], "start") == 0 || strcmp(w[0], "stop") == 0))
        return req_hold(s, w[0], w[1], wait);
    if (strcmp(w[0], "restart") == 0)
        return req_restart(s, w, n, wait);
    if (strcmp(w[0], "save") == 0)
        return n <= 2 ? req_save(s, n == 2 ? w[1] : NULL) : reply_error("%s", "usage: save [NAME]");
    if (strcmp(w[0], "kill") == 0)
        return n == 2 || n == 3 ? req_kill(s, w[1], n == 3 ? w[2] : NULL, wait)
                                : reply_error("%s", "usage: kill NAME [SIGNAL]");
    return reply_error("unknown request \"%s\" (status, stop, start NAME, stop NAME, restart "
                       "NAME... | --all, kill NAME SIGNAL, reopen-logs, reload [--force], "
                       "save [NAME])",
                       w[0]);
}
