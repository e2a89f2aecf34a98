/*
 * link_int: what the files of the links module share and nobody else sees.
 * links.c owns the links, dialling and the handshake; link_sync.c owns the
 * traffic of a live link (AT lines, heartbeats, the resync dump);
 * link_knock.c the start-up knock; link_base.c what all three use. Calls go
 * links.c -> link_sync.c / link_knock.c -> link_base.c, never back up.
 * A struct link lives as long as the worker; a struct lconn lives as long
 * as one TCP connection of a link and hangs off conn->ud.
 */
#ifndef HERD_LINK_INT_H
#define HERD_LINK_INT_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "link_proto.h"
#include "links.h"
#include "resolve.h"

struct links;
struct store_rec;

/* The states of one link connection; the comment says what it waits for. */
enum lc_state {
    LC_DIALING,    /* dialer: the TCP connect to complete */
    LC_HELLO_SENT, /* dialer: WELCOME */
    LC_AUTH_SENT,  /* dialer: OK (the acceptor checks our proof first) */
    LC_WELCOMED,   /* acceptor: AUTH */
    LC_UP,         /* nothing: AT lines, heartbeats and resync flow both ways */
};

/* Accepted handshakes one neighbour may have in progress at once; past it
 * the oldest goes. */
#define LINK_PENDING_MAX 4

/* Traffic of a live link since its last summary line (log_link_summary). */
struct link_traffic {
    uint64_t lines_in, bytes_in, at_in;
    uint64_t lines_out, bytes_out, at_out;
};

/* "link NAME" once proved (or dialled by us), "link from ADDR (claims NAME)"
 * before: a stranger's words are never logged under a neighbour's name. */
#define LINK_LABEL_MAX (LINK_NAME_MAX + 96)

struct lconn {
    struct link *l;
    char label[LINK_LABEL_MAX];
    struct link_traffic sum;
    double t0; /* when its handshake began */
    struct conn *c;
    enum lc_state state;
    int dialled;     /* this side dialled it */
    const char *why; /* set before a deliberate close, for the log */
    char nonce_d[LINK_NONCE_HEX + 1];
    char nonce_a[LINK_NONCE_HEX + 1];
    /* resync dump to the neighbour (link_sync.c) */
    int dumping;
    size_t cursor;   /* next store record number to send */
    size_t dump_end; /* records held at link-up: later ones are flooded live */
    size_t out_recs, out_bytes;
    double out_t0;
    /* batches from the neighbour: its dump (SYNC) or what it learned in one
     * (RELAY); their records are logged as one summary, not one by one */
    uint64_t batch_left;  /* AT lines of the current batch still due (capped) */
    uint64_t batch_count; /* as announced, capped at max_clients */
    int batch_relay;      /* the current batch is a RELAY */
    int in_sync;          /* between the first SYNC and SYNCED */
    int synced;           /* the neighbour's dump has all arrived (SYNCED) */
    size_t in_recs, in_new, in_bytes;
    double in_t0;
    size_t rl_recs, rl_new, rl_bytes; /* the current RELAY batch */
    /* records learned in a resync, waiting to go to this neighbour as a RELAY */
    struct buf relay;
    size_t relay_n;
};

struct link {
    struct links *ls;
    const struct cfg_server *peer;
    int we_dial;      /* our name sorts first: we dial, it accepts */
    struct lconn *up; /* the live connection; NULL while down */
    struct lconn *hs; /* our own dial's handshake in progress; NULL if none */
    /* handshakes accepted from HELLOs naming this neighbour: several at once,
     * so a stranger's HELLO cannot push the real neighbour's out */
    struct lconn *pend[LINK_PENDING_MAX];
    struct conn *knock; /* our start-up knock while in flight */
    ev_timer redial;
    ev_timer ping;
    double backoff; /* next redial delay before jitter */
    double last_dial;
    double up_since;
    unsigned attempts; /* dials since the link was last up */
    /* the neighbour's host resolved: tried in order, again at every redial
     * so a neighbour that moves is found (links.c); for a neighbour that
     * dials us, where the start-up knock goes (link_knock.c) */
    int resolving;
    size_t naddr, addr_i;
    char addr[RES_MAX_ADDRS][RES_ADDR_MAX];
};

