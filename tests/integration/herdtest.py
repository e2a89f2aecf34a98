"""Helpers for herd's black-box tests: free loopback ports, test herd files,
real herd-worker / herd-supervisor processes stopped by PID, line clients.

Every process a test starts is registered with a HerdTestCase and killed in
tearDown, whatever happened; temp folders are removed.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
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


# Sanitized binaries start and run several times slower, and each process
# runs a leak check as it exits: time bounds in tests are multiplied by this
# (the runner sets HERD_SANITIZER_LOG_DIR for them). wait_for and
# Client.closed apply it themselves, so a test passes them plain-build
# seconds; every other bound (a sleep, an elapsed-time assertion, a socket
# timeout) multiplies by SLOW where it is written.
SLOW = 4.0 if os.environ.get("HERD_SANITIZER_LOG_DIR") else 1.0

# Supervisor timings for tests, so restarts take tens of ms, not seconds.
FAST_SUPERVISOR = {
    "heartbeat_interval": "0.1",
    "heartbeat_timeout": "2",
    "restart_backoff_min": "0.1",
    "restart_backoff_max": "1",
    # A sanitized worker's graceful exit ends in a leak check: a SIGKILL in
    # the middle of it is a sanitizer report ("Unable to get registers").
    "stop_timeout": "%g" % (2 * SLOW),
}
# ASan's shadow memory and quarantine inflate RSS: memory bounds scale by this.
RSS_SLACK = 4.0 if os.environ.get("HERD_SANITIZER_LOG_DIR") else 1.0


def binary(name):
    return os.path.join(BIN, name)


_used_ports = set()


def _port_range():
    """Ports for servers, below the kernel's ephemeral range when there is
    room: a port from that range can be taken before the server binds it by
    any outgoing connection's local port, or by a worker dialling it while
    nothing listens (a TCP self-connect)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    return (20000, low - 1) if low > 25000 else (20000, 60000)


_PORTS = _port_range()


def free_port():
    """A TCP port free on 127.0.0.1 now, never handed out twice per run."""
    for _ in range(200):
        port = random.randint(*_PORTS)
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
    """Polls pred() until it is truthy; returns its value or raises.
    TIMEOUT is in plain-build seconds; sanitized runs wait SLOW times longer."""
    timeout *= SLOW
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
        """True when the server closes the connection within timeout (plain-build
        seconds, times SLOW like wait_for)."""
        self.sock.settimeout(timeout * SLOW)
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


# LeakSanitizer checks a process as it exits, its threads stopped by ptrace;
# a SIGKILL meanwhile leaves an empty report file or one line, "==T==Unable
# to get registers from thread P.", and no check. That is no finding about
# herd: it happens by design when a worker sees its channel close (the
# supervisor died) and exits a moment before the PR_SET_PDEATHSIG SIGKILL.
KILLED_IN_LEAK_CHECK = re.compile(r"(==\d+==Unable to get registers from thread \d+\.\s*)*")


def sanitizer_findings(names):
    """NAMES minus the reports of a process killed in its exit leak check,
    which are removed (so the runner does not count them either). A report
    is read once its process (asan.PID) is gone, so none is read half done."""
    found = []
    for n in sorted(names):
        p = os.path.join(SANITIZER_LOG_DIR, n)
        pid = n.rpartition(".")[2]
        if pid.isdigit():
            try:
                wait_for(lambda: not alive(int(pid)), 5.0, 0.01, "pid %s to finish its report" % pid)
            except AssertionError:
                pass  # still running: read what it wrote so far
        try:
            with open(p, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if KILLED_IN_LEAK_CHECK.fullmatch(text):
            print("(%s: killed during its exit leak check; not a finding)" % n, flush=True)
            os.unlink(p)
        else:
            found.append(n)
    return found


def sanitizer_text(names, limit=8000):
    text = ""
    for n in names:
        try:
            with open(os.path.join(SANITIZER_LOG_DIR, n), errors="replace") as f:
                text += "== %s\n%s\n" % (n, f.read()[:limit])
        except OSError:
            pass
    return text


def log_tails(tmp, lines=15, most=6):
    """The last lines of the logs a failed test leaves, for the CI output:
    a timing failure there cannot be rerun to see why."""
    found = []
    for d, _, files in os.walk(tmp):
        found += [os.path.join(d, f) for f in files if f.endswith(".log")]
    text = ""
    for p in sorted(found)[:most]:
        try:
            with open(p, errors="replace") as f:
                tail = f.read().splitlines()[-lines:]
        except OSError:
            continue
        text += "--- %s (last %d lines)\n%s\n" % (os.path.relpath(p, tmp), len(tail),
                                                 "\n".join(tail))
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
            stop_gently(self.procs, 10 * SLOW)
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5 * SLOW)
        if self._failed():
            sys.stdout.write(log_tails(self.tmp))
        shutil.rmtree(self.tmp, ignore_errors=True)
        new = sanitizer_findings(sanitizer_files() - self._sanitizer_seen)
        if new:
            self.fail("sanitizer reports during this test:\n" + sanitizer_text(new))

    def _failed(self):
        """The test body failed (unittest reports it before tearDown runs)."""
        res = getattr(getattr(self, "_outcome", None), "result", None)
        bad = getattr(res, "failures", []) + getattr(res, "errors", [])
        return any(t is self for t, _ in bad)

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
            return p.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(timeout=5 * SLOW)

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


# ------------------------------------------------------------ test certificates

def _openssl(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), p.stderr.strip()[-500:]))


def make_ca(folder, name="ca"):
    """A self-signed EC P-256 test CA in FOLDER: returns (cert path, key path),
    NAME.pem and NAME.key, valid two days."""
    os.makedirs(folder, exist_ok=True)
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
              "-subj", "/CN=herd test CA %s" % name,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], folder)
    return os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")


def make_cert(folder, ca, name, sans=None, file_name=None):
    """An EC P-256 certificate for server NAME signed by CA (a make_ca result),
    usable both as TLS client and server. SANS: subjectAltName entries, by
    default "DNS:<name>,IP:127.0.0.1". Returns (cert path, key path):
    FILE_NAME.pem and FILE_NAME.key (FILE_NAME defaults to NAME)."""
    file_name = file_name or name
    sans = sans or "DNS:%s,IP:127.0.0.1" % name
    ext = os.path.join(folder, file_name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints = CA:FALSE\n"
                "keyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = serverAuth, clientAuth\n"
                "subjectAltName = %s\n" % sans)
    _openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", file_name + ".key", "-out", file_name + ".csr",
              "-subj", "/CN=%s" % name], folder)
    _openssl(["x509", "-req", "-in", file_name + ".csr", "-CA", ca[0], "-CAkey", ca[1],
              "-set_serial", str(random.getrandbits(63)), "-days", "2",
              "-extfile", ext, "-out", file_name + ".pem"], folder)
    return os.path.join(folder, file_name + ".pem"), os.path.join(folder, file_name + ".key")
