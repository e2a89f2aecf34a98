"""Client records (SPEC §5): a record expires client_ttl after its origin
server got the IAMAT, at the same moment on every server whatever its
client's clock says; a full store evicts instead of refusing, so minting IDs
cannot lock new clients out; expired records never come back by a resync.
Real herd-worker processes on free loopback ports."""
import os
import re
import socket
import time

from herdtest import FIVE, SLOW, HerdTestCase, free_port, wait_for
from test_herd import FakePeer

LOC = "+34.068930-118.445127"
SECOND = 1.0 * SLOW


def chain(names):
    """Links A-B, B-C, ...: the first and last are len(names)-1 hops apart."""
    return {a: [b] for a, b in zip(names, names[1:])}


class ExpiryCase(HerdTestCase):

    def wait_known(self, port, client, timeout=2.0):
        return wait_for(lambda: self.at_line(port, client), timeout, 0.02,
                        "%s at port %d" % (client, port))

    def iamat(self, port, client, t):
        c = self.client(port)
        reply = c.ask("IAMAT %s %s %s" % (client, LOC, t))
        c.close()
        self.assertTrue(reply.startswith("AT "), reply)
        return reply


class TestNoLockout(ExpiryCase):
    def test_minted_ids_do_not_lock_out_a_new_client_three_hops_away(self):
        names = ["Alpha", "Bravo", "Charlie", "Delta"]
        ports = {n: free_port() for n in names}
        cfg = self.config(ports, links=chain(names), herd={"max_clients": 100})
        for n in names:
            self.start_worker(cfg, n, ports[n])
        wait_for(lambda: "link Charlie up" in self.log_text("Delta"), 5,
                 what="the chain linked")
        # One connection mints ten times max_clients IDs, pipelined.
        c = self.client(ports["Alpha"], timeout=20 * SLOW)
        n = 1000
        now = time.time()
        c.send("".join("IAMAT mint-%d %s %.9f\n" % (i, LOC, now) for i in range(n)).encode())
        replies = [c.recv_line() for _ in range(n)]
        self.assertEqual([r for r in replies if not r.startswith("AT Alpha ")], [])
        # Every worker of the chain is full of minted IDs by now.
        self.wait_known(ports["Delta"], "mint-%d" % (n - 1), 5)
        reply = self.iamat(ports["Alpha"], "legit.user", "%.9f" % time.time())
        self.assertEqual(self.at_line(ports["Alpha"], "legit.user"), reply)
        self.assertEqual(self.wait_known(ports["Delta"], "legit.user"), reply)
        self.assertIsNone(self.at_line(ports["Delta"], "mint-0"), "the oldest made room")
        wait_for(lambda: "evicted" in self.log_text("Alpha"), 15,
                 what="the eviction summary in the log")
        self.assertLess(self.log_text("Alpha").count("evicted"), 5, "a summary, not a line each")

    def test_full_store_keeps_updating_known_clients(self):
        port = free_port()
        cfg = self.config({"Riley": port}, herd={"max_clients": 3})
        self.start_worker(cfg, "Riley", port)
        c = self.client(port)
        for i in range(3):
            self.assertTrue(c.ask("IAMAT cap%d +1+1 %d" % (i, 5)).startswith("AT Riley "))
            time.sleep(0.01)  # distinct origin instants: cap0 is the oldest
        self.assertTrue(c.ask("IAMAT cap1 +2+2 6").startswith("AT Riley "))
        self.assertTrue(c.ask("IAMAT cap3 +1+1 5").startswith("AT Riley "))
        self.assertIsNone(self.at_line(port, "cap0"))
        for cid in ("cap1", "cap2", "cap3"):
            self.assertIsNotNone(self.at_line(port, cid), cid)


