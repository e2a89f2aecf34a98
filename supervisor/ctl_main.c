/*
 * herdctl: the operator's command line for a herd (SPEC §7): start, stop,
 * status, start/stop NAME, restart (rolling), kill, logs, metrics, reopen-logs,
 * reload, save, check-config. kill, restart and reload wait for the
 * supervisor's answer, which comes once their effect is visible. Everything
 * but start, logs and check-config is one request over run_dir/herd.sock; the
 * exit statuses are 0 ok, 1 failed, 2 usage or configuration, 3 supervisor not
 * running, 4 not allowed (another user's).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctlproto.h"
#include "version.h"

#define DEFAULT_TIMEOUT 10.0
#define DEFAULT_LINES   10
#define JOB_REPLY_WAIT  3700.0 /* the supervisor bounds each step of a roll itself */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: herdctl [-c FILE] [-t SECONDS] COMMAND [ARGS]\n\n"
            "  start                 start the herd in the background, wait until it serves\n"
            "  stop                  stop it: SIGTERM, SIGKILL after stop_timeout (or -t)\n"
            "  start NAME...         start stopped servers again\n"
            "  stop NAME...          stop servers; they stay down until start NAME\n"
            "  status [--json] [NAME...]  one row per server (--json: everything)\n"
            "  restart [--no-wait] [--force] NAME... | --all\n"
            "                        restart workers one at a time, each ready and resynced\n"
            "  kill NAME [SIGNAL]    send SIGNAL (default KILL) to one worker, wait for its end\n"
            "  logs NAME [-f] [-n N] the last N (%d) lines of NAME's log; -f follows it\n"
            "  metrics               counters and gauges, Prometheus text format\n"
            "  reopen-logs           every process reopens its log (after logrotate)\n"
            "  reload [--force]      re-read FILE: live settings in place, rolling restarts\n"
            "  save [NAME]           write every (or one) worker's snapshot now and wait\n"
            "  check-config          validate FILE and start nothing\n\n"
            "  -c, --config FILE     the herd's file (default $HERD_CONFIG, then\n"
            "                        ./etc/herd.ini when present, then %s)\n"
            "  -t, --timeout SECS    how long start/stop/restart wait (default %.0f; stop:\n"
            "                        stop_timeout + %.0f)\n"
            "  -h, --help            this text\n"
            "      --version         print the version\n\n"
            "status columns: PID and UPTIME of the worker process; RESTARTS processes\n"
            "started after the first; CLIENTS client IDs whose last location the server\n"
            "stores (told by the client or flooded by a neighbour), not connections;\n"
            "LINKS neighbours linked / configured; HOST only when hosts differ. STATE:\n"
            "running, starting, backoff (waiting to restart after an exit), stopping,\n"
            "stopped, unresponsive (running, but its heartbeat is late).\n\n"
            "Exit status: 0 ok (status: all running), 1 failed (status: some not\n"
            "running), 2 usage or configuration error, 3 supervisor not running,\n"
            "4 not allowed (the supervisor is another user's).\n",
            DEFAULT_LINES, ctl_default_config(), DEFAULT_TIMEOUT, DEFAULT_TIMEOUT);
}

static int parse_timeout(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0 && v <= 3600))
        return -1;
    *out = v;
    return 0;
}

static int parse_lines(const char *s, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 1000000)
        return -1;
    *out = v;
    return 0;
}

static int parse_option(int ch, struct ctl *c)
{
    switch (ch) {
    case 'c': c->config = optarg; return 0;
    case 't':
        c->timeout_set = 1;
        if (parse_timeout(optarg, &c->timeout) == 0)
            return 0;
        fprintf(stderr, "herdctl: bad timeout \"%s\"\n", optarg);
        return -1;
    case 'n':
        if (parse_lines(optarg, &c->lines) == 0)
            return 0;
        fprintf(stderr, "herdctl: bad line count \"%s\"\n", optarg);
        return -1;
    case 'f': c->follow = 1; return 0;
    case 'j': c->json = 1; return 0;
    case 'F': c->force = 1; return 0;
    case 'W': c->no_wait = 1; return 0;
    case 'A': c->all = 1; return 0;
    case 'h': usage(stdout); exit(CTL_EXIT_OK);
    case 'V': printf("herdctl %s\n", herd_version); exit(CTL_EXIT_OK);
    default: usage(stderr); return -1;
    }
}

