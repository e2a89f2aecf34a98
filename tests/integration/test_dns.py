"""Neighbours named by DNS name (SPEC §5): host may be a name, resolved by the
worker's c-ares resolver on its loop, at every dial. Loopback only: the names
come from /etc/hosts entries that point at 127.0.0.1 (the test skips when
there are none besides localhost, which is never looked up)."""
import re
import socket
import time

from herdtest import SLOW, HerdTestCase, free_port, wait_for

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
        wait_for(lambda: self.at_line(pb, "kiwi"), 5 * SLOW, 0.05, "kiwi at Beta")
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
                 10 * SLOW, 0.05, "the resolve failure in the log")
        time.sleep(1.0)
        self.assertIsNone(p.poll())  # still serving its clients
        c = self.client(pa)
        self.assertTrue(c.ask("IAMAT kiwi %s %d.5" % (LOC, T0)).startswith("AT "))
        c.close()
        n = len(re.findall(r"cannot resolve", self.log_text("Alpha")))
        self.assertLessEqual(n, 3)  # rate-limited, not one line per retry


if __name__ == "__main__":
    import unittest
    unittest.main()
