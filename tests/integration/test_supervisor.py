"""herd-supervisor and herdctl, black box (SPEC §7): start/status/stop and
their exit statuses, restarts with backoff, the heartbeat, no orphans, the
control socket's permissions, ps names, reload, and the worker's channel.

Every herd runs in a temp folder on free loopback ports; tearDown stops it
with herdctl and then SIGKILLs, by pid, anything it saw that is still alive.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
import unittest

from herdtest import SupervisedCase, alive, SLOW, binary, free_port, port_open, wait_for, Client

# Short timings so that heartbeats, backoff and stops are quick to observe.
FAST = {
    "heartbeat_interval": "0.1",
    "heartbeat_timeout": "1",
    "restart_backoff_min": "0.1",
    "restart_backoff_max": "1",
    "restart_reset_after": "10",
    "stop_timeout": "%g" % (2 * SLOW),  # see herdtest.FAST_SUPERVISOR
}



def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def answers_iamat(port):
    try:
        c = Client(port, timeout=1)
    except OSError:
        return False
    try:
        reply = c.ask("IAMAT sup.test +34.068930-118.445127 1621464827.959498503", timeout=1)
        return reply is not None and reply.startswith("AT ")
    except OSError:
        return False
    finally:
        c.close()


class SupervisorTest(SupervisedCase):

    # -- helpers -----------------------------------------------------------

    def herd(self, names, extra=None, links=None, name="herd.ini"):
        """Writes a herd file for NAMES on free ports; returns {name: port}."""
        self.ports = {n: free_port() for n in names}
        herd = dict(FAST)
        herd.update(extra or {})
        self.cfg = self.config(self.ports, herd=herd, links=links, name=name)
        return self.ports

    def ctl(self, *args, timeout=30, user=None):
        argv = [binary("herdctl"), "-c", self.cfg] + list(args)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, text=True)
        return p

    def status(self):
        p = self.ctl("status", "--json")
        if p.returncode == 3:
            return None
        st = json.loads(p.stdout)
        pid = st["supervisor"]["pid"]
        self.seen.add(pid)
        for srv in st["servers"]:
            if srv["pid"]:
                self.seen.add(srv["pid"])
        return st

    def server(self, name, st=None):
        st = st or self.status()
        for srv in st["servers"]:
            if srv["name"] == name:
                return srv
        return None

    def start(self):
        p = self.ctl("start")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        st = self.status()
        for name, port in self.ports.items():
            self.assertTrue(port_open(port), name)
        return st

    def pids(self, st=None):
        st = st or self.status()
        return {s["name"]: s["pid"] for s in st["servers"]}

    def running_with_new_pid(self, name, old):
        srv = self.server(name)
        return srv and srv["state"] == "running" and srv["pid"] not in (None, old) and srv

    # -- start, status, stop -------------------------------------------------

    def test_start_status_stop_exit_statuses(self):
        self.herd(["Alpha", "Beta", "Gamma"], links={"Alpha": ["Beta"]})
        p = self.ctl("status")
        self.assertEqual(p.returncode, 3, "status before start")
        p = self.ctl("start")
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in ("NAME", "STATE", "Alpha", "Beta", "Gamma", "running"):
            self.assertIn(name, p.stdout)
        p = self.ctl("status")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        header = p.stdout.splitlines()[1]
        for col in ("NAME", "PID", "PORT", "STATE", "UPTIME", "RESTARTS", "CLIENTS", "LINKS"):
            self.assertIn(col, header)
        st = self.status()
        self.assertEqual([s["state"] for s in st["servers"]], ["running"] * 3)
        alpha = self.server("Alpha", st)
        self.assertEqual(alpha["links_total"], 1)
        self.assertEqual(alpha["port"], self.ports["Alpha"])
        for name, port in self.ports.items():
            self.assertTrue(answers_iamat(port), name)

        again = self.ctl("start")
        self.assertEqual(again.returncode, 0)
        self.assertIn("already running (pid %d)" % st["supervisor"]["pid"], again.stdout)
        self.assertEqual(self.pids(), self.pids(st), "a second start changes nothing")

        sup = st["supervisor"]["pid"]
        workers = [s["pid"] for s in st["servers"]]
        p = self.ctl("stop")
        self.assertEqual(p.returncode, 0, p.stderr)
        for pid in workers + [sup]:
            self.assertFalse(alive(pid), "pid %d outlived stop" % pid)
        self.assertFalse(os.path.exists(self.path("run", "herd.sock")))
        self.assertFalse(os.path.exists(self.path("run", "herd.pid")))
        self.assertEqual(self.ctl("status").returncode, 3)
        p = self.ctl("stop")
        self.assertEqual(p.returncode, 0, "stop when stopped")
        self.assertIn("not running", p.stdout)

    def test_check_config_and_bad_file(self):
        self.herd(["Alpha", "Beta"])
        p = self.ctl("check-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("syntax is ok, 2 servers", p.stdout)
        with open(self.cfg, "a") as f:
            f.write("bogus_key = 1\n")
        lines = read_text(self.cfg).count("\n")
        p = self.ctl("check-config")
        self.assertEqual(p.returncode, 2)
        self.assertIn("%s:%d:" % (self.cfg, lines), p.stderr)
        # The supervisor refuses it too, and starts nothing.
        p = subprocess.run([binary("herd-supervisor"), "-c", self.cfg], capture_output=True,
                           text=True, timeout=10, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 2)
        self.assertIn("%s:%d:" % (self.cfg, lines), p.stderr)
        self.assertFalse(os.path.exists(self.path("run", "herd.sock")))
        self.assertEqual(self.ctl("start").returncode, 2)
        self.assertFalse(port_open(self.ports["Alpha"]))

    def test_help_on_every_binary(self):
        for name in ("herdctl", "herd-supervisor", "herd-worker"):
            p = subprocess.run([binary(name), "--help"], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(p.returncode, 0, name)
            self.assertIn("usage", p.stdout.lower(), name)

    def test_second_supervisor_refused(self):
        self.herd(["Alpha"])
        st = self.start()
        p = subprocess.run([binary("herd-supervisor"), "-f", "-c", self.cfg],
                           capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 1)
        self.assertIn("already running (pid %d)" % st["supervisor"]["pid"], p.stderr)
        self.assertEqual(self.pids(), self.pids(st))

    # -- restarts ------------------------------------------------------------

    def test_sigkill_worker_new_pid_serves_quickly(self):
        self.herd(["Alpha", "Beta"])
        st = self.start()
        old = self.server("Alpha", st)["pid"]
        beta = self.server("Beta", st)["pid"]
        t0 = time.monotonic()
        os.kill(old, signal.SIGKILL)
        srv = wait_for(lambda: self.running_with_new_pid("Alpha", old), 2, 0.005,
                       "a new Alpha")
        wait_for(lambda: answers_iamat(self.ports["Alpha"]), 2, 0.005, "Alpha to answer")
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 0.5 * SLOW, "new pid served after %.3f s" % elapsed)
        self.assertEqual(srv["restarts"], 1)
        self.assertEqual(srv["last_exit"], "SIGKILL")
        self.assertEqual(self.server("Beta")["pid"], beta, "the others are untouched")

    def test_crash_loop_backs_off_and_recovers(self):
        self.herd(["Alpha", "Beta"])
        hold = socket.socket()
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hold.bind(("127.0.0.1", self.ports["Beta"]))
        hold.listen(1)
        try:
            p = self.ctl("start")
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("Beta", p.stderr)
            self.assertIn("Beta.log", p.stderr, "quotes the worker's log")
            self.assertIn("in use", p.stderr)
            self.assertEqual(self.ctl("status").returncode, 1)
            self.assertTrue(answers_iamat(self.ports["Alpha"]), "the others serve")
            delays = []
            deadline = time.monotonic() + 4 * SLOW
            while time.monotonic() < deadline:
                srv = self.server("Beta")
                if srv["state"] == "backoff":
                    self.assertIsNotNone(srv["next_try"])
                    self.assertIn("exit 1", srv["last_exit"])
                    if not delays or srv["backoff"] != delays[-1]:
                        delays.append(srv["backoff"])
                time.sleep(0.03)
            self.assertGreaterEqual(len(delays), 3, delays)
            self.assertEqual(delays[:3], sorted(delays[:3]), delays)
            self.assertLess(delays[0], delays[2], delays)
            self.assertLessEqual(max(delays), 1.0, "restart_backoff_max caps it")
            # A sanitized worker spends longer "starting": catch a backoff row.
            table = wait_for(lambda: (lambda t: "backoff" in t and t)(self.ctl("status").stdout),
                             3, 0.02, "a status table showing the backoff")
            self.assertIn("next try in", table)
        finally:
            hold.close()
        srv = wait_for(lambda: (lambda s: s["state"] == "running" and s)(self.server("Beta")),
                       3, 0.05, "Beta to come up once its port is free")
        self.assertTrue(answers_iamat(self.ports["Beta"]))
        self.assertGreaterEqual(srv["restarts"], 3)
        self.assertEqual(self.ctl("status").returncode, 0)

    def test_stopped_worker_killed_after_heartbeat_timeout(self):
        self.herd(["Alpha", "Beta"])
        st = self.start()
        old = self.server("Alpha", st)["pid"]
        t0 = time.monotonic()
        os.kill(old, signal.SIGSTOP)
        try:
            srv = wait_for(lambda: self.running_with_new_pid("Alpha", old), 4, 0.02,
                           "Alpha to be replaced")
        finally:
            if alive(old):
                os.kill(old, signal.SIGKILL)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.8, "killed before the heartbeat timeout")
        self.assertLess(elapsed, 3.0)
        self.assertIn("heartbeat", srv["last_exit"])
        self.assertFalse(alive(old))
        self.assertTrue(answers_iamat(self.ports["Alpha"]))

    def test_restart_and_kill_commands(self):
        self.herd(["Alpha", "Beta"])
        st = self.start()
        old = self.server("Alpha", st)["pid"]
        p = self.ctl("restart", "Alpha")
        self.assertEqual(p.returncode, 0, p.stderr)
        new = self.server("Alpha")
        self.assertNotEqual(new["pid"], old)
        self.assertEqual(new["state"], "running")
        self.assertFalse(alive(old))
        self.assertEqual(self.ctl("restart", "Nobody").returncode, 1)
        self.assertEqual(self.ctl("kill", "Nobody").returncode, 1)
        self.assertEqual(self.ctl("kill", "Alpha", "BOGUS").returncode, 2)
        p = self.ctl("kill", "Alpha", "TERM")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("SIGTERM", p.stdout)
        wait_for(lambda: self.running_with_new_pid("Alpha", new["pid"]), 3, 0.02,
                 "Alpha back after kill TERM")

    def test_unknown_key_on_disk_does_not_stop_a_crashed_worker(self):
        """Workers run the supervisor's generation: a file broken on disk
        (not reloaded) changes nothing, not even at a crash restart."""
        self.herd(["Alpha", "Beta"])
        st = self.start()
        with open(self.cfg, "a") as f:
            f.write("bogus_key = 1\n")
        old = self.server("Alpha", st)["pid"]
        p = self.ctl("kill", "Alpha")
        self.assertEqual(p.returncode, 0, p.stderr)
        srv = wait_for(lambda: self.running_with_new_pid("Alpha", old), 5, 0.02,
                       "Alpha back on the running generation")
        self.assertEqual(srv["last_exit"], "SIGKILL")
        self.assertFalse(srv["config_error"])
        self.assertTrue(answers_iamat(self.ports["Alpha"]))
        self.assertEqual(self.server("Beta")["pid"], self.server("Beta", st)["pid"])
        self.assertEqual(self.status()["supervisor"]["config_on_disk"], "changed")
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 2, "the broken file is refused")
        self.assertIn("bogus_key", p.stderr)

    def test_kill_returns_after_the_death_is_seen(self):
        self.herd(["Alpha"])
        st = self.start()
        old = self.server("Alpha", st)["pid"]
        p = self.ctl("kill", "Alpha")
        self.assertEqual(p.returncode, 0, p.stderr)
        srv = self.server("Alpha")
        self.assertNotEqual(srv["pid"], old, "status right after kill shows the new pid")
        self.assertFalse(alive(old))
        self.assertEqual(srv["restarts"], 1)

    def test_stop_escalates_to_sigkill(self):
        self.herd(["Alpha"], extra={"stop_timeout": "0.5", "heartbeat_timeout": "30"})
        st = self.start()
        pid = self.server("Alpha", st)["pid"]
        os.kill(pid, signal.SIGSTOP)  # SIGTERM stays pending; only SIGKILL ends it
        t0 = time.monotonic()
        p = self.ctl("stop")
        elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse(alive(pid))
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertLess(elapsed, 4)
        self.assertIn("SIGKILL", read_text(self.path("log", "supervisor.log")))

    # -- no orphans ------------------------------------------------------------

    def test_sigkill_supervisor_leaves_no_worker(self):
        self.herd(["Alpha", "Beta", "Gamma"])
        st = self.start()
        workers = [s["pid"] for s in st["servers"]]
        os.kill(st["supervisor"]["pid"], signal.SIGKILL)
        wait_for(lambda: not any(alive(p) for p in workers), 1.0, 0.01,
                 "every worker to be gone")
        # Its socket and pid file stay behind: the next start cleans up.
        self.assertTrue(os.path.exists(self.path("run", "herd.sock")))
        self.assertEqual(self.ctl("status").returncode, 3)
        st2 = self.start()
        self.assertNotEqual(st2["supervisor"]["pid"], st["supervisor"]["pid"])
        self.assertEqual(self.ctl("status").returncode, 0)

    def test_foreground_sigint_stops_cleanly(self):
        self.herd(["Alpha", "Beta"])
        p = self.spawn([binary("herd-supervisor"), "-f", "-c", self.cfg])
        wait_for(lambda: (lambda st: st and all(s["state"] == "running"
                                                for s in st["servers"]))(self.status()),
                 5, 0.05, "the herd to run")
        workers = list(self.pids().values())
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(timeout=8 * SLOW), 0)
        err = p.stderr.read().decode()
        p.stderr.close()
        self.assertIn("stopping the herd", err, "-f logs to stderr")
        for pid in workers:
            self.assertFalse(alive(pid))
        self.assertFalse(os.path.exists(self.path("run", "herd.sock")))
        self.assertFalse(os.path.exists(self.path("run", "herd.pid")))

    def test_worker_channel_ready_heartbeat_and_eof(self):
        self.herd(["Alpha"])
        ours, theirs = socket.socketpair()
        w = self.spawn([binary("herd-worker"), "-c", self.cfg, "--channel",
                        str(theirs.fileno()), "Alpha"], pass_fds=[theirs.fileno()],
                       stderr=subprocess.DEVNULL)
        theirs.close()
        ours.settimeout(5)
        buf = b""
        msgs = []
        while len(msgs) < 3:
            chunk = ours.recv(65536)
            self.assertTrue(chunk, "channel closed early")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msgs.append(json.loads(line))
        self.assertEqual(msgs[0]["type"], "ready")
        self.assertEqual(msgs[0]["pid"], w.pid)
        self.assertEqual(msgs[0]["port"], self.ports["Alpha"])
        hb = msgs[1]
        self.assertEqual(hb["type"], "heartbeat")
        for key in ("clients", "connections", "links_up", "links_total", "links_syncing",
                    "requests"):
            self.assertIn(key, hb)
        self.assertIn("places", hb)
        self.assertEqual(msgs[2]["type"], "heartbeat", "heartbeats keep coming")
        ours.close()  # the supervisor is gone: the worker must stop
        self.assertEqual(w.wait(timeout=2 * SLOW), 0)

    # -- control socket ----------------------------------------------------------

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run a client as nobody")
    def test_control_socket_mode_and_peer_uid(self):
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        if shutil.which("setpriv") is None:
            self.skipTest("no setpriv")
        os.chmod(self.tmp, 0o755)  # nobody must reach the socket to be refused by it
        self.herd(["Alpha"])
        self.start()
        sock = self.path("run", "herd.sock")
        self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o600)
        self.assertEqual(os.stat(sock).st_uid, os.geteuid())
        probe = ("import socket,sys\n"
                 "s=socket.socket(socket.AF_UNIX)\n"
                 "s.settimeout(5)\n"
                 "try:\n"
                 "    s.connect(sys.argv[1])\n"
                 "except PermissionError:\n"
                 "    print('EACCES'); sys.exit(0)\n"
                 "s.sendall(b'status\\n')\n"
                 "d=b''\n"
                 "while True:\n"
                 "    c=s.recv(65536)\n"
                 "    if not c: break\n"
                 "    d+=c\n"
                 "print('REPLY', d.decode())\n")
        as_nobody = ["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                     "--clear-groups", "python3", "-c", probe, sock]
        p = subprocess.run(as_nobody, capture_output=True, text=True, timeout=10)
        self.assertIn("EACCES", p.stdout, p.stderr)
        # Even through a socket file opened up by mistake, SO_PEERCRED refuses.
        os.chmod(sock, 0o666)
        try:
            p = subprocess.run(as_nobody, capture_output=True, text=True, timeout=10)
        finally:
            os.chmod(sock, 0o600)
        self.assertIn("REPLY", p.stdout, p.stderr)
        self.assertNotIn("servers", p.stdout)
        self.assertIn("permission denied", p.stdout)
        self.assertEqual(self.ctl("status").returncode, 0, "the owner still gets answers")

    def test_control_protocol_raw(self):
        self.herd(["Alpha"])
        self.start()

        def ask(line):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(self.path("run", "herd.sock"))
            s.sendall(line)
            s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                data += c
            s.close()
            return json.loads(data)

        self.assertTrue(ask(b"status\n")["ok"])
        self.assertFalse(ask(b"frobnicate\n")["ok"])
        self.assertFalse(ask(b"x" * 2000)["ok"], "an over-long request is refused")
        self.assertTrue(ask(b"status")["ok"], "EOF ends a request too")
        # A client that never sends does not block anyone else.
        idle = socket.socket(socket.AF_UNIX)
        idle.connect(self.path("run", "herd.sock"))
        try:
            self.assertEqual(self.ctl("status").returncode, 0)
        finally:
            idle.close()

    # -- ps, logs ------------------------------------------------------------

    def test_ps_shows_server_names(self):
        self.herd(["Alpha", "Beta"])
        st = self.start()
        for srv in st["servers"]:
            p = subprocess.run(["ps", "-o", "args=", "-p", str(srv["pid"])],
                               capture_output=True, text=True, timeout=10)
            self.assertIn(srv["name"], p.stdout)
            self.assertIn("herd-worker", p.stdout)

    def test_reopen_logs(self):
        self.herd(["Alpha"])
        self.start()
        logdir = self.path("log")
        os.rename(os.path.join(logdir, "Alpha.log"), os.path.join(logdir, "Alpha.log.1"))
        os.rename(os.path.join(logdir, "supervisor.log"),
                  os.path.join(logdir, "supervisor.log.1"))
        p = self.ctl("reopen-logs")
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_for(lambda: os.path.exists(os.path.join(logdir, "Alpha.log")), 3, 0.02,
                 "a new Alpha.log")
        self.assertTrue(answers_iamat(self.ports["Alpha"]))
        wait_for(lambda: "IAMAT" in read_text(os.path.join(logdir, "Alpha.log")), 3, 0.05,
                 "new lines in the new Alpha.log")
        # SIGHUP does the same for the supervisor.
        os.rename(os.path.join(logdir, "supervisor.log"),
                  os.path.join(logdir, "supervisor.log.2"))
        os.kill(self.status()["supervisor"]["pid"], signal.SIGHUP)
        wait_for(lambda: os.path.exists(os.path.join(logdir, "supervisor.log")), 3, 0.02,
                 "a new supervisor.log")

    # -- reload ----------------------------------------------------------------

    def test_reload_adds_removes_changes(self):
        ports = self.herd(["Keep", "Change", "Drop"])
        st = self.start()
        before = self.pids(st)
        ports2 = {"Keep": ports["Keep"], "Change": free_port(), "New": free_port()}
        self.config(ports2, herd=FAST)
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("New", p.stdout)
        self.ports = ports2

        def converged():
            st = self.status()
            names = [s["name"] for s in st["servers"]]
            return names == ["Keep", "Change", "New"] and \
                all(s["state"] == "running" for s in st["servers"]) and st

        st2 = wait_for(converged, 5, 0.05, "the reloaded herd")
        after = self.pids(st2)
        self.assertEqual(after["Keep"], before["Keep"], "untouched worker keeps its pid")
        self.assertNotEqual(after["Change"], before["Change"])
        self.assertFalse(alive(before["Drop"]))
        self.assertFalse(alive(before["Change"]))
        self.assertTrue(answers_iamat(ports2["Change"]))
        self.assertTrue(answers_iamat(ports2["New"]))
        self.assertFalse(port_open(ports["Drop"]))
        self.assertFalse(port_open(ports["Change"]))

    def test_reload_bad_file_changes_nothing(self):
        self.herd(["Alpha", "Beta"])
        st = self.start()
        good = read_text(self.cfg)
        with open(self.cfg, "w") as f:
            f.write(good + "\n[server Alpha]\nport = %d\n" % free_port())
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn(self.cfg + ":", p.stderr)
        time.sleep(0.3)
        st2 = self.status()
        self.assertEqual(self.pids(st2), self.pids(st))
        self.assertTrue(all(s["state"] == "running" for s in st2["servers"]))
        with open(self.cfg, "w") as f:
            f.write(good)
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.pids(), self.pids(st), "an unchanged file restarts nobody")


if __name__ == "__main__":
    unittest.main()