static int parse_args(int argc, char **argv, struct ctl *c)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"follow", no_argument, NULL, 'f'},
        {"lines", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"force", no_argument, NULL, 'F'},
        {"no-wait", no_argument, NULL, 'W'},
        {"all", no_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    c->config = NULL;
    c->timeout = DEFAULT_TIMEOUT;
    c->lines = DEFAULT_LINES;
    while ((ch = getopt_long(argc, argv, "c:t:n:fh", longopts, NULL)) != -1)
        if (parse_option(ch, c) != 0)
            return -1;
    if (c->config == NULL)
        c->config = ctl_default_config();
    if (optind >= argc) {
        usage(stderr);
        return -1;
    }
    return optind;
}

/* Prints a refusal; 3 when no supervisor answered, 4 when it is not ours. */
static int talk(const struct ctl *c, const char *line, json_object **reply)
{
    char err[256];
    int rc = ctl_request(c, line, reply, err, sizeof(err));

    if (rc == CTL_NOT_RUNNING) {
        fprintf(stderr, "herdctl: supervisor not running (%s)\n", c->sock_path);
        return CTL_EXIT_NOT_RUNNING;
    }
    if (rc == CTL_NOT_ALLOWED) {
        fprintf(stderr, "herdctl: not allowed: %s: %s\n", c->sock_path, err);
        return CTL_EXIT_NOT_ALLOWED;
    }
    if (rc != 0) {
        fprintf(stderr, "herdctl: %s: %s\n", c->sock_path, err);
        return CTL_EXIT_FAIL;
    }
    if (!ctl_bool(*reply, "ok")) {
        fprintf(stderr, "herdctl: %s\n", ctl_str(*reply, "error", "request refused"));
        return ctl_bool(*reply, "config_error") ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
    }
    return CTL_EXIT_OK;
}

static int cmd_status(const struct ctl *c, char **names, int n)
{
    json_object *reply = NULL;
    int rc = talk(c, "status", &reply);

    if (rc == CTL_EXIT_OK && ctl_filter_servers(reply, names, n) != 0)
        rc = CTL_EXIT_USAGE;
    if (rc == CTL_EXIT_OK) {
        if (c->json)
            printf("%s\n", json_object_to_json_string_ext(
                               reply, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                          JSON_C_TO_STRING_NOSLASHESCAPE));
        else
            ctl_print_status(stdout, reply);
        rc = ctl_all_running(reply) ? CTL_EXIT_OK : CTL_EXIT_FAIL;
    } else if (c->json && rc == CTL_EXIT_NOT_RUNNING) {
        printf("{ \"ok\": false, \"error\": \"supervisor not running\" }\n");
    }
    json_object_put(reply);
    return rc;
}

static int cmd_metrics(const struct ctl *c)
{
    json_object *reply = NULL;
    int rc = talk(c, "status", &reply);

    if (rc == CTL_EXIT_OK)
        ctl_print_metrics(stdout, reply);
    json_object_put(reply);
    return rc;
}

/* Waits until NAME runs under a pid other than OLD (0: any pid). */
static int wait_running(const struct ctl *c, const char *name, long old)
{
    double deadline = ctl_now() + c->timeout;
    char err[256];

    while (ctl_now() < deadline) {
        json_object *st = NULL, *srv;

        if (ctl_request(c, "status", &st, err, sizeof(err)) == 0 &&
            (srv = ctl_server(st, name)) != NULL &&
            strcmp(ctl_str(srv, "state", ""), "running") == 0 && ctl_int(srv, "pid", 0) != old) {
            printf("%s running (pid %ld)\n", name, ctl_int(srv, "pid", 0));
            json_object_put(st);
            return CTL_EXIT_OK;
        }
        json_object_put(st);
        ctl_sleep_ms(50);
    }
    fprintf(stderr, "herdctl: %s is not running after %.0f s\n", name, c->timeout);
    return CTL_EXIT_FAIL;
}

static void print_names(const char *label, json_object *reply, const char *key);

