/*
 * sup: herd-supervisor's shared state. One struct sup per process, one
 * struct sup_proc per server it runs; everything runs on libev's default loop
 * (ev_child needs it). sup_main.c owns start-up and shutdown, sup_proc.c the
 * worker processes and the restart policy, sup_chan.c the worker channels,
 * sup_ctl.c the control socket, sup_req.c the requests, sup_reload.c reload.
 */
#ifndef HERD_SUP_H
#define HERD_SUP_H

#include <ev.h>
#include <json.h>
#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "sup_gen.h"

/* A worker's state as status shows it. */
enum sup_state {
    SUP_STARTING = 0, /* forked, has not said "ready" yet */
    SUP_RUNNING,      /* said "ready": it listens */
    SUP_BACKOFF,      /* exited; restart_timer brings it back */
    SUP_STOPPING,     /* SIGTERM sent; kill_timer sends SIGKILL */
    SUP_STOPPED,      /* no process, none coming (shutdown, or stop NAME) */
};

/* What to do when the process exits. */
enum sup_want {
    SUP_WANT_RUN = 0, /* it should not exit: an exit is a crash */
    SUP_WANT_RESTART, /* restart NAME / changed by reload: start again at once */
    SUP_WANT_STOP,    /* supervisor shutdown: stay stopped */
    SUP_WANT_REMOVE,  /* removed by reload: free the proc */
};

#define SUP_CHAN_BUF 8192 /* longest channel line from a worker */

struct sup;

struct sup_proc {
    struct sup *sup;
    struct sup_proc *next;
    char *name; /* owned */
    char *host; /* owned; for status */
    uint16_t port;
    pid_t pid; /* 0: no process */
    enum sup_state state;
    enum sup_want want;
    int chan_fd; /* supervisor's end, -1 when closed */
    ev_child child_w;
    ev_io chan_w;
    ev_timer hb_timer;      /* heartbeat_timeout of silence kills it */
    ev_timer restart_timer; /* backoff delay */
    ev_timer kill_timer;    /* stop_timeout after SIGTERM */
    ev_tstamp started;      /* ev_now() at fork */
    ev_tstamp last_msg;     /* ev_now() at the last channel message */
    unsigned restarts;      /* forks after the first */
    unsigned fails;         /* consecutive quick exits */
    double backoff;         /* delay of the pending try, seconds */
    int has_exit;
    int last_status;     /* waitpid status of the last exit */
    int hb_killed;       /* we SIGKILLed this process for silence */
    int exit_hb;         /* ... and so did the last exit come about */
    int reopen_pending;  /* send SIGUSR1 once it is ready */
    json_object *stats;  /* last heartbeat, owned; NULL before one */
    int held;            /* stop NAME: stays down until start NAME */
    const char *planned; /* "restart", "reload": the coming start was asked for, NULL: a crash */
    unsigned planned_restarts; /* restarts by restart/reload, not counted in restarts */
    const char *last_cause;    /* "crash", "restart", "reload": why the last start */
    unsigned gen;              /* generation it runs (sup_gen.no) */
    unsigned live_wait;        /* generation whose "applied" we wait for, 0: none */
    int job_added;             /* added by the running reload: wait for it to be ready */
    unsigned hb_after_ready;   /* heartbeats since "ready" */
    char *out;                 /* owned; queued channel output to the worker */
    size_t outlen;
    ev_io chan_wio; /* runs while out holds bytes */
    size_t rlen;
    char rbuf[SUP_CHAN_BUF];
};

struct sup_client;
struct sup_job;

/* What a control client waits for before its reply (sup_req_handle). */
enum sup_wait_kind { SUP_WAIT_NONE = 0, SUP_WAIT_JOB, SUP_WAIT_DEATH };

struct sup_wait {
    enum sup_wait_kind kind;
    unsigned job;    /* SUP_WAIT_JOB: the job's id */
    char name[128];  /* SUP_WAIT_DEATH: the server ... */
    pid_t pid;       /* ... and the process that must be seen gone */
    double deadline; /* seconds */
};

