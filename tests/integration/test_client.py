"""SPEC §4 against a real herd-worker: reply formats, the exact time diff,
pipelining and order, every invalid form, limits, logs, signals."""
import os
import re
import resource
import signal
import socket
import subprocess
import time

from herdtest import HerdTestCase, binary, free_port, wait_for

AT_RE = re.compile(r"^AT (\S+) ([+-])(\d+)\.(\d{9}) (\S+) (\S+) (\S+)$")


def ns_of(text):
    """Exact nanoseconds of a "S[.F]" time string."""
    sec, _, frac = text.partition(".")
    return int(sec) * 10**9 + int((frac + "000000000")[:9])


class ClientProtocol(HerdTestCase):
    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.cfg = self.config({"Riley": self.port},
                               herd={"max_line_length": 256, "idle_timeout": 30})
        self.worker = self.start_worker(self.cfg, "Riley", self.port)
        self.c = self.client(self.port)

    def test_iamat_reply_exact_diff(self):
        ct = time.time_ns() - 1_500_000_123
        ctext = "%d.%09d" % divmod(ct, 10**9)
        before = time.time_ns()
        reply = self.c.ask("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 " + ctext)
        after = time.time_ns()
        m = AT_RE.match(reply)
        self.assertIsNotNone(m, reply)
        self.assertEqual(m.group(1), "Riley")
        self.assertEqual(m.group(5, 6, 7), ("kiwi.cs.ucla.edu", "+34.068930-118.445127", ctext))
        diff = int(m.group(3)) * 10**9 + int(m.group(4))
        if m.group(2) == "-":
            diff = -diff
        self.assertGreaterEqual(diff, before - ct)
        self.assertLessEqual(diff, after - ct)

    def test_negative_diff_and_verbatim_fields(self):
        future = time.time_ns() // 10**9 + 3600
        reply = self.c.ask("IAMAT a +00.0-000.0 %d" % future)
        m = AT_RE.match(reply)
        self.assertIsNotNone(m, reply)
        self.assertEqual(m.group(2), "-")
        self.assertEqual(m.group(6), "+00.0-000.0")
        self.assertEqual(m.group(7), str(future))

    def test_nanosecond_client_time_copied(self):
        reply = self.c.ask("IAMAT b -90.000+180.000 1621464827.000000001")
        self.assertTrue(reply.endswith(" b -90.000+180.000 1621464827.000000001"), reply)

    def test_white_space_separators_and_crlf(self):
        reply = self.c.ask(" \tIAMAT\t\tc  +1.5-2.5 \v\f 1621464827.5 \r")
        m = AT_RE.match(reply)
        self.assertIsNotNone(m, repr(reply))
        self.assertEqual(m.group(5, 6, 7), ("c", "+1.5-2.5", "1621464827.5"))

    def test_invalid_forms_answered_and_connection_stays_open(self):
        bad = [
            "HELLO world", "iamat a +1+1 1", "IAMAT a +1+1", "IAMAT a +1+1 1 extra",
            "IAMAT a 34.0-118.0 1", "IAMAT a +34.0118.0 1", "IAMAT a +90.0001+0 1",
            "IAMAT a +0-180.1 1", "IAMAT a +0+0 1.1234567891", "IAMAT a +0+0 -1",
            "IAMAT a +0+0 1.", "IAMAT a +0+0 abc", "IAMAT a +.5+0 1",
            "WHATSAT nobody 10 5", "WHATSAT known 0 5", "WHATSAT known 50.01 5",
            "WHATSAT known 10 21", "WHATSAT known 10 -1", "WHATSAT known 10",
            "WHATSAT known ten 5", "WHATSAT known -5 5", "WHATSAT known 10 5 5",
            "AT Riley +0.000000000 a +0+0 1",
        ]
        self.assertTrue(self.c.ask("IAMAT known +0+0 1").startswith("AT Riley "))
        for line in bad:
            self.assertEqual(self.c.ask(line), "? " + line, line)
        self.assertEqual(self.c.ask("WHATSAT  x\t 10 5\r"), "? WHATSAT  x\t 10 5")
        self.assertTrue(self.c.ask("IAMAT ok +0+0 1").startswith("AT Riley "))

    def test_empty_lines_ignored(self):
        self.c.send("\n   \n\t\r\n")
        self.assertTrue(self.c.ask("IAMAT e +0+0 1").startswith("AT Riley "))

    def test_pipelined_replies_in_order(self):
        lines = []
        for i in range(300):
            if i % 3 == 0:
                lines.append("IAMAT p%d +1+1 %d.5" % (i, 1000 + i))
            elif i % 3 == 1:
                lines.append("BOGUS %d" % i)
            else:
                lines.append("WHATSAT p%d 5 1" % (i - 2))
        self.c.send("".join(l + "\n" for l in lines))
        for i, line in enumerate(lines):
            got = self.c.recv_line(timeout=5)
            if i % 3 == 0:
                self.assertRegex(got, r"^AT Riley \S+ p%d " % i)
            elif i % 3 == 1:
                self.assertEqual(got, "? " + line)
            else:
                self.assertRegex(got, r"^AT Riley \S+ p%d " % (i - 2))
                body = self.c.recv_until(b"\n\n", timeout=5)
                self.assertIn('"status"', body)

    def test_newest_client_time_wins(self):
        self.c.ask("IAMAT k +1+1 200.5")
        self.c.ask("IAMAT k +2+2 100.5")   # older: answered, not stored
        self.c.ask("IAMAT k +3+3 200.5")   # equal: not stored
        at, body = self.c.whatsat("k")
        self.assertTrue(at.endswith(" k +1+1 200.5"), at)
        self.c.ask("IAMAT k +4+4 200.500000001")
        at, body = self.c.whatsat("k")
        self.assertTrue(at.endswith(" k +4+4 200.500000001"), at)

    def test_whatsat_without_key_is_request_denied(self):
        at = self.c.ask("IAMAT w +34.068930-118.445127 1621464827.959498503")
        self.c.line("WHATSAT w 10 5")
        self.assertEqual(self.c.recv_line(), at)
        body = self.c.recv_until(b"\n\n")
        self.assertIn('"status" : "REQUEST_DENIED"', body)
        self.assertIn('"results" : []', body)
        self.assertNotIn("\n\n", body[:-2])
        self.assertFalse(body[:-2].endswith("\n"))

    def test_long_line_closes_connection(self):
        line = "X" * 300
        self.c.send(line + "\n")
        self.assertEqual(self.c.recv_line(), "? " + "X" * 256)
        self.assertTrue(self.c.closed())
        c2 = self.client(self.port)
        self.c.close()
        c2.send("Y" * 5000)   # no newline at all
        self.assertEqual(c2.recv_line(), "? " + "Y" * 256)
        self.assertTrue(c2.closed())
        self.assertIsNone(self.worker.poll())

    def test_line_at_the_limit_is_kept(self):
        cid = "i" * (256 - len("IAMAT  +0+0 1"))
        line = "IAMAT %s +0+0 1" % cid
        self.assertEqual(len(line), 256)
        self.assertTrue(self.c.ask(line).startswith("AT Riley"))

    def test_binary_garbage_with_nul(self):
        junk = b"\x00\x01\xff IAMAT\x00 a +1+1 1 \x7f\x80"
        self.c.send(junk + b"\n")
        got = self.c.recv_line()
        self.assertEqual(got, "? " + junk.decode(errors="replace"))
        self.assertTrue(self.c.ask("IAMAT g +0+0 1").startswith("AT Riley"))

    def test_logs_every_line_in_and_out(self):
        self.c.ask("IAMAT logged.client +0+0 1")
        self.c.ask("NONSENSE here")
        wait_for(lambda: "NONSENSE" in self.log_text("Riley") and "? NONSENSE" in
                 self.log_text("Riley"), 2, what="log lines")
        log = self.log_text("Riley")
        self.assertRegex(log, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO .* in \"IAMAT logged.client")
        self.assertRegex(log, r"out \"AT Riley [+-]\d+\.\d{9} logged.client")
        self.assertRegex(log, r"out \"\? NONSENSE here")

    def test_sigterm_exits_zero(self):
        self.assertEqual(self.stop(self.worker), 0)


