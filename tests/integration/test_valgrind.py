"""Memcheck over scripted sessions: a herd-worker (clients, pipelining, bad
and overlong lines, WHATSAT through libcurl to the Places mock, a WHATSAT
abandoned mid-flight, a neighbour link that drops and resyncs, SIGTERM), the
supervisor (start, a worker killed and restarted, reopen-logs, restart,
SIGTERM) and herdctl status against it. Each must end with 0 errors and 0 bytes definitely lost
(--error-exitcode=99 --errors-for-leak-kinds=definite). Skipped without
valgrind. Every wait is bounded: valgrind runs a program ~20x slower."""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

from herdtest import ROOT, HerdTestCase, binary, free_port, port_open, wait_for

MOCK = os.path.join(ROOT, "tests", "places-mock", "places_mock.py")
UCLA = "+34.068930-118.445127"
VG_TIMEOUT = 60      # a valgrind'ed process must start, run and stop within this


def sanitized(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


class Valgrind(HerdTestCase):
    def setUp(self):
        super().setUp()
        if shutil.which("valgrind") is None:
            self.skipTest("valgrind not installed")
        if sanitized(binary("herd-worker")):
            self.skipTest("binaries built with AddressSanitizer: memcheck cannot run them")

    def vg(self, argv, name, **kw):
        """argv under memcheck, its report in TMP/NAME.vg."""
        log = self.path(name + ".vg")
        cmd = ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
               "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
               "--track-fds=no", "--num-callers=30", "--log-file=" + log] + argv
        return self.spawn(cmd, **kw), log

    def assert_clean(self, proc, log, what, sig=signal.SIGTERM):
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=VG_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            self.fail("%s did not stop within %d s of SIGTERM under valgrind" % (what, VG_TIMEOUT))
        with open(log, errors="replace") as f:
            report = f.read()
        m = re.search(r"ERROR SUMMARY: (\d+) errors", report)
        lost = re.search(r"definitely lost: ([\d,]+) bytes", report)
        lost_bytes = int(lost.group(1).replace(",", "")) if lost else 0
        print("%s: exit %s, %s errors, %d bytes definitely lost" %
              (what, rc, m.group(1) if m else "?", lost_bytes), flush=True)
        self.assertIsNotNone(m, "no valgrind summary for %s:\n%s" % (what, report[-3000:]))
        self.assertEqual((int(m.group(1)), lost_bytes), (0, 0),
                         "%s under memcheck:\n%s" % (what, report[-8000:]))
        self.assertEqual(rc, 0, "%s exited %s:\n%s" % (what, rc, report[-3000:]))

    def start_mock(self, key):
        p = self.spawn([sys.executable, MOCK, "--port", "0", "--key", key],
                       stdout=subprocess.PIPE)
        ready, _, _ = select.select([p.stdout], [], [], 10)
        line = p.stdout.readline().decode() if ready else ""
        m = re.match(r"LISTENING (\d+)$", line.strip())
        self.assertIsNotNone(m, "places mock did not start: %r" % line)
        return "http://127.0.0.1:%s/v1/places:searchNearby" % m.group(1)  # Places API (New)

    def test_worker_session(self):
        key = "AIzaValgrindTestKey"
        url = self.start_mock(key)
        ports = {"Riley": free_port(), "Jaquez": free_port()}
        cfg = self.config(ports, links={"Riley": ["Jaquez"]},
                          herd={"places_url": url, "places_timeout": "5s",
                                "max_line_length": 512, "link_backoff_min": "50ms",
                                "link_backoff_max": "200ms"})
        env = dict(os.environ, HERD_PLACES_KEY=key, no_proxy="*", NO_PROXY="*")
        riley, log = self.vg([binary("herd-worker"), "-c", cfg, "Riley"], "worker", env=env)
        wait_for(lambda: port_open(ports["Riley"]) or riley.poll() is not None, VG_TIMEOUT,
                 interval=0.1, what="Riley under valgrind to listen")
        self.assertIsNone(riley.poll(), "worker under valgrind exited early")
        jaquez = self.start_worker(cfg, "Jaquez", ports["Jaquez"])

        c = self.client(ports["Riley"], timeout=30)
        self.assertTrue(c.ask("IAMAT kiwi %s 1621464827.959498503" % UCLA).startswith("AT Riley"))
        self.assertEqual(c.ask("NONSENSE line"), "? NONSENSE line")
        at, body = c.whatsat("kiwi", 10, 3, timeout=30)       # libcurl -> mock -> json-c
        self.assertTrue(at.startswith("AT Riley"), at)
        self.assertIn('"status" : "OK"', body)
        at, body = c.whatsat("kiwi", 10, 3, timeout=30)       # from the cache
        self.assertIn('"status" : "OK"', body)
        c.send("".join("IAMAT p%d %s %d\nWHATSAT kiwi %d 2\nBAD %d\n" % (i, UCLA, i + 1, i + 1, i)
                       for i in range(20)))
        for i in range(20):
            self.assertTrue(c.recv_line(timeout=30).startswith("AT Riley"))
            self.assertTrue(c.recv_line(timeout=30).startswith("AT Riley"))
            c.recv_until(b"\n\n", timeout=30)
            self.assertEqual(c.recv_line(timeout=30), "? BAD %d" % i)

        # An update from the neighbour, and one flooded to it.
        j = self.client(ports["Jaquez"])
        j.ask("IAMAT from.jaquez %s 1621464828.5" % UCLA)
        wait_for(lambda: (c.whatsat("from.jaquez", 1, 0, timeout=30)[0] or "").startswith("AT"),
                 30, interval=0.2, what="the flood from Jaquez to reach Riley")
        c.ask("IAMAT to.jaquez %s 1621464829.5" % UCLA)
        wait_for(lambda: (j.whatsat("to.jaquez", 1, 0)[0] or "").startswith("AT"), 30,
                 interval=0.1, what="the flood from Riley to reach Jaquez")

        # The neighbour dies and comes back empty: Riley redials and resyncs.
        j.close()
        self.stop(jaquez, signal.SIGKILL)
        jaquez = self.start_worker(cfg, "Jaquez", ports["Jaquez"])
        j = self.client(ports["Jaquez"])
        wait_for(lambda: (j.whatsat("kiwi", 1, 0)[0] or "").startswith("AT"), 30,
                 interval=0.1, what="the restarted Jaquez to learn kiwi from Riley")

        # Abandoned requests: a WHATSAT waiting on a slow Places, a partial
        # line, an overlong line.
        d = self.client(ports["Riley"], timeout=30)
        self.assertTrue(d.ask("IAMAT far %s 1" % "+10.000000+010.000000").startswith("AT"))
        d.line("WHATSAT far 50 20")
        d.send("WHATSAT far 5")
        d.close()
        e = self.client(ports["Riley"], timeout=30)
        e.send("X" * 2000)
        self.assertTrue(e.closed(timeout=30))
        idle = self.client(ports["Riley"], timeout=30)
        idle.send("IAMAT idle %s 1\n" % UCLA)
        time.sleep(0.5)
        self.assert_clean(riley, log, "herd-worker")   # with clients still connected
        self.stop(jaquez)

    def test_supervisor_session(self):
        if not os.access(binary("herd-supervisor"), os.X_OK):
            self.skipTest("no herd-supervisor")
        ports = {"Riley": free_port(), "Jaquez": free_port()}
        cfg = self.config(ports, links={"Riley": ["Jaquez"]},
                          herd={"restart_backoff_min": "50ms", "heartbeat_interval": "200ms"})
        sup, log = self.vg([binary("herd-supervisor"), "-f", "-c", cfg], "supervisor",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: all(port_open(p) for p in ports.values()) or sup.poll() is not None,
                 VG_TIMEOUT, interval=0.1, what="the supervised herd to listen")
        self.assertIsNone(sup.poll(), "supervisor under valgrind exited early")
        ctl = [binary("herdctl"), "-c", cfg]
        st = subprocess.run(ctl + ["status", "--json"], capture_output=True, timeout=30)
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertEqual(subprocess.run(ctl + ["kill", "Jaquez"], capture_output=True,
                                        timeout=30).returncode, 0)
        wait_for(lambda: subprocess.run(ctl + ["status"], capture_output=True,
                                        timeout=30).returncode == 0, 30, interval=0.2,
                 what="Jaquez to be restarted")
        self.assertEqual(subprocess.run(ctl + ["reopen-logs"], capture_output=True,
                                        timeout=30).returncode, 0)
        # herdctl itself, talking to the live control socket.
        p, ctl_log = self.vg(ctl + ["status", "--json"], "herdctl", stdout=subprocess.PIPE)
        out, _ = p.communicate(timeout=VG_TIMEOUT)
        self.assertIn(b'"servers"', out)
        self.assert_clean(p, ctl_log, "herdctl status --json")
        self.assertEqual(subprocess.run(ctl + ["restart", "Riley"], capture_output=True,
                                        timeout=30).returncode, 0)
        wait_for(lambda: port_open(ports["Riley"]), 30, interval=0.1, what="Riley back")
        self.assert_clean(sup, log, "herd-supervisor")
