"""Operations (SPEC §6, §7, §8): the shipped logrotate file and cron line
rotate real logs with the real logrotate without losing or repeating a line;
a herd spread over three "machines" (network namespaces joined by a bridge),
one supervisor per node over the same herd file, survives a cut link and,
with hosts given by name (hosts files in /etc/netns/NS/), follows a server
whose name moves to another address; the
systemd unit is valid; `make install DESTDIR=...` installs a working tree.

Everything runs on loopback or inside namespaces this test creates (names
carry the pid; so do their /etc/netns/NS/ folders, removed with them), and
every process is stopped by its PID. Names come from those hosts files
(ip netns exec mounts them over /etc/hosts) and HERD_RESOLV_CONF points any
other lookup at a loopback name server, so no query leaves the machine.
"""
import collections
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import unittest

from herdtest import (BIN, ROOT, Client, HerdTestCase, binary, free_port, make_ca, make_cert,
                      SLOW, port_open, wait_for, write_config)

RESOLV_CONF = os.path.join(ROOT, "tests", "resolv.conf")
# Link timings of the multi-node tests: a dead link shows within a second.
QUICK_LINKS = {"log_dir": "log", "run_dir": "run", "link_ping_interval": "200ms",
               "link_timeout": "1s", "link_backoff_min": "50ms", "link_backoff_max": "300ms"}
SHIPPED_LOGROTATE = os.path.join(ROOT, "etc", "logrotate.d", "herd")
SHIPPED_CRON = os.path.join(ROOT, "etc", "cron.d", "herd")
SHIPPED_UNIT = os.path.join(ROOT, "etc", "systemd", "herd.service")

# The installed paths the shipped files name (docs/operating.md).
LOG_DIR = "/var/log/herd"
HERDCTL = "/usr/local/bin/herdctl"
SUPERVISOR = "/usr/local/bin/herd-supervisor"
CONFIG = "/etc/herd/herd.ini"
STATE = "/var/lib/herd/logrotate.state"
LOGROTATE_CONF = "/etc/logrotate.d/herd"

