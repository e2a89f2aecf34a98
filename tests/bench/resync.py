#!/usr/bin/env python3
"""resync.py: how long a worker started with an empty memory takes to learn
every client of the herd through the link resync (SPEC §5, docs/
link-protocol.md), and how many bytes cross the link.

Two scenarios, each printing one JSON line per figure in run-bench's shape
({"bench", "value", "unit", "target", "met"}) and a summary line:

  pair  Alpha holds N clients; Beta (its only neighbour) starts empty.
  five  the course's five hold N clients; Juzang is SIGKILLed and restarted
        (it relearns from three neighbours and re-floods what is new to it).

    resync.py --bin BINDIR [--clients 100000] [--only pair|five]

Every process it starts is killed by PID at the end, whatever happened.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import herdtest  # noqa: E402

LOC = "+34.068930-118.445127"
T0 = 1621464827
TARGET_S = 1.0


class Run:
    def __init__(self, bindir):
        self.bindir = bindir
        self.tmp = tempfile.mkdtemp(prefix="herd-resync-")
        self.procs = []

    def start(self, cfg, name, port):
        env = dict(os.environ)
        env.pop("HERD_PLACES_KEY", None)
        p = subprocess.Popen([os.path.join(self.bindir, "herd-worker"), "-c", cfg, name],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
        self.procs.append(p)
        herdtest.wait_for(lambda: herdtest.port_open(port) or p.poll() is not None, 10,
                          what="%s to listen" % name)
        if p.poll() is not None:
            raise SystemExit("%s exited %s" % (name, p.returncode))
        return p

    def log(self, name):
        with open(os.path.join(self.tmp, "log", name + ".log"), errors="replace") as f:
            return f.read()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)


def load(port, n):
    """Sends N IAMATs for clients c0..c{N-1}, pipelined; waits for every reply
    (read as it comes, or the worker would close a client that does not read)."""
    c = herdtest.Client(port, timeout=120)
    replies = []

    def read():
        got = 0
        while got < n:
            chunk = c.sock.recv(1 << 20)
            if not chunk:
                break
            got += chunk.count(b"\n")
        replies.append(got)
    reader = threading.Thread(target=read)
    reader.start()
    step = 10000
    for s in range(0, n, step):
        c.send("".join("IAMAT c%d.example %s %d.%09d\n" % (i, LOC, T0, i)
                       for i in range(s, min(n, s + step))))
    reader.join(120)
    c.close()
    if replies != [n]:
        raise SystemExit("load: %s of %d replies" % (replies, n))


def knows(port, client):
    c = herdtest.Client(port, timeout=5)
    try:
        first, _ = c.whatsat(client)
    finally:
        c.close()
    return first is not None and not first.startswith("?")


def wait_learned(port, n, t_start):
    """Seconds from t_start until PORT knows the last and the first client."""
    for cid in ("c%d.example" % (n - 1), "c0.example"):
        herdtest.wait_for(lambda: knows(port, cid), 30, 0.005, cid)
    return time.monotonic() - t_start


def cpu_seconds(pid):
    """User + system CPU time a process has used (load-independent)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resync_figures(text, peer):
    """Records, new, bytes and ms of every "resync from PEER" line of a log."""
    return [tuple(int(float(x)) for x in m.groups()) for m in re.finditer(
        r"resync from %s: (\d+) records \((\d+) new\), (\d+) bytes, ([\d.]+) ms" % peer, text)]


def emit(name, value, unit, target=None):
    met = None if target is None else value <= target
    print(json.dumps({"bench": name, "value": round(value, 4), "unit": unit,
                      "target": target, "met": met}), flush=True)


def pair(bindir, n):
    r = Run(bindir)
    try:
        ports = {"Alpha": herdtest.free_port(), "Beta": herdtest.free_port()}
        cfg = herdtest.write_config(os.path.join(r.tmp, "herd.ini"), ports,
                                    links={"Alpha": ["Beta"]})
        r.start(cfg, "Alpha", ports["Alpha"])
        load(ports["Alpha"], n)
        t = time.monotonic()
        beta = r.start(cfg, "Beta", ports["Beta"])
        secs = wait_learned(ports["Beta"], n, t)
        cpu = cpu_seconds(beta.pid)
        herdtest.wait_for(lambda: resync_figures(r.log("Beta"), "Alpha"), 5, what="log")
        recs, new, nbytes, ms = resync_figures(r.log("Beta"), "Alpha")[0]
        emit("resync_pair_%d_seconds" % n, secs, "s", TARGET_S)
        emit("resync_pair_%d_bytes" % n, nbytes, "bytes")
        emit("resync_pair_%d_link_ms" % n, ms, "ms")
        emit("resync_pair_%d_cpu" % n, cpu, "s")
        print("pair: %d clients (%d new) learned in %.3f s from spawn (%.3f s of CPU); link "
              "dump %d bytes in %d ms" % (recs, new, secs, cpu, nbytes, ms), flush=True)
    finally:
        r.close()


def five(bindir, n):
    r = Run(bindir)
    try:
        ports = {name: herdtest.free_port() for name in herdtest.FIVE}
        cfg = herdtest.write_config(os.path.join(r.tmp, "herd.ini"), ports,
                                    links=herdtest.FIVE_LINKS)
        procs = {name: r.start(cfg, name, ports[name]) for name in herdtest.FIVE}
        load(ports["Riley"], n)
        for name in herdtest.FIVE:
            herdtest.wait_for(lambda: knows(ports[name], "c%d.example" % (n - 1)), 30,
                              what="flood to %s" % name)
        time.sleep(1)  # the flood's tail
        before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        procs["Juzang"].send_signal(signal.SIGKILL)
        procs["Juzang"].wait(5)
        t = time.monotonic()
        juzang = r.start(cfg, "Juzang", ports["Juzang"])
        secs = wait_learned(ports["Juzang"], n, t)
        emit("resync_restart_five_%d_seconds" % n, secs, "s", TARGET_S)
        time.sleep(0.5)
        cpu = {name: cpu_seconds(p.pid) - before[name] for name, p in procs.items()
               if name != "Juzang"}
        cpu["Juzang"] = cpu_seconds(juzang.pid)
        emit("resync_restart_five_%d_cpu" % n, sum(cpu.values()), "s")
        figs = {p: resync_figures(r.log("Juzang"), p) for p in ("Riley", "Bernard", "Campbell")}
        print("five: Juzang relearned %d clients in %.3f s from spawn; CPU s %s; %s" % (
            n, secs, json.dumps({k: round(v, 3) for k, v in cpu.items()}), "; ".join("from %s %s" % (p, f[-1] if f else "-") for p, f in figs.items())),
            flush=True)
    finally:
        r.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "bin"))
    ap.add_argument("--clients", type=int, default=100000)
    ap.add_argument("--only", choices=["pair", "five"])
    a = ap.parse_args()
    if a.only in (None, "pair"):
        pair(a.bin, a.clients)
    if a.only in (None, "five"):
        five(a.bin, a.clients)


if __name__ == "__main__":
    main()