/* What a job (reload, restart) did, then its refusal if any. */
static void print_job(json_object *reply)
{
    json_object *arr, *live;

    print_names("restarted", reply, "restarted");
    print_names("not restarted", reply, "not_restarted");
    if (json_object_object_get_ex(reply, "live", &live) && live != NULL &&
        json_object_object_length(live) > 0) {
        printf("live:");
        struct json_object_iterator it = json_object_iter_begin(live);
        struct json_object_iterator end = json_object_iter_end(live);

        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
            printf(" %s=%s", json_object_iter_peek_name(&it),
                   json_object_get_string(json_object_iter_peek_value(&it)));
        printf("\n");
    }
    if (json_object_object_get_ex(reply, "failed", &arr) && arr != NULL)
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            json_object *f = json_object_array_get_idx(arr, i);
            printf("failed: %s: %s\n", ctl_str(f, "name", "?"), ctl_str(f, "error", "?"));
        }
    if (json_object_object_get_ex(reply, "seconds", &arr) && arr != NULL)
        printf("took %.3f s (generation %ld)\n", json_object_get_double(arr),
               ctl_int(reply, "generation", 0));
}

static int cmd_restart(struct ctl *c, int argc, char **argv)
{
    char line[CTLPROTO_REQ_MAX];
    json_object *reply = NULL;
    size_t off;
    int rc;

    if ((argc > 1) == c->all) {
        fprintf(stderr, "herdctl: restart NAME... or restart --all\n");
        return CTL_EXIT_USAGE;
    }
    off = (size_t)snprintf(line, sizeof(line), "restart%s%s%s", c->no_wait ? " --no-wait" : "",
                           c->force ? " --force" : "", c->all ? " --all" : "");
    for (int i = 1; i < argc && off < sizeof(line); i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, " %s", argv[i]);
    if (off >= sizeof(line)) {
        fprintf(stderr, "herdctl: too many names\n");
        return CTL_EXIT_USAGE;
    }
    c->reply_wait = JOB_REPLY_WAIT;
    rc = talk(c, line, &reply);
    if (reply != NULL)
        print_job(reply);
    json_object_put(reply);
    return rc;
}

/* start NAME... / stop NAME...: one request each. */
static int cmd_hold(struct ctl *c, const char *what, int argc, char **argv)
{
    int rc = CTL_EXIT_OK;

    c->reply_wait = 60;
    for (int i = 1; i < argc; i++) {
        char line[CTLPROTO_REQ_MAX];
        json_object *reply = NULL;
        int r;

        snprintf(line, sizeof(line), "%s %s", what, argv[i]);
        r = talk(c, line, &reply);
        json_object_put(reply);
        if (r == CTL_EXIT_OK && strcmp(what, "start") == 0)
            r = wait_running(c, argv[i], 0);
        else if (r == CTL_EXIT_OK)
            printf("%s stopped\n", argv[i]);
        if (r != CTL_EXIT_OK && rc == CTL_EXIT_OK)
            rc = r;
    }
    return rc;
}

static int cmd_kill(struct ctl *c, const char *name, const char *sig)
{
    char line[CTLPROTO_REQ_MAX], canon[32];
    json_object *reply = NULL;
    int signum = sig ? ctlproto_signum(sig) : SIGKILL, rc;

    if (signum < 0) {
        fprintf(stderr, "herdctl: unknown signal \"%s\"\n", sig);
        return CTL_EXIT_USAGE;
    }
    ctlproto_signame(signum, canon, sizeof(canon));
    snprintf(line, sizeof(line), "kill %s %s", name, canon);
    c->reply_wait = 15;
    rc = talk(c, line, &reply);
    if (rc == CTL_EXIT_OK) {
        printf("sent %s to %s (pid %ld)", canon, name, ctl_int(reply, "pid", 0));
        if (!json_object_object_get_ex(reply, "exited", NULL))
            printf("\n");
        else if (!ctl_bool(reply, "exited"))
            printf("; still running\n");
        else if (ctl_int(reply, "new_pid", 0) > 0)
            printf("; restarted as pid %ld\n", ctl_int(reply, "new_pid", 0));
        else
            printf("; exited, now %s\n", ctl_str(reply, "state", "?"));
    }
    json_object_put(reply);
    return rc;
}

