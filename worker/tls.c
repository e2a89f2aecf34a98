/*
 * tls: the SSL_CTX of a worker's links and its non-blocking sessions.
 *
 * psk: the key is HKDF-SHA256(secret, salt "herd", info "herd link-tls psk
 * v1"), offered as a TLS 1.3 external PSK (psk_dhe_ke: still an ephemeral
 * key exchange, so a later leak of the secret does not open old captures).
 * Its identity is "herd-psk-v1:" and 16 hex digits of a hash of the key, so
 * an acceptor holding the secret and secret_previous (a rotation) knows
 * which key a dialler uses, and a neighbour with another secret is told
 * apart from a broken one. The acceptor also takes secret_previous's key,
 * derived from the current configuration at each handshake: it is a live
 * key, and during a rotation a running worker learns the new secret there
 * (worker/live.c), exactly as the HMAC proofs do. Neither side has a certificate, and a session
 * that did not use the key is refused (SSL_session_reused), so nobody can
 * talk a psk side into a certificate handshake.
 *
 * cert: both sides present a certificate from tls_ca; the link layer then
 * asks tls_peer_names() whether it names the neighbour.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PSK_LEN       32 /* SHA-256: TLS_AES_128_GCM_SHA256's hash */
#define PSK_ID_PREFIX "herd-psk-v1:"
#define PSK_ID_MAX    (sizeof PSK_ID_PREFIX + 16)
#define PSK_INFO      "herd link-tls psk v1"

struct psk {
    unsigned char key[PSK_LEN];
    char id[PSK_ID_MAX];
    size_t idlen;
};

struct tls_ctx {
    SSL_CTX *ssl;
    enum cfg_link_tls mode;
    const struct cfg_herd *cfg; /* borrowed: secret_previous may change live */
    struct psk psk;             /* the secret's (a restart key) */
};

struct tls_conn {
    SSL *ssl;
    const struct tls_ctx *ctx;
    int unknown_psk; /* the dialler offered a key we do not hold */
    int psk_offered; /* acceptor: the dialler offered a key at all */
    struct psk prev; /* secret_previous's, derived for this handshake */
};

/* TLS_AES_128_GCM_SHA256, the suite every TLS 1.3 stack has. */
static const unsigned char suite_id[2] = {0x13, 0x01};

static int derive_psk(const char *secret, struct psk *out)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kc = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    char digest[] = "SHA256";
    unsigned char salt[] = "herd", info[] = PSK_INFO;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)secret,
                                          strlen(secret)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof salt - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof info - 1),
        OSSL_PARAM_construct_end(),
    };
    int ok = kc && EVP_KDF_derive(kc, out->key, PSK_LEN, params) == 1;
    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kdf);
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    if (!ok || EVP_Digest(out->key, PSK_LEN, h, &hl, EVP_sha256(), NULL) != 1 || hl < 8)
        return -1;
    memcpy(out->id, PSK_ID_PREFIX, sizeof PSK_ID_PREFIX - 1);
    for (size_t i = 0; i < 8; i++)
        snprintf(out->id + sizeof PSK_ID_PREFIX - 1 + 2 * i, 3, "%02x", h[i]);
    out->idlen = sizeof PSK_ID_PREFIX - 1 + 16;
    return 0;
}

/* secret_previous's key into T->prev, when there is one. */
static int previous_psk(struct tls_conn *t)
{
    const char *p = t->ctx->cfg->secret_previous;
    return p != NULL && p[0] != '\0' && derive_psk(p, &t->prev) == 0;
}

static SSL_SESSION *psk_session(SSL *ssl, const struct psk *p)
{
    const SSL_CIPHER *c = SSL_CIPHER_find(ssl, suite_id);
    SSL_SESSION *s = c ? SSL_SESSION_new() : NULL;
    if (s == NULL)
        return NULL;
    if (SSL_SESSION_set1_master_key(s, p->key, PSK_LEN) != 1 || SSL_SESSION_set_cipher(s, c) != 1 ||
        SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1) {
        SSL_SESSION_free(s);
        return NULL;
    }
    return s;
}

/* Dialler: offers the current secret's key. */
static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                      SSL_SESSION **sess)
{
    struct tls_conn *t = SSL_get_app_data(ssl);
    const SSL_CIPHER *c = SSL_CIPHER_find(ssl, suite_id);
    *sess = NULL;
    *id = NULL;
    *idlen = 0;
    if (c == NULL || (md != NULL && md != SSL_CIPHER_get_handshake_digest(c)))
        return 1; /* a HelloRetryRequest chose another hash: no PSK */
    const struct psk *p = &t->ctx->psk;
    if ((*sess = psk_session(ssl, p)) == NULL)
        return 0;
    *id = (const unsigned char *)p->id;
    *idlen = p->idlen;
    return 1;
}

