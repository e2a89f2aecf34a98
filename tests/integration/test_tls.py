"""TLS 1.3 on neighbour links (issue 18, SPEC §5, docs/link-protocol.md):
link_tls = psk and cert carry floods and resyncs; a wrong key, an untrusted
or misnamed certificate and a neighbour in the other mode are refused with
a log line on both sides; the bytes on the wire (read by tlsproxy.TlsProxy
between the dialler and the acceptor) hold no client ID; a byte flipped in
a record after the handshake kills the link instead of being stored.

Two kinds of herd: supervised ones (herdctl start, one herd file) for floods
and resyncs, and pairs of bare herd-workers, Alpha (the dialler: its name
sorts first) and Beta, each with its own herd file, so that Alpha can be told
that Beta's port is the proxy's. Real binaries, loopback only, every wait
bounded, everything stopped by PID."""
import json
import os
import re
import socket
import subprocess
import time

from herdtest import (FAST_SUPERVISOR, SLOW, SupervisedCase, binary, free_port, make_ca,
                      make_cert, wait_for)
from tlsproxy import TlsProxy

LOC = "+34.068930-118.445127"
LOC2 = "-33.868820+151.209296"
T0 = 1621464827
SECRET = "tls-test-secret-9f86d081884c7d659a2feaa0c55ad015"
# Fast supervisor and link timings, so restarts and redials take tens of ms.
FAST = dict(FAST_SUPERVISOR, link_backoff_min="50ms", link_backoff_max="300ms")
# A handshake failure as SPEC §5 / the lead's interface logs it.
HANDSHAKE_FAILED = r"TLS handshake failed"
# What the side that did not fail may log when the other one gives up.
ANY_TLS_TROUBLE = r"TLS.*(fail|alert|error|refus|closed)|refused by the neighbour"


