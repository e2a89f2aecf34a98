/*
 * test_net: a non-blocking dial's result, on real loopback sockets. A dial
 * that connects to a listener succeeds, one to a closed port is refused, and
 * one that connects to itself (a TCP simultaneous open, which Linux allows
 * when a socket bound to a port connects to that same port) is refused, so a
 * worker dialling a neighbour that is down never holds the neighbour's port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net.h"

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return in;
}

/* A socket bound to 127.0.0.1 on a port the kernel picks; its port in *port. */
static int bound_socket(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in in = loopback(0);
    assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof in), 0);
    socklen_t len = sizeof in;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    *port = ntohs(in.sin_port);
    return fd;
}

/* Waits (bounded) until a non-blocking connect has an outcome. */
static void wait_writable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    assert_int_equal(poll(&p, 1, 5000), 1);
}

static void test_dial_to_a_listener_succeeds(void **state)
{
    (void)state;
    uint16_t port;
    int lfd = bound_socket(&port);
    assert_int_equal(listen(lfd, 4), 0);
    char err[128];
    int fd = net_tcp_connect("127.0.0.1", port, err, sizeof err);
    assert_true(fd >= 0);
    wait_writable(fd);
    assert_int_equal(net_connect_result(fd, err, sizeof err), 0);
    close(fd);
    close(lfd);
}

static void test_dial_to_a_closed_port_is_refused(void **state)
{
    (void)state;
    uint16_t port;
    close(bound_socket(&port)); /* nothing listens there now */
    char err[128] = "";
    int fd = net_tcp_connect("127.0.0.1", port, err, sizeof err);
    if (fd < 0) { /* refused at once: also a refusal */
        assert_non_null(strstr(err, "refused"));
        return;
    }
    wait_writable(fd);
    assert_int_equal(net_connect_result(fd, err, sizeof err), -1);
    assert_non_null(strstr(err, "refused"));
    close(fd);
}

static void test_dial_that_connects_to_itself_is_refused(void **state)
{
    (void)state;
    uint16_t port;
    int fd = bound_socket(&port);
    struct sockaddr_in self = loopback(port);
    /* Blocking: the simultaneous open with itself completes at once. */
    assert_int_equal(connect(fd, (struct sockaddr *)&self, sizeof self), 0);
    char err[128] = "";
    assert_int_equal(net_connect_result(fd, err, sizeof err), -1);
    assert_int_equal(errno, ECONNREFUSED);
    assert_string_equal(err, "connect: connected to itself (nothing listens there)");
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dial_to_a_listener_succeeds),
        cmocka_unit_test(test_dial_to_a_closed_port_is_refused),
        cmocka_unit_test(test_dial_that_connects_to_itself_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
