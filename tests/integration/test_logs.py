"""Logs an operator can keep (SPEC §6): every byte from the network escaped,
strangers never logged under a neighbour's name, counters from a neighbour
that cannot switch logging off, link traffic summarised at info, a bounded
log volume per IAMAT, rate-limited warnings, files created 0640."""
import os
import re
import socket
import stat
import threading
import time

from herdtest import FIVE, HerdTestCase, free_port, wait_for
from test_herd import FakePeer

LOC = "+34.068930-118.445127"
T0 = 1621464827
# Printable ASCII, tab and the newline ending each line: nothing else may
# reach a log file.
CLEAN = re.compile(rb"^[\x20-\x7e\t\n]*$")


class Logs(HerdTestCase):
    def assert_clean(self, name):
        with open(self.path("log", name + ".log"), "rb") as f:
            data = f.read()
        bad = [l for l in data.split(b"\n") if not CLEAN.match(l)]
        self.assertEqual(bad, [], "raw bytes in %s.log" % name)
        return data.decode()

    def test_control_bytes_in_a_client_id_are_escaped(self):
        port = free_port()
        cfg = self.config({"Riley": port})
        self.start_worker(cfg, "Riley", port)
        evil = b"\x1b[31mRED\x07bell\x08bs\x7f\xc3\xa9\x00nul"
        c = self.client(port)
        c.send(b"IAMAT " + evil + b" " + LOC.encode() + b" %d.0\n" % T0)
        self.assertTrue(c.recv_line().startswith("AT Riley "))
        c.send(b"WHATSAT " + evil + b"x 10 5\n")  # unknown: "? " and logged
        self.assertTrue(c.recv_line().startswith("? "))
        text = self.wait_log("Riley", "\\x1b[31mRED\\x07bell")
        self.assert_clean("Riley")
        self.assertIn("\\x00nul", text)

    def test_refused_reason_full_of_control_bytes_is_escaped(self):
        """A 'neighbour' (a plain socket on B's port) answers A's HELLO with a
        REFUSED whose reason carries ESC, BEL and CR."""
        pa, pb = free_port(), free_port()
        lsock = socket.create_server(("127.0.0.1", pb))
        self.addCleanup(lsock.close)

        def serve():
            lsock.settimeout(10)
            try:
                s, _ = lsock.accept()
            except OSError:
                return
            s.settimeout(5)
            try:
                s.recv(4096)  # the HELLO
                s.sendall(b"HERD/1 REFUSED \x1b]0;pwned\x07 \rlink Bob up\x1b[2J\n")
                time.sleep(0.5)
            except OSError:
                pass
            s.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        cfg = self.config({"Alice": pa, "Bob": pb}, links={"Alice": ["Bob"]},
                          herd={"link_backoff_min": "2s", "link_backoff_max": "2s"})
        self.start_worker(cfg, "Alice", pa)
        text = self.wait_log("Alice", "refused by the neighbour", 5)
        t.join(5)
        text = self.assert_clean("Alice")
        self.assertIn('refused by the neighbour: "\\x1b]0;pwned\\x07 \\x0dlink Bob up', text)

    def test_a_stranger_is_never_logged_under_a_neighbours_name(self):
        """Only Bob runs; a stranger claims to be Alice, his neighbour."""
        pa, pb = free_port(), free_port()
        cfg = self.config({"Alice": pa, "Bob": pb}, links={"Alice": ["Bob"]},
                          herd={"secret": "s3cret-for-the-test"})
        self.start_worker(cfg, "Bob", pb)
        f = FakePeer(pb, "Alice", "Bob", secret="wrong")
        self.addCleanup(f.close)
        self.assertTrue(f.handshake().startswith("HERD/1 REFUSED wrong secret"))
        text = self.wait_log("Bob", "handshake refused")
        lines = [l for l in text.splitlines() if "Alice" in l and " client " not in l]
        self.assertTrue(lines)
        for l in lines:  # what the stranger made us log after its HELLO
            self.assertRegex(l, r"link from 127\.0\.0\.1:\d+ \(claims Alice\)", l)
        self.assertNotIn("link Alice", text)

    def test_a_relay_with_a_huge_count_does_not_hide_later_lines(self):
        pa, pb = free_port(), free_port()
        cfg = self.config({"Alice": pa, "Bob": pb}, links={"Alice": ["Bob"]},
                          herd={"log_level": "debug", "max_clients": 1000})
        self.start_worker(cfg, "Bob", pb)
        f = FakePeer(pb, "Alice", "Bob")
        self.addCleanup(f.close)
        self.assertTrue(f.handshake().startswith("HERD/1 OK"))
        at = "AT Alice +0.000000001 %s " + LOC + " %d.0"
        f.send("HERD/1 RELAY 999999999999")
        for i in range(1005):  # past the cap of max_clients: logged again
            f.send(at % ("r%d" % i, T0))
        f.send("HERD/1 RELAY 999999999999")
        f.send(at % ("q1", T0))
        f.send("HERD/1 PING")  # ends the batch
        f.send(at % ("after-ping", T0))
        text = self.wait_log("Bob", "after-ping", 5)
        self.assertIn('link Alice in "AT Alice +0.000000001 r1004 ', text)
        self.assertNotIn('"AT Alice +0.000000001 r999 ', text)  # quiet batch records
        self.assertRegex(text, r"batch ended 999 AT lines short of the 1000 announced")
        self.assertIn('link Alice in "AT Alice +0.000000001 after-ping ', text)

    def test_log_bytes_per_iamat_in_the_five_server_herd(self):
        """At info, an IAMAT costs its receiving server an "in" and an "out"
        line; the four others log nothing per update (links: summaries)."""
        ports = self.five()
        wait_for(lambda: all("up (" in self.log_text(n) for n in FIVE), 5,
                 what="links up")
        time.sleep(0.3)
        before = sum(os.path.getsize(self.path("log", n + ".log")) for n in FIVE)
        n = 2000
        s = socket.create_connection(("127.0.0.1", ports["Riley"]), timeout=10)
        s.sendall("".join("IAMAT vol%d %s %d.0\n" % (i, LOC, T0) for i in range(n)).encode())
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
        self.assertEqual(got.count(b"\n"), n)
        c = self.client(ports["Campbell"])  # two hops away: the floods arrived
        wait_for(lambda: c.whatsat("vol%d" % (n - 1), 10, 0)[0].startswith("AT "), 5,
                 what="the last update at Campbell")
        time.sleep(0.2)
        after = sum(os.path.getsize(self.path("log", n_ + ".log")) for n_ in FIVE)
        per = (after - before) / n
        # Measured 2026-12: ~260 bytes (two ~130-byte lines at Riley).
        self.assertLess(per, 400, "%.0f bytes of log per IAMAT" % per)
        for name in FIVE[1:]:
            self.assertNotIn(" vol1 ", self.log_text(name))

    def test_no_key_warning_once_per_interval_not_per_request(self):
        port = free_port()
        cfg = self.config({"Riley": port})
        self.start_worker(cfg, "Riley", port)
        c = self.client(port)
        self.assertTrue(c.ask("IAMAT k %s %d.0" % (LOC, T0)).startswith("AT "))
        for _ in range(200):
            at, body = c.whatsat("k", 10, 5)
            self.assertIn("REQUEST_DENIED", body)
        time.sleep(0.1)
        warns = [l for l in self.log_text("Riley").splitlines() if " WARN " in l]
        self.assertGreaterEqual(len(warns), 1)
        self.assertLessEqual(len(warns), 3, "\n".join(warns[:5]))

    def test_log_files_are_created_0640(self):
        port = free_port()
        cfg = self.config({"Riley": port})
        old = os.umask(0o022)
        try:
            self.start_worker(cfg, "Riley", port)
        finally:
            os.umask(old)
        mode = stat.S_IMODE(os.stat(self.path("log", "Riley.log")).st_mode)
        self.assertEqual(mode, 0o640)
