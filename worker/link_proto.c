/*
 * link_proto: parses "HERD/1 VERB ARGS..." control lines. Strict about the
 * shape of every argument (names, hex nonces and proofs, counts) so the
 * state machine in links.c only ever sees well-formed values; lenient about
 * white space so a "\r\n" peer still works.
 */
#include "link_proto.h"

#include <stdint.h>
#include <string.h>

#define MAX_FIELDS 6 /* version, verb, up to three arguments, one more to catch excess */

static int is_white(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int link_str_is(struct proto_str f, const char *z)
{
    size_t n = strlen(z);
    return f.len == n && memcmp(f.p, z, n) == 0;
}

int link_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > LINK_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

static int hex_ok(struct proto_str f, size_t want)
{
    if (f.len != want)
        return 0;
    for (size_t i = 0; i < f.len; i++)
        if (!is_lower_hex(f.p[i]))
            return 0;
    return 1;
}

static int proof_ok(struct proto_str f)
{
    return link_str_is(f, "-") || hex_ok(f, LINK_PROOF_HEX);
}

/* A decimal count without sign or leading junk, at most LINK_COUNT_MAX. */
static int count_ok(struct proto_str f, uint64_t *out)
{
    uint64_t v = 0;
    if (f.len == 0 || f.len > 13)
        return 0;
    for (size_t i = 0; i < f.len; i++) {
        if (f.p[i] < '0' || f.p[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(f.p[i] - '0');
    }
    if (v > LINK_COUNT_MAX)
        return 0;
    *out = v;
    return 1;
}

/* At most MAX_FIELDS fields (MAX_FIELDS means "that many or more"); a link's
 * lines are bounded by LINK_MAX_LINE, so no field limit of its own. */
static int split(const char *line, size_t len, struct proto_str *f)
{
    return proto_split(line, len, f, MAX_FIELDS, SIZE_MAX);
}

/* The rest of the line after field F, without surrounding white space. */
static struct proto_str rest_after(const char *line, size_t len, struct proto_str f)
{
    size_t i = (size_t)(f.p - line) + f.len;
    while (i < len && is_white((unsigned char)line[i]))
        i++;
    size_t end = len;
    while (end > i && is_white((unsigned char)line[end - 1]))
        end--;
    return (struct proto_str){line + i, end - i};
}

static enum link_kind parse_hello(const struct proto_str *f, int n, struct link_msg *m)
{
    if (n != 5)
        return LINK_MSG_INVALID;
    if (!link_name_ok(f[2].p, f[2].len) || !link_name_ok(f[3].p, f[3].len) ||
        !hex_ok(f[4], LINK_NONCE_HEX))
        return LINK_MSG_INVALID;
    m->name = f[2];
    m->target = f[3];
    m->nonce = f[4];
    return LINK_MSG_HELLO;
}

static const char *const COUNTED[] = {"SYNC", "SYNCED", "RELAY"};
static const enum link_kind COUNTED_KIND[] = {LINK_MSG_SYNC, LINK_MSG_SYNCED, LINK_MSG_RELAY};

/* "VERB n" lines; LINK_MSG_NONE when V is not one of their verbs. */
static enum link_kind parse_counted(const struct proto_str *f, int n, struct link_msg *m)
{
    for (size_t i = 0; i < sizeof COUNTED / sizeof COUNTED[0]; i++) {
        if (!link_str_is(f[1], COUNTED[i]))
            continue;
        if (n == 3 && count_ok(f[2], &m->count))
            return COUNTED_KIND[i];
        return LINK_MSG_INVALID;
    }
    return LINK_MSG_NONE;
}

/* Verbs with fixed arguments: WELCOME, AUTH, OK, KNOCK, PING, PONG. */
static enum link_kind parse_verb(const struct proto_str *f, int n, struct link_msg *m)
{
    struct proto_str v = f[1];
    if (link_str_is(v, "WELCOME") && n == 4 && link_name_ok(f[2].p, f[2].len) &&
        hex_ok(f[3], LINK_NONCE_HEX)) {
        m->name = f[2];
        m->nonce = f[3];
        return LINK_MSG_WELCOME;
    }
    if ((link_str_is(v, "AUTH") || link_str_is(v, "OK")) && n == 3 && proof_ok(f[2])) {
        m->proof = f[2];
        return link_str_is(v, "AUTH") ? LINK_MSG_AUTH : LINK_MSG_OK;
    }
    if (link_str_is(v, "KNOCK") && n == 4 && link_name_ok(f[2].p, f[2].len) &&
        link_name_ok(f[3].p, f[3].len)) {
        m->name = f[2];
        m->target = f[3];
        return LINK_MSG_KNOCK;
    }
    if (link_str_is(v, "PING") && n == 2)
        return LINK_MSG_PING;
    if (link_str_is(v, "PONG") && n == 2)
        return LINK_MSG_PONG;
    enum link_kind k = parse_counted(f, n, m);
    if (k != LINK_MSG_NONE)
        return k;
    if (link_str_is(v, "WELCOME") || link_str_is(v, "AUTH") || link_str_is(v, "OK") ||
        link_str_is(v, "KNOCK") || link_str_is(v, "PING") || link_str_is(v, "PONG"))
        return LINK_MSG_INVALID;
    return LINK_MSG_UNKNOWN;
}

enum link_kind link_parse(const char *line, size_t len, struct link_msg *m)
{
    struct proto_str f[MAX_FIELDS];
    memset(m, 0, sizeof *m);
    if (line == NULL)
        len = 0;
    /* Most lines on a link are AT lines: tell them apart before splitting. */
    size_t i = 0;
    while (i < len && is_white((unsigned char)line[i]))
        i++;
    if (len - i < 5 || memcmp(line + i, "HERD/", 5) != 0)
        return m->kind = LINK_MSG_NONE;
    int n = split(line, len, f);
    if (n >= 2)
        m->verb = f[1];
    if (!link_str_is(f[0], LINK_VERSION))
        return m->kind = LINK_MSG_VERSION;
    if (n < 2)
        return m->kind = LINK_MSG_INVALID;
    if (link_str_is(f[1], "REFUSED")) {
        struct proto_str r = rest_after(line, len, f[1]);
        m->reason = (struct proto_str){r.p, r.len > LINK_REASON_MAX ? LINK_REASON_MAX : r.len};
        return m->kind = LINK_MSG_REFUSED;
    }
    if (link_str_is(f[1], "HELLO"))
        m->kind = parse_hello(f, n, m);
    else
        m->kind = parse_verb(f, n, m);
    if (m->kind == LINK_MSG_INVALID) { /* no half-filled fields */
        struct proto_str verb = m->verb;
        memset(m, 0, sizeof *m);
        m->kind = LINK_MSG_INVALID;
        m->verb = verb;
    }
    return m->kind;
}

static int put(char *buf, size_t size, size_t *pos, struct proto_str f, char sep)
{
    if (*pos + f.len + 1 > size)
        return -1;
    memcpy(buf + *pos, f.p, f.len);
    *pos += f.len;
    buf[(*pos)++] = sep;
    return 0;
}

int link_at_canon(const struct proto_msg *m, char *buf, size_t size, struct proto_str *id)
{
    static const struct proto_str at = {"AT", 2};
    size_t pos = 0;
    if (m->kind != PROTO_AT || put(buf, size, &pos, at, ' ') < 0 ||
        put(buf, size, &pos, m->server, ' ') < 0 || put(buf, size, &pos, m->diff, ' ') < 0)
        return -1;
    id->p = buf + pos;
    id->len = m->id.len;
    if (put(buf, size, &pos, m->id, ' ') < 0 || put(buf, size, &pos, m->loc, ' ') < 0 ||
        put(buf, size, &pos, m->time, '\0') < 0)
        return -1;
    return (int)pos - 1;
}