static void print_names(const char *label, json_object *reply, const char *key)
{
    json_object *arr;
    size_t n;

    if (!json_object_object_get_ex(reply, key, &arr) || (n = json_object_array_length(arr)) == 0)
        return;
    printf("%s:", label);
    for (size_t i = 0; i < n; i++)
        printf(" %s", json_object_get_string(json_object_array_get_idx(arr, i)));
    printf("\n");
}

static int cmd_plain(struct ctl *c, const char *what)
{
    json_object *reply = NULL;
    int reload = strcmp(what, "reload") == 0, rc;

    if (reload)
        c->reply_wait = JOB_REPLY_WAIT;
    rc = talk(c, reload && c->force ? "reload --force" : what, &reply);
    if (reload && reply != NULL && json_object_object_get_ex(reply, "added", NULL)) {
        print_names("added", reply, "added");
        print_names("removed", reply, "removed");
        print_names("changed", reply, "changed");
        print_names("unchanged", reply, "unchanged");
        print_names("note", reply, "warnings");
        print_job(reply);
    } else if (rc == CTL_EXIT_OK) {
        printf("%s: ok\n", what);
    }
    json_object_put(reply);
    return rc;
}

/* 1 when the worker in ASKED has reported save ID ended (*rc: its verdict). */
static int save_done(json_object *st, json_object *asked, long id, int *rc)
{
    const char *name = ctl_str(asked, "name", "?");
    json_object *srv = ctl_server(st, name), *sn;

    if (srv == NULL || ctl_int(srv, "pid", 0) != ctl_int(asked, "pid", -1)) {
        fprintf(stderr, "herdctl: %s: the worker went away before saving\n", name);
        *rc = CTL_EXIT_FAIL;
        return 1;
    }
    if (!json_object_object_get_ex(srv, "snapshot", &sn) || sn == NULL ||
        ctl_int(sn, "save_id", 0) < id)
        return 0;
    if (ctl_str(sn, "error", NULL) != NULL) {
        fprintf(stderr, "herdctl: %s: snapshot failed: %s\n", name, ctl_str(sn, "error", ""));
        *rc = CTL_EXIT_FAIL;
    } else {
        printf("%s: saved %ld records, %ld bytes\n", name, ctl_int(sn, "records", 0),
               ctl_int(sn, "bytes", 0));
    }
    return 1;
}

/* save [NAME]: returns once every worker asked has written its file. */
static int cmd_save(const struct ctl *c, const char *name)
{
    char line[CTLPROTO_REQ_MAX], err[256];
    json_object *reply = NULL, *asked;
    double deadline = ctl_now() + c->timeout;
    int rc;

    snprintf(line, sizeof(line), "save%s%s", name ? " " : "", name ? name : "");
    rc = talk(c, line, &reply);
    if (rc != CTL_EXIT_OK || !json_object_object_get_ex(reply, "servers", &asked)) {
        json_object_put(reply);
        return rc;
    }
    long id = ctl_int(reply, "id", 0);
    size_t n = json_object_array_length(asked), done = 0;
    char *ended = calloc(n + 1, 1);
    while (ended != NULL && done < n && ctl_now() < deadline) {
        json_object *st = NULL;
        if (ctl_request(c, "status", &st, err, sizeof(err)) == 0)
            for (size_t i = 0; i < n; i++) {
                if (!ended[i] && save_done(st, json_object_array_get_idx(asked, i), id, &rc)) {
                    ended[i] = 1;
                    done++;
                }
            }
        json_object_put(st);
        if (done < n)
            ctl_sleep_ms(20);
    }
    if (done < n) {
        fprintf(stderr, "herdctl: snapshots not written after %.0f s\n", c->timeout);
        rc = CTL_EXIT_FAIL;
    }
    free(ended);
    json_object_put(reply);
    return rc;
}

/* 1 when the running supervisor runs another file than ours; both in MSG. */
static int other_file(const struct ctl *c, char *msg, size_t len)
{
    char err[256], mine[PATH_MAX];
    json_object *st = NULL, *sup;
    const char *theirs;
    int rc = 0;

    if (strcmp(c->config, "") == 0 || ctl_request(c, "status", &st, err, sizeof(err)) != 0)
        return 0;
    if (realpath(c->config, mine) == NULL)
        snprintf(mine, sizeof(mine), "%s", c->config);
    if (json_object_object_get_ex(st, "supervisor", &sup) && sup != NULL &&
        (theirs = ctl_str(sup, "config", NULL)) != NULL && strcmp(theirs, mine) != 0) {
        snprintf(msg, len, "the running supervisor (pid %ld) runs %s, not %s",
                 ctl_int(sup, "pid", 0), theirs, mine);
        rc = 1;
    }
    json_object_put(st);
    return rc;
}

