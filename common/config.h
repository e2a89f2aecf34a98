/*
 * config: reads the herd's INI file (inih) into a validated, immutable
 * description of the herd. Owns every default and every validation rule of
 * SPEC §3; nothing else in herd looks at the file. Links are undirected: a
 * peer named on either side appears in both servers' peer lists.
 */
#ifndef HERD_CONFIG_H
#define HERD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* What a reload does when a key changes (see config_keys.c). */
enum cfg_kclass {
    CFG_K_LIVE = 1,    /* copied into running workers by cfg_apply_live */
    CFG_K_RESTART = 2, /* the workers restart (a rolling restart) */
    CFG_K_SUP = 4,     /* only the supervisor reads it */
};

/* places_api = new | legacy: which Google API answers WHATSAT (SPEC §4). */
enum cfg_places_api { CFG_PLACES_NEW = 0, CFG_PLACES_LEGACY };

/* link_tls = off | psk | cert: how links are protected (SPEC §5). */
enum cfg_link_tls { CFG_TLS_OFF = 0, CFG_TLS_PSK, CFG_TLS_CERT };

struct cfg_server {
    char *name;    /* owned; non-empty, no white space */
    char *host;    /* owned; listen and dial address, default 127.0.0.1 */
    char *node;    /* owned; NULL when not set */
    uint16_t port; /* 1..65535 */
    /* owned, absolute; this server's tls_ca / tls_cert / tls_key, its own
     * section's or else [herd]'s; NULL when neither sets it */
    char *tls_ca, *tls_cert, *tls_key;
    size_t *peers; /* owned; indices into cfg_herd.servers, sorted, unique */
    size_t npeers;
    int line; /* line of its [server NAME] header, for messages */
};

struct cfg_herd {
    char *path;               /* owned; absolute path of the file read */
    char *dir;                /* owned; its folder: relative paths resolve here */
    char *log_dir;            /* owned; absolute */
    char *run_dir;            /* owned; absolute */
    char *node;               /* owned; [herd] node, NULL when not set */
    char *secret;             /* owned; NULL when links are not authenticated */
    char *secret_previous;    /* owned; also accepted from neighbours (a rotation), or NULL */
    enum log_level log_level; /* log_level = error|warn|info|debug (info) */

    /* clients */
    size_t max_line;          /* max_line_length, bytes without "\n" (4096) */
    size_t max_connections;   /* client connections per worker; links not counted (10000) */
    size_t client_output_max; /* bytes queued to one client before it is closed (1 MiB) */
    double idle_timeout;      /* seconds a client may stay silent (300) */
    size_t max_clients;       /* distinct client IDs stored per worker (10 000 000) */
    double client_ttl; /* a record lives this long after its origin got it; 0: forever (24h) */
    size_t max_store_memory; /* bytes of records + index per worker before eviction (1 GiB) */
    double stop_drain;       /* graceful stop: at most this long to write what is owed (1) */

    /* persistence */
    char *state_dir;          /* owned; absolute; NULL: no snapshots */
    double snapshot_interval; /* seconds between snapshots when changed (10) */

    /* logs */
    double log_link_summary; /* seconds between per-link traffic summaries at info (10) */

    /* links */
    size_t link_queue_max;      /* bytes queued to one neighbour before the link drops (64 MiB) */
    double link_backoff_min;    /* redial backoff, seconds (0.05) */
    double link_backoff_max;    /* (2) */
    double link_ping_interval;  /* (1) */
    double link_timeout;        /* silence that kills a link (5) */
    enum cfg_link_tls link_tls; /* link_tls = off | psk | cert (off) */
    char *tls_ca;               /* owned; absolute; [herd] defaults of the server keys */
    char *tls_cert;             /* owned; absolute */
    char *tls_key;              /* owned; absolute */

    /* places */
    enum cfg_places_api places_api; /* places_api = new | legacy (new) */
    char *places_url;               /* owned; default: the chosen API's endpoint */
    char *places_fields;            /* owned; X-Goog-FieldMask of the New API */
    size_t places_max_rate;         /* upstream requests per second per worker, 0: no cap (2) */
    size_t places_max_per_day;      /* upstream requests per UTC day per worker, 0: no cap (1000) */
    char *places_key_file;          /* owned; absolute; NULL when not set */
    double places_timeout;          /* seconds (5) */
    double places_cache_ttl;        /* seconds, 0 disables the cache (60) */
    size_t places_cache_entries;    /* (10000) */
    size_t places_max_connections;  /* upstream connections (8) */
    size_t places_max_pending; /* distinct questions in flight before new ones fail fast (256) */
    size_t places_max_body;    /* bytes (4 MiB) */

    /* supervisor */
    double heartbeat_interval;  /* (1) */
    double heartbeat_timeout;   /* (5) */
    double restart_backoff_min; /* (0.1) */
    double restart_backoff_max; /* (30) */
    double restart_reset_after; /* uptime that resets the backoff (10) */
    double stop_timeout;        /* SIGTERM to SIGKILL (5) */

    struct cfg_server *servers; /* owned; in file order */
    size_t nservers;
};

/*
 * Reads and validates PATH. On success returns 0 and *out owns a new herd.
 * On failure returns -1 and writes "FILE:LINE: what is wrong" (or
 * "FILE: what is wrong" when no line applies) into err.
 */
int cfg_load(const char *path, struct cfg_herd **out, char *err, size_t errlen);

/* The same from a string; PATH names it in messages and anchors relative paths. */
int cfg_load_string(const char *text, const char *path, struct cfg_herd **out, char *err,
                    size_t errlen);

void cfg_free(struct cfg_herd *herd);

/* The server called NAME, or NULL. */
const struct cfg_server *cfg_find(const struct cfg_herd *herd, const char *name);

/* Index of the server called NAME, or -1. */
long cfg_index(const struct cfg_herd *herd, const char *name);

/*
 * Nonzero when server A of herd HA must be restarted to become server B of
 * herd HB on reload: its own settings, its peers (by name and address) or a
 * CFG_K_RESTART herd-wide key changed.
 */
int cfg_server_changed(const struct cfg_herd *ha, const struct cfg_server *a,
                       const struct cfg_herd *hb, const struct cfg_server *b);

/*
 * With link_tls = off and a server whose host is not a loopback address (a
 * name, or an address of the machine's network), the herd's links may cross
 * machines in plaintext (SPEC §5): that server, for a warning; else NULL.
 */
const struct cfg_server *cfg_plaintext_across_machines(const struct cfg_herd *h);

/* The [herd] keys, by index 0..cfg_nkeys()-1: name, class, and whether X and Y differ. */
size_t cfg_nkeys(void);
const char *cfg_key_name(size_t i);
enum cfg_kclass cfg_key_class(size_t i);
int cfg_key_differs(const struct cfg_herd *x, const struct cfg_herd *y, size_t i);

/* Nonzero when a [herd] key of a class in the mask CLASSES differs. */
int cfg_herd_differs(const struct cfg_herd *x, const struct cfg_herd *y, unsigned classes);

/*
 * Copies every CFG_K_LIVE value of NEXT into CUR, field by field (strings
 * duplicated), so that pointers to CUR stay valid. Returns 0, or -1 when out
 * of memory, and then CUR is unchanged.
 */
int cfg_apply_live(struct cfg_herd *cur, const struct cfg_herd *next);

/* "error", "warn", "info", "debug". */
const char *cfg_level_name(enum log_level level);

#endif