struct links {
    struct ev_loop *loop;
    struct conn_pool *pool;
    struct store *store;
    const struct cfg_herd *cfg;
    const struct cfg_server *self;
    struct links_hooks hooks;
    struct links_stats stats;
    struct log_limit store_warn; /* updates the store could not keep */
    struct link *v;              /* owned; one per configured neighbour */
    size_t n;
    uint64_t rng;              /* xorshift state for backoff jitter */
    ev_timer relay_timer;      /* sends staged RELAY batches next iteration */
    ev_timer summary_timer;    /* log_link_summary */
    struct log_limit odd_warn; /* lines a neighbour should not send */
    int stopping;              /* links_stop or links_free: no redials */
    struct res *res;           /* DNS for neighbours named by host name */
    struct log_limit res_warn; /* names that did not resolve */
};

/* link_base.c: this worker's name; the link to the neighbour NAME, or NULL. */
const char *link_self_name(const struct links *ls);
struct link *link_find(struct links *ls, struct proto_str name);

/* link_base.c: tells the layer above that a link changed (up, down, synced). */
void link_report(struct links *ls);

/* link_base.c: L's peer host resolved to R (ok): its addresses, to try
 * from the first; NEXT ("dialling", "knocking") is for the debug line. */
void link_take_addrs(struct link *l, const struct res_result *r, const char *next);

/* link_base.c: (re)starts L's redial timer to fire after DELAY seconds. */
void link_schedule_redial(struct link *l, double delay);

/* link_knock.c: knocks at the neighbour of L (we accept its link). */
void link_knock(struct link *l);

/* link_knock.c: a client conn's first line was KNOCK M; closes C. */
void link_got_knock(struct links *ls, struct conn *c, const struct link_msg *m);

/* link_base.c: logs a line sent or received at LEVEL, escaped, as
 * "LABEL DIR \"line\"" (LABEL: an lconn's label, say). */
void link_log_io(int level, const char *label, const char *dir, const char *line, size_t len);

/* link_base.c: LC's label for a proved link ("link NAME"). */
void link_label_proved(struct lconn *lc);

/* link_base.c: LC's label before proof: "link NAME" when we dialled the
 * configured address, else "link from ADDR (claims NAME)". */
void link_label_unproved(struct lconn *lc);

/* link_base.c: logs the reason of a REFUSED line from LC's peer, escaped. */
void link_log_refused(const struct lconn *lc, struct proto_str reason);

/* link_hs.c: the handshake's checks and refusals. */
/* Refuses the handshake on LC: logged at warn, REFUSED sent, then closed. */
void link_refuse(struct lconn *lc, const char *reason);
/* The same for a conn not adopted yet (a bad HELLO on the client port). */
void link_refuse_conn(struct links *ls, struct conn *c, const char *reason);
/* A dialler refused us (our certificate) before any HELLO: logged, closed. */
void link_refused_by_dialler(struct links *ls, struct conn *c, struct proto_str reason);
/* Checks the neighbour's proof; refuses and returns -1 when it is wrong. */
int link_check_proof(struct lconn *lc, const struct link_msg *m);
/* Sends our proof in a "HERD/1 VERB proof" line; -1 when LC closed. */
int link_send_proof(struct lconn *lc, const char *verb);
/* A HELLO on C claiming L came as link_tls wants; refuses and returns 0 if not. */
int link_tls_fits(struct links *ls, struct conn *c, const struct link *l);

/* link_base.c: logs LC's traffic summary if there was any, and resets it. */
void link_summary(struct lconn *lc, const char *when);

/* link_base.c: sends LINE (with its '\n') on a live link, counted in the
 * summary; AT says it is an AT line. Logged at debug. -1 when it closed. */
int link_send_line(struct lconn *lc, const char *line, size_t len, int at);

/* link_base.c: sends one control line (formatted, '\n' added) and logs it at LEVEL.
 * Returns -1 when the conn closed (LC may be freed by then). */
int link_send_ctl(struct lconn *lc, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* link_sync.c: stages REC (learned in a batch on FROM) for every other live
 * link; the relay timer sends them as RELAY batches. */
void link_relay(struct links *ls, const struct store_rec *rec, const struct conn *from);

/* link_sync.c: the relay timer's callback (sends every staged RELAY). */
void link_relay_flush_all(struct ev_loop *loop, ev_timer *t, int revents);

/* link_sync.c: a line on a live link. */
void link_up_line(struct lconn *lc, char *line, size_t len);

/* link_sync.c: starts the resync dump to the neighbour (link just came up). */
void link_resync_start(struct lconn *lc);

/* link_sync.c: the output queue fell under low water: queue the next batch. */
void link_resync_fill(struct lconn *lc);

#endif
