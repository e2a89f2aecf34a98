"""Hostile clients against one real herd-worker (SPEC §4 "no input can make a
worker buffer without bound"): a 1 MiB line, 10 000 connections at once,
silent connections, a client that never reads, binary garbage, and connect /
close churn. After each attack the worker must still be the same process,
answer a fresh client, hold no leaked descriptor, and have grown its memory
by less than the bound the test states.

Memory is read from /proc/PID/status: VmHWM (the peak resident set) after the
attack minus VmRSS before it, so a bound also covers the attack itself, not
only what is left after it. The bounds, with the limits that make them hold:

  attack                      bound    why it holds
  1 MiB line x 20 conns       4 MiB    input kept <= max_line + 64 KiB per conn
  10 000 connections          12 MiB   ~1 KiB per connection while open
  never-reading client x 8    4 MiB    client_output_max 64 KiB per conn
  binary garbage              4 MiB    replies written as they are made
  10 s connect/close churn    4 MiB    a closed conn is freed the same iteration
  idle connections            4 MiB    nothing held by a silent conn
  WHATSAT flood, slow Places  32 MiB   (not yet: see test_whatsat_flood_...)

Under AddressSanitizer (the `make asan` pass) freed memory sits in ASan's
quarantine, so the bounds are raised by asan_slack_kb() there; every other
check is the same.
"""
import json
import os
import random
import re
import resource
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

from herdtest import BIN, ROOT, HerdTestCase, free_port, wait_for, SLOW

MOCK = os.path.join(ROOT, "tests", "places-mock", "places_mock.py")
KNOWN_ISSUES = os.environ.get("HERD_KNOWN_ISSUES") == "1"

MIB = 1024

# Bounds on peak RSS growth, in KiB (see the table above).
BOUND_LONG_LINE = 4 * MIB
BOUND_CONNECTIONS = 12 * MIB
BOUND_NO_READ = 4 * MIB
BOUND_GARBAGE = 4 * MIB
BOUND_CHURN = 4 * MIB
BOUND_IDLE = 4 * MIB
BOUND_PLACES_FLOOD = 32 * MIB

N_CONNECTIONS = 10000
CHURN_SECONDS = 10.0
FRESH_REPLY_MS = 100.0


def asan_slack_kb():
    """What ASan alone adds to peak RSS: its quarantine of freed chunks
    (quarantine_size_mb in ASAN_OPTIONS, 256 MiB by default), their shadow
    (an eighth) and 64 MiB for the allocator's own metadata and caches (about
    30 MiB seen after 10 s of connect/close churn)."""
    opts = dict(kv.split("=", 1) for kv in os.environ.get("ASAN_OPTIONS", "").split(":")
                if "=" in kv)
    quarantine = int(opts.get("quarantine_size_mb", "256")) * MIB
    return quarantine + quarantine // 8 + 64 * MIB


