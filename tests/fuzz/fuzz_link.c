/*
 * libFuzzer target for worker/link_proto.c and worker/link_auth.c: the
 * lines a neighbour (or anyone dialling a worker's port) can send on a link.
 * Each input is split into lines as a conn would. Beyond "no crash", it
 * checks what links.c relies on: fields lie inside the line and have the
 * documented shape, a parsed control line printed back canonically parses
 * to the same thing, a canonical AT line fits LINK_AT_BUF and parses back
 * identically, and no proof but the right one passes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link_auth.h"
#include "link_proto.h"
#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_inside(struct proto_str f, const char *line, size_t len)
{
    if (f.len > 0 && (f.p < line || f.p + f.len > line + len))
        abort();
}

static int all_hex(struct proto_str f, size_t want)
{
    if (f.len != want)
        return 0;
    for (size_t i = 0; i < f.len; i++)
        if (!((f.p[i] >= '0' && f.p[i] <= '9') || (f.p[i] >= 'a' && f.p[i] <= 'f')))
            return 0;
    return 1;
}

static int same(struct proto_str a, struct proto_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void check_shape(const struct link_msg *m)
{
    if ((m->kind == LINK_MSG_HELLO || m->kind == LINK_MSG_WELCOME ||
         m->kind == LINK_MSG_KNOCK) &&
        !link_name_ok(m->name.p, m->name.len))
        abort();
    if ((m->kind == LINK_MSG_HELLO || m->kind == LINK_MSG_KNOCK) &&
        !link_name_ok(m->target.p, m->target.len))
        abort();
    if ((m->kind == LINK_MSG_HELLO || m->kind == LINK_MSG_WELCOME) &&
        !all_hex(m->nonce, LINK_NONCE_HEX))
        abort();
    if ((m->kind == LINK_MSG_AUTH || m->kind == LINK_MSG_OK) &&
        !(m->proof.len == 1 && m->proof.p[0] == '-') && !all_hex(m->proof, LINK_PROOF_HEX))
        abort();
    if (m->count > LINK_COUNT_MAX || m->reason.len > LINK_REASON_MAX)
        abort();
}

/* Prints M back the way links.c would send it; -1 for kinds it never sends. */
static int reprint(const struct link_msg *m, char *buf, size_t size)
{
    const char *verb[] = { [LINK_MSG_SYNC] = "SYNC", [LINK_MSG_SYNCED] = "SYNCED",
                           [LINK_MSG_RELAY] = "RELAY", [LINK_MSG_AUTH] = "AUTH",
                           [LINK_MSG_OK] = "OK" };
    switch (m->kind) {
    case LINK_MSG_HELLO:
        return snprintf(buf, size, "HERD/1 HELLO %.*s %.*s %.*s", (int)m->name.len, m->name.p,
                        (int)m->target.len, m->target.p, (int)m->nonce.len, m->nonce.p);
    case LINK_MSG_WELCOME:
        return snprintf(buf, size, "HERD/1 WELCOME %.*s %.*s", (int)m->name.len, m->name.p,
                        (int)m->nonce.len, m->nonce.p);
    case LINK_MSG_AUTH:
    case LINK_MSG_OK:
        return snprintf(buf, size, "HERD/1 %s %.*s", verb[m->kind], (int)m->proof.len,
                        m->proof.p);
    case LINK_MSG_SYNC:
    case LINK_MSG_SYNCED:
    case LINK_MSG_RELAY:
        return snprintf(buf, size, "HERD/1 %s %llu", verb[m->kind],
                        (unsigned long long)m->count);
    default:
        return -1;
    }
}

static void check_roundtrip(const struct link_msg *m)
{
    char buf[512];
    struct link_msg again;
    int n = reprint(m, buf, sizeof buf);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf || link_parse(buf, (size_t)n, &again) != m->kind)
        abort();
    if (!same(again.name, m->name) || !same(again.target, m->target) ||
        !same(again.nonce, m->nonce) || !same(again.proof, m->proof) ||
        again.count != m->count)
        abort();
}

/* A proof taken from the input must not pass unless it is the right one. */
static void check_proof(const struct link_msg *m)
{
    static const struct link_transcript t = { "Bernard", "Jaquez",
        "00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100" };
    char want[LINK_PROOF_HEX + 1];
    if (link_proof("s3cret", 'D', &t, want) < 0)
        abort();
    int ok = link_proof_ok("s3cret", 'D', &t, m->proof.p, m->proof.len);
    if (ok != (m->proof.len == LINK_PROOF_HEX && memcmp(want, m->proof.p, LINK_PROOF_HEX) == 0))
        abort();
    if (!link_proof_ok("s3cret", 'D', &t, want, LINK_PROOF_HEX) ||
        link_proof_ok("s3cret", 'A', &t, want, LINK_PROOF_HEX))
        abort(); /* roles must not be interchangeable */
}

static void check_at(const char *line, size_t len)
{
    struct proto_msg m, again;
    struct proto_str id;
    char buf[LINK_AT_BUF];
    if (proto_parse(line, len, &m) != PROTO_AT)
        return;
    int n = link_at_canon(&m, buf, sizeof buf - 1, &id);
    if (n < 0 || (size_t)n + 1 >= sizeof buf) /* room for the '\n' too */
        abort();
    if (proto_parse(buf, (size_t)n, &again) != PROTO_AT || !same(again.id, m.id) ||
        !same(again.server, m.server) || !same(again.time, m.time) ||
        !same(again.loc, m.loc) || !same(again.diff, m.diff) || !same(id, m.id) ||
        proto_time_cmp(again.t, m.t) != 0)
        abort();
}

static void one_line(const char *line, size_t len)
{
    struct link_msg m;
    enum link_kind k = link_parse(line, len, &m);
    if (k != m.kind || k > LINK_MSG_RELAY)
        abort();
    check_inside(m.verb, line, len);
    check_inside(m.name, line, len);
    check_inside(m.target, line, len);
    check_inside(m.nonce, line, len);
    check_inside(m.proof, line, len);
    check_inside(m.reason, line, len);
    check_shape(&m);
    check_roundtrip(&m);
    if (k == LINK_MSG_AUTH || k == LINK_MSG_OK)
        check_proof(&m);
    if (k == LINK_MSG_NONE)
        check_at(line, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy: fields must not point past it (ASan sees overreads). */
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || copy[i] == '\n') {
            one_line(copy + start, i - start);
            start = i + 1;
        }
    }
    free(copy);
    return 0;
}
