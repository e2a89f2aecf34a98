"""Neighbours named by DNS name (SPEC §5): host may be a name, resolved by the
worker's c-ares resolver on its loop, at every dial. Loopback only. TestDns
takes its names from /etc/hosts entries that point at 127.0.0.1 (it skips
when there are none besides localhost, which is never looked up);
TestOwnHosts writes its own hosts file (CARES_HOSTS, which the resolver
honours) and moves names between loopback addresses. No query leaves the
machine: HERD_RESOLV_CONF names tests/resolv.conf (a loopback name server
where nothing answers) or a silent one the test runs."""
import os
import random
import re
import socket
import subprocess
import time

from herdtest import ROOT, SLOW, Client, HerdTestCase, binary, free_port, port_open, wait_for

LOC = "+34.068930-118.445127"
T0 = 1621464827


def loopback_names():
    """Names /etc/hosts maps to 127.0.0.1, other than localhost."""
    out = []
    try:
        with open("/etc/hosts") as f:
            for line in f:
                parts = line.split("#")[0].split()
                if len(parts) >= 2 and parts[0] == "127.0.0.1":
                    out += [n for n in parts[1:] if n != "localhost" and "." not in n]
    except OSError:
        pass
    good = []
    for n in out:
        try:
            if socket.gethostbyname(n) == "127.0.0.1":
                good.append(n)
        except OSError:
            pass
    return good


class TestDns(HerdTestCase):
    def setUp(self):
        super().setUp()
        names = loopback_names()
        if not names:
            self.skipTest("no /etc/hosts name for 127.0.0.1 besides localhost")
        self.name = names[0]


    def test_flood_between_neighbours_named_by_dns(self):
        pa, pb = free_port(), free_port()
        cfg = self.config({"Alpha": {"port": pa, "host": self.name},
                           "Beta": {"port": pb, "host": self.name}},
                          links={"Alpha": ["Beta"], "Beta": ["Alpha"]})
        self.start_worker(cfg, "Alpha", pa)
        self.start_worker(cfg, "Beta", pb)
        c = self.client(pa)
        reply = c.ask("IAMAT kiwi %s %d.5" % (LOC, T0))
        c.close()
        self.assertTrue(reply.startswith("AT "), reply)
        wait_for(lambda: self.at_line(pb, "kiwi"), 5, 0.05, "kiwi at Beta")
        log = self.log_text("Alpha")
        self.assertIn("link Beta: dialling 127.0.0.1:%d" % pb, log)  # the name, resolved
        self.assertIn("listening on %s:%d" % (self.name, pa), log)

    def test_name_that_does_not_resolve_is_retried_and_logged(self):
        pa, pb = free_port(), free_port()
        cfg = self.config({"Alpha": {"port": pa},
                           "Beta": {"port": pb, "host": "no-such-host.invalid"}},
                          herd={"link_backoff_min": "100ms", "link_backoff_max": "200ms"},
                          links={"Alpha": ["Beta"], "Beta": ["Alpha"]})
        p = self.start_worker(cfg, "Alpha", pa)
        wait_for(lambda: "cannot resolve no-such-host.invalid" in self.log_text("Alpha"),
                 10, 0.05, "the resolve failure in the log")
        time.sleep(1.0)
        self.assertIsNone(p.poll())  # still serving its clients
        c = self.client(pa)
        self.assertTrue(c.ask("IAMAT kiwi %s %d.5" % (LOC, T0)).startswith("AT "))
        c.close()
        n = len(re.findall(r"cannot resolve", self.log_text("Alpha")))
        self.assertLessEqual(n, 3)  # rate-limited, not one line per retry


def loopback_addr(last):
    """127.X.Y.LAST with X, Y picked per run, so parallel runs do not meet."""
    return "127.%d.%d.%d" % (random.randint(1, 254), random.randint(1, 254), last)