static int cmd_check(const struct ctl *c)
{
    ctl_check_secret_mode(c);
    ctl_check_tls(c);
    ctl_check_names(c); /* warnings only: a name may resolve where the herd runs */
    printf("%s: syntax is ok, %zu server%s\n", c->config, c->cfg->nservers,
           c->cfg->nservers == 1 ? "" : "s");
    return CTL_EXIT_OK;
}

static int is(const char *cmd, const char *name)
{
    return strcmp(cmd, name) == 0;
}

static int run(struct ctl *c, int argc, char **argv)
{
    const char *cmd = argv[0];

    if (argc == 1 && is(cmd, "start"))
        return ctl_start(c);
    if (argc == 1 && is(cmd, "stop"))
        return ctl_stop(c);
    if (argc > 1 && (is(cmd, "start") || is(cmd, "stop")))
        return cmd_hold(c, cmd, argc, argv);
    if (is(cmd, "status"))
        return cmd_status(c, argv + 1, argc - 1);
    if (is(cmd, "restart"))
        return cmd_restart(c, argc, argv);
    if ((argc == 2 || argc == 3) && is(cmd, "kill"))
        return cmd_kill(c, argv[1], argc == 3 ? argv[2] : NULL);
    if (argc == 2 && is(cmd, "logs"))
        return ctl_logs(c, argv[1]);
    if (argc == 1 && is(cmd, "metrics"))
        return cmd_metrics(c);
    if (argc == 1 && (is(cmd, "reopen-logs") || is(cmd, "reload")))
        return cmd_plain(c, cmd);
    if ((argc == 1 || argc == 2) && is(cmd, "save"))
        return cmd_save(c, argc == 2 ? argv[1] : NULL);
    if (argc == 1 && is(cmd, "check-config"))
        return cmd_check(c);
    fprintf(stderr, "herdctl: bad command \"%s\" (or its arguments); see herdctl --help\n", cmd);
    return CTL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    static struct ctl ctl;
    struct ctl *c = &ctl;
    char err[1024];
    int first = parse_args(argc, argv, c), rc, strict;

    if (first < 0)
        return CTL_EXIT_USAGE;
    strict = strcmp(argv[first], "start") == 0 || strcmp(argv[first], "check-config") == 0;
    if (ctl_load_config(c, !strict, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        if (strcmp(argv[first], "check-config") == 0)
            fprintf(stderr, "herdctl: %s: test failed\n", c->config);
        return CTL_EXIT_USAGE;
    }
    /* reload's reply tells the supervisor's own verdict on the file. */
    if (c->degraded && strcmp(argv[first], "reload") != 0)
        fprintf(stderr, "herdctl: warning: %s\n", err);
    if (ctlproto_path(c->sock_path, sizeof(c->sock_path), c->cfg->run_dir, CTLPROTO_SOCK_NAME) ||
        ctlproto_path(c->pid_path, sizeof(c->pid_path), c->cfg->run_dir, CTLPROTO_PID_NAME)) {
        fprintf(stderr, "herdctl: run_dir too long\n");
        cfg_free(c->cfg);
        return CTL_EXIT_USAGE;
    }
    if (strcmp(argv[first], "start") != 0 || argc - first > 1) {
        char msg[2 * PATH_MAX + 128];

        if (other_file(c, msg, sizeof(msg))) {
            if (strcmp(argv[first], "reload") == 0) {
                fprintf(stderr, "herdctl: reload refused: %s; reload with -c naming that file\n",
                        msg);
                cfg_free(c->cfg);
                return CTL_EXIT_USAGE;
            }
            fprintf(stderr, "herdctl: warning: %s\n", msg);
        }
    }
    rc = run(c, argc - first, argv + first);
    cfg_free(c->cfg);
    return rc;
}
