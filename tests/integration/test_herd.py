"""The herd (SPEC §5): neighbour links, flooding without loops, recovery
after a crash, bounded queues towards a neighbour that never reads, and the
secret. Real herd-worker processes on free loopback ports; fake neighbours
are Python sockets speaking the link protocol of docs/link-protocol.md."""
import hashlib
import hmac
import os
import re
import signal
import socket
import threading
import time

from herdtest import FIVE, FIVE_LINKS, RSS_SLACK, SLOW, HerdTestCase, free_port, wait_for

LOC = "+34.068930-118.445127"
T0 = 1621464827
# The diff of a fake neighbour's AT lines for client time T0: their origin
# instant (T0 + diff) is now, so client_ttl does not expire them.
DIFF = "+%d.000000001" % (int(time.time()) - T0)
# SPEC §5's "within about a second" (stretched for sanitized builds).
SECOND = 1.0 * SLOW


def pairs():
    """Every linked pair of the five, both ways round."""
    out = set()
    for a, peers in FIVE_LINKS.items():
        for b in peers:
            out.add((a, b))
            out.add((b, a))
    return out


def proof(secret, role, dialer, acceptor, nonce_d, nonce_a):
    if secret is None:
        return "-"
    msg = "HERD/1 %s %s %s %s %s" % (role, dialer, acceptor, nonce_d, nonce_a)
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


