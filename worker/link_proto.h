/*
 * link_proto: the control lines of the neighbour-link protocol (docs/
 * link-protocol.md), "HERD/1 VERB ARGS...". Pure functions over byte ranges:
 * no allocation, no I/O, so the parser can be fuzzed on its own. AT lines
 * are not parsed here (protocol.h owns them).
 */
#ifndef HERD_LINK_PROTO_H
#define HERD_LINK_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

#define LINK_VERSION     "HERD/1"
#define LINK_NAME_MAX    64 /* server names, as the config allows them */
#define LINK_NONCE_BYTES 16
#define LINK_NONCE_HEX   32  /* 2 * LINK_NONCE_BYTES hex digits */
#define LINK_PROOF_HEX   64  /* hex HMAC-SHA256 */
#define LINK_REASON_MAX  128 /* REFUSED reasons are cut to this */
#define LINK_COUNT_MAX   1000000000000ULL

enum link_kind {
    LINK_MSG_NONE = 0, /* not a "HERD/" line at all (an AT line, say) */
    LINK_MSG_INVALID,  /* "HERD/1 ..." with a known verb but bad arguments */
    LINK_MSG_VERSION,  /* "HERD/N ..." for a version this build does not speak */
    LINK_MSG_UNKNOWN,  /* "HERD/1 VERB ..." with a verb this build does not know */
    LINK_MSG_HELLO,    /* HELLO dialer target nonce_d */
    LINK_MSG_WELCOME,  /* WELCOME acceptor nonce_a */
    LINK_MSG_AUTH,     /* AUTH proof_d */
    LINK_MSG_OK,       /* OK proof_a */
    LINK_MSG_REFUSED,  /* REFUSED reason... */
    LINK_MSG_KNOCK,    /* KNOCK from to: "I just started, dial me" */
    LINK_MSG_PING,
    LINK_MSG_PONG,
    LINK_MSG_SYNC,   /* SYNC n: the next n lines are resync records */
    LINK_MSG_SYNCED, /* SYNCED n: the resync dump of n records is complete */
    LINK_MSG_RELAY,  /* RELAY n: the next n lines are records learned in a resync */
};

/* Fields point into the parsed line; unused ones are empty. */
struct link_msg {
    enum link_kind kind;
    struct proto_str verb;   /* the word after "HERD/N", whatever the kind */
    struct proto_str name;   /* HELLO: dialer; WELCOME: acceptor; KNOCK: from */
    struct proto_str target; /* HELLO, KNOCK: the server addressed */
    struct proto_str nonce;  /* HELLO, WELCOME */
    struct proto_str proof;  /* AUTH, OK: LINK_PROOF_HEX hex digits or "-" */
    struct proto_str reason; /* REFUSED: the rest of the line, trimmed */
    uint64_t count;          /* SYNC, SYNCED, RELAY */
};

/* Room for any AT line proto_parse accepts, rebuilt by link_at_canon, plus
 * its '\n': six fields of at most PROTO_FIELD_MAX and five spaces. */
#define LINK_AT_BUF ((size_t)6 * PROTO_FIELD_MAX + 8)

/* Parses one line (without '\n'; a trailing '\r' or blanks are allowed). */
enum link_kind link_parse(const char *line, size_t len, struct link_msg *m);

/*
 * Rebuilds the AT line M (as parsed by proto_parse) with single spaces into
 * BUF (NUL terminated), so what a worker stores and floods on does not depend
 * on a neighbour's white space. Sets *id to the client ID inside BUF.
 * Returns the length, or -1 when it does not fit in SIZE.
 */
int link_at_canon(const struct proto_msg *m, char *buf, size_t size, struct proto_str *id);

/* Nonzero when S is a valid server name: 1..LINK_NAME_MAX of [A-Za-z0-9_.-]. */
int link_name_ok(const char *s, size_t len);

/* Nonzero when the field equals the NUL-terminated string Z. */
int link_str_is(struct proto_str f, const char *z);

#endif