class Limits(HerdTestCase):
    def test_idle_client_closed(self):
        port = free_port()
        cfg = self.config({"Riley": port}, herd={"idle_timeout": "300ms"})
        self.start_worker(cfg, "Riley", port)
        c = self.client(port)
        t0 = time.monotonic()
        self.assertTrue(c.closed(timeout=3))
        self.assertGreater(time.monotonic() - t0, 0.2)

    def test_max_connections(self):
        port = free_port()
        cfg = self.config({"Riley": port}, herd={"max_connections": 5})
        w = self.start_worker(cfg, "Riley", port)
        # The start-up probe's connection may still be counted: let it go.
        wait_for(lambda: self._answers(port), 2, what="the probe connection to close")
        self.clients.pop().close()
        time.sleep(0.1)
        held = []
        for _ in range(5):
            held.append(self.client(port))
            self.assertTrue(held[-1].ask("IAMAT m +0+0 1").startswith("AT"))
        extra = self.client(port)
        self.assertTrue(extra.closed(timeout=2))
        held[0].close()
        wait_for(lambda: self._answers(port), 2, what="a slot to free up")
        self.assertIsNone(w.poll())

    def _answers(self, port):
        try:
            c = self.client(port, timeout=0.5)
            return (c.ask("IAMAT n +0+0 1") or "").startswith("AT")
        except OSError:
            return False

    def test_thousand_concurrent_clients(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < 2200:
            self.skipTest("file limit %d too low" % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096) if hard >= 4096 else hard, hard))
        port = free_port()
        cfg = self.config({"Riley": port})
        w = self.start_worker(cfg, "Riley", port)
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(1000)]
        try:
            for i, s in enumerate(socks):
                s.sendall(b"IAMAT c%d +1+1 %d\n" % (i, i))
            for i, s in enumerate(socks):
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, "client %d closed" % i)
                    data += chunk
                self.assertRegex(data.decode(), r"^AT Riley \S+ c%d \+1\+1 %d\n$" % (i, i))
        finally:
            for s in socks:
                s.close()
        self.assertIsNone(w.poll())


class BadInvocation(HerdTestCase):
    def test_bad_config_exits_2_with_file_line(self):
        cfg = self.path("bad.ini")
        with open(cfg, "w") as f:
            f.write("[herd]\nlog_dir = log\n\n[server A]\nport = 99999\n")
        p = subprocess.run([binary("herd-worker"), "-c", cfg, "A"], capture_output=True,
                           timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn(cfg + ":5:", p.stderr.decode())

    def test_unknown_server_exits_2(self):
        port = free_port()
        cfg = self.config({"Riley": port})
        p = subprocess.run([binary("herd-worker"), "-c", cfg, "Nobody"], capture_output=True,
                           timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("Nobody", p.stderr.decode())

    def test_port_taken_exits_1(self):
        port = free_port()
        hold = socket.socket()
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hold.bind(("127.0.0.1", port))
        hold.listen(1)
        try:
            cfg = self.config({"Riley": port})
            p = subprocess.run([binary("herd-worker"), "-c", cfg, "Riley"],
                               capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 1)
            self.assertIn("cannot listen", self.log_text("Riley"))
        finally:
            hold.close()

    def test_help(self):
        p = subprocess.run([binary("herd-worker"), "--help"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: herd-worker", p.stdout.decode())