struct sup {
    struct ev_loop *loop;
    struct cfg_herd *cfg; /* owned; replaced by reload */
    struct sup_gen gen;   /* the bytes cfg was parsed from */
    struct sup_job *job;  /* the reload or rolling restart running, or NULL */
    unsigned job_ids;
    const char *node;     /* --node, else cfg->node, else NULL */
    const char *node_arg; /* --node, borrowed from argv */
    char worker_path[PATH_MAX];
    char sock_path[PATH_MAX];
    char pid_path[PATH_MAX];
    char log_path[PATH_MAX];
    int pid_fd; /* holds the flock for our whole life */
    int ctl_fd;
    int foreground;
    int log_opened;
    int stopping; /* shutdown started: no restarts */
    ev_tstamp started;
    ev_io ctl_w;
    ev_signal sig_term, sig_int, sig_hup;
    ev_prepare flush_w;     /* log_flush before the loop sleeps */
    ev_timer flush_timer;   /* and every 100 ms under load */
    struct sup_proc *procs; /* in configuration order */
    struct sup_client *clients;
};

/* sup_main.c */
/* Whether a supervisor for NODE (NULL: all) runs SRV. */
int sup_selected(const char *node, const struct cfg_server *srv);
void sup_shutdown(struct sup *s, const char *why);
void sup_check_stopped(struct sup *s);
void sup_reopen_logs(struct sup *s);

/* sup_proc.c */
struct sup_proc *sup_proc_new(struct sup *s, const struct cfg_server *srv);
void sup_proc_free(struct sup_proc *p);
struct sup_proc *sup_proc_find(struct sup *s, const char *name);
void sup_proc_spawn(struct sup_proc *p);
void sup_proc_stop(struct sup_proc *p, enum sup_want want);
/* A planned restart (CAUSE "restart" or "reload"): no backoff, not a crash. */
void sup_proc_restart(struct sup_proc *p, const char *cause);
void sup_proc_kill_now(struct sup_proc *p);
const char *sup_state_name(enum sup_state st);

/* sup_chan.c */
void sup_chan_start(struct sup_proc *p, int fd);
void sup_chan_close(struct sup_proc *p);

/* sup_ctl.c */
int sup_ctl_open(struct sup *s, char *err, size_t errlen);
void sup_ctl_close(struct sup *s);

/* The proc has seen the end of a process, or changed state: tell waiters. */
void sup_ctl_proc_event(struct sup *s);
/* Job ID ended with REPLY (borrowed): answer the clients waiting for it. */
void sup_ctl_job_done(struct sup *s, unsigned id, json_object *reply);

/* sup_req.c: the reply to one request line; the caller owns it. With
 * wait->kind set, the reply (NULL for a job) waits for that event. */
json_object *sup_req_handle(struct sup *s, const char *line, struct sup_wait *wait);
json_object *sup_req_status(struct sup *s);

/* sup_reload.c: a reload (FORCE: also what loses records). Fills REPLY at
 * once on a refusal (-1); else starts a job and returns its id. */
int sup_reload(struct sup *s, int force, json_object *reply, unsigned *job);

/* sup_roll.c: jobs that restart workers one at a time. */
struct sup_job *sup_job_new(struct sup *s, int force, int no_wait, const char *cause);
/* Queues P for a rolling restart by JOB. */
void sup_job_add_restart(struct sup_job *j, struct sup_proc *p);
/* Starts J (live phase, then the roll); its reply goes to sup_ctl_job_done. */
unsigned sup_job_start(struct sup_job *j, json_object *reply);
/* Re-examines the running job after any worker event. */
void sup_job_poke(struct sup *s);
/* The worker answered a live config message. */
void sup_job_applied(struct sup_proc *p, json_object *msg);

/* sup_chan.c: sends the running generation's text to P as a live config
 * message ({"type":"config"}); 0, or -1 when P has no channel. */
int sup_chan_send_config(struct sup_proc *p);

/* Queues O (taken: freed here) as one line to P's worker. 0, or -1 when P
 * has no channel or the line would not fit. */
int sup_chan_send(struct sup_proc *p, json_object *o);

#endif