class TlsCase(SupervisedCase):
    """Supervised herds (ctl/status/start as in test_ctl) and bare pairs."""

    def setUp(self):
        super().setUp()
        self.proxy = None

    def tearDown(self):
        if self.proxy is not None:
            self.proxy.stop()
        super().tearDown()

    # -- supervised herds

    def ctl(self, *args, timeout=30):
        return subprocess.run([binary("herdctl"), "-c", self.cfg] + list(args),
                              capture_output=True, timeout=timeout, text=True,
                              stdin=subprocess.DEVNULL)

    def status(self):
        st = json.loads(self.ctl("status", "--json").stdout)
        if st.get("ok"):
            self.seen.add(st["supervisor"]["pid"])
            self.seen.update(s["pid"] for s in st["servers"] if s["pid"])
        return st

    def pid(self, name):
        return next(s["pid"] for s in self.status()["servers"] if s["name"] == name)

    def start_herd(self, servers, herd, links):
        h = dict(FAST)
        h.update(herd)
        self.cfg = self.config(servers, herd=h, links=links)
        p = self.ctl("start", timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + self.logs())
        self.status()

    # -- certificates

    def pki(self, names, wrong=None, untrusted=None):
        """A CA, a certificate per name in NAMES (SAN DNS:name, IP:127.0.0.1)
        in tmp/pki; WRONG: {name: other} gives name a certificate that names
        only OTHER; UNTRUSTED: names whose certificate a second CA signs.
        Returns {name: (cert, key)} as paths relative to tmp (the herd files'
        folder, which relative tls_* paths are read from)."""
        folder = self.path("pki")
        ca = make_ca(folder, "ca")
        other_ca = make_ca(folder, "other-ca") if untrusted else None
        out = {"ca": "pki/ca.pem"}
        for n in names:
            if wrong and n in wrong:
                make_cert(folder, ca, n, sans="DNS:%s" % wrong[n])
            elif untrusted and n in untrusted:
                make_cert(folder, other_ca, n)
            else:
                make_cert(folder, ca, n)
            out[n] = ("pki/%s.pem" % n, "pki/%s.key" % n)
        return out

    @staticmethod
    def cert_keys(pki, name):
        return {"tls_cert": pki[name][0], "tls_key": pki[name][1]}

    # -- bare pairs: Alpha dials Beta (through the proxy when asked)

    def pair(self, a_herd, b_herd=None, proxy=False, a_server=None, b_server=None,
             wait_up=True):
        """Starts Beta, then Alpha, each with its own herd file; with PROXY,
        Alpha's file gives Beta the port of a TlsProxy forwarding to Beta.
        Returns (Alpha's port, Beta's port)."""
        pa, pb = free_port(), free_port()
        if proxy:
            self.proxy = TlsProxy(pb)
        for me, herd, port_b in (("Beta", b_herd if b_herd is not None else a_herd, pb),
                                 ("Alpha", a_herd, self.proxy.port if proxy else pb)):
            h = dict(FAST)
            h.update(herd)
            servers = {"Alpha": {"port": pa}, "Beta": {"port": port_b}}
            servers["Alpha"].update(a_server or {})
            servers["Beta"].update(b_server or {})
            cfg = self.config(servers, herd=h, links={"Alpha": ["Beta"]},
                              name=me.lower() + ".ini")
            self.start_worker(cfg, me, pb if me == "Beta" else pa)
        if wait_up:
            self.wait_up("Alpha", "Beta")
            self.wait_up("Beta", "Alpha")
        return pa, pb

    # -- logs, clients

    def log(self, name):
        try:
            return self.log_text(name)
        except OSError:
            return ""

    def logs(self):
        d = self.path("log")
        out = ""
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            out += "\n--- %s\n%s" % (f, self.log(f[:-4])[-3000:])
        return out

    def wait_log(self, name, regex, timeout=5.0):
        try:
            return wait_for(lambda: re.search(regex, self.log(name), re.I), timeout,
                            0.02, "/%s/ in %s.log" % (regex, name))
        except AssertionError as e:
            raise AssertionError("%s%s" % (e, self.logs())) from None

    def ups(self, name, peer):
        return len(re.findall(r"link %s up\b" % peer, self.log(name)))

    def wait_up(self, name, peer, count=1, timeout=5.0):
        try:
            wait_for(lambda: self.ups(name, peer) >= count, timeout, 0.02,
                     "link %s up (x%d) in %s.log" % (peer, count, name))
        except AssertionError as e:
            raise AssertionError("%s%s" % (e, self.logs())) from None

    def iamat(self, port, client, loc=LOC, t="%d.5" % T0):
        c = self.client(port)
        reply = c.ask("IAMAT %s %s %s" % (client, loc, t))
        c.close()
        self.assertTrue(reply and reply.startswith("AT "), reply)
        return reply

    def wait_known(self, port, client, want, timeout=3.0):
        def known():
            line = self.at_line(port, client)
            return line == want and line
        try:
            return wait_for(known, timeout, 0.02, "%s at port %d" % (client, port))
        except AssertionError as e:
            raise AssertionError("%s (now %r)%s" % (e, self.at_line(port, client),
                                                    self.logs())) from None

    def assert_no_link(self, pa, pb, settle=0.5):
        """No link came up either way and an update at Alpha stays there."""
        at = self.iamat(pa, "lonely.client")
        time.sleep(settle * SLOW)
        self.assertEqual(self.ups("Alpha", "Beta"), 0, self.logs())
        self.assertEqual(self.ups("Beta", "Alpha"), 0, self.logs())
        self.assertIsNone(self.at_line(pb, "lonely.client"), self.logs())
        return at


