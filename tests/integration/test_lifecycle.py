"""A connection's life as real clients live it (SPEC §4 end of input, graceful
stop): clients that half-close (`nc -N`, shutdown(SHUT_WR), a script's stdin
ending) get every reply owed, a last line without "\\n" included, even while
a WHATSAT waits on a slow Places; clients that reset cost nothing; a stopping
worker answers what it has read and writes what it owes its neighbours.

Places here is a tiny local HTTP server that answers after a delay (legacy
API shape), so the tests do not depend on the Places mock's modes."""
import http.server
import os
import signal
import socket
import struct
import subprocess
import threading
import time

from herdtest import SLOW, HerdTestCase, free_port, port_open, wait_for

IAMAT = "IAMAT %s +34.068930-118.445127 1621464827.959498503"
EMPTY = b'{"html_attributions": [], "results": [], "status": "ZERO_RESULTS"}'


class SlowPlaces:
    """Answers every request after DELAY seconds; counts them."""

    def __init__(self, delay):
        outer = self
        self.count = 0

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                outer.count += 1
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(EMPTY)))
                self.end_headers()
                self.wfile.write(EMPTY)

            do_GET = do_POST = _answer

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/nearby" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def recv_all(sock, timeout):
    """Everything until the server closes; raises on timeout."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


class Lifecycle(HerdTestCase):
    def setUp(self):
        super().setUp()
        self.places = SlowPlaces(0.4 * SLOW)
        self.port = free_port()
        self.cfg = self.config({"Riley": self.port},
                               herd={"places_api": "legacy", "places_url": self.places.url,
                                     "places_timeout": "%gs" % (5 * SLOW),
                                     "places_cache_ttl": 0,
                                     # Places answers after 0.4 s (times SLOW): the
                                     # drain must outlast it.
                                     "stop_drain": "%gs" % (2 * SLOW),
                                     "stop_timeout": "%gs" % (10 * SLOW)})
        self.w = self.start_worker(self.cfg, "Riley", self.port,
                                   env={"HERD_PLACES_KEY": "k"})

    def tearDown(self):
        self.places.close()
        super().tearDown()

    def half_close(self, data):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return s

    def test_last_line_without_newline_then_eof_is_answered(self):
        s = self.half_close((IAMAT % "kiwi").encode())
        out = recv_all(s, 5).decode()
        s.close()
        self.assertRegex(out, r"^AT Riley [+-]\d+\.\d{9} kiwi \+34\.068930-118\.445127 "
                              r"1621464827\.959498503\n$")

    def test_whatsat_waiting_on_places_then_half_close_gets_everything_in_order(self):
        lines = [IAMAT % "a", "WHATSAT a 10 5", IAMAT % "b", "bogus line", "WHATSAT b 1 0"]
        t0 = time.monotonic()
        s = self.half_close(("\n".join(lines) + "\n").encode())
        out = recv_all(s, 10).decode()
        s.close()
        self.assertGreater(time.monotonic() - t0, 0.3 * SLOW, "Places was not waited on")
        parts = out.split("\n")
        self.assertTrue(parts[0].startswith("AT Riley ") and parts[0].endswith(" a " +
                        "+34.068930-118.445127 1621464827.959498503"), out)
        self.assertTrue(parts[1].startswith("AT Riley ") and " a " in parts[1], out)
        self.assertIn('"status" : "ZERO_RESULTS"', out)
        after = out.split("\n\n", 1)[1].split("\n")
        self.assertTrue(after[0].startswith("AT Riley ") and " b " in after[0], out)
        self.assertEqual(after[1], "? bogus line")
        self.assertTrue(after[2].startswith("AT Riley ") and " b " in after[2], out)
        self.assertTrue(out.endswith("}\n\n"), out[-80:])
        self.assertEqual(out.count("ZERO_RESULTS"), 2)

    def test_the_readme_example_with_nc_style_stdin(self):
        """printf 'IAMAT ...\\nWHATSAT ...\\n' | nc -N: the pipe ends, nc half-closes."""
        s = self.half_close(((IAMAT % "kiwi") + "\nWHATSAT kiwi 10 5\n").encode())
        out = recv_all(s, 10).decode()
        s.close()
        self.assertEqual(out.count("AT Riley"), 2, out)
        self.assertIn('"results" : []', out)

    def test_client_reset_mid_whatsat_costs_nothing(self):
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(((IAMAT % ("r%d" % i)) + "\nWHATSAT r%d 10 5\n" % i).encode())
            s.recv(200)  # the AT reply: the WHATSAT now waits on Places
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # RST
        time.sleep(0.6 * SLOW)  # Places answers for clients that are gone
        c = self.client(self.port)
        self.assertTrue(c.ask(IAMAT % "after").startswith("AT Riley "))
        self.assertIsNone(self.w.poll(), "worker died")

    def test_half_closed_client_that_never_reads_is_still_bounded(self):
        """A half-closed client with a huge pipelined backlog is answered
        without the worker buffering without bound; it closes in the end."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        data = ("\n".join(IAMAT % ("p%d" % i) for i in range(3000)) + "\n").encode()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = recv_all(s, 20 * SLOW)
        s.close()
        self.assertEqual(out.count(b"\n"), 3000)

    def test_sigterm_with_fifty_clients_each_owed_a_reply(self):
        socks = []
        for i in range(50):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(((IAMAT % ("c%d" % i)) + "\n").encode())
            socks.append(s)
        for s in socks:  # every client known, each read its AT
            s.settimeout(5)
            self.assertTrue(s.recv(4096).startswith(b"AT Riley "))
        for i, s in enumerate(socks):  # now each is owed a WHATSAT on slow Places
            s.sendall(("WHATSAT c%d 10 5\n" % i).encode())
        wait_for(lambda: self.places.count >= 1, 5, what="a Places request")
        self.w.send_signal(signal.SIGTERM)
        got = 0
        for s in socks:
            out = recv_all(s, 10 * SLOW).decode()
            s.close()
            if out.startswith("AT Riley ") and out.endswith("}\n\n"):
                got += 1
        self.assertEqual(got, 50)
        self.assertEqual(self.w.wait(timeout=10 * SLOW), 0)
        self.assertNotIn("stop_drain reached", self.log_text("Riley"))