/* Acceptor: the key whose identity the dialler named, if we hold it. */
static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
    struct tls_conn *t = SSL_get_app_data(ssl);
    *sess = NULL;
    t->psk_offered = 1;
    const struct psk *p = &t->ctx->psk;
    if (idlen == p->idlen && memcmp(id, p->id, idlen) == 0)
        return (*sess = psk_session(ssl, p)) != NULL;
    if (previous_psk(t) && idlen == t->prev.idlen && memcmp(id, t->prev.id, idlen) == 0)
        return (*sess = psk_session(ssl, &t->prev)) != NULL;
    t->unknown_psk = 1;
    return 1; /* no PSK: with no certificate the handshake then fails */
}

static void ssl_reason(char *why, size_t whylen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(why, whylen, "%s%s%s", what, r ? ": " : "", r ? r : "");
    ERR_clear_error();
}

/* "tls_cert /etc/herd/a.pem: No such file or directory", or OpenSSL's reason
 * when the file is there but is not what it should be. */
static int file_failed(char *err, size_t errlen, const char *key, const char *path,
                       const char *what)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s %s: %s", key, path, strerror(errno));
    } else {
        fclose(f);
        char head[PATH_MAX + 64];
        snprintf(head, sizeof head, "%s %s: %s", key, path, what);
        ssl_reason(err, errlen, head);
    }
    ERR_clear_error();
    return -1;
}

static int load_certs(SSL_CTX *s, const struct cfg_server *self, char *err, size_t errlen)
{
    if (SSL_CTX_use_certificate_chain_file(s, self->tls_cert) != 1)
        return file_failed(err, errlen, "tls_cert", self->tls_cert, "not a PEM certificate");
    if (SSL_CTX_use_PrivateKey_file(s, self->tls_key, SSL_FILETYPE_PEM) != 1)
        return file_failed(err, errlen, "tls_key", self->tls_key,
                           ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH
                               ? "not the key of tls_cert"
                               : "not a PEM private key");
    if (SSL_CTX_check_private_key(s) != 1)
        return file_failed(err, errlen, "tls_key", self->tls_key, "not the key of tls_cert");
    if (SSL_CTX_load_verify_locations(s, self->tls_ca, NULL) != 1)
        return file_failed(err, errlen, "tls_ca", self->tls_ca, "no PEM certificate");
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return 0;
}

