#!/usr/bin/env python3
"""Chaos soak: the course's five-server herd under steady client load while
random workers are SIGKILLed, then a check that nothing was lost.

  python3 tests/soak/soak.py --bin bin --seconds 60

Starts bin/herd-supervisor -f on a herd file in a temp folder (or, with
--mode direct or when the supervisor cannot start the herd, the five workers
directly with its own restart loop). Clients send IAMATs for --clients IDs to
every server at --rate updates per second, each one newer than the last
(only a client's newest update can be checked at the end, so by default
there are half as many IDs as updates: most updates are checked);
every 200-500 ms one random worker is SIGKILLed: never more than one down at
a time, only once every worker is back with all its links, and only a worker
whose every peer has been up for --recover (1 s): SPEC §5 promises that
"killing any one worker loses no update" and that a restarted worker learns
everything "within about a second", so at most one worker may be missing
data at any moment (the one just restarted may be killed again, up to three
times in a row, which also exercises the supervisor's backoff). --eager
drops both waits, to see what happens beyond SPEC. Then the load stops, the herd
settles, and every server is asked WHATSAT for every client until all agree:

  lost     a client whose newest acknowledged update no server holds
  stale    a (server, client) pair holding less than the herd's newest
  corrupt  a record that was never sent (location and time do not match)

Prints the figures (updates sent and acknowledged, kills, time to converge)
and a final "SOAK {json}" line; exits 0 only with 0 lost, 0 stale, 0 corrupt
and at least one kill. Every process is stopped by PID; the temp folder is
removed unless the soak failed or --keep is given.
"""
import argparse
import collections
import json
import os
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

NAMES = ["Riley", "Jaquez", "Juzang", "Campbell", "Bernard"]
LINKS = {
    "Riley": ["Jaquez", "Juzang"],
    "Bernard": ["Jaquez", "Juzang", "Campbell"],
    "Juzang": ["Campbell"],
}
BASE_US = 1_700_000_000 * 10**6   # client time of update seq N is BASE_US + N us


def log(msg):
    print("soak: " + msg, flush=True)


# -- updates: every field derived from one sequence number --------------------

def time_of(seq):
    s, us = divmod(BASE_US + seq, 10**6)
    return "%d.%06d" % (s, us)


def seq_of(text):
    s, _, f = text.partition(".")
    return int(s) * 10**6 + int((f + "000000")[:6]) - BASE_US


def loc_of(seq):
    return "+%02d.%06d-%03d.%06d" % (seq % 90, seq % 1000000, seq % 180, (seq * 7919) % 1000000)


def free_ports(n):
    ports, socks = [], []
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        p = s.getsockname()[1]
        if p not in ports:
            ports.append(p)
    for s in socks:
        s.close()
    return ports


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def write_config(path, ports, extra):
    lines = ["[herd]", "log_dir = log", "run_dir = run"]
    lines += ["%s = %s" % kv for kv in extra.items()]
    for name in NAMES:
        lines += ["", "[server %s]" % name, "port = %d" % ports[name]]
        if name in LINKS:
            lines.append("peers = " + ", ".join(LINKS[name]))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# -- the herd under test -------------------------------------------------------