class FloodAndResync(TlsCase):
    """Three supervised servers in a line, Alpha - Beta - Gamma: an update
    crosses two TLS links; a SIGKILLed Beta learns everything again."""

    def flood_and_resync(self, herd, per_server=None):
        names = ["Alpha", "Beta", "Gamma"]
        ports = {n: free_port() for n in names}
        servers = {n: dict({"port": ports[n]}, **(per_server or {}).get(n, {})) for n in names}
        self.start_herd(servers, herd, {"Alpha": ["Beta"], "Beta": ["Gamma"]})
        self.wait_up("Alpha", "Beta")
        self.wait_up("Beta", "Gamma")
        a = self.iamat(ports["Alpha"], "kiwi.cs.ucla.edu")
        self.wait_known(ports["Gamma"], "kiwi.cs.ucla.edu", a)
        g = self.iamat(ports["Gamma"], "emu.example.org", LOC2)
        self.wait_known(ports["Alpha"], "emu.example.org", g)

        old = self.pid("Beta")
        p = self.ctl("kill", "Beta", "KILL")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        wait_for(lambda: self.pid("Beta") not in (None, 0, old), 5, 0.02,
                 "a new Beta")
        self.wait_up("Alpha", "Beta", count=2)
        self.wait_up("Gamma", "Beta", count=2)
        # The new Beta started empty: it knows both only by resync over TLS.
        self.wait_known(ports["Beta"], "kiwi.cs.ucla.edu", a)
        self.wait_known(ports["Beta"], "emu.example.org", g)
        for n in names:
            self.assertNotRegex(self.log(n), re.compile(HANDSHAKE_FAILED + "|does not name",
                                                        re.I))

    def test_psk_links_carry_a_flood_and_a_resync(self):
        self.flood_and_resync({"link_tls": "psk", "secret": SECRET})

    def test_cert_links_carry_a_flood_and_a_resync(self):
        pki = self.pki(["Alpha", "Beta", "Gamma"])
        per = {n: self.cert_keys(pki, n) for n in ("Beta", "Gamma")}
        # Alpha uses the [herd] defaults; the others override them.
        herd = {"link_tls": "cert", "tls_ca": pki["ca"], "tls_cert": pki["Alpha"][0],
                "tls_key": pki["Alpha"][1]}
        self.flood_and_resync(herd, per)


