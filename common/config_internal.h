/*
 * config_internal: what the files of the config module share and nobody else
 * sees. config.c reads lines and drives inih, config_keys.c knows every key,
 * config_check.c checks the file as a whole and compares servers,
 * config_value.c parses single values. Value parsers return NULL on success
 * or a short reason for the operator.
 */
#ifndef HERD_CONFIG_INTERNAL_H
#define HERD_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

#define CFGI_NKEYS 44 /* keys of [herd], see config_keys.c */

enum cfgi_sec { CFGI_SEC_NONE, CFGI_SEC_HERD, CFGI_SEC_SERVER };

/* Parse-time facts about one server, parallel to cfg_herd.servers. */
struct cfgi_srv {
    char *peers; /* owned copy of peers=, NULL when absent */
    int line_port, line_peers, line_host, line_node, line_ca, line_cert, line_key;
};

/* One load in progress. */
struct cfgi_state {
    struct cfg_herd *h;
    struct cfgi_srv *tmp; /* owned; parallel to h->servers */
    size_t cap;           /* room in h->servers and tmp */
    const char *file;     /* the path as given, for messages */
    FILE *fp;             /* the source: a file ... */
    const char *text;     /* ... or a string */
    size_t pos;
    int read_errno;
    int lineno; /* of the line being handled */
    enum cfgi_sec sec;
    size_t cur;    /* server index when sec is CFGI_SEC_SERVER */
    int herd_line; /* of [herd], 0 before it */
    int key_line[CFGI_NKEYS];
    char key_raw[CFGI_NKEYS][48];
    int failed;
    int err_line;
    char *err;
    size_t errlen;
};

/* Records "FILE:LINE: message" (LINE 0: "FILE: message"); the earliest line wins. */
void cfgi_fail(struct cfgi_state *st, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* config_keys.c */
void cfgi_set_defaults(struct cfg_herd *h);
void cfgi_section(struct cfgi_state *st, char *line);
void cfgi_herd_key(struct cfgi_state *st, const char *name, const char *value);
void cfgi_server_key(struct cfgi_state *st, const char *name, const char *value);
void cfgi_finish_herd(struct cfgi_state *st);

/* config_check.c: whole-file checks and the link table, after parsing. */
void cfgi_finish(struct cfgi_state *st);

/* config_value.c */
/* "5", "0.25", "250ms", "5s", "2m", "1h" -> seconds. */
const char *cfgv_duration(const char *s, double *out);

/* "4096", "64k", "1M" (binary units) -> bytes. */
const char *cfgv_size(const char *s, size_t *out);

/* A plain decimal integer. */
const char *cfgv_count(const char *s, size_t *out);

/* A decimal integer 1..65535. */
const char *cfgv_port(const char *s, uint16_t *out);

/* error|warn|info|debug (case-insensitive; "warning" too). */
const char *cfgv_level(const char *s, enum log_level *out);

/* new|legacy (case-insensitive). */
const char *cfgv_places_api(const char *s, enum cfg_places_api *out);
const char *cfgv_link_tls(const char *s, enum cfg_link_tls *out);

/* Printable ASCII, no control bytes (a field mask, say). Nonzero when valid. */
int cfgv_text_ok(const char *s);

/* Server and node names: 1..64 of [A-Za-z0-9_.-]. Nonzero when valid. */
int cfgv_name_ok(const char *s);

/* A host name or IPv4/IPv6 literal, 1..255 of [A-Za-z0-9_.:%-]. */
int cfgv_host_ok(const char *s);

/* http:// or https:// followed by printable non-blank characters. */
int cfgv_url_ok(const char *s);

/*
 * P made absolute against DIR (absolute, no trailing '/' but for "/"):
 * leading "./" and "../" are folded into DIR, trailing '/' dropped.
 * Returns a new string or NULL when out of memory.
 */
char *cfgv_resolve(const char *dir, const char *p);

/*
 * Splits PATH into an absolute folder *dir and absolute file path *abs (both
 * new). With must_exist the folder goes through realpath(); otherwise a
 * relative folder is anchored at getcwd(). Returns 0, or -1 with errno set.
 */
int cfgv_split_path(const char *path, int must_exist, char **dir, char **abs);

#endif
