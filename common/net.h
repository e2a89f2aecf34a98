/*
 * net: every socket call herd makes (redis anet.c style). Sockets come back
 * non-blocking and close-on-exec; failures return -1 and write the reason
 * into the caller's buffer. Nobody outside this file calls setsockopt/fcntl.
 */
#ifndef HERD_NET_H
#define HERD_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A listening TCP socket on HOST:PORT (SO_REUSEADDR). */
int net_tcp_listen(const char *host, uint16_t port, int backlog, char *err, size_t errlen);

/*
 * Starts a non-blocking connect to HOST:PORT (numeric address or name
 * resolved with AI_NUMERICHOST first). Returns the fd; the connect completes
 * when it turns writable (check with net_connect_result).
 */
int net_tcp_connect(const char *host, uint16_t port, char *err, size_t errlen);

/* 0 when a non-blocking connect succeeded, else -1 and the reason (a
 * connect that reached its own socket is refused). */
int net_connect_result(int fd, char *err, size_t errlen);

/* accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC and TCP_NODELAY. -1 with errno. */
int net_accept(int lfd, char *addr, size_t addrlen);

int net_set_nonblock(int fd);
int net_set_cloexec(int fd, int on);
int net_set_nodelay(int fd);
/* TCP keepalive probing after IDLE seconds, every INTVL, CNT probes. */
int net_set_keepalive(int fd, int idle, int intvl, int cnt);

/* A listening Unix stream socket at PATH with mode MODE (umask-safe). */
int net_unix_listen(const char *path, unsigned mode, char *err, size_t errlen);
/* A blocking connect to the Unix socket at PATH. */
int net_unix_connect(const char *path, char *err, size_t errlen);
/* Peer uid of a Unix socket (SO_PEERCRED). -1 with errno. */
int net_peer_uid(int fd, unsigned *uid);

/* socketpair(AF_UNIX, SOCK_STREAM) with close-on-exec on both ends. */
int net_socketpair(int fds[2]);

/* "1.2.3.4:5678" of the peer of FD. */
void net_peer_name(int fd, char *buf, size_t len);

#endif