class Refused(TlsCase):
    """Links that must not come up, logged on both sides."""

    def test_psk_with_another_secret(self):
        pa, pb = self.pair({"link_tls": "psk", "secret": SECRET},
                           {"link_tls": "psk", "secret": SECRET + "-not"}, wait_up=False)
        self.wait_log("Alpha", HANDSHAKE_FAILED)
        self.wait_log("Beta", HANDSHAKE_FAILED)
        self.assert_no_link(pa, pb)

    # A rolling restart to a new secret (docs/operating.md): the restarted
    # worker has secret = new, secret_previous = old; one still running has
    # learnt the new one as its secret_previous (worker/live.c). Whichever
    # end restarted first, the link comes up.
    def rotation(self, dialler_rolled):
        old, new = SECRET, SECRET[::-1]
        rolled = {"link_tls": "psk", "secret": new, "secret_previous": old}
        running = {"link_tls": "psk", "secret": old, "secret_previous": new}
        if dialler_rolled:
            self.pair(rolled, running)
        else:
            self.pair(running, rolled)
        self.wait_log("Alpha", r"link Beta up .*psk")

    def test_psk_rotation_dialler_rolled(self):
        self.rotation(True)

    def test_psk_rotation_acceptor_rolled(self):
        self.rotation(False)

    def test_cert_from_an_untrusted_ca(self):
        pki = self.pki(["Alpha", "Beta"], untrusted=["Alpha"])
        herd = {"link_tls": "cert", "tls_ca": pki["ca"]}
        pa, pb = self.pair(herd, a_server=self.cert_keys(pki, "Alpha"),
                           b_server=self.cert_keys(pki, "Beta"), wait_up=False)
        self.wait_log("Beta", HANDSHAKE_FAILED)
        self.wait_log("Alpha", ANY_TLS_TROUBLE)
        self.assert_no_link(pa, pb)

    def misnamed(self, who):
        """WHO's certificate (signed by the right CA) names Gamma only."""
        pki = self.pki(["Alpha", "Beta"], wrong={who: "Gamma"})
        herd = {"link_tls": "cert", "tls_ca": pki["ca"]}
        pa, pb = self.pair(herd, a_server=self.cert_keys(pki, "Alpha"),
                           b_server=self.cert_keys(pki, "Beta"), wait_up=False)
        other = "Beta" if who == "Alpha" else "Alpha"
        self.wait_log(other, r"certificate does not name")
        self.wait_log(who, ANY_TLS_TROUBLE + "|link %s (dropped|closed)" % other)
        self.assert_no_link(pa, pb)

    def test_dialler_cert_names_another_server(self):
        self.misnamed("Alpha")

    def test_acceptor_cert_names_another_server(self):
        self.misnamed("Beta")

    def test_plaintext_dialler_at_a_psk_acceptor(self):
        pa, pb = self.pair({"link_tls": "off", "secret": SECRET},
                           {"link_tls": "psk", "secret": SECRET}, wait_up=False)
        self.wait_log("Beta", r"refused.*TLS required")
        self.wait_log("Alpha", r"refused by the neighbour.*TLS required")
        self.assert_no_link(pa, pb)

    def mixed(self, dialler_mode):
        pki = self.pki(["Alpha", "Beta"])
        psk = {"link_tls": "psk", "secret": SECRET}
        cert = {"link_tls": "cert", "tls_ca": pki["ca"], "secret": SECRET}
        herds = (psk, cert) if dialler_mode == "psk" else (cert, psk)
        pa, pb = self.pair(herds[0], herds[1], a_server=self.cert_keys(pki, "Alpha"),
                           b_server=self.cert_keys(pki, "Beta"), wait_up=False)
        other = "cert" if dialler_mode == "psk" else "psk"
        # Each side names the mode the other one probably has.
        self.wait_log("Alpha", r"TLS handshake failed: .*link_tls = %s there" % other)
        self.wait_log("Beta", r"TLS handshake failed: .*link_tls = %s there" % dialler_mode)
        self.assert_no_link(pa, pb)

    def test_psk_dialler_at_a_cert_acceptor(self):
        self.mixed("psk")

    def test_cert_dialler_at_a_psk_acceptor(self):
        self.mixed("cert")

    def test_psk_dialler_at_a_plaintext_acceptor(self):
        pa, pb = self.pair({"link_tls": "psk", "secret": SECRET},
                           {"link_tls": "off", "secret": SECRET}, wait_up=False)
        self.wait_log("Beta", r"TLS handshake.*link_tls = off")
        self.wait_log("Alpha", ANY_TLS_TROUBLE)
        self.assert_no_link(pa, pb)


