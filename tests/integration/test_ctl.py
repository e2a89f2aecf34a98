"""herdctl as an operator meets it (issue 17, SPEC §7): status NAME, logs,
metrics (checked by a Prometheus text-format parser written here), --version
on the three binaries, the config search path, exit statuses 2, 3 and 4,
stop -t, unresponsive workers, check-config's secret warning; and the
operator tooling: man pages (man --warnings, lexgrog), bash completion, the
hardened systemd unit (systemd-analyze security), make help, README links.

Every herd runs in a temp folder on free loopback ports; tearDown stops it
with herdctl and then SIGKILLs, by pid, anything it saw that is still alive.
"""
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
import unittest

from herdtest import (FAST_SUPERVISOR as FAST, SupervisedCase, alive, HerdTestCase, ROOT, SLOW,
                      binary, free_port, wait_for, Client)



def as_nobody():
    """A preexec_fn that drops to nobody, or None when that cannot be."""
    if os.geteuid() != 0:
        return None
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None

    def drop():
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    return drop


# -- a Prometheus text exposition format (0.0.4) parser ---------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"')
VALUE = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|[-+]?Inf$|NaN$")


def parse_exposition(text):
    """Checks TEXT against the format and returns {family: {"type", "help",
    "samples": [(labels dict, float)]}}; raises ValueError naming the line."""
    fams, order, current = {}, [], None
    if not text.endswith("\n"):
        raise ValueError("the text must end with a newline")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not METRIC_NAME.match(name):
                    raise ValueError("bad name, " + where)
                fam = fams.setdefault(name, {"type": None, "help": None, "samples": []})
                key = parts[1].lower()
                if fam[key] is not None:
                    raise ValueError("second %s, %s" % (parts[1], where))
                if fam["samples"]:
                    raise ValueError("%s after samples, %s" % (parts[1], where))
                if key == "type" and (len(parts) != 4 or parts[3] not in
                                      ("counter", "gauge", "histogram", "summary", "untyped")):
                    raise ValueError("bad TYPE, " + where)
                fam[key] = parts[3] if len(parts) == 4 else ""
                if name not in order:
                    order.append(name)
                current = name
            continue
        if not line.strip():
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$", line)
        if not m:
            raise ValueError("bad sample, " + where)
        name, labels_text, value = m.group(1), m.group(3), m.group(4)
        if name != current:
            raise ValueError("sample outside its family's block (HELP/TYPE first), " + where)
        labels = {}
        if labels_text:
            rest = labels_text
            while rest:
                lm = LABEL.match(rest)
                if not lm:
                    raise ValueError("bad labels, " + where)
                if lm.group(1) in labels:
                    raise ValueError("label twice, " + where)
                labels[lm.group(1)] = lm.group(2)
                rest = rest[lm.end():]
                if rest.startswith(","):
                    rest = rest[1:]
                elif rest:
                    raise ValueError("bad labels, " + where)
        if not VALUE.match(value):
            raise ValueError("bad value, " + where)
        fam = fams[name]
        key = tuple(sorted(labels.items()))
        if any(tuple(sorted(l.items())) == key for l, _ in fam["samples"]):
            raise ValueError("duplicate series, " + where)
        fam["samples"].append((labels, float(value)))
    for name, fam in fams.items():
        if fam["type"] is None or fam["help"] is None:
            raise ValueError("%s lacks TYPE or HELP" % name)
        if fam["type"] == "counter" and not name.endswith("_total"):
            raise ValueError("counter %s does not end in _total" % name)
    return fams


def read_file(path):
    with open(path) as f:
        return f.read()


def sample(fams, name, **labels):
    for l, v in fams[name]["samples"]:
        if all(l.get(k) == x for k, x in labels.items()):
            return v
    raise KeyError("%s%r" % (name, labels))