LOCATION = "+34.068930-118.445127"


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def ctl(sock_path, request, timeout=5.0):
    """One control request (docs/control-protocol.md): a line in, JSON out."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(request.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return json.loads(data)


def try_status(sock_path):
    try:
        return ctl(sock_path, "status", timeout=2.0)
    except (OSError, ValueError):
        return None


def cron_command(text):
    """argv of the one job line of a cron.d file (fields: 5 times, user, cmd)."""
    jobs = [l for l in text.splitlines()
            if l.strip() and not l.lstrip().startswith("#") and
            not re.match(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=", l)]
    if len(jobs) != 1:
        raise AssertionError("expected one job line in etc/cron.d/herd, got %r" % jobs)
    fields = jobs[0].split(None, 6)
    if len(fields) != 7:
        raise AssertionError("cron line needs 5 time fields, a user and a command: %r"
                             % jobs[0])
    return fields[:5], fields[5], shlex.split(fields[6])


class OpsCase(HerdTestCase):
    def start_supervisor(self, cfg, node=None, netns=None, name="supervisor"):
        """herd-supervisor -f over CFG, stderr to a file (a pipe could fill)."""
        argv = [binary("herd-supervisor"), "-f", "-c", cfg]
        if node:
            argv += ["--node", node]
        if netns:
            # ip netns exec execs the command: the PID is the supervisor's.
            argv = ["ip", "netns", "exec", netns] + argv
        err = open(self.path(name + ".stderr"), "wb")
        self.addCleanup(err.close)
        env = dict(os.environ)
        env.pop("HERD_PLACES_KEY", None)
        # Names not in the hosts file go to a loopback name server, never to
        # the machine's (tests/run-tests sets it; so does a test run alone).
        env.setdefault("HERD_RESOLV_CONF", RESOLV_CONF)
        env.pop("CARES_HOSTS", None)
        return self.spawn(argv, stderr=err, env=env)

    def wait_running(self, proc, sock_path, nservers, links=False, timeout=10.0):
        """Waits until every server runs (and, with LINKS, has every link up)."""
        def ready():
            if proc.poll() is not None:
                raise AssertionError("supervisor exited %s" % proc.returncode)
            st = try_status(sock_path)
            if not st or not st.get("ok") or len(st.get("servers", [])) != nservers:
                return None
            for srv in st["servers"]:
                if srv.get("state") != "running":
                    return None
                if links and srv.get("links_up") != srv.get("links_total"):
                    return None
            return st
        return wait_for(ready, timeout, 0.05,
                        "%d servers running%s" % (nservers, " with links up" if links else ""))

    def stop_supervisor(self, proc, timeout=15):
        rc = self.stop(proc, signal.SIGTERM, timeout)
        self.assertEqual(rc, 0, "supervisor exit status after SIGTERM")


class ShippedFiles(OpsCase):
    """The files in etc/ parse with the real tools and say what the docs say."""

    def test_logrotate_file_parses_and_has_the_rules(self):
        text = read(SHIPPED_LOGROTATE)
        for directive in ("daily", "rotate 14", "compress", "delaycompress", "missingok",
                          "notifempty", "create 0644", "sharedscripts", "postrotate",
                          "endscript"):
            self.assertRegex(text, r"(?m)^\s*%s\s*$" % re.escape(directive), directive)
        self.assertIn(LOG_DIR + "/*.log", text)
        self.assertIn("%s -c %s reopen-logs" % (HERDCTL, CONFIG), text)
        mode = stat.S_IMODE(os.stat(SHIPPED_LOGROTATE).st_mode)
        self.assertEqual(mode & 0o022, 0, "logrotate refuses group/world-writable files")
        lr = shutil.which("logrotate") or "/usr/sbin/logrotate"
        self.assertTrue(os.access(lr, os.X_OK), "logrotate not installed (scripts/install-deps)")
        r = subprocess.run([lr, "-d", "-s", self.path("state"), SHIPPED_LOGROTATE],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        out = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertNotRegex(out, r"(?m)^error:", out)

    def test_cron_line(self):
        self.assertNotIn(".", os.path.basename(SHIPPED_CRON), "cron ignores names with dots")
        text = read(SHIPPED_CRON)
        self.assertTrue(text.endswith("\n"), "cron ignores a last line without newline")
        times, user, argv = cron_command(text)
        self.assertEqual(user, "root")
        self.assertEqual(times[1:], ["*", "*", "*", "*"], "hourly")
        self.assertRegex(times[0], r"^[0-5]?[0-9]$")
        self.assertEqual(argv, ["/usr/sbin/logrotate", "-s", STATE, LOGROTATE_CONF])

    def test_systemd_unit(self):
        text = read(SHIPPED_UNIT)
        keys = {}
        section = None
        for line in text.splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            keys.setdefault((section, k.strip()), []).append(v.strip())
        svc = lambda k: keys.get(("Service", k), [None])[-1]
        self.assertEqual(svc("Type"), "simple")
        self.assertEqual(shlex.split(svc("ExecStart"))[:4], [SUPERVISOR, "-f", "-c", CONFIG])
        self.assertEqual(shlex.split(svc("ExecReload")), [HERDCTL, "-c", CONFIG, "reload"])
        self.assertEqual(svc("Restart"), "on-failure")
        self.assertEqual(svc("KillSignal"), "SIGTERM")
        self.assertEqual(svc("KillMode"), "mixed", "SIGTERM to the supervisor alone")
        # The supervisor waits stop_timeout (5 s by default) before SIGKILL.
        self.assertGreaterEqual(int(svc("TimeoutStopSec")), 10)
        self.assertEqual(keys.get(("Install", "WantedBy")), ["multi-user.target"])
        sa = shutil.which("systemd-analyze")
        if sa is None:
            self.skipTest("systemd-analyze not installed: unit checked by shape only")
        # verify checks that the commands exist: point them at this build.
        unit = (text.replace(SUPERVISOR, binary("herd-supervisor"))
                .replace(HERDCTL, binary("herdctl")))
        os.makedirs(self.path("unit"))
        path = self.path("unit", "herd.service")
        with open(path, "w") as f:
            f.write(unit)
        r = subprocess.run([sa, "verify", path], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=60)
        out = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertNotIn("herd.service:", out, out)


class HostSetup(OpsCase):
    """scripts/herd-host-setup into a DESTDIR."""

    def run_setup(self, *args):
        r = subprocess.run([os.path.join(ROOT, "scripts", "herd-host-setup")] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode(errors="replace"))

    def test_host_setup_into_destdir(self):
        dest = self.path("root")
        cfg = self.config({"A1": {"port": free_port(), "node": "a"},
                           "B1": {"port": free_port(), "node": "b"}}, links={"A1": ["B1"]})
        self.run_setup("--destdir", dest, "--prefix", "/opt/herd", "--config", cfg,
                       "--node", "b")
        p = lambda *parts: os.path.join(dest, *parts)
        mode = lambda path: stat.S_IMODE(os.stat(path).st_mode)
        for rel in ("var/log/herd", "var/lib/herd", "etc/herd"):
            self.assertTrue(os.path.isdir(p(rel)), rel)
        self.assertEqual(read(p("etc/herd/herd.ini")), read(cfg))
        self.assertEqual(mode(p("etc/herd/herd.ini")), 0o600)
        for rel, shipped in (("etc/logrotate.d/herd", SHIPPED_LOGROTATE),
                             ("etc/cron.d/herd", SHIPPED_CRON),
                             ("etc/systemd/system/herd.service", SHIPPED_UNIT)):
            self.assertEqual(mode(p(rel)), 0o644, rel)
            text = read(p(rel))
            self.assertNotIn("/usr/local/bin/herd", text, rel)
            self.assertEqual(text, read(shipped).replace("/usr/local/bin/", "/opt/herd/bin/")
                             .replace("/usr/local/share/", "/opt/herd/share/"), rel)
        self.assertEqual(read(p("etc/default/herd")), 'HERD_OPTS="--node b"\n')
        self.assertEqual(mode(p("etc/default/herd")), 0o600)

        # Again, with another node and no cron line: other settings are kept.
        with open(p("etc/default/herd"), "a") as f:
            f.write("HERD_PLACES_KEY=k\n")
        self.run_setup("--destdir", dest, "--node", "c", "--no-cron")
        self.assertEqual(read(p("etc/default/herd")), 'HERD_PLACES_KEY=k\nHERD_OPTS="--node c"\n')
        self.assertFalse(os.path.exists(p("etc/cron.d/herd")))
        self.assertIn("/usr/local/bin/herdctl", read(p("etc/logrotate.d/herd")))


class Rotation(OpsCase):
    """logrotate with the shipped rules while clients and herdctl keep going."""

    def rotation_config(self, cfg, log_dir):
        """The shipped rules and cron command, rewritten to this test's paths."""
        text = read(SHIPPED_LOGROTATE)
        for original in (LOG_DIR, HERDCTL, CONFIG):
            self.assertIn(original, text)
        text = (text.replace(LOG_DIR, log_dir).replace(HERDCTL, binary("herdctl"))
                .replace(CONFIG, cfg))
        conf = self.path("logrotate.conf")
        with open(conf, "w") as f:
            f.write(text)
        os.chmod(conf, 0o644)
        _, _, argv = cron_command(read(SHIPPED_CRON))
        lr = shutil.which("logrotate") or argv[0]
        self.assertTrue(os.access(lr, os.X_OK), "logrotate not installed (scripts/install-deps)")
        argv = [lr if a == argv[0] else self.path("state") if a == STATE else
                conf if a == LOGROTATE_CONF else a for a in argv]
        # -f: rotate now, not when a day has passed.
        return argv[:1] + ["-f"] + argv[1:]

    def test_rotation_with_the_herd_stopped(self):
        # postrotate's herdctl exits 3 (no supervisor): not a logrotate error.
        cfg = self.config({"Riley": free_port()})
        log_dir = self.path("log")
        os.makedirs(log_dir)
        with open(os.path.join(log_dir, "Riley.log"), "w") as f:
            f.write("a line from before\n")
        argv = self.rotation_config(cfg, log_dir)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode(errors="replace"))
        self.assertEqual(read(os.path.join(log_dir, "Riley.log.1")), "a line from before\n")
        self.assertEqual(read(os.path.join(log_dir, "Riley.log")), "")

    def test_rotation_loses_and_repeats_nothing(self):
        port = free_port()
        cfg = self.config({"Riley": port})
        log_dir, sock = self.path("log"), self.path("run", "herd.sock")
        sup = self.start_supervisor(cfg)
        self.wait_running(sup, sock, 1)
        argv = self.rotation_config(cfg, log_dir)

        tag = "rot%d" % os.getpid()
        stop = threading.Event()
        sent = {"iamat": 0, "ctl": 0}
        errors = []

        def clients():
            c = Client(port)
            try:
                i = 0
                while not stop.is_set():
                    reply = c.ask("IAMAT %s-%d %s %d.%09d" % (tag, i, LOCATION,
                                                             1600000000 + i, i))
                    if not reply or not reply.startswith("AT Riley "):
                        errors.append("IAMAT %d answered %r" % (i, reply))
                        return
                    i += 1
                    sent["iamat"] = i
            except OSError as e:
                errors.append("client: %s" % e)
            finally:
                c.close()

        def controls():
            # The supervisor logs every kill request: SIGCONT changes nothing.
            try:
                while not stop.is_set():
                    r = ctl(sock, "kill Riley SIGCONT")
                    if not r.get("ok"):
                        errors.append("kill request: %r" % r)
                        return
                    sent["ctl"] += 1
                    time.sleep(0.005)
            except (OSError, ValueError) as e:
                errors.append("control: %s" % e)

        threads = [threading.Thread(target=clients), threading.Thread(target=controls)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: errors or (sent["iamat"] >= 300 and sent["ctl"] >= 20), 10,
                     what="traffic before the rotation")
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, "%s: %s" % (argv, (r.stdout + r.stderr).decode()))
            at_rotation = dict(sent)
            wait_for(lambda: errors or "log reopened" in read(os.path.join(log_dir, "Riley.log")),
                     5, what="Riley to reopen its log")
            wait_for(lambda: errors or (sent["iamat"] >= at_rotation["iamat"] + 300 and
                                        sent["ctl"] >= at_rotation["ctl"] + 20), 10,
                     what="traffic after the rotation")
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        self.assertEqual(errors, [])
        self.stop_supervisor(sup)  # every log buffer is flushed

        names = sorted(os.listdir(log_dir))
        for n in ("Riley.log", "Riley.log.1", "supervisor.log", "supervisor.log.1"):
            self.assertIn(n, names)
        self.assertFalse([n for n in names if n.endswith(".gz")], "delaycompress: %s" % names)
        for n in ("Riley.log", "supervisor.log"):
            mode = stat.S_IMODE(os.stat(os.path.join(log_dir, n)).st_mode)
            self.assertEqual(mode, 0o644, "%s created 0644" % n)
        self.assertIn(os.path.join(log_dir, "Riley.log"), read(self.path("state")))

        # Worker: every numbered IAMAT in exactly once; the old file holds a
        # prefix of them and the new file the rest.
        pat = re.compile(r' in "IAMAT %s-(\d+) ' % tag)
        old = [int(m) for m in pat.findall(read(os.path.join(log_dir, "Riley.log.1")))]
        new = [int(m) for m in pat.findall(read(os.path.join(log_dir, "Riley.log")))]
        self.assertTrue(old and new, "IAMATs on both sides of the rotation")
        seen = collections.Counter(old + new)
        missing = sorted(set(range(sent["iamat"])) - set(seen))
        dups = sorted(n for n, k in seen.items() if k > 1)
        self.assertEqual(missing, [], "IAMAT lines lost by the rotation")
        self.assertEqual(dups, [], "IAMAT lines written twice")
        self.assertEqual(sum(seen.values()), sent["iamat"])
        self.assertLess(max(old), min(new), "the old file takes no line after the new one")

        # Supervisor: it logs nothing numbered, so count its "control: kill"
        # lines (one per request) and its single reopen-logs.
        sold = read(os.path.join(log_dir, "supervisor.log.1"))
        snew = read(os.path.join(log_dir, "supervisor.log"))
        kills_old, kills_new = sold.count("control: kill Riley"), snew.count("control: kill Riley")
        self.assertTrue(kills_old and kills_new, "control requests on both sides")
        self.assertEqual(kills_old + kills_new, sent["ctl"], "one log line per kill request")
        self.assertEqual(sold.count("control: reopen-logs") + snew.count("control: reopen-logs"),
                         1)
        self.assertIn("control: reopen-logs", sold)