class TestExpiry(ExpiryCase):
    TTL = 3.0 * SLOW

    def test_expires_at_the_same_moment_everywhere_whatever_the_client_clock(self):
        ports = {n: free_port() for n in FIVE}
        from herdtest import FIVE_LINKS
        cfg = self.config(ports, links=FIVE_LINKS, herd={"client_ttl": "%gs" % self.TTL})
        for n in FIVE:
            self.start_worker(cfg, n, ports[n])
        wait_for(lambda: "link Juzang up" in self.log_text("Campbell"), 5,
                 what="Campbell linked")
        time.sleep(0.3 * SLOW)
        t0 = time.time()
        now = "%.9f" % t0
        past = "%.9f" % (t0 - 1e6)      # a client clock 11 days slow
        future = "%.9f" % (t0 + 1e6)    # and one 11 days fast
        for cid, t in (("punctual", now), ("slow.clock", past), ("fast.clock", future)):
            self.iamat(ports["Riley"], cid, t)
        for name in FIVE:
            for cid in ("punctual", "slow.clock", "fast.clock"):
                self.wait_known(ports[name], cid)
        # Still there shortly before the origin instant + ttl ...
        left = t0 + self.TTL - 0.8 * SECOND - time.time()
        if left > 0:
            time.sleep(left)
        for name in FIVE:
            for cid in ("punctual", "slow.clock", "fast.clock"):
                self.assertIsNotNone(self.at_line(ports[name], cid), (name, cid))
        # ... and gone everywhere just after it.
        left = t0 + self.TTL + 0.2 - time.time()
        if left > 0:
            time.sleep(left)
        for name in FIVE:
            for cid in ("punctual", "slow.clock", "fast.clock"):
                self.assertIsNone(self.at_line(ports[name], cid), (name, cid))
        # A newer IAMAT stores normally.
        reply = self.iamat(ports["Campbell"], "slow.clock", "%.9f" % (time.time() - 1e6))
        self.assertEqual(self.wait_known(ports["Riley"], "slow.clock"), reply)

    def test_expired_lines_from_a_neighbour_are_dropped_on_arrival(self):
        ports = {"Alice": free_port(), "Bob": free_port()}
        cfg = self.config(ports, links={"Alice": ["Bob"]},
                          herd={"client_ttl": "%gs" % self.TTL})
        self.start_worker(cfg, "Bob", ports["Bob"])
        fake = FakePeer(ports["Bob"], "Alice", "Bob")
        self.addCleanup(fake.close)
        self.assertEqual(fake.handshake(), fake.expected_ok)
        wait_for(lambda: "link Alice up" in self.log_text("Bob"), what="link up")
        t = time.time()
        old = "AT Alice +0.000000000 stale %s %.9f" % (LOC, t - self.TTL - 5)
        # Client clock in the future, origin (time + diff) long past.
        skewed = "AT Alice -100000.000000000 skewed %s %.9f" % (LOC, t + 100000 - self.TTL - 5)
        fresh = "AT Alice +0.000000000 fresh %s %.9f" % (LOC, t)
        fake.send("HERD/1 SYNC 3")
        for line in (old, skewed, fresh):
            fake.send(line)
        fake.send("HERD/1 SYNCED 3")
        fake.send(old.replace("stale", "flooded"))  # a live flood, expired too
        self.assertEqual(self.wait_known(ports["Bob"], "fresh"), fresh)
        for cid in ("stale", "skewed", "flooded"):
            self.assertIsNone(self.at_line(ports["Bob"], cid), cid)
        self.wait_log("Bob", "resync from Alice: 3 records (1 new)")

    def test_restarted_worker_does_not_get_expired_records_back(self):
        ports = {"Riley": free_port(), "Jaquez": free_port()}
        ttl = 4.0 * SLOW
        cfg = self.config(ports, links={"Riley": ["Jaquez"]},
                          herd={"client_ttl": "%gs" % ttl})
        self.start_worker(cfg, "Riley", ports["Riley"])
        jaq = self.start_worker(cfg, "Jaquez", ports["Jaquez"])
        wait_for(lambda: "link Riley up" in self.log_text("Jaquez"), 5,
                 what="link up")
        t0 = time.time()
        self.iamat(ports["Riley"], "gone", "%.9f" % t0)
        self.wait_known(ports["Jaquez"], "gone")
        time.sleep(ttl / 2)
        self.iamat(ports["Riley"], "stays", "%.9f" % time.time())
        self.wait_known(ports["Jaquez"], "stays")
        self.stop(jaq, sig=9)
        left = t0 + ttl + 0.1 - time.time()
        if left > 0:
            time.sleep(left)
        os.rename(self.path("log", "Jaquez.log"), self.path("log", "Jaquez.1.log"))
        self.start_worker(cfg, "Jaquez", ports["Jaquez"])
        self.wait_log("Jaquez", "resync from Riley", 3)
        self.assertIsNotNone(self.at_line(ports["Jaquez"], "stays"))
        self.assertIsNone(self.at_line(ports["Jaquez"], "gone"))
        self.assertIsNone(self.at_line(ports["Riley"], "gone"))
        m = re.findall(r"resync to Jaquez: (\d+) records", self.log_text("Riley"))
        self.assertEqual(m[-1], "1", "only the live record is sent")