class CtlCase(SupervisedCase):

    def herd(self, servers, extra=None, links=None):
        herd = dict(FAST)
        herd.update(extra or {})
        self.ports = {n: (s["port"] if isinstance(s, dict) else s) for n, s in servers.items()}
        self.cfg = self.config(servers, herd=herd, links=links)
        return self.ports

    def ctl(self, *args, timeout=30, cfg=True, **kw):
        argv = [binary("herdctl")] + (["-c", self.cfg] if cfg else []) + list(args)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(argv, capture_output=True, timeout=timeout, text=True, **kw)

    def status(self):
        p = self.ctl("status", "--json")
        st = json.loads(p.stdout)
        if st.get("ok"):
            self.seen.add(st["supervisor"]["pid"])
            self.seen.update(s["pid"] for s in st["servers"] if s["pid"])
        return st

    def start(self):
        p = self.ctl("start", timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return self.status()

    def srv(self, name, st=None):
        return next(s for s in (st or self.status())["servers"] if s["name"] == name)


class Commands(CtlCase):
    def test_version_on_all_binaries_and_in_status(self):
        base = read_file(os.path.join(ROOT, "VERSION")).strip()
        versions = {}
        for prog in ("herdctl", "herd-supervisor", "herd-worker"):
            p = subprocess.run([binary(prog), "--version"], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(p.returncode, 0, prog + p.stderr)
            m = re.match(r"^%s (\S+)\n$" % re.escape(prog), p.stdout)
            self.assertTrue(m, "%s --version said %r" % (prog, p.stdout))
            versions[prog] = m.group(1)
        self.assertEqual(len(set(versions.values())), 1, versions)
        v = versions["herdctl"]
        self.assertTrue(v.startswith(base) or re.match(r"v?\d+\.\d+", v), v)

        self.herd({"A": free_port(), "B": free_port()}, links={"A": ["B"]})
        self.start()
        st = wait_for(lambda: (lambda s: all(x["version"] for x in s["servers"]) and s)(
            self.status()), 10, what="worker versions in status")
        self.assertEqual(st["schema"], 1)
        self.assertEqual(st["supervisor"]["version"], v)
        self.assertEqual([s["version"] for s in st["servers"]], [v, v])

    def test_status_names_host_column_summary(self):
        ports = self.herd({"A": free_port(), "B": free_port(), "C": free_port()},
                          links={"A": ["B"]})
        self.start()
        p = self.ctl("status")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertNotIn("HOST", lines[1], "one host for all: no HOST column")
        self.assertEqual(lines[-1], "3 running, 0 waiting")
        p = self.ctl("status", "B", "A")
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l.split()[0] for l in p.stdout.splitlines()[2:-1]]
        self.assertEqual(rows, ["A", "B"], p.stdout)
        self.assertEqual(p.stdout.splitlines()[-1], "2 running, 0 waiting")
        p = self.ctl("status", "--json", "C")
        self.assertEqual([s["name"] for s in json.loads(p.stdout)["servers"]], ["C"])
        p = self.ctl("status", "A", "Nobody")
        self.assertEqual(p.returncode, 2)
        self.assertIn('no server "Nobody"', p.stderr)
        # A stopped worker makes a filtered status fail only when it is named.
        os.kill(self.srv("C")["pid"], signal.SIGSTOP)
        p = self.ctl("kill", "C", "KILL")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.ctl("status", "A").returncode, 0)

    def test_host_column_when_hosts_differ(self):
        self.herd({"A": {"port": free_port()}, "B": {"port": free_port(), "host": "localhost"}})
        self.start()
        p = self.ctl("status")
        header = p.stdout.splitlines()[1].split()
        self.assertEqual(header[:3], ["NAME", "HOST", "PID"], p.stdout)
        self.assertIn("localhost", p.stdout)

    def test_help_explains_clients_and_exit_statuses(self):
        p = self.ctl("--help", cfg=False)
        self.assertEqual(p.returncode, 0)
        self.assertIn("CLIENTS client IDs whose last location", p.stdout)
        self.assertIn("unresponsive", p.stdout)
        self.assertIn("4 not allowed", p.stdout)
        for cmd in ("logs NAME", "metrics", "status [--json] [NAME...]"):
            self.assertIn(cmd, p.stdout)

    def test_not_running_exits_3(self):
        self.herd({"A": free_port()})
        for args in (["status"], ["status", "A"], ["metrics"], ["restart", "A"],
                     ["kill", "A"], ["reopen-logs"], ["reload"]):
            p = self.ctl(*args)
            self.assertEqual(p.returncode, 3, "%s: %s" % (args, p.stderr))
            self.assertIn("supervisor not running", p.stderr)
        p = self.ctl("stop")
        self.assertEqual(p.returncode, 0, "stop of a stopped herd is done")

    def test_bad_usage_exits_2(self):
        self.herd({"A": free_port()})
        for args in (["frobnicate"], ["logs"], ["logs", "A", "-n", "x"], ["logs", "Nobody"],
                     ["-t", "0", "status"], ["kill", "A", "SIGNOPE"], []):
            p = self.ctl(*args)
            self.assertEqual(p.returncode, 2, "%s: %s" % (args, p.stderr))

    def test_another_users_supervisor_exits_4(self):
        drop = as_nobody()
        if drop is None:
            self.skipTest("needs root and a user nobody")
        os.chmod(self.tmp, 0o755)
        self.herd({"A": free_port()})
        os.chmod(self.cfg, 0o644)
        self.start()
        for args in (["status"], ["metrics"], ["stop"], ["reopen-logs"], ["kill", "A"]):
            p = self.ctl(*args, preexec_fn=drop)
            self.assertEqual(p.returncode, 4, "%s: %s" % (args, p.stderr))
            self.assertIn("not allowed", p.stderr)
        # The socket opened up by mistake: the supervisor's SO_PEERCRED says no.
        sock = self.path("run", "herd.sock")
        os.chmod(sock, 0o666)
        try:
            os.chown(sock, pwd.getpwnam("nobody").pw_uid, -1)
            p = self.ctl("status", preexec_fn=drop)
        finally:
            os.chown(sock, 0, -1)
            os.chmod(sock, 0o600)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertEqual(self.ctl("status").returncode, 0, "still running, still ours")

    def test_stop_honours_timeout(self):
        self.herd({"A": free_port()}, extra={"stop_timeout": "30"})
        st = self.start()
        wpid = st["servers"][0]["pid"]
        os.kill(wpid, signal.SIGSTOP)  # deaf to SIGTERM: only SIGKILL ends it
        t0 = time.monotonic()
        p = self.ctl("-t", "1", "stop", timeout=60)
        took = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertLess(took, 10 * SLOW, "-t 1 must not wait stop_timeout (30 s)")
        wait_for(lambda: not alive(wpid), 5, what="the worker to die with its supervisor")
        self.assertEqual(self.ctl("status").returncode, 3)

    def test_frozen_worker_shows_unresponsive(self):
        self.herd({"A": free_port(), "B": free_port()},
                  extra={"heartbeat_interval": "0.2", "heartbeat_timeout": "60"})
        st = self.start()
        pid = self.srv("A", st)["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: self.srv("A")["heartbeat_late"], 10, interval=0.1,
                     what="A's heartbeat to be late")
            p = self.ctl("status")
            row = next(l for l in p.stdout.splitlines() if l.startswith("A "))
            self.assertIn("unresponsive", row)
            self.assertIn("1 unresponsive", p.stdout.splitlines()[-1])
            fams = parse_exposition(self.ctl("metrics").stdout)
            self.assertEqual(sample(fams, "herd_unresponsive", server="A"), 1)
            self.assertEqual(sample(fams, "herd_unresponsive", server="B"), 0)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: not self.srv("A")["heartbeat_late"], 10, interval=0.1,
                 what="A to answer again")

    def test_metrics_parse_and_count(self):
        ports = self.herd({"A": free_port(), "B": free_port()}, links={"A": ["B"]})
        self.start()
        c = self.client(ports["A"])
        reply = c.ask("IAMAT metrics.test +34.068930-118.445127 %.9f" % time.time())
        self.assertTrue(reply.startswith("AT "), reply)
        self.assertTrue(c.ask("BOGUS").startswith("? "))
        wait_for(lambda: (self.srv("A")["stats"] or {}).get("iamat") == 1 and
                 (self.srv("B")["stats"] or {}).get("floods_in", 0) >= 1, 10,
                 what="the heartbeat to count the IAMAT and its flood")
        p = self.ctl("metrics")
        self.assertEqual(p.returncode, 0, p.stderr)
        fams = parse_exposition(p.stdout)
        for name in ("herd_up", "herd_restarts_total", "herd_clients", "herd_connections",
                     "herd_links_up", "herd_requests_total", "herd_floods_total",
                     "herd_places_requests_total", "herd_worker_resident_memory_bytes",
                     "herd_supervisor_info"):
            self.assertIn(name, fams)
        for name, fam in fams.items():
            self.assertTrue(name.startswith("herd_"), name)
            if not name.startswith("herd_supervisor"):
                for labels, _ in fam["samples"]:
                    self.assertIn(labels.get("server"), ("A", "B"), name)
        self.assertEqual(fams["herd_restarts_total"]["type"], "counter")
        self.assertEqual(fams["herd_clients"]["type"], "gauge")
        self.assertEqual(sample(fams, "herd_requests_total", server="A", kind="iamat"), 1)
        self.assertEqual(sample(fams, "herd_requests_total", server="A", kind="invalid"), 1)
        self.assertGreaterEqual(sample(fams, "herd_floods_total", server="B", direction="in"), 1)
        self.assertEqual(sample(fams, "herd_up", server="A"), 1)
        self.assertEqual(sample(fams, "herd_links_up", server="A"), 1)
        self.assertGreater(sample(fams, "herd_worker_resident_memory_bytes", server="B"), 1e6)
        # The parser itself refuses what it should.
        for bad in ("herd_x 1\n", "# TYPE herd_x gauge\n# HELP herd_x h\nherd_x{a=b} 1\n",
                    "# TYPE herd_x counter\n# HELP herd_x h\nherd_x 1\n"):
            with self.assertRaises(ValueError):
                parse_exposition(bad)

    def test_check_config_warns_on_readable_secret(self):
        self.herd({"A": free_port()}, extra={"secret": "s3cret"})
        os.chmod(self.cfg, 0o644)
        p = self.ctl("check-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("readable", p.stderr)
        os.chmod(self.cfg, 0o600)
        p = self.ctl("check-config")
        self.assertEqual((p.returncode, p.stderr), (0, ""))

    def test_config_search_path(self):
        self.herd({"A": free_port()})
        env = dict(os.environ)
        env.pop("HERD_CONFIG", None)
        empty = self.path("empty")
        os.mkdir(empty)
        # Nothing here: the installed SYSCONFDIR/herd/herd.ini is the one tried.
        p = self.ctl("check-config", cfg=False, cwd=empty, env=env)
        self.assertEqual(p.returncode, 2)
        help_text = self.ctl("--help", cfg=False, cwd=empty, env=env).stdout
        installed = re.search(r"then (\S+/herd/herd\.ini)\)", help_text).group(1)
        self.assertIn(installed, p.stderr + p.stdout)
        self.assertTrue(installed in ("/etc/herd/herd.ini",) or
                        installed.endswith("/etc/herd/herd.ini"), installed)
        # ./etc/herd.ini when present.
        os.mkdir(os.path.join(empty, "etc"))
        shutil.copy(self.cfg, os.path.join(empty, "etc", "herd.ini"))
        p = self.ctl("check-config", cfg=False, cwd=empty, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("etc/herd.ini: syntax is ok", p.stdout)
        # $HERD_CONFIG wins over it.
        env["HERD_CONFIG"] = self.cfg
        p = self.ctl("check-config", cfg=False, cwd=empty, env=env)
        self.assertIn(self.cfg + ": syntax is ok", p.stdout)


class Logs(CtlCase):
    def write(self, path, text, mode="a"):
        with open(path, mode) as f:
            f.write(text)

    def test_logs_tail_and_follow_across_rotation(self):
        self.herd({"A": free_port()})
        os.makedirs(self.path("log"))
        log = self.path("log", "A.log")
        self.write(log, "".join("line %d\n" % i for i in range(1, 101)), "w")
        p = self.ctl("logs", "A", "-n", "3")
        self.assertEqual((p.returncode, p.stdout), (0, "line 98\nline 99\nline 100\n"))
        self.assertEqual(self.ctl("logs", "A").stdout.count("\n"), 10)
        self.assertEqual(self.ctl("logs", "-n", "0", "A").stdout, "")
        out = self.path("follow.out")
        with open(out, "w") as f:
            follower = self.spawn([binary("herdctl"), "-c", self.cfg, "logs", "-f", "-n", "1",
                                   "A"], stdout=f)
        read = lambda: read_file(out)
        wait_for(lambda: read() == "line 100\n", 5, what="the last line")
        self.write(log, "appended\n")
        wait_for(lambda: "appended\n" in read(), 5, what="an appended line")
        # logrotate's way: rename, a new file under the name.
        os.rename(log, log + ".1")
        self.write(log + ".1", "late in the old file\n")
        self.write(log, "first of the new file\n", "w")
        wait_for(lambda: "first of the new file\n" in read(), 5, what="the new file")
        self.assertIn("late in the old file\n", read(), "the old file is read out first")
        self.assertLess(read().index("late in the old"), read().index("first of the new"))
        # copytruncate's way.
        self.write(log, "", "w")
        time.sleep(0.5)
        self.write(log, "after truncation\n")
        wait_for(lambda: "after truncation\n" in read(), 5, what="after truncation")
        self.assertIsNone(follower.poll(), "-f keeps following")
        self.stop(follower)

    def test_logs_of_a_running_worker(self):
        self.herd({"A": free_port()})
        self.start()
        p = self.ctl("logs", "A", "-n", "50")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("listening", p.stdout.lower() + p.stdout)
        p = self.ctl("logs", "supervisor")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout)


class Tooling(unittest.TestCase):
    """What ships besides the binaries: man pages, completion, the unit."""

    def test_man_pages_lint(self):
        if shutil.which("man") is None or shutil.which("lexgrog") is None:
            self.skipTest("man-db not installed (scripts/install-deps installs it)")
        pages = sorted(os.listdir(os.path.join(ROOT, "man")))
        self.assertEqual(pages, ["herd-supervisor.8", "herd-worker.8", "herd.ini.5",
                                 "herdctl.8"])
        for page in pages:
            path = os.path.join(ROOT, "man", page)
            p = subprocess.run(["lexgrog", path], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, page + p.stdout + p.stderr)
            env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
            p = subprocess.run(["man", "--warnings", "-l", path], capture_output=True,
                               text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
            self.assertEqual((p.returncode, p.stderr), (0, ""), page)
            self.assertIn("NAME", p.stdout)
        text = read_file(os.path.join(ROOT, "man", "herdctl.8"))
        for word in ("status", "logs", "metrics", "\\-\\-version", "HERD_CONFIG"):
            self.assertIn(word, text)

    def test_bash_completion(self):
        if shutil.which("bash") is None:
            self.skipTest("no bash")
        comp = os.path.join(ROOT, "etc", "bash-completion", "herdctl")
        script = ('source "$1"\n'
                  'complete -p herdctl\n'
                  'COMP_WORDS=(herdctl -c "$2" status ""); COMP_CWORD=4; _herdctl\n'
                  'echo "servers: ${COMPREPLY[*]}"\n'
                  'COMP_WORDS=(herdctl me); COMP_CWORD=1; _herdctl\n'
                  'echo "commands: ${COMPREPLY[*]}"\n'
                  'COMP_WORDS=(herdctl -c "$2" logs R); COMP_CWORD=4; _herdctl\n'
                  'echo "logs: ${COMPREPLY[*]}"\n')
        cfg = os.path.join(ROOT, "etc", "herd.ini")
        p = subprocess.run(["bash", "-c", script, "bash", comp, cfg], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("complete -F _herdctl herdctl", p.stdout)
        self.assertIn("servers: Riley Jaquez Juzang Campbell Bernard\n", p.stdout)
        self.assertIn("commands: metrics\n", p.stdout)
        self.assertIn("logs: Riley\n", p.stdout)

    def test_systemd_unit_exposure(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not installed")
        unit = os.path.join(ROOT, "etc", "systemd", "herd.service")
        p = subprocess.run(["systemd-analyze", "security", "--offline=yes", unit],
                           capture_output=True, text=True, timeout=120, cwd="/")
        m = re.search(r"Overall exposure level for herd\.service: (\d+\.\d+)", p.stdout)
        if m is None and "offline" in p.stderr:
            self.skipTest("this systemd-analyze has no --offline: " + p.stderr.strip())
        self.assertTrue(m, p.stdout[-2000:] + p.stderr)
        self.assertLessEqual(float(m.group(1)), 2.5, p.stdout)
        text = read_file(unit)
        for line in ("User=herd", "NoNewPrivileges=yes", "ProtectSystem=strict",
                     "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n",
                     "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                     "SystemCallFilter=@system-service"):
            self.assertIn(line, text)

    def test_make_help_lists_every_target(self):
        mk = read_file(os.path.join(ROOT, "Makefile"))
        phony = re.search(r"^\.PHONY:((?:.*\\\n)*.*)$", mk, re.M).group(1)
        targets = set(phony.replace("\\\n", " ").split()) - {"FORCE"}
        p = subprocess.run(["make", "-s", "-C", ROOT, "help"], capture_output=True, text=True,
                           timeout=30)
        listed = {m.group(1) for m in re.finditer(r"^make (\[?[a-z-]+\]?)", p.stdout, re.M)}
        listed = {t.strip("[]") for t in listed}
        self.assertEqual(targets - listed, set(), p.stdout)

    def test_installed_readme_links_resolve(self):
        readme = read_file(os.path.join(ROOT, "README.md"))
        links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
        p = subprocess.run(["make", "-s", "-n", "-C", ROOT, "install", "DESTDIR=/nonexistent"],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("share/doc/herd/docs/", p.stdout)
        for link in links:
            if re.match(r"[a-z]+:", link):
                continue
            self.assertTrue(link.startswith("docs/") and link.endswith(".md"),
                            "README links to %s, which make install does not install" % link)
            self.assertTrue(os.path.exists(os.path.join(ROOT, link)), link)


class RealSystemd(HerdTestCase):
    """The shipped unit under a real systemd: PID 1 of a fresh pid and mount
    namespace (`unshare`). A systemd booting with the host's units would run
    systemd-tmpfiles (which empties the host's /tmp), sysctl, timesyncd...:
    so every unit folder is an empty tmpfs but for herd.service (with
    DefaultDependencies=no), and /tmp, /var/tmp, /run, /var/log, /var/lib are
    tmpfs too; this build is bound on /usr/local/bin. Only User= differs
    (nobody: no herd user here) and the file's folder (/usr/local/etc/herd).
    Opt-in (HERD_TEST_SYSTEMD=1): it boots an init on a shared machine, and
    systemd as PID 1 still raises the host's fs.nr_open and fs.file-max."""

    SYSTEMD = "/lib/systemd/systemd"

    def setUp(self):
        super().setUp()
        self.sd_pid = None
        if os.environ.get("HERD_TEST_SYSTEMD") != "1":
            self.skipTest("opt-in: HERD_TEST_SYSTEMD=1 (boots systemd in a namespace)")
        if os.geteuid() != 0 or not os.path.exists(self.SYSTEMD) or \
                not shutil.which("unshare") or not shutil.which("nsenter"):
            self.skipTest("needs root, systemd, unshare and nsenter")

    def tearDown(self):
        if self.sd_pid:
            try:
                os.kill(self.sd_pid, signal.SIGKILL)  # PID 1 of the namespace: all go
            except ProcessLookupError:
                pass
        super().tearDown()

    def ns(self, *argv, timeout=30):
        return subprocess.run(["nsenter", "-t", str(self.sd_pid), "-m", "-p"] + list(argv),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def boot(self, ports):
        with open(os.path.join(ROOT, "etc", "systemd", "herd.service")) as f:
            unit = f.read()
        unit = (unit.replace("/etc/herd/herd.ini", "/usr/local/etc/herd/herd.ini")
                .replace("User=herd", "User=nobody").replace("Group=herd", "Group=nogroup")
                .replace("[Unit]\n", "[Unit]\nDefaultDependencies=no\n", 1))
        with open(self.path("herd.service"), "w") as f:
            f.write(unit)
        write_config = __import__("herdtest").write_config
        write_config(self.path("herd.ini"), {"A": ports[0], "B": ports[1]},
                     herd={"log_dir": "/var/log/herd", "run_dir": "/run/herd",
                           "state_dir": "/var/lib/herd"}, links={"A": ["B"]})
        os.chmod(self.tmp, 0o755)
        os.chmod(self.path("herd.ini"), 0o644)
        units = " ".join(d for d in ("/etc/systemd/system",
                                     "/usr/lib/systemd/system", "/lib/systemd/system",
                                     "/usr/local/lib/systemd/system")
                         if os.path.isdir(d) and not os.path.islink(d))
        script = "\n".join([
            "set -e",
            "for d in /run %s /usr/local/etc /var/log /var/lib /var/tmp; do" % units,
            "    mount -t tmpfs tmpfs $d",
            "done",
            "mount --bind '%s' /usr/local/bin" % os.path.abspath(binary("")),
            "mkdir /usr/local/etc/herd",
            "cp '%s' /usr/local/etc/herd/herd.ini" % self.path("herd.ini"),
            "cp '%s' /etc/systemd/system/herd.service" % self.path("herd.service"),
            "mount -t tmpfs tmpfs /tmp  # last: the files above come from the host's /tmp",
            "exec %s --system --unit=herd.service" % self.SYSTEMD])
        with open(self.path("boot.sh"), "w") as f:
            f.write(script + "\n")
        outer = self.spawn(["unshare", "--pid", "--fork", "--mount", "--uts", "--mount-proc", "sh",
                            self.path("boot.sh")], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)

        def child():
            try:
                with open("/proc/%d/task/%d/children" % (outer.pid, outer.pid)) as f:
                    kids = f.read().split()
            except OSError:
                return None
            return int(kids[0]) if kids else None
        self.sd_pid = wait_for(child, 10, what="systemd in the namespace")

    def test_unit_starts_the_herd_confined(self):
        ports = [free_port(), free_port()]
        self.boot(ports)

        def answers():
            if self.ns("systemctl", "is-failed", "--quiet", "herd").returncode == 0:
                raise AssertionError(self.ns("journalctl", "-u", "herd", "--no-pager").stdout)
            try:
                c = Client(ports[1], timeout=1)
            except OSError:
                return None
            try:
                return c.ask("IAMAT sd.test +34.068930-118.445127 %.9f" % time.time(), timeout=1)
            except OSError:
                return None
            finally:
                c.close()
        try:
            reply = wait_for(answers, 30, interval=0.2, what="the herd under systemd")
        except AssertionError as e:
            if "timed out" in str(e) and self.ns("systemctl", "is-system-running").returncode \
                    not in (0, 1):
                self.skipTest("systemd does not come up in a namespace here: %s" % e)
            raise
        self.assertTrue(reply.startswith("AT B "), reply)
        p = self.ns("systemctl", "show", "-p", "MainPID", "--value", "herd")
        sup = int(p.stdout.strip())
        self.assertGreater(sup, 0, p.stdout + p.stderr)
        p = self.ns("/usr/local/bin/herdctl", "-c", "/usr/local/etc/herd/herd.ini", "status",
                    "--json")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        st = json.loads(p.stdout)
        self.assertEqual([s["state"] for s in st["servers"]], ["running", "running"])
        nobody = pwd.getpwnam("nobody").pw_uid
        for pid in [st["supervisor"]["pid"]] + [s["pid"] for s in st["servers"]]:
            p = self.ns("cat", "/proc/%d/status" % pid)
            fields = dict(l.split(":\t", 1) for l in p.stdout.splitlines() if ":\t" in l)
            self.assertEqual(fields["Uid"].split()[1], str(nobody), pid)
            self.assertEqual(fields["NoNewPrivs"].strip(), "1")
            self.assertEqual(fields["Seccomp"].strip(), "2", "SystemCallFilter is on")
            self.assertEqual(int(fields["CapEff"], 16), 0)
            self.assertEqual(int(fields["CapBnd"], 16), 0)
        # Reload, reopen-logs, restart and kill work under the syscall filter.
        self.assertEqual(self.ns("systemctl", "reload", "herd").returncode, 0)
        ctl = ["/usr/local/bin/herdctl", "-c", "/usr/local/etc/herd/herd.ini"]
        for args in (["reopen-logs"], ["restart", "A"], ["kill", "B"]):
            p = self.ns(*(ctl + args))
            self.assertEqual(p.returncode, 0, "%s: %s" % (args, p.stderr))
        wait_for(lambda: self.ns(*(ctl + ["status"])).returncode == 0, 10,
                 what="every worker running again")
        self.assertEqual(self.ns("systemctl", "is-failed", "--quiet", "herd").returncode, 1)
        self.assertEqual(self.ns("systemctl", "stop", "herd").returncode, 0)
        self.assertEqual(self.ns("systemctl", "is-active", "herd").stdout.strip(), "inactive")
        wait_for(lambda: self.ns("kill", "-0", str(sup)).returncode != 0, 5,
                 what="the supervisor gone")


if __name__ == "__main__":
    unittest.main()