class SupervisedHerd:
    """bin/herd-supervisor -f: it restarts what the soak kills."""
    mode = "supervisor"

    def __init__(self, bindir, cfg, work, wait_links=True):
        self.bindir, self.cfg, self.work = bindir, cfg, work
        self.wait_links = wait_links
        self.uptime = {}
        self.sup = None
        self.known = set()   # every worker pid seen, to stop by PID at the end

    def start(self, env):
        out = open(os.path.join(self.work, "supervisor.out"), "wb")
        self.sup = subprocess.Popen([os.path.join(self.bindir, "herd-supervisor"), "-f",
                                     "-c", self.cfg], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env)
        out.close()

    def status(self):
        """{name: server dict} from herdctl status --json, or None."""
        try:
            p = subprocess.run([os.path.join(self.bindir, "herdctl"), "-c", self.cfg, "status",
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               timeout=5)
            servers = {s["name"]: s for s in json.loads(p.stdout)["servers"]}
        except (OSError, ValueError, KeyError, TypeError, subprocess.TimeoutExpired):
            return None
        for s in servers.values():
            if isinstance(s.get("pid"), int) and s["pid"] > 0:
                self.known.add(s["pid"])
        return servers

    def children(self):
        """{name: pid} of the supervisor's live workers, read from /proc."""
        found = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" or int(fields[1]) != self.sup.pid:
                continue
            cl = cmdline(int(d))
            for n in NAMES:
                if cl.startswith("herd-worker: %s " % n) or cl.endswith(" " + n + " "):
                    found[n] = int(d)
        self.known.update(found.values())
        return found

    def ready(self):
        """{name: pid} when every worker runs with every link up, else None."""
        st = self.status()
        if st is None or set(st) != set(NAMES):
            return None
        pids = {}
        for n, s in st.items():
            stats = s.get("stats") or {}
            if s.get("state") != "running" or stats.get("pid") != s.get("pid"):
                return None
            if self.wait_links and s.get("links_up") != s.get("links_total"):
                return None
            pids[n] = s["pid"]
            self.uptime[n] = float(s.get("uptime") or 0.0)
        kids = self.children()
        if any(kids.get(n) != pid for n, pid in pids.items()):
            return None
        return pids

    def kill(self, name, pid):
        # Only a live child of our supervisor serving NAME: never a reused pid.
        if self.children().get(name) != pid:
            return False
        os.kill(pid, signal.SIGKILL)
        return True

    def tick(self):
        if self.sup.poll() is not None:
            raise RuntimeError("herd-supervisor exited %s" % self.sup.returncode)

    def stop(self):
        pids = set(self.children().values()) | self.known
        if self.sup and self.sup.poll() is None:
            self.sup.send_signal(signal.SIGTERM)
            try:
                self.sup.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.sup.kill()
                self.sup.wait(timeout=5)
        for pid in pids:
            if alive(pid) and cmdline(pid).startswith("herd-worker"):
                os.kill(pid, signal.SIGKILL)


class DirectHerd:
    """The five workers started by the soak, restarted by it when killed."""
    mode = "direct"

    def __init__(self, bindir, cfg, work, wait_links=True):
        self.bindir, self.cfg, self.work = bindir, cfg, work
        self.wait_links = wait_links
        self.uptime = {}
        self.procs = {}
        self.since = {}
        self.env = None

    def _spawn(self, name):
        err = open(os.path.join(self.work, "%s.err" % name), "ab")
        self.procs[name] = subprocess.Popen([os.path.join(self.bindir, "herd-worker"), "-c",
                                             self.cfg, name], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=err, env=self.env)
        err.close()
        self.since[name] = time.monotonic()

    def start(self, env):
        self.env = env
        for n in NAMES:
            self._spawn(n)

    def ready(self):
        # No status to ask: up 0.3 s stands for "linked".
        now = time.monotonic()
        settle = 0.3 if self.wait_links else 0.0
        for n, p in self.procs.items():
            if p.poll() is not None or now - self.since[n] < settle:
                return None
        self.uptime = {n: now - self.since[n] for n in self.procs}
        return {n: p.pid for n, p in self.procs.items()}

    def kill(self, name, pid):
        p = self.procs[name]
        if p.pid != pid or p.poll() is not None:
            return False
        p.kill()
        return True

    def tick(self):
        for n, p in self.procs.items():
            if p.poll() is not None:
                self._spawn(n)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


# -- load: one pipelined connection per server ---------------------------------

class Conn:
    def __init__(self, name, port):
        self.name, self.port = name, port
        self.sock = None
        self.up = False
        self.out = b""
        self.inbuf = b""
        self.inflight = collections.deque()   # (client index, seq) awaiting "AT"
        self.retry_at = 0.0


class Load:
    def __init__(self, ports, nclients, rng):
        self.sel = selectors.DefaultSelector()
        self.conns = {n: Conn(n, ports[n]) for n in NAMES}
        self.nclients = nclients
        self.rng = rng
        self.seq = 0
        self.sent = 0
        self.acked = 0
        self.unanswered = 0
        self.errors = 0
        self.newest_acked = [0] * nclients      # seq, 0 = none
        self.acked_by = {}                      # newest acked seq -> (server, time)
        self.kills = []                         # (time, server) of every kill
        self.newest_sent = [0] * nclients
        self.sent_seq = {}                      # seq -> client index

    def cid(self, i):
        return "soak-%d.client" % i

    def _connect(self, c, now):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", c.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            c.retry_at = now + 0.02
            return
        c.sock = s
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def _drop(self, c, now):
        if c.sock is not None:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
        c.sock = None
        c.up = False
        self.unanswered += len(c.inflight)
        c.inflight.clear()
        c.out = b""
        c.inbuf = b""
        c.retry_at = now + 0.02

    def _flush(self, c, now):
        try:
            n = c.sock.send(c.out)
            c.out = c.out[n:]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(c, now)
            return
        self.sel.modify(c.sock, selectors.EVENT_READ |
                        (selectors.EVENT_WRITE if c.out else 0), c)

    def send_update(self, now):
        ups = [c for c in self.conns.values() if c.up]
        if not ups:
            return False
        c = self.rng.choice(ups)
        i = self.rng.randrange(self.nclients)
        self.seq += 1
        seq = self.seq
        c.out += ("IAMAT %s %s %s\n" % (self.cid(i), loc_of(seq), time_of(seq))).encode()
        c.inflight.append((i, seq))
        self.sent += 1
        self.newest_sent[i] = seq
        self.sent_seq[seq] = i
        self._flush(c, now)
        return True

    def _read(self, c, now):
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(c, now)
            return
        c.inbuf += data
        while b"\n" in c.inbuf:
            line, _, c.inbuf = c.inbuf.partition(b"\n")
            if not c.inflight:
                self.errors += 1
                continue
            i, seq = c.inflight.popleft()
            if line.startswith(b"AT ") and line.endswith(time_of(seq).encode()):
                self.acked += 1
                if seq > self.newest_acked[i]:
                    self.acked_by.pop(self.newest_acked[i], None)
                    self.newest_acked[i] = seq
                    self.acked_by[seq] = (c.name, now)
            else:
                self.errors += 1
                log("unexpected reply from %s: %r" % (c.name, line[:200]))

    def ack_story(self, seq):
        """When SEQ was acknowledged, by whom, and that server's kills around it."""
        if seq not in self.acked_by:
            return "no record of its acknowledgement"
        name, t = self.acked_by[seq]
        before = [k for k, n in self.kills if n == name and k <= t]
        after = [k for k, n in self.kills if n == name and k > t]
        return "acknowledged by %s, %s, %s" % (
            name,
            "%.0f ms after it was last killed" % ((t - before[-1]) * 1000) if before
            else "never killed before",
            "killed %.1f ms later" % ((after[0] - t) * 1000) if after else "never killed after")

    def poll(self, timeout):
        now = time.monotonic()
        for c in self.conns.values():
            if c.sock is None and now >= c.retry_at:
                self._connect(c, now)
        for key, ev in self.sel.select(timeout):
            c = key.data
            if c.sock is None or key.fileobj is not c.sock:
                continue
            if not c.up:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self._drop(c, now)
                    continue
                c.up = True
                self.sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            if ev & selectors.EVENT_READ:
                self._read(c, now)
            if c.sock is not None and ev & selectors.EVENT_WRITE:
                self._flush(c, now)

    def drain(self, timeout):
        """Waits for the replies still in flight."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(c.inflight for c in self.conns.values()):
            self.poll(0.01)
        for c in self.conns.values():
            self._drop(c, time.monotonic())


# -- the check -------------------------------------------------------------------

def ask_all(port, cids, timeout=10.0):
    """{cid: (loc, time)} of every client PORT's server knows, by pipelined
    WHATSATs; None when the server cannot be asked."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None
    held = {}
    try:
        s.settimeout(timeout)
        buf = b""
        for k in range(0, len(cids), 200):
            batch = cids[k:k + 200]
            s.sendall(b"".join(b"WHATSAT %s 1 0\n" % c.encode() for c in batch))
            got = 0
            while got < len(batch):
                if buf.startswith(b"? "):
                    if b"\n" not in buf:
                        buf += _recv(s)
                        continue
                    _, _, buf = buf.partition(b"\n")
                    got += 1
                    continue
                if b"\n\n" not in buf:
                    buf += _recv(s)
                    continue
                reply, _, buf = buf.partition(b"\n\n")
                at = reply.split(b"\n", 1)[0].decode(errors="replace").split()
                if len(at) == 6 and at[0] == "AT":
                    held[at[3]] = (at[4], at[5])
                got += 1
    except (OSError, EOFError):
        return None
    finally:
        s.close()
    return held


def _recv(s):
    chunk = s.recv(1 << 20)
    if not chunk:
        raise EOFError
    return chunk


def check(load, ports, which=None):
    """Counts of lost, stale and corrupt records across the herd (over the
    client indices WHICH, default all), with examples."""
    idx = list(range(load.nclients)) if which is None else sorted(set(which))
    cids = [load.cid(i) for i in idx]
    views = {}
    for n in NAMES:
        v = ask_all(ports[n], cids)
        if v is None:
            return None
        views[n] = v
    lost = stale = corrupt = 0
    examples = []
    for i, cid in zip(idx, cids):
        seqs = {}
        for n in NAMES:
            rec = views[n].get(cid)
            if rec is None:
                seqs[n] = 0
                continue
            try:
                seq = seq_of(rec[1])
            except ValueError:
                seq = -1
            if seq <= 0 or load.sent_seq.get(seq) != i or rec[0] != loc_of(seq):
                corrupt += 1
                examples.append("corrupt %s at %s: %r" % (cid, n, rec))
                seq = 0
            seqs[n] = seq
        newest = max(seqs.values())
        if newest < load.newest_acked[i]:
            lost += 1
            examples.append("lost %s: newest acknowledged %s, herd holds %s; %s" %
                            (cid, time_of(load.newest_acked[i]), seqs,
                             load.ack_story(load.newest_acked[i])))
        for n in NAMES:
            if seqs[n] < newest:
                stale += 1
                examples.append("stale %s at %s: %s, herd newest %s" %
                                (cid, n, seqs[n] and time_of(seqs[n]), time_of(newest)))
    return lost, stale, corrupt, examples


# -- the run -------------------------------------------------------------------

def wait_linked(ports, timeout):
    """An update sent to Riley reaches Campbell, two hops away, via the links."""
    probe = "soak-probe.client"
    c = socket.create_connection(("127.0.0.1", ports["Riley"]), timeout=5)
    c.sendall(("IAMAT %s +00.000000+000.000000 1.000001\n" % probe).encode())
    c.recv(4096)
    c.close()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        views = [ask_all(ports[n], [probe], timeout=2) for n in NAMES]
        if all(v and probe in v for v in views):
            return True
        time.sleep(0.05)
    return False


def start_herd(mode, args, cfg, work, env, ports):
    """Starts the herd; in auto mode falls back to direct workers when the
    supervisor does not bring every worker up with its links in 10 s."""
    herd = (SupervisedHerd if mode == "supervisor" else DirectHerd)(args.bin, cfg, work)
    herd.start(env)
    herd_wait_links = not args.eager
    deadline = time.monotonic() + 10
    while not herd.ready() or not all(port_open(p) for p in ports.values()):
        herd.tick()
        if time.monotonic() > deadline:
            herd.stop()
            if args.mode == "auto" and mode == "supervisor":
                log("the supervisor did not bring the herd up in 10 s; "
                    "running the workers directly")
                return start_herd("direct", args, cfg, work, env, ports)
            raise RuntimeError("the herd did not start in 10 s")
        time.sleep(0.05)
    herd.wait_links = herd_wait_links
    return herd


def run(args):
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="herdsoak-", dir=args.workdir)
    ports = dict(zip(NAMES, free_ports(len(NAMES))))
    cfg = os.path.join(work, "herd.ini")
    write_config(cfg, ports, {
        "log_level": args.log_level,
        "restart_backoff_min": "20ms", "restart_backoff_max": "200ms",
        "restart_reset_after": "500ms",
        "heartbeat_interval": "100ms", "heartbeat_timeout": "5s",
        "link_backoff_min": "10ms", "link_backoff_max": "200ms",
        **dict(kv.split("=", 1) for kv in args.set),
    })
    env = dict(os.environ)
    env.pop("HERD_PLACES_KEY", None)   # WHATSAT must not leave the machine
    sup_path = os.path.join(args.bin, "herd-supervisor")
    mode = args.mode
    if mode == "auto":
        mode = "supervisor" if os.access(sup_path, os.X_OK) else "direct"
    herd = None
    ok = False
    result = {}
    try:
        herd = start_herd(mode, args, cfg, work, env, ports)
        if not wait_linked(ports, 10):
            raise RuntimeError("an update sent to Riley did not reach every server in 10 s")
        log("mode %s, 5 servers, %d clients, %d updates/s, %.0f s, kills every %.0f-%.0f ms"
            " (work dir %s)" % (herd.mode, args.clients, args.rate, args.seconds,
                                args.kill_min * 1000, args.kill_max * 1000, work))

        load = Load(ports, args.clients, rng)
        kills = deferred = 0
        killed = collections.Counter()
        t0 = time.monotonic()
        end = t0 + args.seconds
        next_kill = t0 + rng.uniform(args.kill_min, args.kill_max)
        last_report = t0
        last_kill = t0
        streak = [None, 0]    # the last victim, and how many times in a row
        while True:
            now = time.monotonic()
            if now >= end:
                break
            due = int((now - t0) * args.rate) - load.sent
            for _ in range(min(due, 2000)):
                if not load.send_update(now):
                    break
            if now >= next_kill and not args.no_kill:
                pids = herd.ready()
                victims = [] if pids is None else [
                    v for v in NAMES if args.eager or all(
                        herd.uptime.get(n, 0.0) >= args.recover for n in NAMES if n != v)]
                if streak[1] >= 3 and not args.eager:
                    # The one just restarted may be killed again (a crash
                    # loop), but not forever: the others get their turn.
                    victims = [v for v in victims if v != streak[0]]
                if not victims:
                    deferred += 1
                    next_kill = now + 0.05     # someone is still catching up
                else:
                    victim = rng.choice(victims)
                    if herd.kill(victim, pids[victim]):
                        streak = [victim, streak[1] + 1 if streak[0] == victim else 1]
                        kills += 1
                        load.kills.append((now, victim))
                        last_kill = now
                        killed[victim] += 1
                    next_kill = now + rng.uniform(args.kill_min, args.kill_max)
            herd.tick()
            load.poll(0.002)
            if now - last_report >= 5:
                last_report = now
                log("%.0f s: %d sent, %d acknowledged, %d kills" %
                    (now - t0, load.sent, load.acked, kills))
        chaos_end = time.monotonic()
        load.drain(5)

        # Settle: every worker back with its links, then poll until the herd
        # agrees: first on the clients updated last (the likeliest to lag,
        # and quick to ask), then on every client.
        herd.wait_links = True
        deadline = chaos_end + args.settle
        while herd.ready() is None and time.monotonic() < deadline:
            herd.tick()
            time.sleep(0.02)
        recent = [i for _, i in sorted(load.sent_seq.items())[-2000:]]
        res = None
        checks = 0
        check_s = 0.0
        while time.monotonic() < deadline:
            res = check(load, ports, recent)
            if res is not None and res[1] == res[2] == 0:
                break       # lost ones never come back: leave them to the full check
            time.sleep(0.02)
        # An upper bound: the herd agreed by the end of the passing check.
        converge = time.monotonic() - chaos_end
        since_kill = time.monotonic() - last_kill
        while checks == 0 or time.monotonic() < deadline:
            t1 = time.monotonic()
            res = check(load, ports)
            check_s = time.monotonic() - t1
            checks += 1
            if res is not None and res[0] == res[1] == res[2] == 0:
                break
            log("full check %d: %d lost, %d stale, %d corrupt" % (checks, *res[:3])
                if res else "full check %d: a server could not be asked" % checks)
            if res and res[1] == res[2] == 0:
                break       # only lost ones left: no amount of waiting brings them back
            time.sleep(0.1)
        if res is None:
            raise RuntimeError("the herd could not be asked after the soak")
        lost, stale, corrupt, examples = res
        result = {
            "mode": herd.mode, "seconds": args.seconds, "clients": args.clients,
            "rate": args.rate, "sent": load.sent, "acknowledged": load.acked,
            "unanswered": load.unanswered, "errors": load.errors, "kills": kills,
            "kills_deferred": deferred, "killed": dict(killed),
            "converge_s": round(converge, 3), "converge_after_kill_s": round(since_kill, 3),
            "check_s": round(check_s, 3), "checks": checks,
            "lost": lost, "stale": stale, "corrupt": corrupt,
        }
        log("sent %d updates (%d acknowledged, %d unanswered as their server died), "
            "%d errors" % (load.sent, load.acked, load.unanswered, load.errors))
        log("%d kills (%s), %d postponed while a worker was coming back" %
            (kills, ", ".join("%s %d" % kv for kv in sorted(killed.items())), deferred))
        log("%s: the last %d updates agreed everywhere %.2f s after the load stopped "
            "(%.2f s after the last kill); full check of %d clients x 5 servers in %.2f s"
            " (%d pass%s): %d lost, %d stale, %d corrupt" %
            ("converged" if lost == stale == corrupt == 0 else "NOT converged",
             len(recent), converge, since_kill, args.clients, check_s, checks,
             "" if checks == 1 else "es", lost, stale, corrupt))
        for e in examples[:10]:
            log("  " + e)
        ok = (lost == stale == corrupt == 0 and load.errors == 0 and
              (kills > 0 or args.no_kill or args.seconds < 1))
    finally:
        if herd is not None:
            herd.stop()
        print("SOAK " + json.dumps(result, sort_keys=True), flush=True)
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("logs kept in %s" % work)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="bin", help="folder of herd-worker, herd-supervisor")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=0,
                    help="client IDs (default: half the updates, at least 1000, so most"
                         " updates are their client's newest and a lost one shows)")
    ap.add_argument("--rate", type=int, default=1000, help="updates per second, all servers")
    ap.add_argument("--kill-min", type=float, default=0.2)
    ap.add_argument("--kill-max", type=float, default=0.5)
    ap.add_argument("--settle", type=float, default=20, help="seconds allowed to converge")
    ap.add_argument("--mode", choices=["auto", "supervisor", "direct"], default="auto")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--no-kill", action="store_true", help="load only (a baseline)")
    ap.add_argument("--recover", type=float, default=1.0,
                    help="a worker may be killed only when every other one has been up this"
                         " long (SPEC §5: a restarted worker learns everything within about"
                         " a second), so at most one worker is ever missing data")
    ap.add_argument("--eager", action="store_true",
                    help="kill whenever every worker runs, without waiting for links or"
                         " --recover: beyond SPEC, and it loses updates once a resync takes"
                         " longer than the time between kills")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra [herd] setting, e.g. --set state_dir=state")
    ap.add_argument("--workdir", default=None, help="where the temp folder goes")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    args.bin = os.path.abspath(args.bin)
    if args.clients <= 0:
        args.clients = max(1000, int(args.rate * args.seconds / 2))
    log("seed %d" % args.seed)
    # SIGTERM unwinds like ^C, so the herd is still stopped by PID.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return run(args)
    except RuntimeError as e:
        log("FAILED: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 1


if __name__ == "__main__":
    sys.exit(main())
