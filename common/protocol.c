/*
 * protocol: parses and formats the client lines of SPEC §4 (IAMAT, WHATSAT)
 * and the AT line servers answer with and flood. Every number is validated
 * and converted from its digit string by hand: fields are not NUL-terminated,
 * and range checks must be exact, which doubles and strtod cannot promise.
 * Nothing here allocates or does I/O.
 */
#include "protocol.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* AT has the most fields (6); one more slot tells "too many" from "exactly". */
#define MAX_FIELDS   6
#define NSEC_PER_SEC 1000000000
/* 18 digits always fit int64_t, so the time needs no overflow check. */
#define TIME_INT_DIGITS_MAX  18
#define TIME_FRAC_DIGITS_MAX 9
/* WHATSAT limits from SPEC §4. */
#define RADIUS_KM_MAX 50u
#define BOUND_MAX     20u

/* A decimal number "DIGITS[.DIGITS]" split into its two digit runs. */
struct decimal {
    const char *ip; /* integer digits */
    size_t ilen;
    const char *fp; /* fraction digits; never NULL, empty without a '.' */
    size_t flen;
    int has_dot;
};

/* SPEC §4 white space; '\n' is not in it because it ends the line. */
static int is_white(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static unsigned digit_val(char c)
{
    return (unsigned)(c - '0');
}

int proto_split(const char *line, size_t len, struct proto_str *f, int max, size_t field_max)
{
    int n = 0;
    size_t i = 0;

    while (n < max) {
        while (i < len && is_white((unsigned char)line[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !is_white((unsigned char)line[i]))
            i++;
        if (i - start > field_max)
            return -1;
        f[n].p = line + start;
        f[n].len = i - start;
        n++;
    }
    return n;
}

/*
 * At most MAX_FIELDS + 1 fields: stopping there is enough to know the line
 * has too many. A field over PROTO_FIELD_MAX makes the line invalid.
 */
static int split_fields(const char *line, size_t len, struct proto_str *f)
{
    return proto_split(line, len, f, MAX_FIELDS + 1, PROTO_FIELD_MAX);
}

static int field_is(struct proto_str f, const char *word)
{
    size_t wlen = strlen(word);

    return f.len == wlen && memcmp(f.p, word, wlen) == 0;
}

/*
 * Scans "DIGITS[.DIGITS]" at the start of S, both runs non-empty. Returns the
 * bytes consumed, or 0 when there is no such number there. A '.' not followed
 * by a digit makes the whole number invalid rather than ending it, so "34."
 * and "+34.-118" are rejected, not read as "34".
 */
static size_t scan_decimal(const char *s, size_t len, struct decimal *d)
{
    size_t i = 0;

    d->ip = d->fp = s;
    d->ilen = d->flen = 0;
    d->has_dot = 0;
    while (i < len && is_digit(s[i]))
        i++;
    if (i == 0)
        return 0;
    d->ilen = i;
    d->fp = s + i;
    if (i == len || s[i] != '.')
        return i;
    i++;
    size_t fstart = i;
    while (i < len && is_digit(s[i]))
        i++;
    if (i == fstart)
        return 0;
    d->fp = s + fstart;
    d->flen = i - fstart;
    d->has_dot = 1;
    return i;
}

/* Is all of S (non-empty) one decimal number? 1 if so, with D filled. */
static int is_decimal(const char *s, size_t len, struct decimal *d)
{
    size_t n = scan_decimal(s, len, d);

    return n > 0 && n == len;
}

/* Skips leading zeros so huge but zero-padded numbers compare correctly. */
static void strip_zeros(const char **p, size_t *len)
{
    while (*len > 0 && **p == '0') {
        (*p)++;
        (*len)--;
    }
}

static int all_zeros(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != '0')
            return 0;
    return 1;
}

/*
 * Is |D| <= LIMIT (LIMIT < 1000)? Decided on the digits alone: any number of
 * leading zeros or fraction digits works, and nothing can overflow.
 */
static int decimal_le(const struct decimal *d, unsigned limit)
{
    const char *p = d->ip;
    size_t n = d->ilen;
    unsigned v = 0;

    strip_zeros(&p, &n);
    if (n > 3)
        return 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + digit_val(p[i]);
    if (v != limit)
        return v < limit;
    return all_zeros(d->fp, d->flen);
}

/* Scans "±DIGITS[.DIGITS]" within [-LIMIT, LIMIT]; returns bytes used or 0. */
static size_t scan_coord(const char *s, size_t len, unsigned limit)
{
    struct decimal d;

    if (len == 0 || (s[0] != '+' && s[0] != '-'))
        return 0;
    size_t n = scan_decimal(s + 1, len - 1, &d);
    if (n == 0 || !decimal_le(&d, limit))
        return 0;
    return n + 1;
}

int proto_parse_location(const char *s, size_t len, struct proto_str *lat, struct proto_str *lng)
{
    if (s == NULL)
        return -1;
    size_t a = scan_coord(s, len, 90);
    if (a == 0)
        return -1;
    size_t b = scan_coord(s + a, len - a, 180);
    if (b == 0 || a + b != len)
        return -1;
    if (lat != NULL) {
        lat->p = s;
        lat->len = a;
    }
    if (lng != NULL) {
        lng->p = s + a;
        lng->len = b;
    }
    return 0;
}

int proto_parse_time(const char *s, size_t len, struct proto_time *t)
{
    struct decimal d;
    int64_t sec = 0;
    int32_t nsec = 0;

    if (s == NULL || !is_decimal(s, len, &d))
        return -1;
    if (d.ilen > TIME_INT_DIGITS_MAX || d.flen > TIME_FRAC_DIGITS_MAX)
        return -1;
    for (size_t i = 0; i < d.ilen; i++)
        sec = sec * 10 + (int64_t)digit_val(d.ip[i]);
    /* Right-pad the fraction to nanoseconds: ".5" is 500000000 ns. */
    for (size_t i = 0; i < TIME_FRAC_DIGITS_MAX; i++)
        nsec = nsec * 10 + (int32_t)(i < d.flen ? digit_val(d.fp[i]) : 0);
    if (t != NULL) {
        t->sec = sec;
        t->nsec = nsec;
    }
    return 0;
}

/*
 * WHATSAT radius: "DIGITS[.DIGITS]" km, 0 < r <= 50. Converted to metres
 * * 1000 from the digits; digits past the micro-kilometre are dropped, but a
 * positive radius never becomes 0, which callers would read as "no radius".
 */
static int parse_radius(struct proto_str f, uint32_t *milli)
{
    struct decimal d;
    uint32_t v = 0;

    if (!is_decimal(f.p, f.len, &d) || !decimal_le(&d, RADIUS_KM_MAX))
        return -1;
    if (all_zeros(d.ip, d.ilen) && all_zeros(d.fp, d.flen))
        return -1;
    /* decimal_le bounded the value, so leading zeros keep v from overflowing. */
    for (size_t i = 0; i < d.ilen; i++)
        v = v * 10 + digit_val(d.ip[i]);
    for (size_t i = 0; i < 6; i++)
        v = v * 10 + (i < d.flen ? digit_val(d.fp[i]) : 0);
    *milli = v == 0 ? 1 : v;
    return 0;
}

/* WHATSAT bound: an integer 0..20, leading zeros allowed. */
static int parse_bound(struct proto_str f, unsigned *bound)
{
    struct decimal d;
    unsigned v = 0;

    if (!is_decimal(f.p, f.len, &d) || d.has_dot)
        return -1;
    if (!decimal_le(&d, BOUND_MAX))
        return -1;
    /* Bounded above, so however many leading zeros, v stays <= 20. */
    for (size_t i = 0; i < d.ilen; i++)
        v = v * 10 + digit_val(d.ip[i]);
    *bound = v;
    return 0;
}

/* AT time diff: "±DIGITS.DDDDDDDDD", as proto_format_diff prints it. */
static int valid_diff(struct proto_str f)
{
    struct decimal d;

    if (f.len < 2 || (f.p[0] != '+' && f.p[0] != '-'))
        return -1;
    if (!is_decimal(f.p + 1, f.len - 1, &d) || d.flen != 9)
        return -1;
    return 0;
}

/* Fills the location and time shared by IAMAT and AT; 0 when both are valid. */
static int parse_loc_time(struct proto_str loc, struct proto_str when, struct proto_msg *msg)
{
    if (proto_parse_location(loc.p, loc.len, NULL, NULL) != 0)
        return -1;
    if (proto_parse_time(when.p, when.len, &msg->t) != 0)
        return -1;
    msg->loc = loc;
    msg->time = when;
    return 0;
}

static enum proto_kind parse_fields(const struct proto_str *f, int n, struct proto_msg *msg)
{
    if (n == 4 && field_is(f[0], "IAMAT")) {
        if (parse_loc_time(f[2], f[3], msg) != 0)
            return PROTO_INVALID;
        msg->id = f[1];
        return PROTO_IAMAT;
    }
    if (n == 4 && field_is(f[0], "WHATSAT")) {
        if (parse_radius(f[2], &msg->radius_m_milli) != 0 || parse_bound(f[3], &msg->bound) != 0)
            return PROTO_INVALID;
        msg->id = f[1];
        msg->radius = f[2];
        return PROTO_WHATSAT;
    }
    if (n == 6 && field_is(f[0], "AT")) {
        if (valid_diff(f[2]) != 0 || parse_loc_time(f[4], f[5], msg) != 0)
            return PROTO_INVALID;
        msg->server = f[1];
        msg->diff = f[2];
        msg->id = f[3];
        return PROTO_AT;
    }
    return PROTO_INVALID;
}

enum proto_kind proto_parse(const char *line, size_t len, struct proto_msg *msg)
{
    struct proto_str f[MAX_FIELDS + 1];
    int n;

    memset(msg, 0, sizeof *msg);
    if (line == NULL)
        len = 0;
    n = split_fields(line, len, f);
    if (n == 0)
        msg->kind = PROTO_EMPTY;
    else if (n < 0)
        msg->kind = PROTO_INVALID;
    else
        msg->kind = parse_fields(f, n, msg);
    /* Half-filled fields of a rejected line must not be mistaken for data. */
    if (msg->kind == PROTO_INVALID || msg->kind == PROTO_EMPTY) {
        enum proto_kind kind = msg->kind;
        memset(msg, 0, sizeof *msg);
        msg->kind = kind;
    }
    return msg->kind;
}

int proto_time_cmp(struct proto_time a, struct proto_time b)
{
    if (a.sec != b.sec)
        return a.sec < b.sec ? -1 : 1;
    if (a.nsec != b.nsec)
        return a.nsec < b.nsec ? -1 : 1;
    return 0;
}

static int time_ok(struct proto_time t)
{
    return t.sec >= 0 && t.nsec >= 0 && t.nsec < NSEC_PER_SEC;
}

/* snprintf's result as this module's convention: length, or -1 if cut. */
static int fit(int n, size_t size)
{
    return n < 0 || (size_t)n >= size ? -1 : n;
}

/*
 * Writes SIGN WHOLE "." FRAC(9 digits) by hand: this runs for every IAMAT and
 * snprintf was a fifth of a request's instructions (docs/bench.md).
 */
static int put_diff(int neg, uint64_t whole, uint32_t frac, char *buf, size_t size)
{
    char digits[20];
    size_t nd = 0, o = 0;
    do {
        digits[nd++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole > 0);
    if (size < nd + 12)
        return -1;
    buf[o++] = neg ? '-' : '+';
    while (nd > 0)
        buf[o++] = digits[--nd];
    buf[o++] = '.';
    for (size_t i = 9; i-- > 0;) {
        buf[o + i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    o += 9;
    buf[o] = '\0';
    return (int)o;
}

int proto_format_diff(struct proto_time now, struct proto_time client, char *buf, size_t size)
{
    /* Outside the struct's contract the arithmetic below could overflow. */
    if (!time_ok(now) || !time_ok(client) || buf == NULL)
        return -1;
    int64_t sec = now.sec - client.sec;
    int32_t nsec = now.nsec - client.nsec;

    /* Give both parts the same sign so the magnitude prints as S.NNNNNNNNN. */
    if (sec > 0 && nsec < 0) {
        sec--;
        nsec += NSEC_PER_SEC;
    } else if (sec < 0 && nsec > 0) {
        sec++;
        nsec -= NSEC_PER_SEC;
    }
    int neg = sec < 0 || nsec < 0;
    return put_diff(neg, (uint64_t)(neg ? -sec : sec), (uint32_t)(neg ? -nsec : nsec), buf, size);
}

int proto_at_origin(const struct proto_msg *at, struct proto_time *origin)
{
    struct proto_time d;
    struct proto_str f = at->diff;
    /* valid_diff() held at parse time: a sign, digits, '.', 9 digits. */
    if (f.len < 2 || proto_parse_time(f.p + 1, f.len - 1, &d) < 0 || !time_ok(at->t))
        return -1;
    int64_t sec;
    int32_t nsec;
    if (f.p[0] == '+') {
        sec = at->t.sec + d.sec; /* both < 10^18: no overflow */
        nsec = at->t.nsec + d.nsec;
        if (nsec >= NSEC_PER_SEC) {
            sec++;
            nsec -= NSEC_PER_SEC;
        }
    } else {
        sec = at->t.sec - d.sec;
        nsec = at->t.nsec - d.nsec;
        if (nsec < 0) {
            sec--;
            nsec += NSEC_PER_SEC;
        }
    }
    if (sec < 0 || sec > 999999999999999999LL)
        return -1;
    *origin = (struct proto_time){sec, nsec};
    return 0;
}

/*
 * Appends LEN bytes with memcpy rather than a %.*s format: a client ID may hold a
 * NUL byte (SPEC §4: any non-white character), and it must be copied too.
 */
static int append(char *buf, size_t size, size_t *pos, const char *s, size_t len)
{
    if (len >= size - *pos)
        return -1;
    memcpy(buf + *pos, s, len);
    *pos += len;
    buf[*pos] = '\0';
    return 0;
}

static int append_field(char *buf, size_t size, size_t *pos, struct proto_str f)
{
    /* An empty field would shift the others: the line would not parse back. */
    if (f.p == NULL || f.len == 0)
        return -1;
    if (append(buf, size, pos, " ", 1) != 0)
        return -1;
    return append(buf, size, pos, f.p, f.len);
}

/* A server name must be one field, or the AT line would not parse back. */
static int valid_server(const char *server, size_t len)
{
    if (len == 0 || len > PROTO_FIELD_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (is_white((unsigned char)server[i]))
            return 0;
    return 1;
}

int proto_format_at(const char *server, const struct proto_msg *iamat, struct proto_time now,
                    char *buf, size_t size)
{
    char diff[48];
    size_t pos = 0;

    if (server == NULL || iamat == NULL || iamat->kind != PROTO_IAMAT || buf == NULL || size == 0 ||
        size > INT_MAX)
        return -1;
    buf[0] = '\0';
    int dlen = proto_format_diff(now, iamat->t, diff, sizeof diff);
    if (dlen < 0)
        return -1;
    struct proto_str srv = {server, strlen(server)};
    if (!valid_server(srv.p, srv.len))
        return -1;
    struct proto_str dif = {diff, (size_t)dlen};
    if (append(buf, size, &pos, "AT", 2) != 0 || append_field(buf, size, &pos, srv) != 0 ||
        append_field(buf, size, &pos, dif) != 0 || append_field(buf, size, &pos, iamat->id) != 0 ||
        append_field(buf, size, &pos, iamat->loc) != 0 ||
        append_field(buf, size, &pos, iamat->time) != 0) {
        buf[0] = '\0'; /* a cut line must not look like a whole one */
        return -1;
    }
    return (int)pos;
}

int proto_format_radius_m(uint32_t radius_m_milli, char *buf, size_t size)
{
    uint32_t whole = radius_m_milli / 1000;
    uint32_t frac = radius_m_milli % 1000;
    int width = 3;

    if (buf == NULL)
        return -1;
    if (frac == 0)
        return fit(snprintf(buf, size, "%" PRIu32, whole), size);
    /* Drop the fraction's trailing zeros: 1500500 is "1500.5". */
    while (frac % 10 == 0) {
        frac /= 10;
        width--;
    }
    return fit(snprintf(buf, size, "%" PRIu32 ".%0*" PRIu32, whole, width, frac), size);
}
