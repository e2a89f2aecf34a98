"""Helpers for herd's black-box tests: free loopback ports, test herd files,
real herd-worker / herd-supervisor processes stopped by PID, line clients.

Every process a test starts is registered with a HerdTestCase and killed in
tearDown, whatever happened; temp folders are removed.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HERD_BIN_DIR", os.path.join(ROOT, "bin"))
BUILD = os.environ.get("HERD_BUILD_DIR", os.path.join(ROOT, "build"))

# The course's five servers and their links (SPEC §3).
FIVE = ["Riley", "Jaquez", "Juzang", "Campbell", "Bernard"]
FIVE_LINKS = {
    "Riley": ["Jaquez", "Juzang"],
    "Bernard": ["Jaquez", "Juzang", "Campbell"],
    "Juzang": ["Campbell"],
}


# Sanitized binaries start and run several times slower: time bounds in tests
# are multiplied by this (the runner sets HERD_SANITIZER_LOG_DIR for them).
SLOW = 4.0 if os.environ.get("HERD_SANITIZER_LOG_DIR") else 1.0
# ASan's shadow memory and quarantine inflate RSS: memory bounds scale by this.
RSS_SLACK = 4.0 if os.environ.get("HERD_SANITIZER_LOG_DIR") else 1.0


def binary(name):
    return os.path.join(BIN, name)


_used_ports = set()


def free_port():
    """A TCP port free on 127.0.0.1 now, never handed out twice per run."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        if port in _used_ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _used_ports.add(port)
        return port
    raise RuntimeError("no free port")


def wait_for(pred, timeout=5.0, interval=0.01, what="condition"):
    """Polls pred() until it is truthy; returns its value or raises."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def write_config(path, servers, herd=None, links=None):
    """Writes a herd file. servers: {name: port or {"port":, "host":, ...}},
    links: {name: [peer, ...]}, herd: extra [herd] keys."""
    lines = ["[herd]"]
    base = {"log_dir": "log", "run_dir": "run"}
    base.update(herd or {})
    for k, v in base.items():
        lines.append("%s = %s" % (k, v))
    for name, spec in servers.items():
        if not isinstance(spec, dict):
            spec = {"port": spec}
        lines.append("")
        lines.append("[server %s]" % name)
        for k, v in spec.items():
            lines.append("%s = %s" % (k, v))
        peers = (links or {}).get(name)
        if peers:
            lines.append("peers = " + ", ".join(peers))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Client:
    """A line client over TCP with timeouts."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self, text):
        self.send(text + "\n")

    def recv_line(self, timeout=None):
        """The next line without its newline (bytes decoded), or None at EOF."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace")

    def recv_until(self, marker, timeout=None):
        """Bytes up to and including marker (bytes)."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed before %r; got %r" % (marker, self.buf[:200]))
            self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out.decode(errors="replace")

    def ask(self, text, timeout=None):
        self.line(text)
        return self.recv_line(timeout)

    def whatsat(self, client, radius=10, bound=5, timeout=None):
        """Sends WHATSAT; returns (at_line, json_text)."""
        self.line("WHATSAT %s %s %s" % (client, radius, bound))
        first = self.recv_line(timeout)
        if first is None or first.startswith("?"):
            return first, None
        body = self.recv_until(b"\n\n", timeout)
        return first, body

    def closed(self, timeout=2.0):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# Sanitized binaries write their reports here (tests/run-tests sets it with
# ASAN_OPTIONS=log_path=...); a report written during a test fails that test.
SANITIZER_LOG_DIR = os.environ.get("HERD_SANITIZER_LOG_DIR")


def sanitizer_files():
    try:
        return set(os.listdir(SANITIZER_LOG_DIR)) if SANITIZER_LOG_DIR else set()
    except OSError:
        return set()


def sanitizer_text(names, limit=8000):
    text = ""
    for n in names:
        try:
            with open(os.path.join(SANITIZER_LOG_DIR, n), errors="replace") as f:
                text += "== %s\n%s\n" % (n, f.read()[:limit])
        except OSError:
            pass
    return text


def stop_gently(procs, timeout):
    """SIGTERM to every live process, then waits up to timeout for them all."""
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


class HerdTestCase(unittest.TestCase):
    """Base class: a temp folder, processes killed by PID in tearDown."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="herdtest-")
        self.procs = []
        self.clients = []
        self._sanitizer_seen = sanitizer_files()

    def tearDown(self):
        for c in self.clients:
            c.close()
        if SANITIZER_LOG_DIR:
            # A graceful stop first: LeakSanitizer reports only at exit.
            stop_gently(self.procs, 10)
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)
        shutil.rmtree(self.tmp, ignore_errors=True)
        new = sorted(sanitizer_files() - self._sanitizer_seen)
        if new:
            self.fail("sanitizer reports during this test:\n" + sanitizer_text(new))

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def config(self, servers, herd=None, links=None, name="herd.ini"):
        return write_config(self.path(name), servers, herd, links)

    def spawn(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def start_worker(self, cfg, name, port, wait=True, env=None):
        e = dict(os.environ)
        e.pop("HERD_PLACES_KEY", None)
        e.update(env or {})
        p = self.spawn([binary("herd-worker"), "-c", cfg, name], env=e)
        if wait:
            wait_for(lambda: port_open(port) or p.poll() is not None, 5,
                     what="%s to listen on %d" % (name, port))
            if p.poll() is not None:
                raise AssertionError("%s exited %s: %s" % (name, p.returncode,
                                                          p.stderr.read().decode()))
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=5):
        if p.poll() is None:
            p.send_signal(sig)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(timeout=5)

    def client(self, port, **kw):
        c = Client(port, **kw)
        self.clients.append(c)
        return c

    def five(self, herd=None, env=None):
        """Starts the course's five workers directly; returns {name: port}."""
        ports = {n: free_port() for n in FIVE}
        cfg = self.config(ports, herd=herd, links=FIVE_LINKS)
        self.workers = {n: self.start_worker(cfg, n, ports[n], env=env) for n in FIVE}
        self.cfg_path = cfg
        return ports

    def at_line(self, port, client):
        """The AT line a WHATSAT for CLIENT gets at PORT, or None when unknown."""
        c = self.client(port)
        try:
            first, _ = c.whatsat(client, timeout=5)
        finally:
            c.close()
        return None if first is None or first.startswith("?") else first

    def log_text(self, name):
        with open(self.path("log", name + ".log"), errors="replace") as f:
            return f.read()

    def wait_log(self, name, text, timeout=2.0):
        """The worker's log once it holds TEXT (workers write their log in
        batches, up to 20 ms late)."""
        return wait_for(lambda: (lambda t: text in t and t)(self.log_text(name)), timeout,
                        what="%r in %s.log" % (text, name))

    def rss_kb(self, pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def alive(pid):
    """True while PID runs (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except FileNotFoundError:
        return False
    return data[data.rindex(")") + 2] != "Z"


class SupervisedCase(HerdTestCase):
    """A test that runs herd-supervisor through herdctl. Subclasses give
    ctl(*args, timeout=) and add every supervisor and worker pid they see to
    self.seen; tearDown stops the herd (when self.cfg is set) and kills
    whatever of those pids still runs, stopped ones included."""

    STOP_TIMEOUT = 30

    def setUp(self):
        super().setUp()
        self.seen = set()
        self.cfg = None

    def tearDown(self):
        if self.cfg is not None:
            try:
                self.ctl("stop", timeout=self.STOP_TIMEOUT)
            except Exception:
                pass
        for pid in self.seen:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        super().tearDown()


def load_json(text):
    return json.loads(text)
