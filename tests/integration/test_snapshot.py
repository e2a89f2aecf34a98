"""Snapshots (SPEC §5 client records): with state_dir, `herdctl stop` then
`herdctl start` keeps 100 000 clients on every server; SIGKILL of the
supervisor and every worker at once loses nothing older than one
snapshot_interval; a corrupt, truncated or zero-length snapshot is set aside
(NAME.snap.bad-TIMESTAMP) and the worker starts empty; loading skips expired
records; `herdctl save` writes now and status shows the last snapshot.

Every herd runs in a temp folder on free loopback ports; tearDown stops it
with herdctl and SIGKILLs, by pid, anything it saw that is still alive.
"""
import glob
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import time
import zlib

from herdtest import SupervisedCase, alive, FIVE, FIVE_LINKS, SLOW, binary, free_port, wait_for

FAST = {
    "heartbeat_interval": "0.1",
    "heartbeat_timeout": "5",
    "restart_backoff_min": "0.1",
    "restart_backoff_max": "1",
    "stop_timeout": "10",
}
LOC = "+34.068930-118.445127"
LINE3 = {"Alpha": ["Beta"], "Beta": ["Gamma"]}



def pipeline_iamats(port, first, count, base=1_700_000_000):
    """Sends COUNT IAMATs for clients c{first}.. over one connection and waits
    for every reply; returns {id: client time}."""
    sent = {}
    s = socket.create_connection(("127.0.0.1", port), timeout=30 * SLOW)
    try:
        chunk = []
        for i in range(first, first + count):
            t = "%d.%09d" % (base + i, i % 1000)
            sent["c%d" % i] = t
            chunk.append("IAMAT c%d %s %s\n" % (i, LOC, t))
        s.sendall("".join(chunk).encode())
        got, deadline = 0, time.monotonic() + 60 * SLOW
        while got < count and time.monotonic() < deadline:
            data = s.recv(1 << 20)
            if not data:
                break
            got += data.count(b"\n")
        assert got == count, "only %d of %d replies" % (got, count)
    finally:
        s.close()
    return sent


def snap_file(lines, version=1):
    """A snapshot in herd's format (worker/snap_format.c), written here so the
    test does not depend on the writer it checks."""
    payload = b"".join(l.encode() + b"\n" for l in lines)
    blocks = b""
    if lines:
        h = struct.pack("<II", len(payload), len(lines))
        blocks += h + struct.pack("<I", zlib.crc32(payload, zlib.crc32(h))) + payload
    end = struct.pack("<II", 0, 0)
    blocks += end + struct.pack("<I", zlib.crc32(end))
    h = b"HERDSNAP" + struct.pack("<IIqqI", version, 0, len(lines), int(time.time()),
                                  1 if lines else 0)
    return h + struct.pack("<I", zlib.crc32(h)) + blocks


