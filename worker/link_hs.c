/*
 * link_hs: the checks of a link handshake (docs/link-protocol.md): the HMAC
 * proofs both ways, whether a HELLO came the way link_tls wants (inside TLS,
 * from a certificate that names the neighbour), and refusals, logged on our
 * side and sent to the other. links.c runs the handshake and calls these.
 */
#include <stdio.h>

#include "link_auth.h"
#include "link_int.h"
#include "log.h"

/* Refuses the handshake on LC: logged at warn, REFUSED sent, then closed. */
void link_refuse(struct lconn *lc, const char *reason)
{
    log_warn("%s: handshake refused: %s", lc->label, reason);
    lc->why = reason;
    if (link_send_ctl(lc, LOG_INFO, "%s REFUSED %s", LINK_VERSION, reason) == 0)
        conn_drain(lc->c, reason);
}

/* The same for a conn not adopted yet (a bad HELLO on the client port). */
void link_refuse_conn(struct links *ls, struct conn *c, const char *reason)
{
    char line[256];
    uint64_t quiet;
    if (log_limit(&ls->odd_warn, 1.0, &quiet))
        log_warn("link from %s: handshake refused: %s (and %llu more since the last warning)",
                 c->peer, reason, (unsigned long long)quiet);
    int n = snprintf(line, sizeof line, "%s REFUSED %s\n", LINK_VERSION, reason);
    if (n > 0 && (size_t)n < sizeof line) {
        char prefix[96];
        snprintf(prefix, sizeof prefix, "link from %s out", c->peer);
        log_line(LOG_INFO, prefix, line, (size_t)n - 1);
        if (conn_send(c, line, (size_t)n) < 0)
            return;
    }
    conn_drain(c, reason);
}

static void fill_transcript(const struct lconn *lc, struct link_transcript *t)
{
    const char *self = link_self_name(lc->l->ls);
    t->dialer = lc->dialled ? self : lc->l->peer->name;
    t->acceptor = lc->dialled ? lc->l->peer->name : self;
    t->nonce_d = lc->nonce_d;
    t->nonce_a = lc->nonce_a;
}

/* Checks the neighbour's proof; refuses and returns -1 when it is wrong. */
int link_check_proof(struct lconn *lc, const struct link_msg *m)
{
    const char *secret = lc->l->ls->cfg->secret;
    struct link_transcript t;
    fill_transcript(lc, &t);
    if (secret && link_str_is(m->proof, "-")) {
        link_refuse(lc, "no proof: the neighbour has no secret");
        return -1;
    }
    /* During a secret rotation the one being replaced is accepted too. */
    const char *prev = lc->l->ls->cfg->secret_previous;
    if (!link_proof_ok(secret, lc->dialled ? 'A' : 'D', &t, m->proof.p, m->proof.len) &&
        !(prev && link_proof_ok(prev, lc->dialled ? 'A' : 'D', &t, m->proof.p, m->proof.len))) {
        link_refuse(lc, "wrong secret");
        return -1;
    }
    return 0;
}

/* Sends our proof in a "HERD/1 VERB proof" line. */
int link_send_proof(struct lconn *lc, const char *verb)
{
    char proof[LINK_PROOF_HEX + 1];
    struct link_transcript t;
    fill_transcript(lc, &t);
    if (link_proof(lc->l->ls->cfg->secret, lc->dialled ? 'D' : 'A', &t, proof) < 0) {
        log_error("link %s: cannot compute the HMAC proof", lc->l->peer->name);
        conn_close(lc->c, "HMAC failed");
        return -1;
    }
    return link_send_ctl(lc, LOG_INFO, "%s %s %s", LINK_VERSION, verb, proof);
}

/* With link_tls on, a HELLO comes inside TLS, and in cert mode from a
 * certificate that names the neighbour it claims to be. */
int link_tls_fits(struct links *ls, struct conn *c, const struct link *l)
{
    enum cfg_link_tls mode = ls->cfg->link_tls;
    if (mode == CFG_TLS_OFF)
        return 1;
    if (!conn_is_tls(c)) {
        link_refuse_conn(ls, c,
                         mode == CFG_TLS_PSK ? "TLS required: link_tls = psk here"
                                             : "TLS required: link_tls = cert here");
        return 0;
    }
    if (mode == CFG_TLS_CERT && !conn_tls_peer_names(c, l->peer->name, l->peer->host)) {
        link_refuse_conn(ls, c, "the certificate does not name the neighbour the HELLO claims");
        return 0;
    }
    return 1;
}

void link_refused_by_dialler(struct links *ls, struct conn *c, struct proto_str reason)
{
    uint64_t quiet;
    if (log_limit(&ls->odd_warn, 1.0, &quiet)) {
        char prefix[128];
        snprintf(prefix, sizeof prefix, "link from %s%s: refused by the neighbour:", c->peer,
                 conn_is_tls(c) ? " (TLS)" : "");
        log_line(LOG_WARN, prefix, reason.p, reason.len);
    }
    conn_close(c, "refused by the dialler");
}