def sanitized():
    """True when the worker under test was built with AddressSanitizer."""
    try:
        with open(os.path.join(BIN, "herd-worker"), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def proc_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rst_close(sock):
    """Closes with a reset (SO_LINGER 0): no TIME_WAIT left on our side."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Hostile(HerdTestCase):
    def start(self, env=None, **herd):
        """One worker "Riley" with HERD settings; returns its port."""
        self.port = free_port()
        cfg = self.config({"Riley": self.port}, herd=herd)
        self.worker = self.start_worker(cfg, "Riley", self.port, env=env)
        self.pid = self.worker.pid
        # Warm up (first allocations, log file) before taking the baseline.
        for i in range(20):
            c = self.client(self.port)
            self.assertTrue(c.ask("IAMAT warm%d +1+1 %d" % (i, i + 1)).startswith("AT Riley "))
            c.close()
        time.sleep(0.3)   # let the worker see the warm-up conns go
        self.base_fds = fd_count(self.pid)
        self.base_rss = proc_kb(self.pid, "VmRSS")
        return self.port

    def answers(self, timeout=2.0):
        c = self.client(self.port, timeout=timeout)
        try:
            reply = c.ask("IAMAT probe.client +34.068930-118.445127 1621464827.5")
            return reply is not None and reply.startswith("AT Riley ")
        finally:
            c.close()

    def assert_healthy(self, bound_kb, what):
        """Same process, answers, no descriptor leaked, peak RSS within bound."""
        self.assertIsNone(self.worker.poll(), "worker died during %s" % what)
        self.assertTrue(self.answers(), "worker does not answer after %s" % what)
        wait_for(lambda: fd_count(self.pid) <= self.base_fds, 10,
                 what="descriptors to return to %d after %s (now %d)" %
                 (self.base_fds, what, fd_count(self.pid)))
        peak = proc_kb(self.pid, "VmHWM")
        now = proc_kb(self.pid, "VmRSS")
        bound = bound_kb + (asan_slack_kb() if sanitized() else 0)
        grew = peak - self.base_rss
        print("%s: RSS %d KiB before, peak %d KiB (+%d KiB, bound %d KiB), %d KiB after" %
              (what, self.base_rss, peak, grew, bound, now), flush=True)
        self.assertLess(grew, bound, "%s: peak RSS grew by %d KiB (bound %d KiB)" %
                        (what, grew, bound))
        self.assertEqual(self.worker.pid, self.pid)

    # -- attacks --------------------------------------------------------------

    def test_megabyte_line_without_newline(self):
        self.start()   # max_line_length 4096 (the default)
        payload = b"A" * (1024 * 1024)
        conns = [self.client(self.port, timeout=10) for _ in range(20)]
        threads = [threading.Thread(target=self._push, args=(c.sock, payload)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for c in conns:
            self.assertEqual(c.recv_line(timeout=5), "? " + "A" * 4096)
            self.assertTrue(c.closed(timeout=5), "a 1 MiB line did not close its conn")
            c.close()
        self.assert_healthy(BOUND_LONG_LINE, "1 MiB lines")

    @staticmethod
    def _push(sock, data):
        try:
            sock.sendall(data)
        except OSError:
            pass   # closed by the worker part-way: that is the point

    def test_ten_thousand_connections(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = N_CONNECTIONS + 200
        if hard < need:
            self.skipTest("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # the worker inherits it
        try:
            self._ten_thousand()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def _ten_thousand(self):
        self.start(max_connections=N_CONNECTIONS + 100)
        socks = []
        try:
            t0 = time.monotonic()
            for _ in range(N_CONNECTIONS):
                socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=10))
            for i, s in enumerate(socks):
                s.sendall(b"IAMAT many%d +1+1 %d.5\n" % (i, i + 1))
            for i, s in enumerate(socks):
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, "connection %d closed by the worker" % i)
                    data += chunk
                self.assertTrue(data.startswith(b"AT Riley "), data)
            setup = time.monotonic() - t0
            # With every one of them still open, a new client is served at once.
            times = []
            for _ in range(5):
                t1 = time.monotonic()
                ok = self.answers(timeout=5)
                times.append((time.monotonic() - t1) * 1000)
                self.assertTrue(ok)
            print("10000 conns open and answered in %.1f s; fresh client replies in %s ms" %
                  (setup, ", ".join("%.1f" % t for t in times)), flush=True)
            self.assertLess(min(times), FRESH_REPLY_MS,
                            "a fresh client waited %.1f ms (bound %.0f ms)" %
                            (min(times), FRESH_REPLY_MS))
            self.assertLess(sorted(times)[2], FRESH_REPLY_MS, "median %.1f ms" % sorted(times)[2])
            self.assertEqual(fd_count(self.pid), self.base_fds + N_CONNECTIONS)
        finally:
            for s in socks:
                rst_close(s)
        self.assert_healthy(BOUND_CONNECTIONS, "10000 connections")

    def test_idle_connections_closed(self):
        self.start(idle_timeout="1s")
        silent = [self.client(self.port) for _ in range(50)]
        spoke = [self.client(self.port) for _ in range(50)]
        for i, c in enumerate(spoke):
            self.assertTrue(c.ask("IAMAT idle%d +1+1 1" % i).startswith("AT Riley "))
        partial = [self.client(self.port) for _ in range(20)]
        for c in partial:
            c.send("IAMAT half-a-li")   # no newline, then silence
        busy = self.client(self.port)
        t0 = time.monotonic()
        # One that keeps talking outlives the timeout.
        while time.monotonic() - t0 < 1.6:
            self.assertTrue(busy.ask("IAMAT busy +1+1 1").startswith("AT Riley "))
            time.sleep(0.2)
        for c in silent + spoke + partial:
            self.assertTrue(c.closed(timeout=3), "an idle connection stayed open")
        self.assertLess(time.monotonic() - t0, 4.5)
        self.assertTrue(busy.ask("IAMAT busy +1+1 2").startswith("AT Riley "))
        busy.close()
        self.assert_healthy(BOUND_IDLE, "idle connections")

    def test_client_that_never_reads(self):
        self.start(client_output_max="64k")
        lines = b"".join(b"IAMAT reader%d +34.068930-118.445127 %d.5\n" % (i % 100, i + 1)
                         for i in range(40000))
        lines += b"".join(b"WHATSAT reader%d 10 20\n" % (i % 100) for i in range(20000))
        fds = lambda: len(os.listdir("/proc/%d/fd" % self.pid))  # noqa: E731
        baseline = fds()
        socks = []
        for _ in range(8):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # before connect
            s.settimeout(10)
            s.connect(("127.0.0.1", self.port))
            socks.append(s)
        threads = [threading.Thread(target=self._push, args=(s, lines)) for s in socks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # Each is closed (its descriptor gone); the warning is rate-limited,
        # so the log says it once with a count, not once per client.
        wait_for(lambda: fds() <= baseline, 5, what="every never-reading client to be closed")
        self.assertIn("output over limit", self.log_text("Riley"))
        self.assertLess(self.log_text("Riley").count("output over limit"), len(socks))
        for s in socks:
            rst_close(s)
        self.assert_healthy(BOUND_NO_READ, "never-reading clients")

    def test_binary_garbage_with_nul(self):
        self.start()
        rng = random.Random(6709)
        total = 0
        for conn_no in range(8):
            c = self.client(self.port, timeout=10)
            lines = []
            for _ in range(400):
                n = rng.randint(0, 300)
                line = bytes(rng.choice((0, 0, 1, 13, 32, 127, 128, 255, rng.randint(0, 255)))
                             if rng.random() < 0.3 else rng.randint(0, 255)
                             for _ in range(n)).replace(b"\n", b"\x00")
                lines.append(line)
            c.send(b"".join(l + b"\n" for l in lines))
            total += sum(len(l) + 1 for l in lines)
            for line in lines:
                body = line[:-1] if line.endswith(b"\r") else line
                if not body.strip(b" \t\r\f\v"):
                    continue   # blank lines get no reply
                want = b"? " + body + b"\n"
                while len(c.buf) < len(want):
                    chunk = c.sock.recv(65536)
                    self.assertTrue(chunk, "worker closed the garbage conn %d" % conn_no)
                    c.buf += chunk
                self.assertEqual(c.buf[:len(want)], want)
                c.buf = c.buf[len(want):]
            self.assertTrue(c.ask("IAMAT after.garbage +1+1 1").startswith("AT Riley "))
            c.close()
        print("binary garbage: %d bytes on 8 conns, every line echoed exactly" % total)
        self.assert_healthy(BOUND_GARBAGE, "binary garbage")

    def test_connect_close_churn(self):
        self.start()
        stop = time.monotonic() + CHURN_SECONDS
        counts = [0, 0]

        def churn(k):
            rng = random.Random(k)
            while time.monotonic() < stop:
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                except OSError:
                    time.sleep(0.01)   # ephemeral ports or backlog: breathe
                    continue
                way = rng.randrange(4)
                try:
                    if way == 1:
                        s.sendall(b"IAMAT churn +1+1 1\n")   # and never read it
                    elif way == 2:
                        s.sendall(b"WHATSAT chu")            # half a line
                except OSError:
                    pass
                if way == 3 or rng.random() < 0.5:
                    rst_close(s)
                else:
                    s.close()
                counts[k] += 1

        threads = [threading.Thread(target=churn, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(CHURN_SECONDS + 10)
        print("churn: %d connections opened and dropped in %.0f s" %
              (sum(counts), CHURN_SECONDS), flush=True)
        self.assertGreater(sum(counts), 1000)
        self.assert_healthy(BOUND_CHURN, "connect/close churn")

    def test_whatsat_flood_with_slow_places(self):
        """200 clients each pipeline 64 WHATSATs with distinct radii while
        Places takes 3 s to answer (places_timeout 1 s): 12 800 questions
        waiting at once. Memory must stay bounded and other clients must
        still be answered at once, also when the questions all time out."""
        key = "AIzaHostileTestKey"
        mock = self.spawn([sys.executable, MOCK, "--port", "0", "--key", key],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        ready, _, _ = select.select([mock.stdout], [], [], 10)
        m = re.match(r"LISTENING (\d+)$", mock.stdout.readline().decode().strip() if ready else "")
        self.assertIsNotNone(m, "places mock did not start")
        base = "http://127.0.0.1:%s" % m.group(1)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(urllib.request.Request(base + "/_mock/mode", method="POST", data=json.dumps(
            {"mode": "delay", "seconds": 3}).encode()), timeout=5).read()
        self.start(env={"HERD_PLACES_KEY": key, "no_proxy": "*", "NO_PROXY": "*"},
                   places_url=base + "/maps/api/place/nearbysearch/json",
                   places_api="legacy", places_max_rate=0, places_max_per_day=0,  # not the caps
                   places_timeout="1s", log_level="warn")
        socks = []
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            socks.append(s)
            s.sendall(b"IAMAT flood%d +10.%06d+010.000000 1\n" % (i, i) +
                      b"".join(b"WHATSAT flood%d %d.%03d 20\n" % (i, 1 + j % 49, j)
                               for j in range(64)))
        worst = 0.0
        end = time.monotonic() + 3.0   # covers the moment they all time out
        while time.monotonic() < end:
            t0 = time.monotonic()
            self.assertTrue(self.answers(timeout=30))
            worst = max(worst, (time.monotonic() - t0) * 1000)
            time.sleep(0.05)
        for s in socks:
            rst_close(s)
        print("WHATSAT flood: slowest fresh client %.0f ms" % worst, flush=True)
        self.assert_healthy(BOUND_PLACES_FLOOD, "WHATSAT flood with a slow Places")
        self.assertLess(worst, FRESH_REPLY_MS * 2 * SLOW, "a fresh client waited %.0f ms" % worst)