class StopWithNeighbours(HerdTestCase):
    def two(self, herd=None):
        self.ports = {"A": free_port(), "B": free_port()}
        cfg = self.config(self.ports, herd=herd, links={"A": ["B"]})
        self.a = self.start_worker(cfg, "A", self.ports["A"])
        self.b = self.start_worker(cfg, "B", self.ports["B"])
        wait_for(lambda: "link A up" in self.log_text("B"), 5, what="the link")

    def send_many(self, port, n, prefix):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        data = ("\n".join(IAMAT % ("%s%d" % (prefix, i)) for i in range(n)) + "\n").encode()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = recv_all(s, 30 * SLOW)
        s.close()
        return out.count(b"\nAT ") + out.startswith(b"AT ")

    def test_stop_right_after_acknowledging_writes_the_floods(self):
        self.two()
        self.assertEqual(self.send_many(self.ports["A"], 2000, "s"), 2000)
        self.a.send_signal(signal.SIGTERM)
        self.assertEqual(self.a.wait(timeout=10 * SLOW), 0)
        c = self.client(self.ports["B"])
        for i in (0, 999, 1999):
            at, body = c.whatsat("s%d" % i, 10, 0)
            self.assertTrue(at.startswith("AT A "), (i, at))

    def test_stop_with_a_frozen_neighbour_hits_the_drain_time_and_says_so(self):
        self.two({"stop_drain": "500ms", "link_queue_max": "256M"})
        os.kill(self.b.pid, signal.SIGSTOP)
        try:
            # Far more than the kernel buffers of one loopback socket hold.
            n = self.send_many(self.ports["A"], 60000, "f")
            self.assertEqual(n, 60000)
            t0 = time.monotonic()
            self.a.send_signal(signal.SIGTERM)
            self.assertEqual(self.a.wait(timeout=10 * SLOW), 0)
            took = time.monotonic() - t0
        finally:
            os.kill(self.b.pid, signal.SIGCONT)
        self.assertLess(took, 4 * SLOW)
        log = self.log_text("A")
        self.assertIn("stop_drain reached", log)
        self.assertRegex(log, r"stop_drain reached: 0 clients and 1 links still open, \d+ bytes")
