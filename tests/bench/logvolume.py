#!/usr/bin/env python3
"""Bytes of log per IAMAT, herd-wide, at a log level: the shipped five-server
herd and a 100-server herd (a ring with chords: server i links to i+1 and
i+7). N updates go to one server on one pipelined connection; once the
farthest server knows the last one, the growth of every log file is summed.

usage: logvolume.py [--bin DIR] [--servers 5|100] [--updates N] [--level info]
Prints one JSON line per run."""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import herdtest  # noqa: E402

LOC = "+34.068930-118.445127"


def topology(n):
    if n == 5:
        return list(herdtest.FIVE), herdtest.FIVE_LINKS, "Riley", "Campbell"
    names = ["S%03d" % i for i in range(n)]
    links = {names[i]: sorted({names[(i + 1) % n], names[(i + 7) % n]}) for i in range(n)}
    return names, links, names[0], names[n // 2]


def send_all(port, lines):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(("\n".join(lines) + "\n").encode())
    s.shutdown(socket.SHUT_WR)
    got = 0
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        got += chunk.count(b"\n")
    s.close()
    return got


def knows(port, cid):
    try:
        c = herdtest.Client(port, timeout=2)
        at, _ = c.whatsat(cid, 10, 0)
        c.close()
        return at is not None and at.startswith("AT ")
    except OSError:
        return False


def run(args):
    names, links, first, far = topology(args.servers)
    tmp = tempfile.mkdtemp(prefix="herd-logvol-")
    procs = []
    try:
        ports = {n: herdtest.free_port() for n in names}
        cfg = herdtest.write_config(os.path.join(tmp, "herd.ini"), ports,
                                    {"log_dir": "log", "run_dir": "run",
                                     "log_level": args.level}, links)
        for n in names:
            procs.append(subprocess.Popen([os.path.join(args.bin, "herd-worker"), "-c", cfg, n],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        herdtest.wait_for(lambda: all(herdtest.port_open(ports[n]) for n in names), 30,
                          what="every worker listening")
        time.sleep(1.0 + args.servers / 50.0)  # links up and resynced (empty)
        logs = [os.path.join(tmp, "log", n + ".log") for n in names]
        size = lambda: sum(os.path.getsize(p) for p in logs if os.path.exists(p))  # noqa: E731
        before = size()
        t = int(time.time()) - 10
        lines = ["IAMAT lv%d %s %d.%09d" % (i, LOC, t, i) for i in range(args.updates)]
        t0 = time.monotonic()
        got = send_all(ports[first], lines)
        herdtest.wait_for(lambda: knows(ports[far], "lv%d" % (args.updates - 1)), 60,
                          interval=0.05, what="the last update at the far server")
        took = time.monotonic() - t0
        time.sleep(0.2)  # the workers' log batching (20 ms)
        grown = size() - before
        return {"bench": "logvolume", "servers": args.servers, "level": args.level,
                "updates": args.updates, "answered": got, "log_bytes": grown,
                "bytes_per_iamat": round(grown / args.updates, 1),
                "seconds": round(took, 2)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "..", "bin"))
    ap.add_argument("--servers", type=int, default=5, choices=[5, 100])
    ap.add_argument("--updates", type=int, default=20000)
    ap.add_argument("--level", default="info")
    print(json.dumps(run(ap.parse_args())), flush=True)


if __name__ == "__main__":
    main()