class OnTheWire(TlsCase):
    """Alpha dials Beta through the proxy, which records and may corrupt."""

    def exchange(self, herd):
        """One IAMAT at each end, each seen at the other; returns both AT lines."""
        pa, pb = self.pair(herd, proxy=True)
        a = self.iamat(pa, "kiwi-secret-id.cs.ucla.edu")
        b = self.iamat(pb, "wombat-secret-id.example.org", LOC2)
        self.wait_known(pb, "kiwi-secret-id.cs.ucla.edu", a)
        self.wait_known(pa, "wombat-secret-id.example.org", b)
        return a, b

    def test_plaintext_link_capture_shows_the_clients(self):
        # Proves the capture works: with link_tls = off it all reads in clear.
        self.exchange({"link_tls": "off", "secret": SECRET})
        self.assertIn(b"HERD/1 HELLO Alpha Beta", self.proxy.a2b())
        self.assertIn(b"kiwi-secret-id", self.proxy.a2b())
        self.assertIn(LOC.encode(), self.proxy.a2b())
        self.assertIn(b"wombat-secret-id", self.proxy.b2a())

    def test_psk_link_capture_shows_no_client(self):
        self.exchange({"link_tls": "psk", "secret": SECRET})
        a2b, b2a = self.proxy.a2b(), self.proxy.b2a()
        self.assertGreater(len(a2b), 0)
        self.assertEqual(a2b[0], 0x16, "the dialler's first byte is not a TLS handshake")
        self.assertEqual(b2a[0], 0x16, "the acceptor's first byte is not a TLS handshake")
        wire = a2b + b2a
        for secret in (b"kiwi-secret-id", b"wombat-secret-id", LOC.encode(), LOC2.encode(),
                       b"HERD/1", SECRET.encode()):
            self.assertNotIn(secret, wire)

    def test_flipped_byte_on_a_plaintext_link_is_stored(self):
        # The control: without TLS nothing protects the stream after the
        # handshake (docs/threat-model.md), so the same flip is believed.
        herd = {"secret": SECRET, "link_tls": "off", "link_ping_interval": "2s"}
        pa, pb = self.pair(herd, proxy=True)
        self.proxy.corrupt_at(len(self.proxy.a2b(0)) + 20, 0)  # in the AT line's time diff
        a = self.iamat(pa, "kiwi.cs.ucla.edu")
        self.assertTrue(self.proxy.flipped.wait(5 * SLOW), "the proxy flipped no byte")
        line = wait_for(lambda: self.at_line(pb, "kiwi.cs.ucla.edu"), 3, 0.02,
                        "kiwi at Beta")
        self.assertNotEqual(line, a)
        self.assertEqual(line.split()[3:], a.split()[3:])  # the diff changed, nothing else

    def test_flipped_byte_kills_the_link_and_is_not_stored(self):
        pa, pb = self.pair({"link_tls": "psk", "secret": SECRET}, proxy=True)
        self.proxy.corrupt_next_appdata()
        a = self.iamat(pa, "kiwi.cs.ucla.edu")
        self.assertTrue(self.proxy.flipped.wait(5 * SLOW), "the proxy flipped no byte")
        self.wait_log("Beta", r"bad record mac|decrypt|TLS.*(fail|error|alert)")
        # B never holds a corrupted record: absent, or exactly Alpha's line
        # (resent by resync once Alpha has redialled through the proxy).
        deadline = time.monotonic() + 5 * SLOW
        seen = []
        while time.monotonic() < deadline:
            line = self.at_line(pb, "kiwi.cs.ucla.edu")
            seen.append(line)
            self.assertIn(line, (None, a), self.logs())
            if line == a and self.ups("Alpha", "Beta") >= 2:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(self.proxy.connections(), 2, "Alpha never redialled")
        self.wait_up("Alpha", "Beta", count=2)
        self.wait_known(pb, "kiwi.cs.ucla.edu", a)



