"""Operator actions keep the herd's state (SPEC §7, issue 12): reload of a
live key, of one server's port, of the secret (rotated with
secret_previous); edit-then-kill keeps the running generation; restart --all
under IAMAT load loses no acknowledged update; kill then status; reload from
another file refused; start/stop NAME.

Every test runs a five-server herd under herd-supervisor on free loopback
ports with a record sent to each server, and checks every record on every
server afterwards (status clients counts and WHATSAT).
"""
import json
import os
import subprocess
import threading
import time
import unittest

from herdtest import (FIVE, FIVE_LINKS, SLOW, SupervisedCase, alive, binary,
                      free_port, port_open,
                      wait_for, Client)

FAST = {
    "heartbeat_interval": "0.1",
    "heartbeat_timeout": "2",
    "restart_backoff_min": "0.1",
    "restart_backoff_max": "1",
    "stop_timeout": "%g" % (3 * SLOW),  # see herdtest.FAST_SUPERVISOR
}
LOC = "+34.068930-118.445127"
NEIGHBOURS = {n: set() for n in FIVE}
for a, peers in FIVE_LINKS.items():
    for b in peers:
        NEIGHBOURS[a].add(b)
        NEIGHBOURS[b].add(a)



class ReloadTest(SupervisedCase):

    # -- helpers -----------------------------------------------------------

    def write(self, herd=None, ports=None, name="herd.ini"):
        h = dict(FAST)
        h.update(herd or {})
        self.ports = ports or self.ports
        return self.config(self.ports, herd=h, links=FIVE_LINKS, name=name)

    def herd(self, herd=None):
        self.ports = {n: free_port() for n in FIVE}
        self.cfg = self.write(herd)
        p = self.ctl("start")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.status()

    def ctl(self, *args, timeout=120, cfg=None):
        argv = [binary("herdctl"), "-c", cfg or self.cfg] + list(args)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout * SLOW, text=True)

    def status(self):
        p = self.ctl("status", "--json")
        st = json.loads(p.stdout)
        self.seen.add(st["supervisor"]["pid"])
        for s in st["servers"]:
            if s["pid"]:
                self.seen.add(s["pid"])
        return st

    def servers(self):
        return {s["name"]: s for s in self.status()["servers"]}

    def iamat(self, port, client, t=None):
        c = Client(port, timeout=5)
        try:
            r = c.ask("IAMAT %s %s %.9f" % (client, LOC, t or time.time()), timeout=5)
        finally:
            c.close()
        return r

    def known(self, port, client):
        c = Client(port, timeout=5)
        try:
            first, _ = c.whatsat(client, timeout=5)
        finally:
            c.close()
        return first is not None and first.startswith("AT ")

    def seed(self):
        """One record per server; waits until every server has all five."""
        self.ids = ["rec-%s" % n for n in FIVE]
        for n, cid in zip(FIVE, self.ids):
            self.assertTrue(self.iamat(self.ports[n], cid).startswith("AT "))
        self.wait_clients(len(self.ids))

    def wait_clients(self, want, timeout=15):
        def all_have():
            srv = self.servers()
            return all(s["state"] == "running" and (s["clients"] or 0) >= want
                       for s in srv.values()) and srv
        return wait_for(all_have, timeout, 0.1, "every server with %d records" % want)

    def assert_all_known(self, ids=None):
        for n in FIVE:
            for cid in ids or self.ids:
                self.assertTrue(self.known(self.ports[n], cid), "%s forgot %s" % (n, cid))

    def pids(self):
        return {n: s["pid"] for n, s in self.servers().items()}

    # -- reload by class of change ----------------------------------------

    def test_reload_live_key_restarts_nobody(self):
        self.herd()
        self.seed()
        before = self.pids()
        self.write({"log_level": "debug", "idle_timeout": "100"})
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("live:", p.stdout)
        self.assertEqual(self.pids(), before, "a live change restarts nobody")
        st = self.status()
        self.assertEqual(st["supervisor"]["generation"], 2)
        self.assertEqual(st["supervisor"]["config_on_disk"], "same")
        for s in st["servers"]:
            self.assertEqual(s["generation"], 2, s["name"])
            self.assertEqual(s["clients"], 5, s["name"])
        # log_level = debug is in force: a request now logs a DEBUG line.
        self.iamat(self.ports["Riley"], "after-debug")
        wait_for(lambda: "DEBUG" in self.log_text("Riley"), 5, 0.05, "a DEBUG line")
        self.assert_all_known()

    def test_live_limits_reach_connections_already_open(self):
        """max_line_length applies live, to a client that connected before
        the reload too; client_ttl applies to the stores at once."""
        self.herd()
        self.seed()
        before = self.pids()
        c = Client(self.ports["Riley"], timeout=5)
        self.clients.append(c)
        self.assertTrue(c.ask("IAMAT early %s %.9f" % (LOC, time.time())).startswith("AT "))
        self.write({"max_line_length": "300", "client_ttl": "1s"})
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(self.pids(), before)
        c.send(("IAMAT " + "x" * 400 + " %s %.9f\n" % (LOC, time.time())).encode())
        self.assertEqual(c.recv_line(), "? IAMAT " + "x" * 294)
        self.assertTrue(c.closed(5), "an over-long line closes the connection")
        # Every record is older than the new client_ttl within a second or so.
        wait_for(lambda: not self.known(self.ports["Bernard"], self.ids[0]), 5, 0.1,
                 "the records to expire under the new client_ttl")

    def test_reload_port_of_one_server_rolls_and_keeps_records(self):
        self.herd()
        self.seed()
        before = self.pids()
        old = self.ports["Juzang"]
        ports = dict(self.ports)
        ports["Juzang"] = free_port()
        self.write(ports=ports)
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        after = self.servers()
        restarted = {"Juzang"} | NEIGHBOURS["Juzang"]
        for n in FIVE:
            if n in restarted:
                self.assertNotEqual(after[n]["pid"], before[n], n)
                self.assertEqual(after[n]["restarts"], 0, "a reload is not a crash")
                self.assertEqual(after[n]["planned_restarts"], 1, n)
                self.assertEqual(after[n]["last_start"], "reload", n)
            else:
                self.assertEqual(after[n]["pid"], before[n], n)
        self.assertEqual(after["Juzang"]["port"], ports["Juzang"])
        self.assertTrue(port_open(ports["Juzang"]))
        self.assertFalse(port_open(old))
        for s in after.values():  # returned only once everything resynced
            self.assertGreaterEqual(s["clients"], 5, s["name"])
        self.assert_all_known()

    def roll_to_second_secret(self, before, herd=None):
        """Reloads secret = second-secret, secret_previous = first-secret: every
        worker restarts, keeps its records and links."""
        self.write(dict({"secret": "second-secret", "secret_previous": "first-secret"},
                        **(herd or {})))
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        after = self.servers()
        for n in FIVE:
            self.assertNotEqual(after[n]["pid"], before[n], n)
            self.assertGreaterEqual(after[n]["clients"], 5, n)
            self.assertEqual(after[n]["links_up"], after[n]["links_total"], n)
        self.assert_all_known()
        return after

    def test_reload_psk_secret_rotation_keeps_records(self):
        # link_tls = psk: the TLS key is derived from the secret, so the roll
        # only keeps the links if a restarted worker still reaches the ones
        # holding the old secret (and they reach it).
        self.herd({"secret": "first-secret", "link_tls": "psk"})
        self.seed()
        self.roll_to_second_secret(self.pids(), {"link_tls": "psk"})

    def test_reload_refuses_a_link_tls_change_without_force(self):
        self.herd({"secret": "first-secret"})
        before = self.pids()
        self.write({"secret": "first-secret", "link_tls": "psk"})
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("link_tls changes", p.stderr)
        self.assertEqual(self.pids(), before, "a refused reload changes nothing")

    def test_reload_secret_rotation_keeps_records(self):
        self.herd({"secret": "first-secret"})
        self.seed()
        before = self.pids()
        self.write({"secret": "second-secret"})
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("secret_previous", p.stderr)
        self.assertEqual(self.pids(), before, "a refused reload changes nothing")
        after = self.roll_to_second_secret(before)
        # The old secret can go now: a live change.
        self.write({"secret": "second-secret"})
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(self.pids(), {n: s["pid"] for n, s in after.items()})

    # -- the generation the supervisor runs -------------------------------

    def test_edit_then_kill_keeps_port_and_generation(self):
        self.herd()
        self.seed()
        ports = dict(self.ports)
        old = ports["Riley"]
        ports["Riley"] = free_port()
        running = self.ports
        self.write(ports=ports)
        self.ports = running  # on disk only: the herd still runs the old ports
        pid = self.servers()["Riley"]["pid"]
        p = self.ctl("kill", "Riley")
        self.assertEqual(p.returncode, 0, p.stderr)
        srv = self.servers()["Riley"]  # right after: the new pid (or the wait)
        self.assertNotEqual(srv["pid"], pid)
        self.assertEqual(srv["restarts"], 1, "kill counts like a crash")
        self.assertEqual(srv["last_start"], "crash")
        self.assertFalse(alive(pid))
        srv = wait_for(lambda: (lambda s: s["state"] == "running" and s)(self.servers()["Riley"]),
                       10, 0.05, "Riley back")
        self.assertEqual(srv["port"], old)
        self.assertEqual(srv["generation"], 1)
        self.assertTrue(port_open(old))
        self.assertFalse(port_open(ports["Riley"]))
        st = self.status()
        self.assertEqual(st["supervisor"]["config_on_disk"], "changed")
        self.assertIn("note:", self.ctl("status").stdout)
        self.wait_clients(5)
        self.assert_all_known()

    def test_reload_from_another_file_refused(self):
        self.herd()
        other = self.write(name="other.ini")
        p = self.ctl("reload", cfg=other)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn(os.path.realpath(self.cfg), p.stderr)
        self.assertIn(os.path.realpath(other), p.stderr)
        p = self.ctl("status", cfg=other)
        self.assertIn("warning", p.stderr)

    # -- rolling restarts and start/stop NAME ---------------------------

    def test_restart_all_under_load_loses_no_acknowledged_update(self):
        self.herd()
        self.seed()
        acked, stop = [], threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                name = FIVE[i % len(FIVE)]
                cid = "load-%d" % i
                i += 1
                try:
                    r = self.iamat(self.ports[name], cid)
                except (OSError, EOFError):
                    continue
                if r and r.startswith("AT "):
                    acked.append(cid)
                time.sleep(0.005)

        t = threading.Thread(target=load, daemon=True)
        t.start()
        time.sleep(0.3)
        before = self.pids()
        p = self.ctl("restart", "--all")
        stop.set()
        t.join(10)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        after = self.servers()
        for n in FIVE:
            self.assertNotEqual(after[n]["pid"], before[n], n)
            self.assertEqual(after[n]["restarts"], 0, "restart is not a crash")
        self.assertGreater(len(acked), 20)
        total = len(self.ids) + len(acked)
        self.wait_clients(total)
        self.assert_all_known(self.ids + acked[::max(1, len(acked) // 40)] + acked[-5:])

    def test_start_stop_name(self):
        self.herd()
        p = self.ctl("stop", "Jaquez")
        self.assertEqual(p.returncode, 0, p.stderr)
        srv = self.servers()["Jaquez"]
        self.assertEqual(srv["state"], "stopped")
        self.assertTrue(srv["held"])
        self.assertFalse(port_open(self.ports["Jaquez"]))
        # Stays down across a crash of another and a reload.
        self.assertEqual(self.ctl("kill", "Riley").returncode, 0)
        self.write({"log_level": "debug"})
        self.assertEqual(self.ctl("reload").returncode, 0)
        time.sleep(0.5)
        self.assertEqual(self.servers()["Jaquez"]["state"], "stopped")
        self.assertEqual(self.ctl("status").returncode, 1)
        p = self.ctl("restart", "Jaquez")
        self.assertEqual(p.returncode, 1)
        p = self.ctl("start", "Jaquez")
        self.assertEqual(p.returncode, 0, p.stderr)
        srv = self.servers()["Jaquez"]
        self.assertEqual(srv["state"], "running")
        self.assertEqual(srv["generation"], 2)
        self.assertTrue(port_open(self.ports["Jaquez"]))


if __name__ == "__main__":
    unittest.main()
