/*
 * protocol: the client line protocol of SPEC §4 (IAMAT, WHATSAT) and the AT
 * line that servers reply with and flood. Pure functions over byte ranges:
 * no allocation, no I/O. Times are exact integer seconds and nanoseconds.
 */
#ifndef HERD_PROTOCOL_H
#define HERD_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

/* A POSIX time held exactly: sec >= 0, 0 <= nsec < 1e9. */
struct proto_time {
    int64_t sec;
    int32_t nsec;
};

/* A field of the line: points into the caller's buffer, not NUL-terminated. */
struct proto_str {
    const char *p;
    size_t len;
};

enum proto_kind {
    PROTO_EMPTY = 0, /* empty or all white space: ignore */
    PROTO_INVALID,   /* answer "? " + the line */
    PROTO_IAMAT,
    PROTO_WHATSAT,
    PROTO_AT, /* a flooded AT line (valid only on neighbour links) */
};

struct proto_msg {
    enum proto_kind kind;
    struct proto_str id;     /* IAMAT, WHATSAT, AT: client ID */
    struct proto_str loc;    /* IAMAT, AT: location as sent */
    struct proto_str time;   /* IAMAT, AT: client time as sent */
    struct proto_time t;     /* IAMAT, AT: client time parsed */
    struct proto_str server; /* AT: server that received the IAMAT */
    struct proto_str diff;   /* AT: time diff as printed */
    struct proto_str radius; /* WHATSAT: radius in km as sent */
    uint32_t radius_m_milli; /* WHATSAT: radius in metres * 1000 (exact) */
    unsigned bound;          /* WHATSAT: 0..20 */
};

/* Longest field herd accepts (client ID, location, time, server name). */
#define PROTO_FIELD_MAX 256
/* Longest time field: 18 integer digits, '.', 9 fraction digits. */
#define PROTO_TIME_MAX 28
/* Room for an AT line made by proto_format_at (with fields at their maximum). */
#define PROTO_AT_MAX (3 + PROTO_FIELD_MAX * 4 + 2 * 32)

/*
 * Parses one line (without its '\n'; a trailing '\r' and any white space are
 * allowed). Fields of *msg point into LINE. Returns msg->kind.
 */
enum proto_kind proto_parse(const char *line, size_t len, struct proto_msg *msg);

/*
 * Splits LINE at SPEC §4 white space into at most MAX fields (F holds MAX);
 * returns the count (MAX means "MAX or more"), or -1 when a field is longer
 * than FIELD_MAX. Shared by the client and the neighbour-link parsers.
 */
int proto_split(const char *line, size_t len, struct proto_str *f, int max, size_t field_max);

/* Parses "SECONDS[.FRACTION]" (0..9 fraction digits, at most 18 integer digits). */
int proto_parse_time(const char *s, size_t len, struct proto_time *t);

/*
 * Validates an ISO 6709 location "+DD.DDD-DDD.DDD" (both signs mandatory,
 * latitude in [-90, 90], longitude in [-180, 180], inclusive and exact) and
 * splits it into its latitude and longitude strings (with their signs).
 */
int proto_parse_location(const char *s, size_t len, struct proto_str *lat, struct proto_str *lng);

/* -1, 0, 1 as a is older than, the same as, newer than b. */
int proto_time_cmp(struct proto_time a, struct proto_time b);

/*
 * Writes "+S.NNNNNNNNN" or "-S.NNNNNNNNN" for now - client into buf (NUL
 * terminated). Returns the length, or -1 when it does not fit.
 */
int proto_format_diff(struct proto_time now, struct proto_time client, char *buf, size_t size);

/*
 * Writes "AT SERVER DIFF ID LOC TIME" (no newline, NUL terminated) for an
 * IAMAT received at NOW. Returns the length, or -1 when it does not fit.
 */
int proto_format_at(const char *server, const struct proto_msg *iamat, struct proto_time now,
                    char *buf, size_t size);

/*
 * The moment the origin server received the IAMAT behind an AT line: the
 * client time plus the diff (exact integers), so every server of the herd
 * derives the same instant from the line alone (SPEC §5 client records).
 * AT must be a parsed PROTO_AT. Returns 0, or -1 when the sum is before the
 * epoch or past 18 integer digits (only a forged diff can do that).
 */
int proto_at_origin(const struct proto_msg *at, struct proto_time *origin);

/*
 * Writes the radius in metres as a decimal string ("10000", "1500.5") into
 * buf. Returns the length, or -1 when it does not fit.
 */
int proto_format_radius_m(uint32_t radius_m_milli, char *buf, size_t size);

#endif