class Bounded(TlsCase):
    """A handshake cannot hold a worker: it is bounded by link_timeout, a
    broken ClientHello is refused, and clients are served meanwhile."""

    HERD = {"link_tls": "psk", "secret": SECRET, "link_timeout": "500ms",
            "link_ping_interval": "100ms"}

    def raw(self, port, data):
        s = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)
        self.addCleanup(s.close)
        s.sendall(data)
        return s

    def closed_within(self, s, seconds):
        s.settimeout(seconds * SLOW)
        t0 = time.monotonic()
        while True:
            try:
                if s.recv(65536) == b"":
                    return time.monotonic() - t0
            except ConnectionResetError:
                return time.monotonic() - t0

    def test_a_stalled_handshake_is_cut_after_link_timeout(self):
        pa, pb = self.pair(self.HERD)
        # A ClientHello header that promises 512 bytes, then silence.
        s = self.raw(pb, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")
        self.iamat(pb, "served.while.stalled")  # the loop is not held
        took = self.closed_within(s, 5)
        self.assertLess(took, 3.0 * SLOW)
        self.wait_log("Beta", r"connection from 127\.0\.0\.1:\d+: TLS handshake failed: timed out")
        self.iamat(pb, "served.after")

    def test_a_garbage_client_hello_is_refused(self):
        pa, pb = self.pair(self.HERD)
        s = self.raw(pb, b"\x16\x03\x01\x00\x05hello\n" + b"IAMAT x +1+1 1\n" * 50)
        self.closed_within(s, 5)
        self.wait_log("Beta", r"connection from .*: TLS handshake failed: ")
        # the link and clients are untouched
        a = self.iamat(pa, "after.garbage")
        self.wait_known(pb, "after.garbage", a)

    def test_unusable_certificate_files_stop_the_worker_with_the_reason(self):
        pki = self.pki(["Alpha"])
        with open(self.path("pki/junk.pem"), "w") as f:
            f.write("not a certificate\n")
        cases = [({"tls_cert": "pki/missing.pem", "tls_key": pki["Alpha"][1]},
                  r"tls_cert \S*pki/missing.pem: No such file or directory"),
                 ({"tls_cert": "pki/junk.pem", "tls_key": pki["Alpha"][1]},
                  r"tls_cert \S*pki/junk.pem: not a PEM certificate"),
                 ({"tls_cert": pki["Alpha"][0], "tls_key": pki["ca"].replace(".pem", ".key")},
                  r"tls_key \S*pki/ca.key: not the key of tls_cert")]
        for i, (files, want) in enumerate(cases):
            port = free_port()
            servers = {"Alpha": dict({"port": port}, **files)}
            cfg = self.config(servers, herd={"link_tls": "cert", "tls_ca": pki["ca"]},
                              name="bad%d.ini" % i)
            p = self.start_worker(cfg, "Alpha", port, wait=False)
            self.assertEqual(p.wait(timeout=5 * SLOW), 1)
            self.assertRegex(self.log("Alpha"), "ERROR Alpha: link_tls: " + want)

    def test_check_config_warns_about_tls_files(self):
        pki = self.pki(["Alpha", "Beta"])
        os.chmod(self.path(pki["Beta"][1]), 0o644)
        servers = {"Alpha": {"port": free_port(), "tls_cert": "pki/gone.pem",
                             "tls_key": pki["Alpha"][1]},
                   "Beta": dict({"port": free_port()}, **self.cert_keys(pki, "Beta"))}
        cfg = self.config(servers, herd={"link_tls": "cert", "tls_ca": pki["ca"]},
                          links={"Alpha": ["Beta"]}, name="check.ini")
        p = subprocess.run([binary("herdctl"), "-c", cfg, "check-config"], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)  # the files may be on another machine
        self.assertRegex(p.stderr, r"\[server Alpha\]: tls_cert \S*pki/gone.pem: No such file")
        self.assertRegex(p.stderr, r"\[server Beta\]: tls_key \S*pki/Beta.key is readable by "
                                   r"others \(mode 0644\)")
        self.assertNotIn("tls_ca", p.stderr)
        self.assertNotIn("Alpha.key", p.stderr)

    def test_check_config_warns_about_plaintext_links_across_machines(self):
        def check(herd, host):
            servers = {"Alpha": {"port": free_port()}, "Beta": {"port": free_port(), "host": host}}
            cfg = self.config(servers, herd=herd, links={"Alpha": ["Beta"]}, name="x.ini")
            p = subprocess.run([binary("herdctl"), "-c", cfg, "check-config"],
                               capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stderr
        warning = "links may cross machines in plaintext ([server Beta] host 10.1.2.3)"
        self.assertIn(warning, check({}, "10.1.2.3"))
        self.assertNotIn("plaintext", check({"link_tls": "psk", "secret": SECRET}, "10.1.2.3"))
        self.assertNotIn("plaintext", check({}, "127.0.0.2"))
        self.assertNotIn("plaintext", check({}, "::1"))

    def test_plaintext_clients_are_served_on_a_tls_herd(self):
        pa, pb = self.pair(self.HERD)
        c = self.client(pb)
        reply = c.ask("IAMAT plain.client %s %d.5" % (LOC, T0))
        c.close()
        self.assertTrue(reply.startswith("AT Beta "), reply)
        self.wait_known(pa, "plain.client", reply)



if __name__ == "__main__":
    import unittest
    unittest.main()
