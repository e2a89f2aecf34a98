/*
 * ctl: herdctl's shared state and the seams between its files: ctl_main.c
 * (options and the simple commands), ctl_conf.c (finding and reading the
 * herd file), ctl_client.c (one request over the control socket),
 * ctl_start.c (start and stop), ctl_table.c (status output), ctl_logs.c
 * (logs), ctl_metrics.c (metrics in the Prometheus text format), ctl_dns.c
 * (check-config's look at the names in host).
 */
#ifndef HERD_CTL_H
#define HERD_CTL_H

#include <json.h>
#include <limits.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"

/* herdctl's exit statuses (SPEC §7). */
enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAIL = 1,
    CTL_EXIT_USAGE = 2, /* usage or configuration error */
    CTL_EXIT_NOT_RUNNING = 3,
    CTL_EXIT_NOT_ALLOWED = 4, /* another user's supervisor */
};

/* ctl_request results besides 0. */
#define CTL_ERR         (-1) /* talking failed: err says why */
#define CTL_NOT_RUNNING (-2) /* no supervisor listens on the socket */
#define CTL_NOT_ALLOWED (-3) /* the socket is another user's: err says whose */

struct ctl {
    const char *config;   /* the file as named by the user */
    struct cfg_herd *cfg; /* owned */
    char sock_path[PATH_MAX];
    char pid_path[PATH_MAX];
    double timeout;    /* how long start, stop, restart wait */
    int timeout_set;   /* -t given: stop waits that long, not stop_timeout + it */
    int json;          /* status --json */
    int follow;        /* logs -f */
    long lines;        /* logs -n */
    int degraded;      /* the file is broken: cfg holds its [herd] only */
    int force;         /* reload/restart --force */
    int no_wait;       /* restart --no-wait */
    int all;           /* restart --all */
    double reply_wait; /* seconds to wait for one reply; 0: the default (5) */
};

/* ctl_conf.c: the file SPEC §7 names when -c does not: $HERD_CONFIG, then
 * ./etc/herd.ini when it exists, then SYSCONFDIR/herd/herd.ini. */
const char *ctl_default_config(void);
/* A warning on stderr when the file holds a secret others can read. */
void ctl_check_secret_mode(const struct ctl *c);
/* A warning when links may cross machines in plaintext; with link_tls =
 * cert, one for each TLS file that cannot be read (it may be needed on
 * another machine only) and for a tls_key others can read. */
void ctl_check_tls(const struct ctl *c);
/* loads c->config into c->cfg. With LENIENT, a file broken
 * outside [herd] still loads its [herd] (c->degraded set). 0, or -1 with
 * the file's FILE:LINE error in ERR. */
int ctl_load_config(struct ctl *c, int lenient, char *err, size_t errlen);

/* ctl_dns.c: looks up every host of the file given by name (2 s at most in
 * all) and warns on stderr of each that does not resolve; 1 if it warned. */
int ctl_check_names(const struct ctl *c);

/* ctl_client.c: one request; 0 with *reply (caller frees), or CTL_ERR,
 * CTL_NOT_RUNNING, CTL_NOT_ALLOWED with the reason in ERR. */
int ctl_request(const struct ctl *c, const char *line, json_object **reply, char *err,
                size_t errlen);
/* The member KEY of OBJ as a string, int or bool; DEF when absent or null. */
const char *ctl_str(json_object *obj, const char *key, const char *def);
long ctl_int(json_object *obj, const char *key, long def);
int ctl_bool(json_object *obj, const char *key);
/* Whether PID is alive (a zombie counts as gone). */
int ctl_pid_alive(pid_t pid);
void ctl_sleep_ms(long ms);
double ctl_now(void);

/* ctl_start.c */
int ctl_start(struct ctl *c);
int ctl_stop(struct ctl *c);
/* Prints the last lines of PATH to F, indented. */
void ctl_tail(FILE *f, const char *path, int lines);

/* ctl_table.c */
void ctl_print_status(FILE *f, json_object *reply);
/* Keeps only the servers NAMES[0..N) in REPLY; -1 naming an unknown one. */
int ctl_filter_servers(json_object *reply, char **names, int n);
/* The state a table shows: the supervisor's, or "unresponsive" for a
 * running worker whose heartbeat is late. */
const char *ctl_shown_state(json_object *srv);
/* 1 when every server of a status reply is running. */
int ctl_all_running(json_object *reply);
/* The server NAME of a status reply, or NULL. */
json_object *ctl_server(json_object *reply, const char *name);
void ctl_format_duration(double secs, char *buf, size_t len);

/* ctl_logs.c: logs NAME [-f] [-n N] */
int ctl_logs(const struct ctl *c, const char *name);

/* ctl_metrics.c: writes a status reply in the Prometheus text format. */
void ctl_print_metrics(FILE *f, json_object *reply);

#endif