# A herd over three machines: network namespaces on a bridge.

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
NODES = {"a": ("A1", "10.77.0.1"), "b": ("B1", "10.77.0.2"), "c": ("C1", "10.77.0.3")}
# Where ip netns exec finds files to mount over /etc for namespace NS.
NETNS_ETC = "/etc/netns"


def in_netns(ns, fn, timeout=10):
    """Runs fn() in a thread that has joined network namespace NS: sockets it
    makes stay there, and the calling thread may use them."""
    box = {}

    def run():
        try:
            fd = os.open("/run/netns/" + ns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, "setns %s: %s" % (ns, os.strerror(e)))
            finally:
                os.close(fd)
            box["v"] = fn()
        except BaseException as e:  # handed to the caller
            box["e"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError("in_netns %s: timed out" % ns)
    if "e" in box:
        raise box["e"]
    return box["v"]


class MultiNode(OpsCase):
    """Nodes a, b, c, one supervisor each (--node) over the same herd file;
    servers A1 - B1 - C1 in a line on 10.77.0.1/2/3."""

    def ip(self, *args):
        r = subprocess.run(["ip"] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=15)
        if r.returncode != 0:
            raise OSError("ip %s: %s" % (" ".join(args), r.stderr.decode().strip()))

    def make_network(self):
        """Four namespaces: a switch with a bridge, and a, b, c, each with
        eth0 on a veth whose other end (vX) is a bridge port in the switch."""
        if os.geteuid() != 0:
            self.skipTest("network namespaces need root")
        if shutil.which("ip") is None:
            self.skipTest("ip (iproute2) not installed")
        self.reap_stale_netns()
        base = "herdops%d-%s-" % (os.getpid(), os.urandom(2).hex())
        self.ns = {x: base + x for x in list(NODES) + ["sw"]}
        try:
            for name in self.ns.values():
                self.ip("netns", "add", name)
                self.addCleanup(self.delete_netns, name)
                self.ip("-n", name, "link", "set", "lo", "up")
            sw = self.ns["sw"]
            self.ip("-n", sw, "link", "add", "br0", "type", "bridge")
            self.ip("-n", sw, "link", "set", "br0", "up")
            for x, (_, addr) in NODES.items():
                self.ip("-n", sw, "link", "add", "v" + x, "type", "veth",
                        "peer", "name", "eth0", "netns", self.ns[x])
                self.ip("-n", sw, "link", "set", "v" + x, "master", "br0", "up")
                self.ip("-n", self.ns[x], "addr", "add", addr + "/24", "dev", "eth0")
                # ARP retries every 100 ms, not 1 s: the heal below measures
                # herd's redial, not the neighbour cache's retry timer.
                in_netns(self.ns[x], lambda: write_file(
                    "/proc/sys/net/ipv4/neigh/eth0/retrans_time_ms", "100"))
                self.ip("-n", self.ns[x], "link", "set", "eth0", "up")
        except (OSError, subprocess.TimeoutExpired) as e:
            self.skipTest("cannot make network namespaces: %s" % e)

    def reap_stale_netns(self):
        """Deletes namespaces left by runs of this test that were killed
        before their clean-up (their pid, in the name, is gone)."""
        r = subprocess.run(["ip", "netns", "list"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=15)
        for line in r.stdout.decode(errors="replace").splitlines():
            m = re.match(r"^(herdops(\d+)-[0-9a-f]{4}-\w+)\b", line)
            if m and not os.path.exists("/proc/" + m.group(2)):
                self.delete_netns(m.group(1))
        for name in os.listdir(NETNS_ETC) if os.path.isdir(NETNS_ETC) else []:
            m = re.match(r"^herdops(\d+)-[0-9a-f]{4}-\w+$", name)
            if m and not os.path.exists("/proc/" + m.group(1)):
                shutil.rmtree(os.path.join(NETNS_ETC, name), ignore_errors=True)

    def delete_netns(self, name):
        # Runs after tearDown has killed every process started in it.
        subprocess.run(["ip", "netns", "del", name], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=15)

    def client(self, x, timeout=5.0):
        """A new client in node X's namespace, talking to X's server."""
        _, addr = NODES[x]
        c = in_netns(self.ns[x], lambda: Client(self.port, host=addr, timeout=timeout))
        self.clients.append(c)
        return c

    def conn(self, x):
        """Node X's long-lived client (it lives on the node's side of any cut)."""
        if x not in self.conns:
            self.conns[x] = self.client(x)
        return self.conns[x]

    def iamat(self, x, cid, t, c=None):
        reply = (c or self.conn(x)).ask("IAMAT %s %s %s" % (cid, LOCATION, t))
        self.assertTrue(reply and reply.startswith("AT %s " % NODES[x][0]),
                        "IAMAT at %s answered %r" % (x, reply))
        return reply

    def held(self, x, cids):
        """{cid: the AT line node X holds for it, or None when unknown}, by
        WHATSATs pipelined on X's client."""
        c = self.conn(x)
        c.send("".join("WHATSAT %s 10 1\n" % cid for cid in cids))
        out = {}
        for cid in cids:
            first = c.recv_line()
            self.assertIsNotNone(first, "%s closed the connection" % NODES[x][0])
            if first.startswith("?"):
                out[cid] = None
            else:
                c.recv_until(b"\n\n")
                out[cid] = first
        return out

    def whatsat(self, x, cid):
        return self.held(x, [cid])[cid]

    def test_three_nodes_cut_and_heal(self):
        self.make_network()
        self.conns = {}
        self.port = free_port()
        servers = {name: {"port": self.port, "host": addr, "node": x}
                   for x, (name, addr) in NODES.items()}
        # Quick link failure detection, so a heal shows within the 2 s below.
        sups, socks = self.start_nodes(servers, QUICK_LINKS)
        self.assertEqual(len({read(self.path(x, "herd.ini")) for x in NODES}), 1)
        for x in NODES:
            st = self.wait_running(sups[x], socks[x], 1, links=True, timeout=15)
            self.assertEqual([s["name"] for s in st["servers"]], [NODES[x][0]],
                             "--node %s runs only its own server" % x)

        # An IAMAT at A is visible by WHATSAT at C (through B).
        t = int(time.time())
        at = self.iamat("a", "kiwi", "%d.5" % t)
        wait_for(lambda: self.whatsat("c", "kiwi") == at, 3, 0.05, "kiwi at C")

        # Cut C off: the switch's end of C's veth goes down. C keeps its
        # address, so its clients still reach it; so do A's and B's.
        self.ip("-n", self.ns["sw"], "link", "set", "vc", "down")
        cut = time.monotonic()
        sent = {}
        i = 0
        while time.monotonic() - cut < 2.5 or i < 10:
            for x in ("a", "c"):
                cid = "cut-%s-%d" % (x, i)
                sent[cid] = self.iamat(x, cid, "%d.%d" % (t + 1 + i, i))
            i += 1
            time.sleep(0.1)
        # Each side serves its old and its new clients; nothing crossed the cut.
        for x in ("a", "c"):
            self.iamat(x, "fresh-" + x, "%d" % (t + 100), c=self.client(x))
        self.assertEqual(self.whatsat("c", "cut-c-0"), sent["cut-c-0"])
        self.assertEqual(self.whatsat("b", "cut-a-0"), sent["cut-a-0"])
        self.assertIsNone(self.whatsat("b", "cut-c-0"), "C was really cut off")
        self.assertIsNone(self.whatsat("c", "cut-a-0"), "C was really cut off")
        self.assertEqual(self.whatsat("c", "kiwi"), at, "C still answers what it knew")

        # Heal: within 2 s everything sent meanwhile is everywhere.
        self.ip("-n", self.ns["sw"], "link", "set", "vc", "up")
        healed = time.monotonic()
        cids = sorted(sent)
        while True:
            began = time.monotonic() - healed
            missing = ["%s:%s" % (x, cid) for x in NODES
                       for cid, line in self.held(x, cids).items() if line != sent[cid]]
            if not missing or began > 2.0:
                break
            time.sleep(0.05)
        self.assertEqual(missing[:10], [], "%d of %d updates not everywhere 2 s after the "
                         "heal" % (len(missing), 3 * len(cids)))
        for x in NODES:
            self.stop_supervisor(sups[x])


    def write_netns_hosts(self, names):
        """/etc/netns/NS/hosts for every node's namespace: NAMES {name: addr}.
        Written in place: a running namespace sees it through its bind mount."""
        text = "127.0.0.1 localhost\n" + "".join("%s %s\n" % (a, n) for n, a in names.items())
        for x in NODES:
            d = os.path.join(NETNS_ETC, self.ns[x])
            if not os.path.isdir(d):
                if not os.path.isdir(NETNS_ETC):
                    os.makedirs(NETNS_ETC)
                    self.addCleanup(self.remove_netns_etc)
                os.mkdir(d)
                self.addCleanup(shutil.rmtree, d, True)
            write_file(os.path.join(d, "hosts"), text)

    def remove_netns_etc(self):
        """/etc/netns, which this test made, once nobody else uses it."""
        try:
            os.rmdir(NETNS_ETC)
        except OSError:
            pass

    def start_nodes(self, servers, herd):
        """One supervisor per namespace over the same file, A1 - B1 - C1
        linked. The same file on every machine: relative log_dir and run_dir
        land in each machine's own folder. Returns (supervisors, sockets)."""
        sups, socks = {}, {}
        for x in NODES:
            os.makedirs(self.path(x))
            cfg = write_config(self.path(x, "herd.ini"), servers, herd,
                               {"A1": ["B1"], "B1": ["C1"]})
            socks[x] = self.path(x, "run", "herd.sock")
            sups[x] = self.start_supervisor(cfg, node=x, netns=self.ns[x], name="sup-" + x)
        return sups, socks

    def log_of(self, x):
        return read(self.path(x, "log", NODES[x][0] + ".log"))

    def test_three_nodes_by_name_and_a_name_that_moves(self):
        """Hosts by name (a1/b1/c1.herd.test, from each namespace's own hosts
        file), links in TLS 1.3 with certificates that name only those host
        names (link_tls = cert, the deployment docs/operating.md describes);
        then c1.herd.test moves to a second address of C's interface and C1
        restarts there: B1 finds it at its next dial and A's floods reach it."""
        self.make_network()
        self.port = free_port()
        names = {NODES[x][0].lower() + ".herd.test": addr for x, (_, addr) in NODES.items()}
        self.write_netns_hosts(names)
        r = subprocess.run(["ip", "netns", "exec", self.ns["b"], "cat", "/etc/hosts"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
        if r.returncode != 0 or b"c1.herd.test" not in r.stdout:
            self.skipTest("ip netns exec does not mount /etc/netns/NS/hosts here: %s"
                          % r.stderr.decode(errors="replace").strip())
        servers = {name: {"port": self.port, "host": name.lower() + ".herd.test", "node": x}
                   for x, (name, _) in NODES.items()}
        ca = make_ca(self.path("pki"))
        for name, srv in servers.items():
            cert, key = make_cert(self.path("pki"), ca, name, sans="DNS:" + srv["host"])
            srv.update(tls_cert=cert, tls_key=key)
        sups, socks = self.start_nodes(servers, dict(QUICK_LINKS, link_tls="cert", tls_ca=ca[0]))
        for x in NODES:
            st = self.wait_running(sups[x], socks[x], 1, links=True, timeout=15)
            with open("/proc/%d/environ" % st["servers"][0]["pid"], "rb") as f:
                env = f.read().split(b"\0")
            conf = os.environ.get("HERD_RESOLV_CONF", RESOLV_CONF)
            self.assertIn(b"HERD_RESOLV_CONF=" + conf.encode(), env,
                          "the worker in %s resolves with the test's resolv.conf" % x)
            self.assertIn("listen address %s is %s" % (servers[NODES[x][0]]["host"],
                                                       NODES[x][1]), self.log_of(x))
        up = r"link %s up \(dialled %s:%d(, attempt \d+)?, TLSv1\.3 \S+ cert\)"
        # Worker logs are written every 20 ms: the status can be ahead of them.
        for x, want in (("a", up % ("B1", r"10\.77\.0\.2", self.port)),
                        ("b", up % ("C1", r"10\.77\.0\.3", self.port)),
                        ("c", r"link B1 up \(accepted from [0-9.:]+, TLSv1\.3 \S+ cert\)")):
            wait_for(lambda: re.search(want, self.log_of(x)), 3, 0.02, "/%s/ in %s" % (want, x))
        self.conns = {}
        t = int(time.time())
        at = self.iamat("a", "kiwi", "%d.5" % t)
        wait_for(lambda: self.whatsat("c", "kiwi") == at, 3, 0.05, "kiwi at C")

        # c1.herd.test moves to 10.77.0.13: a second address on C's eth0, the
        # hosts files say so, and C1 restarts there (its old address is left
        # with nothing listening on the port).
        moved = "10.77.0.13"
        self.ip("-n", self.ns["c"], "addr", "add", moved + "/24", "dev", "eth0")
        self.write_netns_hosts(dict(names, **{"c1.herd.test": moved}))
        self.conns.pop("c").close()
        reply = ctl(socks["c"], "restart --no-wait C1", timeout=20)
        self.assertTrue(reply.get("ok"), reply)
        wait_for(lambda: "link C1 up (dialled %s:%d" % (moved, self.port) in self.log_of("b"),
                 10, 0.05, "B1 linked to C1 at its new address")
        self.assertIn("listen address c1.herd.test is %s" % moved, self.log_of("c"))
        self.assertFalse(in_netns(self.ns["b"], lambda: port_open(self.port, NODES["c"][1])),
                         "nothing listens at C's old address any more")

        # A flood from A reaches C1 at its new address (through B1).
        at2 = self.iamat("a", "kiwi-moved", "%d.5" % (t + 1))
        self.conns["c"] = in_netns(self.ns["c"], lambda: Client(self.port, host=moved))
        self.clients.append(self.conns["c"])
        wait_for(lambda: self.whatsat("c", "kiwi-moved") == at2, 3, 0.05,
                 "kiwi-moved at C1's new address")
        self.assertEqual(self.whatsat("c", "kiwi"), at, "resynced after the move")
        for x in NODES:
            self.stop_supervisor(sups[x])


class Install(OpsCase):
    """make install / uninstall with DESTDIR, on the binaries already built."""

    def test_make_install_destdir(self):
        progs = [binary(n) for n in ("herd-worker", "herd-supervisor", "herdctl")]
        for p in progs:
            self.assertTrue(os.access(p, os.X_OK), "%s not built" % p)
        if shutil.which("make") is None:
            self.skipTest("make not installed")
        dest = self.path("dest")
        os.makedirs(dest)
        # -o: the binaries count as up to date, so nothing is rebuilt.
        make = ["make", "--no-print-directory", "-C", ROOT, "DESTDIR=" + dest, "PREFIX=/usr",
                "BINDIR=" + BIN, "BUILD=" + self.path("build")]
        for p in progs:
            make += ["-o", p]
        r = subprocess.run(make + ["install"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode(errors="replace"))
        self.assertFalse(os.path.exists(self.path("build")), "make install rebuilt")

        bindir = os.path.join(dest, "usr", "bin")
        doc = os.path.join(dest, "usr", "share", "doc", "herd")
        for n in ("herd-worker", "herd-supervisor", "herdctl"):
            mode = stat.S_IMODE(os.stat(os.path.join(bindir, n)).st_mode)
            self.assertEqual(mode, 0o755, n)
        for rel in ("examples/herd.ini", "examples/logrotate.d/herd", "examples/cron.d/herd",
                    "examples/systemd/herd.service", "README.md"):
            self.assertTrue(os.path.isfile(os.path.join(doc, rel)), rel)
        r = subprocess.run([os.path.join(bindir, "herdctl"), "--help"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertIn("reopen-logs", r.stdout.decode())

        # The installed supervisor finds the installed worker beside it, and
        # the installed herdctl talks to it.
        port = free_port()
        cfg = self.config({"Riley": port})
        err = open(self.path("installed.stderr"), "wb")
        self.addCleanup(err.close)
        sup = self.spawn([os.path.join(bindir, "herd-supervisor"), "-f", "-c", cfg], stderr=err)
        st = self.wait_running(sup, self.path("run", "herd.sock"), 1)
        exe = os.readlink("/proc/%d/exe" % st["servers"][0]["pid"])
        self.assertEqual(exe, os.path.join(bindir, "herd-worker"))
        herdctl = os.path.join(bindir, "herdctl")
        for cmd in (["status"], ["stop"]):
            r = subprocess.run([herdctl, "-c", cfg] + cmd, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, "herdctl %s: %s" % (cmd, r.stderr.decode()))
        self.assertEqual(sup.wait(timeout=10 * SLOW), 0)

        r = subprocess.run(make + ["uninstall"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode(errors="replace"))
        left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
        self.assertEqual(left, [], "uninstall leaves files behind")


if __name__ == "__main__":
    unittest.main()
