/*
 * net: the only file that makes sockets or sets their options. TCP listeners
 * and non-blocking dials for clients and neighbour links, Unix sockets for
 * the control socket and the supervisor channel. Errors go into the caller's
 * buffer as "what: why" so the caller logs them once, with its context.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *what, int fd)
{
    int saved = errno;
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: %s", what, strerror(saved));
    if (fd >= 0)
        close(fd);
    errno = saved;
    return -1;
}

int net_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

int net_set_cloexec(int fd, int on)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0)
        return -1;
    fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, fl) < 0 ? -1 : 0;
}

int net_set_nodelay(int fd)
{
    int on = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

int net_set_keepalive(int fd, int idle, int intvl, int cnt)
{
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0)
        return -1;
    return 0;
}

/* Resolves HOST:PORT; with NUMERIC without touching DNS (numeric addresses
 * only), so a dial never blocks the loop (names are resolved by the worker's
 * resolver first); "localhost" is mapped to 127.0.0.1. A listener may block:
 * it resolves once at start, before the loop runs. */
static int resolve(const char *host, uint16_t port, int numeric, struct sockaddr_storage *ss,
                   socklen_t *sslen, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags =
                                 numeric ? AI_NUMERICHOST | AI_NUMERICSERV : AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* A non-blocking, close-on-exec TCP socket for HOST:PORT, its address in *ss. */
static int tcp_socket(const char *host, uint16_t port, int numeric, struct sockaddr_storage *ss,
                      socklen_t *sslen, char *err, size_t errlen)
{
    if (resolve(host, port, numeric, ss, sslen, err, errlen) < 0)
        return -1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, "socket", -1);
    return fd;
}

int net_tcp_listen(const char *host, uint16_t port, int backlog, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int fd = tcp_socket(host, port, 0, &ss, &sslen, err, errlen);
    if (fd < 0)
        return -1;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        return fail(err, errlen, "setsockopt SO_REUSEADDR", fd);
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
        char what[96];
        snprintf(what, sizeof what, "bind %s:%u", host, (unsigned)port);
        return fail(err, errlen, what, fd);
    }
    if (listen(fd, backlog) < 0)
        return fail(err, errlen, "listen", fd);
    return fd;
}

int net_tcp_connect(const char *host, uint16_t port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int fd = tcp_socket(host, port, 1, &ss, &sslen, err, errlen);
    if (fd < 0)
        return -1;
    net_set_nodelay(fd);
    if (connect(fd, (struct sockaddr *)&ss, sslen) < 0 && errno != EINPROGRESS)
        return fail(err, errlen, "connect", fd);
    return fd;
}

/* A dial to a port on this host where nothing listens can be given that very
 * port as its local one and connect to itself (TCP simultaneous open). It
 * would then hold the port its server needs: say so and let the caller close. */
static int connected_to_itself(int fd)
{
    struct sockaddr_storage a = {0}, b = {0};
    socklen_t alen = sizeof a, blen = sizeof b;
    if (getsockname(fd, (struct sockaddr *)&a, &alen) < 0 ||
        getpeername(fd, (struct sockaddr *)&b, &blen) < 0)
        return 0;
    return alen == blen && memcmp(&a, &b, alen) == 0;
}

int net_connect_result(int fd, char *err, size_t errlen)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        return fail(err, errlen, "getsockopt SO_ERROR", -1);
    if (soerr != 0) {
        errno = soerr;
        return fail(err, errlen, "connect", -1);
    }
    if (connected_to_itself(fd)) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "connect: connected to itself (nothing listens there)");
        errno = ECONNREFUSED;
        return -1;
    }
    return 0;
}

/* "ip:port" of an AF_INET/AF_INET6 address, "?:0" for anything else. */
static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    snprintf(buf, len, "%s:%u", host, port);
}

int net_accept(int lfd, char *addr, size_t addrlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return -1;
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
        net_set_nodelay(fd);
    if (addr != NULL && addrlen > 0)
        format_addr(&ss, addr, addrlen); /* accept told us: no getpeername */
    return fd;
}

static int unix_addr(const char *path, struct sockaddr_un *sun, char *err, size_t errlen)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path) {
        snprintf(err, errlen, "socket path too long: %s", path);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun->sun_path, path, strlen(path) + 1);
    return 0;
}

int net_unix_listen(const char *path, unsigned mode, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    if (unix_addr(path, &sun, err, errlen) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, "socket", -1);
    /* Bind under a tight umask so the socket is never wider than MODE,
     * not even between bind() and chmod(). */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (rc < 0)
        return fail(err, errlen, "bind", fd);
    if (chmod(path, (mode_t)mode) < 0)
        return fail(err, errlen, "chmod", fd);
    if (listen(fd, 64) < 0)
        return fail(err, errlen, "listen", fd);
    return fd;
}

int net_unix_connect(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    if (unix_addr(path, &sun, err, errlen) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, "socket", -1);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
        return fail(err, errlen, "connect", fd);
    return fd;
}

int net_peer_uid(int fd, unsigned *uid)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -1;
    *uid = cred.uid;
    return 0;
}

int net_socketpair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

void net_peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sslen) < 0)
        ss.ss_family = AF_UNSPEC;
    format_addr(&ss, buf, len);
}