class SnapshotTest(SupervisedCase):

    # -- helpers -------------------------------------------------------------

    def herd(self, names, extra=None, links=None):
        self.ports = {n: free_port() for n in names}
        h = dict(FAST)
        h["state_dir"] = "state"
        h.update(extra or {})
        self.cfg = self.config(self.ports, herd=h, links=links)
        return self.ports

    def ctl(self, *args, timeout=60):
        return subprocess.run([binary("herdctl"), "-c", self.cfg] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def status(self):
        p = self.ctl("status", "--json")
        if p.returncode == 3:
            return None
        st = json.loads(p.stdout)
        self.seen.add(st["supervisor"]["pid"])
        for srv in st["servers"]:
            if srv["pid"]:
                self.seen.add(srv["pid"])
        return st

    def start(self):
        p = self.ctl("start")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return self.status()

    def counts(self):
        st = self.status()
        return {s["name"]: s["clients"] for s in st["servers"]} if st else {}

    def wait_counts(self, want, timeout):
        return wait_for(lambda: all(v == want for v in self.counts().values()) and True,
                        timeout, 0.1, "every server to hold %d clients" % want)

    def snapshot_of(self, name):
        for s in self.status()["servers"]:
            if s["name"] == name:
                return s["snapshot"]
        return None

    def at_line(self, port, cid):
        c = self.client(port)
        return c.whatsat(cid, timeout=10 * SLOW)[0]

    # -- herd-wide -----------------------------------------------------------

    def test_stop_start_keeps_100k_clients_on_every_server(self):
        ports = self.herd(FIVE, links=FIVE_LINKS, extra={"snapshot_interval": "1h"})
        self.start()
        sent = pipeline_iamats(ports["Riley"], 0, 100_000)
        self.wait_counts(100_000, 60)
        before = {n: self.at_line(p, "c77777") for n, p in ports.items()}
        p = self.ctl("stop")
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in ports:
            snap = self.path("state", name + ".snap")
            self.assertTrue(os.path.exists(snap), name)
            self.assertEqual(stat.S_IMODE(os.stat(snap).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("state")).st_mode), 0o700)
        t0 = time.monotonic()
        self.start()
        for name in ports:
            self.assertIn("loaded 100000 records", self.wait_log(name, "loaded 100000", 10))
        self.assertEqual(set(self.counts().values()), {100_000})
        for n, port in ports.items():
            self.assertEqual(self.at_line(port, "c77777"), before[n])
        self.assertTrue(before["Campbell"].startswith("AT Riley "))
        self.assertTrue(before["Campbell"].endswith(sent["c77777"]))
        print("restart with 100k clients on 5 servers: %.2f s" % (time.monotonic() - t0))

    def test_whole_herd_sigkill_loses_nothing_older_than_an_interval(self):
        ports = self.herd(["Alpha", "Beta", "Gamma"], links=LINE3,
                          extra={"snapshot_interval": "1"})
        st = self.start()
        pipeline_iamats(ports["Alpha"], 0, 20_000)
        self.wait_counts(20_000, 30)
        # One interval later each worker has written them (and says so).
        wait_for(lambda: all((self.snapshot_of(n) or {}).get("records") == 20_000
                             for n in ports), 10, 0.1, "snapshots of 20000 records")
        pipeline_iamats(ports["Beta"], 20_000, 500)  # young: may be lost
        st = self.status()
        sup = st["supervisor"]["pid"]
        workers = [s["pid"] for s in st["servers"]]
        os.kill(sup, signal.SIGSTOP)  # no restart between the kills
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        os.kill(sup, signal.SIGKILL)
        wait_for(lambda: not any(alive(p) for p in workers + [sup]), 5, 0.01, "all dead")
        self.start()
        counts = self.counts()
        for name, n in counts.items():
            self.assertGreaterEqual(n, 20_000, name)
        for n, port in ports.items():
            self.assertTrue(self.at_line(port, "c19999").startswith("AT Alpha "), n)

    # -- one worker, its file ------------------------------------------------

    def standalone(self, herd_extra=None):
        self.port = free_port()
        h = {"state_dir": "state"}
        h.update(herd_extra or {})
        cfg = self.config({"Solo": self.port}, herd=h, name="solo.ini")
        os.makedirs(self.path("state"), exist_ok=True)
        return cfg

    def test_damaged_snapshots_set_aside_worker_starts_empty(self):
        cfg = self.standalone({"client_ttl": "0"})
        good = snap_file(["AT Solo +0.500000000 c%d %s 1700000000.5" % (i, LOC)
                          for i in range(300)])
        path = self.path("state", "Solo.snap")
        flipped = bytearray(good)
        flipped[len(good) // 2] ^= 0x01
        cases = {"corrupt": bytes(flipped), "truncated": good[:len(good) - 20], "zero": b""}
        for what, data in cases.items():
            with open(path, "wb") as f:
                f.write(data)
            before = set(glob.glob(path + ".bad-*"))
            w = self.start_worker(cfg, "Solo", self.port)
            new = set(glob.glob(path + ".bad-*")) - before
            self.assertEqual(len(new), 1, what)
            with open(new.pop(), "rb") as f:
                self.assertEqual(f.read(), data, what + ": the bad file is kept as it was")
            self.assertFalse(os.path.exists(path), what)
            self.assertEqual(self.client(self.port).ask("WHATSAT c7 10 5"), "? WHATSAT c7 10 5",
                             what + ": nothing loaded")
            self.assertIn("set aside", self.wait_log("Solo", "unusable", 5))
            self.stop(w)
        # The good file loads.
        with open(path, "wb") as f:
            f.write(good)
        w = self.start_worker(cfg, "Solo", self.port)
        self.assertTrue(self.at_line(self.port, "c7").startswith("AT Solo +0.500000000 c7 "))
        self.stop(w)

    def test_loading_skips_expired_records(self):
        cfg = self.standalone({"client_ttl": "100"})
        now = int(time.time())
        lines = ["AT Solo +0.000000000 old %s %d.0" % (LOC, now - 1000),
                 "AT Solo +900.000000000 shifted %s %d.0" % (LOC, now - 1000),
                 "AT Solo +0.000000000 young %s %d.0" % (LOC, now - 10)]
        with open(self.path("state", "Solo.snap"), "wb") as f:
            f.write(snap_file(lines))
        self.start_worker(cfg, "Solo", self.port)
        self.assertIn("2 expired skipped", self.wait_log("Solo", "loaded 1 records", 5))
        c = self.client(self.port)
        self.assertEqual(c.ask("WHATSAT old 10 5"), "? WHATSAT old 10 5")
        self.assertTrue(self.at_line(self.port, "young").startswith("AT Solo "))

    # -- herdctl save and status ---------------------------------------------

    def test_herdctl_save_and_status(self):
        ports = self.herd(["Alpha", "Beta"], links={"Alpha": ["Beta"]},
                          extra={"snapshot_interval": "1h"})
        self.start()
        pipeline_iamats(ports["Alpha"], 0, 50)
        self.wait_counts(50, 10)
        self.assertEqual(self.snapshot_of("Alpha")["age"], None)
        p = self.ctl("save")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Alpha: saved 50 records", p.stdout)
        self.assertIn("Beta: saved 50 records", p.stdout)
        for n in ports:
            snap = self.snapshot_of(n)
            self.assertEqual(snap["records"], 50)
            self.assertEqual(snap["bytes"], os.path.getsize(self.path("state", n + ".snap")))
            self.assertLess(snap["age"], 5)
            self.assertGreaterEqual(snap["duration"], 0)
        p = self.ctl("save", "Beta")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "Beta: saved 50 records, %d bytes"
                         % os.path.getsize(self.path("state", "Beta.snap")))
        self.assertEqual(self.ctl("save", "Nobody").returncode, 1)
        table = self.ctl("status").stdout
        self.assertIn("SNAPSHOT", table)
        self.assertRegex(table, r"Alpha .* [0-9.]+s/[0-9.]+[kM]?B/\d+ms")

    def test_save_without_state_dir_refused(self):
        self.herd(["Alpha"], extra={"state_dir": ""})
        with open(self.cfg) as f:
            text = f.read().replace("state_dir = \n", "")
        with open(self.cfg, "w") as f:
            f.write(text)
        self.start()
        p = self.ctl("save")
        self.assertEqual(p.returncode, 1)
        self.assertIn("state_dir", p.stderr)
