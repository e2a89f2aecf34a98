#!/usr/bin/env python3
"""rolling.py: a herd of five under herd-supervisor holding N clients (100 000
by default) goes through the operator actions of SPEC §7 and must keep every
client on every server: a reload of a live herd-wide key (log_level), a
reload of a restart-class herd-wide key (a secret rotated with
secret_previous: a rolling restart of all five), and restart --all. Prints
one JSON line per figure in run-bench's shape and exits 1 if a client was
lost.

    rolling.py --bin BINDIR [--clients 100000]

Everything it starts is stopped with herdctl stop, then killed by PID.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, HERE)
import herdtest  # noqa: E402
from resync import load  # noqa: E402


def emit(name, value, unit):
    print(json.dumps({"bench": name, "value": value, "unit": unit, "target": None, "met": None}),
          flush=True)


class Herd:
    def __init__(self, bindir):
        self.bindir = bindir
        self.tmp = tempfile.mkdtemp(prefix="herd-rolling-")
        self.cfg = os.path.join(self.tmp, "herd.ini")
        self.ports = {n: herdtest.free_port() for n in herdtest.FIVE}
        self.pids = set()

    def write(self, herd):
        base = {"heartbeat_interval": "0.2", "heartbeat_timeout": "10", "stop_timeout": "10"}
        base.update(herd)
        herdtest.write_config(self.cfg, self.ports, herd=base, links=herdtest.FIVE_LINKS)

    def ctl(self, *args):
        p = subprocess.run([os.path.join(self.bindir, "herdctl"), "-c", self.cfg] + list(args),
                           capture_output=True, text=True, timeout=3700)
        return p

    def status(self):
        st = json.loads(self.ctl("status", "--json").stdout)
        self.pids.add(st["supervisor"]["pid"])
        for s in st["servers"]:
            if s["pid"]:
                self.pids.add(s["pid"])
        return st

    def counts(self):
        return {s["name"]: s["clients"] for s in self.status()["servers"]}

    def wait_all(self, n, timeout=120):
        herdtest.wait_for(lambda: all(c == n for c in self.counts().values()), timeout, 0.2,
                          "every server with %d clients" % n)

    def close(self):
        try:
            self.ctl("stop")
        except Exception:
            pass
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def step(h, name, n, *args):
    t0 = time.monotonic()
    p = h.ctl(*args)
    secs = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit("%s: exit %d: %s%s" % (name, p.returncode, p.stdout, p.stderr))
    counts = h.counts()
    emit("%s, %dk clients (returns when every worker is back and resynced)" % (name, n // 1000),
         round(secs, 3), "s")
    lost = {k: n - v for k, v in counts.items() if v != n}
    emit("%s: clients lost on any server" % name, sum(lost.values()), "clients")
    if lost:
        raise SystemExit("%s lost clients: %s" % (name, lost))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--clients", type=int, default=100000)
    a = ap.parse_args()
    h = Herd(os.path.abspath(a.bin))
    try:
        h.write({"secret": "first"})
        p = h.ctl("start")
        if p.returncode != 0:
            raise SystemExit("start: %s%s" % (p.stdout, p.stderr))
        h.status()
        t0 = time.monotonic()
        load(h.ports["Riley"], a.clients)
        h.wait_all(a.clients)
        emit("load %dk clients and flood them to five" % (a.clients // 1000),
             round(time.monotonic() - t0, 3), "s")
        h.write({"secret": "first", "log_level": "warn"})
        step(h, "reload of a live herd-wide key (log_level)", a.clients, "reload")
        h.write({"secret": "second", "secret_previous": "first", "log_level": "warn"})
        step(h, "reload of secret (rolling restart of five)", a.clients, "reload")
        step(h, "restart --all", a.clients, "restart", "--all")
    finally:
        h.close()


if __name__ == "__main__":
    main()