static int setup_psk(struct tls_ctx *t, const struct cfg_herd *cfg, char *err, size_t errlen)
{
    if (cfg->secret == NULL || derive_psk(cfg->secret, &t->psk) < 0) {
        snprintf(err, errlen, "link_tls = psk: %s",
                 cfg->secret ? "cannot derive the key" : "no secret");
        return -1;
    }
    /* The key is a SHA-256 one: an acceptor that picked a SHA-384 suite
     * (OpenSSL's first choice) would drop it and want a certificate. */
    if (SSL_CTX_set_ciphersuites(t->ssl, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256") !=
        1) {
        ssl_reason(err, errlen, "link_tls = psk: no SHA-256 cipher suite");
        return -1;
    }
    SSL_CTX_set_psk_use_session_callback(t->ssl, psk_use_cb);
    SSL_CTX_set_psk_find_session_callback(t->ssl, psk_find_cb);
    SSL_CTX_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
    return 0;
}

struct tls_ctx *tls_ctx_new(const struct cfg_herd *cfg, const struct cfg_server *self, char *err,
                            size_t errlen)
{
    struct tls_ctx *t = calloc(1, sizeof *t);
    if (t == NULL || (t->ssl = SSL_CTX_new(TLS_method())) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(t);
        return NULL;
    }
    t->mode = cfg->link_tls;
    t->cfg = cfg;
    SSL_CTX_set_min_proto_version(t->ssl, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(t->ssl, 0); /* no resumption: links are long-lived */
    SSL_CTX_set_session_cache_mode(t->ssl, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int rc = t->mode == CFG_TLS_PSK ? setup_psk(t, cfg, err, errlen)
                                    : load_certs(t->ssl, self, err, errlen);
    if (rc < 0) {
        tls_ctx_free(t);
        return NULL;
    }
    return t;
}

void tls_ctx_free(struct tls_ctx *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ssl);
    OPENSSL_cleanse(&t->psk, sizeof t->psk);
    free(t);
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, int server)
{
    struct tls_conn *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ctx = ctx;
    if ((t->ssl = SSL_new(ctx->ssl)) == NULL || SSL_set_fd(t->ssl, fd) != 1) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_app_data(t->ssl, t);
    if (server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    return t;
}

void tls_conn_free(struct tls_conn *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* SSL_set_fd's BIO does not close the fd */
    OPENSSL_cleanse(&t->prev, sizeof t->prev);
    free(t);
}

/* Why a session failed, in the operator's terms where we can tell: most
 * failures between two herd servers are a mode or a key that differs. */
static void explain(const struct tls_conn *t, char *why, size_t whylen)
{
    const int psk = t->ctx->mode == CFG_TLS_PSK;
    long v = SSL_get_verify_result(t->ssl);
    int reason = ERR_GET_REASON(ERR_peek_last_error());
    const char *s = NULL;
    if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
        reason == SSL_R_RECORD_LENGTH_MISMATCH)
        s = "the peer does not speak TLS (link_tls = off there?)";
    else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        s = "connection closed by the peer";
    else if (reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE)
        s = psk ? "the peer refused our pre-shared key (another secret there?)"
                : "the peer refused the handshake (link_tls = psk there?)";
    else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
        s = "the peer sent no certificate (link_tls = psk there?)";
    else if (psk && t->unknown_psk)
        s = "the peer's pre-shared key is not ours (another secret?)";
    else if (psk && SSL_is_server(t->ssl) && !t->psk_offered)
        s = "the peer offered no pre-shared key (link_tls = cert there?)";
    if (s != NULL)
        snprintf(why, whylen, "%s", s);
    else if (!psk && v != X509_V_OK)
        snprintf(why, whylen, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    else
        ssl_reason(why, whylen, "TLS error");
}

/* Maps SSL_get_error() for the result RC of the last call. */
static enum tls_rc map_error(struct tls_conn *t, int rc, char *why, size_t whylen)
{
    int e = SSL_get_error(t->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ: return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return TLS_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_last_error() == 0) {
            snprintf(why, whylen, "%s", errno ? strerror(errno) : "connection closed by the peer");
            return TLS_ERROR;
        }
        break;
    default: break;
    }
    explain(t, why, whylen);
    ERR_clear_error();
    return TLS_ERROR;
}

enum tls_rc tls_handshake(struct tls_conn *t, char *why, size_t whylen)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc != 1) {
        enum tls_rc r = map_error(t, rc, why, whylen);
        /* An acceptor with link_tls = off (or one that refused us) closes
         * on our ClientHello. */
        if (r == TLS_ERROR && strcmp(why, "connection closed by the peer") == 0)
            snprintf(why, whylen,
                     "the peer closed the connection in the handshake "
                     "(link_tls = off there, or it refused us)");
        return r;
    }
    if (t->ctx->mode == CFG_TLS_PSK && !SSL_session_reused(t->ssl)) {
        snprintf(why, whylen,
                 "the peer did not use the herd's pre-shared key (link_tls = cert "
                 "there?)");
        return TLS_ERROR;
    }
    return TLS_DONE;
}

enum tls_rc tls_read(struct tls_conn *t, void *buf, size_t len, size_t *n, char *why, size_t whylen)
{
    ERR_clear_error();
    *n = 0;
    int rc = SSL_read_ex(t->ssl, buf, len, n);
    return rc == 1 ? TLS_DONE : map_error(t, rc, why, whylen);
}

enum tls_rc tls_write(struct tls_conn *t, const void *buf, size_t len, size_t *n, char *why,
                      size_t whylen)
{
    ERR_clear_error();
    *n = 0;
    int rc = SSL_write_ex(t->ssl, buf, len, n);
    return rc == 1 ? TLS_DONE : map_error(t, rc, why, whylen);
}

void tls_shutdown(struct tls_conn *t)
{
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* 0: sent, the peer's is not awaited */
    ERR_clear_error();
}

int tls_peer_names(const struct tls_conn *t, const char *name, const char *host)
{
    if (t->ctx->mode == CFG_TLS_PSK)
        return 1;
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (cert == NULL)
        return 0;
    const unsigned flags = X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;
    unsigned char a[16];
    if (X509_check_host(cert, name, 0, flags, NULL) == 1)
        return 1;
    if (host == NULL)
        return 0;
    if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1)
        return X509_check_ip_asc(cert, host, 0) == 1;
    return X509_check_host(cert, host, 0, flags, NULL) == 1;
}

void tls_describe(const struct tls_conn *t, char *out, size_t outlen)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    snprintf(out, outlen, "%s %s %s", SSL_get_version(t->ssl), c ? SSL_CIPHER_get_name(c) : "?",
             t->ctx->mode == CFG_TLS_PSK ? "psk" : "cert");
}