class FakePeer:
    """A neighbour made of a Python socket: dials a worker and speaks HERD/1."""

    def __init__(self, port, name, target, secret=None, rcvbuf=None):
        self.name, self.target, self.secret = name, target, secret
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # set before connect, so the window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def send(self, text):
        self.sock.sendall((text + "\n").encode())

    def recv_line(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def handshake(self, proof_secret="same"):
        """Runs HELLO / WELCOME / AUTH / OK; returns the last line received."""
        secret = self.secret if proof_secret == "same" else proof_secret
        nonce_d = os.urandom(16).hex()
        self.send("HERD/1 HELLO %s %s %s" % (self.name, self.target, nonce_d))
        welcome = self.recv_line()
        m = re.fullmatch(r"HERD/1 WELCOME (\S+) ([0-9a-f]{32})", welcome or "")
        if not m:
            return welcome
        nonce_a = m.group(2)
        self.send("HERD/1 AUTH " + proof(secret, "D", self.name, self.target, nonce_d, nonce_a))
        ok = self.recv_line()
        self.expected_ok = "HERD/1 OK " + proof(self.secret, "A", self.name, self.target,
                                                nonce_d, nonce_a)
        return ok

    def close(self):
        self.sock.close()


class HerdCase(HerdTestCase):
    def setUp(self):
        super().setUp()
        self.fakes = []

    def tearDown(self):
        for f in self.fakes:
            f.close()
        super().tearDown()

    def fake(self, *args, **kw):
        f = FakePeer(*args, **kw)
        self.fakes.append(f)
        return f


    def wait_known(self, port, client, timeout=1.0, want=None):
        """Waits until PORT knows CLIENT (with AT line WANT when given)."""
        def known():
            line = self.at_line(port, client)
            return line if line and (want is None or line == want) else None
        return wait_for(known, timeout, 0.02, "%s at port %d" % (client, port))

    def links_up(self, name):
        """Neighbours whose link the log of NAME last reported up."""
        up = set()
        for m in re.finditer(r"link (\S+) (up|dropped|closed)\b", self.log_text(name)):
            (up.add if m.group(2) == "up" else up.discard)(m.group(1))
        return up

    def wait_herd_up(self, timeout=5.0):
        want = {n: {b for a, b in pairs() if a == n} for n in FIVE}
        wait_for(lambda: all(self.links_up(n) == want[n] for n in FIVE), timeout,
                 what="every link up")

    def iamat(self, port, client, t, loc=LOC):
        c = self.client(port)
        reply = c.ask("IAMAT %s %s %s" % (client, loc, t))
        c.close()
        self.assertTrue(reply.startswith("AT "), reply)
        return reply


class TestFlood(HerdCase):
    def test_three_hops_within_a_second(self):
        ports = self.five()
        at = self.iamat(ports["Riley"], "kiwi.cs.ucla.edu", "%d.5" % T0)
        t0 = time.monotonic()
        line = self.wait_known(ports["Campbell"], "kiwi.cs.ucla.edu", timeout=1.0)
        self.assertLess(time.monotonic() - t0, SECOND)
        self.assertEqual(line, at)
        self.assertEqual(line.split()[1], "Riley")

    def test_newer_replaces_older_changes_nothing(self):
        ports = self.five()
        self.wait_herd_up()
        first = self.iamat(ports["Riley"], "kiwi", "%d.1" % T0)
        for n in FIVE:
            self.wait_known(ports[n], "kiwi", want=first)
        newer = self.iamat(ports["Campbell"], "kiwi", "%d.2" % T0, "+10-20")
        self.assertTrue(newer.startswith("AT Campbell "))
        for n in FIVE:
            self.wait_known(ports[n], "kiwi", want=newer)
        older = self.iamat(ports["Jaquez"], "kiwi", "%d.15" % T0, "+1-2")
        self.assertTrue(older.startswith("AT Jaquez "))  # answered, not stored
        time.sleep(0.3)
        for n in FIVE:
            self.assertEqual(self.at_line(ports[n], "kiwi"), newer, n)
        self.assertNotRegex(self.log_text("Jaquez"), r'link \S+ out "AT Jaquez')

    def test_each_link_carries_an_update_once_and_never_back(self):
        ports = self.five(herd={"log_level": "debug"})  # link lines are logged at debug
        self.wait_herd_up()
        client = "count-%d.example" % os.getpid()
        self.iamat(ports["Riley"], client, "%d.0" % T0)
        for n in FIVE:
            self.wait_known(ports[n], client)
        time.sleep(0.3)  # let any echo arrive before counting
        sent, got, first_from = {}, {}, {}
        for n in FIVE:
            pat = r'link (\S+) (out|in) "AT \S+ \S+ %s ' % re.escape(client)
            for m in re.finditer(pat, self.log_text(n)):
                peer, way = m.group(1), m.group(2)
                if way == "in":
                    if n != "Riley":  # elsewhere the first copy is the newer one
                        first_from.setdefault(n, peer)
                    got[(peer, n)] = got.get((peer, n), 0) + 1
                else:
                    sent[(n, peer)] = sent.get((n, peer), 0) + 1
        for edge, count in sent.items():
            self.assertIn(edge, pairs())
            self.assertEqual(count, 1, "%s -> %s carried it %d times" % (edge + (count,)))
        self.assertEqual(sent, got, "every AT sent was received, and only those")
        self.assertEqual(set(first_from), set(FIVE) - {"Riley"})
        for n, src in first_from.items():
            self.assertNotIn((n, src), sent, "%s sent it back to %s" % (n, src))
        # The origin sent it to each neighbour once; echoes it got (a copy
        # that crossed another on a link) were not newer and went no further.
        self.assertEqual({d for (o, d) in sent if o == "Riley"}, {"Jaquez", "Juzang"})
        self.assertLessEqual(len(sent), len(pairs()))


class TestRecovery(HerdCase):
    def test_kill_juzang_and_bring_it_back(self):
        ports = self.five()
        self.wait_herd_up()
        self.iamat(ports["Riley"], "before", "%d.0" % T0)
        self.wait_known(ports["Campbell"], "before")
        self.workers["Juzang"].send_signal(signal.SIGKILL)
        self.workers["Juzang"].wait(5 * SLOW)
        # Its neighbours keep serving.
        self.iamat(ports["Riley"], "during", "%d.0" % T0)
        self.iamat(ports["Bernard"], "during-b", "%d.0" % T0)
        self.assertIsNotNone(self.at_line(ports["Riley"], "during"))
        # Riley -> Jaquez -> Bernard -> Campbell, around the hole.
        t0 = time.monotonic()
        self.wait_known(ports["Campbell"], "during", timeout=1.0)
        self.assertLess(time.monotonic() - t0, SECOND)
        self.wait_known(ports["Riley"], "during-b", timeout=1.0)
        time.sleep(1.5)  # let the dialers' backoff grow
        self.iamat(ports["Campbell"], "late", "%d.0" % T0)
        self.workers["Juzang"] = self.start_worker(self.cfg_path, "Juzang", ports["Juzang"])
        t0 = time.monotonic()
        for c in ("before", "during", "during-b", "late"):
            self.wait_known(ports["Juzang"], c, timeout=1.0)
        self.assertLess(time.monotonic() - t0, SECOND)
        wait_for(lambda: self.links_up("Juzang") == {"Riley", "Bernard", "Campbell"}, 1.0,
                 what="Juzang's three links up again")
        self.assertRegex(self.log_text("Bernard"), r"link Juzang dropped after .*: ")

    def test_frozen_neighbour_is_dropped_and_catches_up(self):
        ports = self.five(herd={"link_ping_interval": "0.2", "link_timeout": "1"})
        self.wait_herd_up(10)
        juzang = self.workers["Juzang"]
        juzang.send_signal(signal.SIGSTOP)
        try:
            for n in ("Riley", "Bernard", "Campbell"):
                wait_for(lambda: "Juzang" not in self.links_up(n), 5,
                         what="%s to drop its link to the frozen Juzang" % n)
            self.iamat(ports["Riley"], "while-frozen", "%d.0" % T0)
            self.wait_known(ports["Campbell"], "while-frozen")
        finally:
            juzang.send_signal(signal.SIGCONT)
        self.wait_known(ports["Juzang"], "while-frozen", timeout=5)
        wait_for(lambda: self.links_up("Juzang") == {"Riley", "Bernard", "Campbell"},
                 5, what="Juzang's links back")
        self.assertRegex(self.log_text("Riley"), r"link Juzang dropped after .*idle timeout")

    def test_fresh_worker_learns_twenty_thousand_clients(self):
        ports = {"Alpha": free_port(), "Beta": free_port()}
        cfg = self.config(ports, links={"Alpha": ["Beta"]}, herd={"log_level": "warn"})
        self.start_worker(cfg, "Alpha", ports["Alpha"])
        n = 20000
        c = self.client(ports["Alpha"], timeout=30)
        batch = "".join("IAMAT c%d.example %s %d.%09d\n" % (i, LOC, T0, i) for i in range(n))
        reader = threading.Thread(target=lambda: c.recv_until(b"c%d.example" % (n - 1)))
        reader.start()
        c.send(batch)
        reader.join(30)
        self.start_worker(cfg, "Beta", ports["Beta"])
        t0 = time.monotonic()
        self.wait_known(ports["Beta"], "c%d.example" % (n - 1), timeout=1.0)
        self.wait_known(ports["Beta"], "c0.example", timeout=1.0)
        self.assertLess(time.monotonic() - t0, SECOND)


    def test_what_a_resync_teaches_goes_on_to_the_far_side(self):
        # Alpha - Beta - Gamma in a chain: while Beta is down, Alpha and Gamma
        # cannot talk. When Beta comes up, each side's news reaches the other
        # through Beta (its dump or its RELAY of what it learned).
        names = ["Alpha", "Beta", "Gamma"]
        ports = {n: free_port() for n in names}
        cfg = self.config(ports, links={"Beta": ["Alpha", "Gamma"]})
        for n in ("Alpha", "Gamma"):
            self.start_worker(cfg, n, ports[n])
        for i in range(300):
            self.iamat(ports["Alpha"] if i % 2 else ports["Gamma"], "k%d" % i, "%d.0" % T0)
        self.start_worker(cfg, "Beta", ports["Beta"])
        t0 = time.monotonic()
        self.wait_known(ports["Gamma"], "k299", timeout=1.0)
        self.wait_known(ports["Alpha"], "k298", timeout=1.0)
        self.assertLess(time.monotonic() - t0, SECOND)
        for i in range(300):
            for n in names:
                self.assertIsNotNone(self.at_line(ports[n], "k%d" % i), (n, i))
        pat = re.compile(r"resync from (Alpha|Gamma): 150 records \(150 new\)")
        beta = wait_for(lambda: (lambda t: pat.search(t) and t)(self.log_text("Beta")), 2,
                        what="Beta's resync summary")
        self.assertNotRegex(beta, r'link \S+ (in|out) "AT \S+ \S+ k\d+ ',
                            "resync and relayed records are logged as summaries")


class TestBackPressure(HerdCase):
    def test_neighbour_that_never_reads(self):
        ports = {"Alice": free_port(), "Bob": free_port()}
        cfg = self.config(ports, links={"Alice": ["Bob"]},
                          herd={"link_queue_max": "256k", "link_timeout": "60"})
        bob = self.start_worker(cfg, "Bob", ports["Bob"])
        fake = self.fake(ports["Bob"], "Alice", "Bob", rcvbuf=4096)
        self.assertEqual(fake.handshake(), fake.expected_ok)
        wait_for(lambda: "link Alice up" in self.log_text("Bob"), what="link up")
        rss0 = self.rss_kb(bob.pid)
        client = "x" * 200  # one client, many newer updates: the store stays small
        c = self.client(ports["Bob"], timeout=30)
        n = 60000
        done = threading.Event()

        def drain():
            got = 0
            while got < n:
                chunk = c.sock.recv(1 << 20)
                if not chunk:
                    break
                got += chunk.count(b"\n")
            done.set()
        reader = threading.Thread(target=drain)
        reader.start()
        for start in range(0, n, 5000):
            c.send("".join("IAMAT %s %s %d.%09d\n" % (client, LOC, T0, i)
                           for i in range(start, start + 5000)))
        self.assertTrue(done.wait(60), "every IAMAT answered")
        reader.join(5)
        wait_for(lambda: re.search(r"link Alice dropped after .*: output over limit",
                                   self.log_text("Bob")), 5, what="link dropped")
        self.wait_log("Bob", "output over limit")
        self.assertIsNone(bob.poll())
        self.assertLess(self.rss_kb(bob.pid) - rss0, 32 * 1024 * RSS_SLACK, "RSS stays bounded")
        # Still serving clients.
        self.assertEqual(self.at_line(ports["Bob"], client).split()[-1],
                         "%d.%09d" % (T0, n - 1))


class TestSecret(HerdCase):
    SECRET = "correct horse battery staple"

    def two(self, secret_a, secret_b):
        ports = {"Alice": free_port(), "Bob": free_port()}
        links = {"Alice": ["Bob"]}
        herd_a = {"secret": secret_a} if secret_a else {}
        herd_b = {"secret": secret_b} if secret_b else {}
        cfg_a = self.config(ports, links=links, herd=herd_a, name="a.ini")
        cfg_b = self.config(ports, links=links, herd=herd_b, name="b.ini")
        return ports, cfg_a, cfg_b

    def test_same_secret_links_and_floods(self):
        ports, cfg_a, cfg_b = self.two(self.SECRET, self.SECRET)
        self.start_worker(cfg_a, "Alice", ports["Alice"])
        self.start_worker(cfg_b, "Bob", ports["Bob"])
        # Alice dials with backoff (2 s at most) or at Bob's knock; sanitized
        # binaries on a busy machine start several times slower.
        wait_for(lambda: "link Alice up" in self.log_text("Bob"), 5, what="link up")
        self.iamat(ports["Alice"], "kiwi", "%d.0" % T0)
        self.wait_known(ports["Bob"], "kiwi")

    def test_wrong_secret_is_refused_and_logged(self):
        ports, cfg_a, cfg_b = self.two(self.SECRET, "not the secret")
        self.start_worker(cfg_a, "Alice", ports["Alice"])
        self.start_worker(cfg_b, "Bob", ports["Bob"])
        wait_for(lambda: "handshake refused: wrong secret" in self.log_text("Bob"),
                 what="Bob refuses Alice")
        wait_for(lambda: 'refused by the neighbour: "wrong secret"' in self.log_text("Alice"),
                 what="Alice told why")
        self.iamat(ports["Alice"], "kiwi", "%d.0" % T0)
        time.sleep(0.3)
        self.assertIsNone(self.at_line(ports["Bob"], "kiwi"))
        self.assertNotIn("link Alice up", self.log_text("Bob"))

    def test_fake_neighbour_with_the_secret_and_without(self):
        ports, _, cfg_b = self.two(None, self.SECRET)
        self.start_worker(cfg_b, "Bob", ports["Bob"])
        bad = self.fake(ports["Bob"], "Alice", "Bob", secret="guess")
        self.assertEqual(bad.handshake(), "HERD/1 REFUSED wrong secret")
        self.assertIsNone(bad.recv_line())
        nosecret = self.fake(ports["Bob"], "Alice", "Bob", secret=None)
        self.assertTrue(nosecret.handshake().startswith("HERD/1 REFUSED no proof"))
        self.wait_log("Bob", "handshake refused: wrong secret")
        good = self.fake(ports["Bob"], "Alice", "Bob", secret=self.SECRET)
        self.assertEqual(good.handshake(), good.expected_ok, "the worker proves it too")
        good.send("AT Alice %s kiwi %s %d.0" % (DIFF, LOC, T0))
        line = self.wait_known(ports["Bob"], "kiwi")
        self.assertEqual(line, "AT Alice %s kiwi %s %d.0" % (DIFF, LOC, T0))

    def test_strangers_hellos_do_not_push_out_the_neighbours_handshake(self):
        ports, _, cfg_b = self.two(None, self.SECRET)
        self.start_worker(cfg_b, "Bob", ports["Bob"])
        good = self.fake(ports["Bob"], "Alice", "Bob", secret=self.SECRET)
        nonce_d = os.urandom(16).hex()
        good.send("HERD/1 HELLO Alice Bob " + nonce_d)
        m = re.fullmatch(r"HERD/1 WELCOME Bob ([0-9a-f]{32})", good.recv_line() or "")
        self.assertIsNotNone(m)
        # Strangers claim to be Alice while her handshake is in flight.
        for _ in range(3):
            s = self.fake(ports["Bob"], "Alice", "Bob", secret="guess")
            s.send("HERD/1 HELLO Alice Bob " + os.urandom(16).hex())
            self.assertTrue(s.recv_line().startswith("HERD/1 WELCOME Bob "))
        good.send("HERD/1 AUTH " + proof(self.SECRET, "D", "Alice", "Bob", nonce_d, m.group(1)))
        self.assertEqual(good.recv_line(), "HERD/1 OK " + proof(
            self.SECRET, "A", "Alice", "Bob", nonce_d, m.group(1)))
        good.send("AT Alice %s kiwi %s %d.0" % (DIFF, LOC, T0))
        self.assertEqual(self.wait_known(ports["Bob"], "kiwi"),
                         "AT Alice %s kiwi %s %d.0" % (DIFF, LOC, T0))

    def test_client_at_line_is_refused(self):
        ports, _, cfg_b = self.two(None, self.SECRET)
        self.start_worker(cfg_b, "Bob", ports["Bob"])
        c = self.client(ports["Bob"])
        at = "AT Alice %s kiwi %s %d.0" % (DIFF, LOC, T0)
        self.assertEqual(c.ask(at), "? " + at)
        self.assertIsNone(self.at_line(ports["Bob"], "kiwi"))

    def test_other_link_lines_from_a_client_are_just_invalid(self):
        ports, _, cfg_b = self.two(None, None)
        self.start_worker(cfg_b, "Bob", ports["Bob"])
        c = self.client(ports["Bob"])
        for line in ("HERD/1 PING", "HERD/1 SYNC 3", "HERD/1 HELLO Alice Bob nonce",
                     "HERD/9 PING"):
            self.assertEqual(c.ask(line), "? " + line)
        self.assertTrue(c.ask("IAMAT kiwi %s %d.0" % (LOC, T0)).startswith("AT Bob "))

    def test_at_before_the_handshake_completes_is_refused(self):
        ports, _, cfg_b = self.two(None, self.SECRET)
        self.start_worker(cfg_b, "Bob", ports["Bob"])
        f = self.fake(ports["Bob"], "Alice", "Bob", secret=self.SECRET)
        f.send("HERD/1 HELLO Alice Bob " + "ab" * 16)
        self.assertTrue(f.recv_line().startswith("HERD/1 WELCOME Bob "))
        f.send("AT Alice %s kiwi %s %d.0" % (DIFF, LOC, T0))
        self.assertTrue(f.recv_line().startswith("HERD/1 REFUSED"))
        self.assertIsNone(self.at_line(ports["Bob"], "kiwi"))

    def test_hello_from_a_stranger_is_refused(self):
        ports, _, cfg_b = self.two(None, None)
        self.start_worker(cfg_b, "Bob", ports["Bob"])
        f = self.fake(ports["Bob"], "Mallory", "Bob")
        self.assertEqual(f.handshake(), "HERD/1 REFUSED not a neighbour of this server")
        g = self.fake(ports["Bob"], "Alice", "Bob")
        g.send("HERD/2 HELLO Alice Bob " + "ab" * 16)
        self.assertTrue(g.recv_line().startswith("HERD/1 REFUSED unsupported version"))
        self.wait_log("Bob", "handshake refused")