class TestOwnHosts(HerdTestCase):
    """Names from a hosts file the test writes (CARES_HOSTS): the worker's
    listen address, its neighbours, its knock and check-config all use it."""

    def setUp(self):
        super().setUp()
        self.hosts = self.path("hosts")
        self.env = {"CARES_HOSTS": self.hosts,
                    "HERD_RESOLV_CONF": os.environ.get("HERD_RESOLV_CONF") or
                    os.path.join(ROOT, "tests", "resolv.conf")}

    def write_hosts(self, names):
        # In place (not a rename): what a bind-mounted /etc/hosts needs too.
        with open(self.hosts, "w") as f:
            f.write("".join("%s %s\n" % (addr, n) for n, addr in names.items()))

    def check_config(self, cfg, env=None):
        t0 = time.monotonic()
        p = subprocess.run([binary("herdctl"), "-c", cfg, "check-config"],
                           env=dict(os.environ, **(env or self.env)), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=20)
        return p, time.monotonic() - t0

    def test_check_config_accepts_names_and_warns_on_one_that_does_not_resolve(self):
        self.write_hosts({"herd-a.test": "127.0.0.1"})
        cfg = self.config({"Alpha": {"port": free_port(), "host": "herd-a.test"},
                           "Beta": {"port": free_port(), "host": "nonexistent.invalid"},
                           "Gamma": {"port": free_port(), "host": "localhost"}},
                          links={"Alpha": ["Beta", "Gamma"]})
        p, took = self.check_config(cfg)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("syntax is ok, 3 servers", p.stdout)
        self.assertIn("warning: server Beta: host nonexistent.invalid does not resolve",
                      p.stderr)
        self.assertNotIn("herd-a.test does not resolve", p.stderr)
        self.assertNotIn("localhost does not resolve", p.stderr)
        self.assertEqual(p.stderr.count("does not resolve"), 1, p.stderr)
        self.assertLess(took, 3.0 * SLOW)

    def test_check_config_waits_2s_at_most_for_a_silent_name_server(self):
        ns = loopback_addr(53)
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(srv.close)
        try:
            srv.bind((ns, 53))
        except OSError as e:
            self.skipTest("cannot run a name server on %s:53: %s" % (ns, e))
        srv.settimeout(5)
        conf = self.path("resolv.conf")
        with open(conf, "w") as f:
            f.write("nameserver %s\noptions timeout:5 attempts:3\n" % ns)
        self.write_hosts({})
        cfg = self.config({"Alpha": {"port": free_port(), "host": "silent.invalid"}})
        p, took = self.check_config(cfg, dict(self.env, HERD_RESOLV_CONF=conf))
        query, _ = srv.recvfrom(4096)  # asked of the test's server, nobody else
        self.assertIn(b"\x06silent\x07invalid\x00", query)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("host silent.invalid: no answer within 2 s", p.stderr)
        self.assertGreater(took, 1.9)
        self.assertLess(took, 3.0 * SLOW)

    def test_listen_address_and_neighbours_by_names_from_the_hosts_file(self):
        self.write_hosts({"herd-a.test": "127.0.0.1", "herd-b.test": "127.0.0.1"})
        pa, pb = free_port(), free_port()
        cfg = self.config({"Alpha": {"port": pa, "host": "herd-a.test"},
                           "Beta": {"port": pb, "host": "herd-b.test"}},
                          links={"Alpha": ["Beta"]})
        self.start_worker(cfg, "Alpha", pa, env=self.env)
        self.start_worker(cfg, "Beta", pb, env=self.env)
        self.assertIn("listen address herd-a.test is 127.0.0.1", self.wait_log("Alpha",
                                                                              "listening on"))
        c = self.client(pa)
        self.assertTrue(c.ask("IAMAT kiwi %s %d.5" % (LOC, T0)).startswith("AT "))
        wait_for(lambda: self.at_line(pb, "kiwi"), 5, 0.05, "kiwi at Beta")
        self.wait_log("Alpha", "link Beta up (dialled 127.0.0.1:%d" % pb)

    def test_listen_address_that_does_not_resolve_is_a_clear_error(self):
        self.write_hosts({})
        port = free_port()
        cfg = self.config({"Alpha": {"port": port, "host": "nonexistent.invalid"}})
        p = self.start_worker(cfg, "Alpha", port, wait=False, env=self.env)
        self.assertEqual(p.wait(timeout=10 * SLOW), 1)
        self.assertIn("cannot listen on nonexistent.invalid:%d: cannot resolve "
                      "nonexistent.invalid" % port, self.log_text("Alpha"))

    def test_knock_reaches_a_dialler_named_by_dns(self):
        """Beta (which Alpha dials) knocks at herd-a.test when it starts:
        Alpha dials at once instead of after its backoff (up to 60 s here)."""
        self.write_hosts({"herd-a.test": "127.0.0.1", "herd-b.test": "127.0.0.1"})
        pa, pb = free_port(), free_port()
        cfg = self.config({"Alpha": {"port": pa, "host": "herd-a.test"},
                           "Beta": {"port": pb, "host": "herd-b.test"}},
                          herd={"link_backoff_min": "200ms", "link_backoff_max": "60s"},
                          links={"Alpha": ["Beta"]})
        self.start_worker(cfg, "Alpha", pa, env=self.env)
        wait_for(lambda: re.search(r"link Beta: (dial failed|cannot dial)",
                                   self.log_text("Alpha")), 5, 0.05, "a failed dial")
        time.sleep(3.0)  # Alpha's backoff is seconds long by now
        t0 = time.monotonic()
        self.start_worker(cfg, "Beta", pb, env=self.env)
        self.wait_log("Alpha", "link Beta up", 2.0)
        self.assertLess(time.monotonic() - t0, 2.0 * SLOW)
        self.assertIn("link Beta: knocked (neighbour started), dialling now",
                      self.log_text("Alpha"))
        self.assertIn("link Alpha knock out", self.log_text("Beta"))

    def test_name_that_moves_is_followed_after_a_redial(self):
        b1, b2 = loopback_addr(2), loopback_addr(3)
        try:
            for a in (b1, b2):
                socket.create_server((a, 0)).close()
        except OSError as e:
            self.skipTest("cannot listen on %s: %s" % (a, e))
        self.write_hosts({"herd-a.test": "127.0.0.1", "herd-b.test": b1})
        pa, pb = free_port(), free_port()
        cfg = self.config({"Alpha": {"port": pa, "host": "herd-a.test"},
                           "Beta": {"port": pb, "host": "herd-b.test"}},
                          herd={"link_backoff_min": "50ms", "link_backoff_max": "300ms",
                                "link_ping_interval": "200ms", "link_timeout": "1s"},
                          links={"Alpha": ["Beta"]})
        self.start_worker(cfg, "Alpha", pa, env=self.env)
        beta = self.start_worker(cfg, "Beta", pb, wait=False, env=self.env)
        wait_for(lambda: port_open(pb, b1), 5, what="Beta on %s" % b1)
        self.wait_log("Alpha", "link Beta up (dialled %s:%d" % (b1, pb), 5)

        # Beta moves: the name now says b2, and Beta listens there.
        self.assertEqual(self.stop(beta), 0)
        self.write_hosts({"herd-a.test": "127.0.0.1", "herd-b.test": b2})
        self.start_worker(cfg, "Beta", pb, wait=False, env=self.env)
        wait_for(lambda: port_open(pb, b2), 5, what="Beta on %s" % b2)
        self.wait_log("Alpha", "link Beta up (dialled %s:%d" % (b2, pb), 5)
        c = self.client(pa)
        self.assertTrue(c.ask("IAMAT kiwi %s %d.5" % (LOC, T0)).startswith("AT "))

        def at_beta():
            d = Client(pb, host=b2)
            try:
                first, _ = d.whatsat("kiwi", timeout=5)
            finally:
                d.close()
            return first if first and not first.startswith("?") else None
        wait_for(at_beta, 5, 0.05, "kiwi flooded to Beta at its new address")


if __name__ == "__main__":
    import unittest
    unittest.main()
