"""WHATSAT's Places proxy against a real herd-worker and the Places mock
(tests/places-mock/places_mock.py), with places_api = legacy (the New API's
own tests are test_places_new.py): what is sent upstream, the key kept out of
logs, the answer's cut and layout, every fault answered in time without
stopping the worker, no key, a slow Places not blocking anyone, coalescing,
keep-alive and bounded connections, and the cache's TTL."""
import json
import os
import re
import select
import subprocess
import sys
import time
import urllib.request
import uuid

from herdtest import ROOT, HerdTestCase, free_port, wait_for

sys.path.insert(0, os.path.join(ROOT, "tests", "places-mock"))
import places_mock  # noqa: E402  (the mock's own Google-layout printer)

MOCK = os.path.join(ROOT, "tests", "places-mock", "places_mock.py")
UCLA = "+34.068930-118.445127"
TIMEOUT = 2.0  # places_timeout of the workers started here


class Mock:
    """The Places mock as a child process of a test, and its control API."""

    def __init__(self, test, key):
        self.err = open(test.path("places-mock.err"), "w")
        self.proc = test.spawn([sys.executable, MOCK, "--port", "0", "--key", key],
                               stdout=subprocess.PIPE, stderr=self.err)
        test.addCleanup(self.proc.stdout.close)
        test.addCleanup(self.err.close)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.match(r"LISTENING (\d+)$", line.strip())
        if not m:
            raise AssertionError("places mock did not start: %r" % line)
        self.port = int(m.group(1))
        self.base = "http://127.0.0.1:%d" % self.port
        self.url = self.base + "/maps/api/place/nearbysearch/json"
        # Never through a proxy from the environment: the mock is local.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        with self.opener.open(req, timeout=5) as r:
            return json.loads(r.read().decode())

    def mode(self, mode, **kw):
        self._call("POST", "/_mock/mode", dict(kw, mode=mode))

    def reset(self):
        self._call("POST", "/_mock/reset", {})

    def requests(self):
        return self._call("GET", "/_mock/requests")

    def stats(self):
        return self._call("GET", "/_mock/stats")

    def answer(self, location, radius, key):
        """What the mock itself answers (a dict), without recording it."""
        params = {"location": location, "radius": radius, "key": key}
        return places_mock.nearby(params, key)


def parse_answer(body):
    """JSON of a WHATSAT answer (text ending in two newlines)."""
    return json.loads(body)


class PlacesCase(HerdTestCase):
    """A mock and one worker pointed at it, with a key by default."""

    herd = {}
    with_key = True

    def setUp(self):
        super().setUp()
        self.key = "AIzaTest-" + uuid.uuid4().hex  # unique: grep-able in logs
        self.mock = Mock(self, self.key)
        self.port = free_port()
        # The rate cap has its own tests (test_places_new.py): these ask fast.
        herd = {"places_api": "legacy", "places_url": self.mock.url,
                "places_timeout": TIMEOUT, "places_max_body": "64k", "places_max_rate": 0}
        herd.update(self.herd)
        self.cfg = self.config({"Riley": self.port}, herd=herd)
        env = {"no_proxy": "*", "NO_PROXY": "*"}
        if self.with_key:
            env["HERD_PLACES_KEY"] = self.key
        self.worker = self.start_worker(self.cfg, "Riley", self.port, env=env)
        self.c = self.client(self.port, timeout=10)
        self.at = self.c.ask("IAMAT kiwi.cs.ucla.edu %s 1621464827.959498503" % UCLA)

    def whatsat(self, radius=10, bound=5, client=None, cid="kiwi.cs.ucla.edu"):
        c = client or self.c
        at, body = c.whatsat(cid, radius, bound, timeout=TIMEOUT + 5)
        self.assertIsNotNone(body, at)
        return at, body

    def assert_alive(self):
        self.assertIsNone(self.worker.poll(), "worker died")
        c = self.client(self.port)
        self.assertTrue(c.ask("IAMAT alive +1+1 1.5").startswith("AT Riley "))

    def assert_layout(self, body):
        """Google's layout, then exactly two newlines (SPEC §4)."""
        self.assertTrue(body.endswith("}\n\n"), body[-20:])
        text = body[:-2]
        self.assertNotIn("\n\n", text)
        for line in text.split("\n"):
            indent = len(line) - len(line.lstrip(" "))
            self.assertEqual(indent % 3, 0, "indent of %r" % line)
            self.assertNotIn("\t", line)

    def assert_unknown_error(self, body):
        self.assert_layout(body)
        ans = parse_answer(body)
        self.assertEqual(ans["status"], "UNKNOWN_ERROR", body)
        self.assertEqual(ans["results"], [])
        self.assertEqual(ans["html_attributions"], [])
        self.assertTrue(ans["error_message"])
        self.assertNotIn(self.key, body)
        return ans


class WhatIsSent(PlacesCase):
    def test_location_radius_in_metres_and_key_sent(self):
        self.whatsat(10, 5)
        self.whatsat(1.5, 5)
        self.whatsat(0.0015, 5)
        reqs = self.mock.requests()
        self.assertEqual(len(reqs), 3, reqs)
        for r in reqs:
            self.assertTrue(r["path"].endswith("/nearbysearch/json"), r)
            self.assertEqual(r["query"]["location"], "34.068930,-118.445127")
            self.assertEqual(r["query"]["key"], self.key)
        self.assertEqual([r["query"]["radius"] for r in reqs], ["10000", "1500", "1.5"])

    def test_signs_of_the_location(self):
        self.c.ask("IAMAT syd -33.8523+151.2108 1621464827.5")
        at, body = self.whatsat(2, 5, cid="syd")
        self.assertEqual(self.mock.requests()[-1]["query"]["location"], "-33.8523,151.2108")
        self.assertEqual(parse_answer(body)["results"][0]["name"], "Harbour Bridge Lookout")

    def test_key_absent_from_every_log(self):
        self.whatsat(10, 5)
        for mode in ("http500", "close", "notjson"):
            self.mock.mode(mode)
            self.whatsat(11, 5)
        self.mock.mode("status", status="REQUEST_DENIED",
                       error_message="The provided API key %s is invalid." % self.key)
        at, body = self.whatsat(12, 5)
        self.assertNotIn(self.key, body)
        self.stop(self.worker)
        log = self.log_text("Riley")
        self.assertIn("GET http://127.0.0.1:%d/maps/api/place/nearbysearch/json?" % self.mock.port,
                      log)
        self.assertIn("key=REDACTED", log)
        self.assertNotIn(self.key, log)
        self.assertNotIn(self.key, self.worker.stderr.read().decode(errors="replace"))

    def test_keep_alive_reuses_one_connection(self):
        for radius in (1, 2, 3, 4):
            self.whatsat(radius, 1)
        ports = {r["client_port"] for r in self.mock.requests()}
        self.assertEqual(len(ports), 1, "one kept-alive connection, got %s" % ports)


class AnswerShape(PlacesCase):
    def expected(self, radius_m, bound):
        """The mock's own answer, cut to bound, in Google's layout + two newlines."""
        ans = self.mock.answer("34.068930,-118.445127", radius_m, self.key)
        ans["results"] = ans["results"][:bound]
        return places_mock.google_dumps(ans).rstrip("\n") + "\n\n"

    def test_results_cut_to_bound(self):
        full = len(self.mock.answer("34.068930,-118.445127", "5000", self.key)["results"])
        self.assertGreater(full, 5)
        for bound in (0, 1, 3, 20):
            at, body = self.whatsat(5, bound)
            self.assertEqual(at, self.at)
            ans = parse_answer(body)
            self.assertEqual(len(ans["results"]), min(bound, full), bound)
            self.assertEqual(ans["status"], "OK")
            self.assertEqual(ans["html_attributions"], [])

    def test_google_layout_byte_for_byte(self):
        for radius, bound in ((5, 3), (5, 20), (0.3, 20), (0.001, 4)):
            at, body = self.whatsat(radius, bound)
            self.assert_layout(body)
            self.assertEqual(body, self.expected(str(int(radius * 1000)), bound))

    def test_zero_results_passes_through(self):
        self.c.ask("IAMAT pole -90.0+0.0 5")
        at, body = self.whatsat(1, 5, cid="pole")
        self.assert_layout(body)
        ans = parse_answer(body)
        self.assertEqual((ans["status"], ans["results"]), ("ZERO_RESULTS", []))

    def test_pipelined_reply_follows_json(self):
        self.c.send("WHATSAT kiwi.cs.ucla.edu 1 2\nIAMAT next +1+1 2.5\n")
        self.assertEqual(self.c.recv_line(), self.at)
        body = self.c.recv_until(b"\n\n", timeout=5)
        self.assert_layout(body)
        self.assertTrue(self.c.recv_line(timeout=5).startswith("AT Riley "))


class Faults(PlacesCase):
    """Each fault: UNKNOWN_ERROR within places_timeout + 1 s, worker alive,
    and the next question is answered normally again."""

    def fault(self, radius, mode, **kw):
        self.mock.mode(mode, **kw)
        t0 = time.monotonic()
        at, body = self.whatsat(radius, 5)
        took = time.monotonic() - t0
        self.assertEqual(at, self.at)
        self.assertLess(took, TIMEOUT + 1, "%s answered after %.2fs" % (mode, took))
        ans = self.assert_unknown_error(body)
        self.assert_alive()
        self.mock.reset()
        at, body = self.whatsat(radius, 5)
        self.assertEqual(parse_answer(body)["status"], "OK", body)
        return ans

    def test_timeout(self):
        ans = self.fault(1, "delay", seconds=5)
        self.assertIn("timed out", ans["error_message"])

    def test_http_500(self):
        ans = self.fault(2, "http500")
        self.assertIn("HTTP 500", ans["error_message"])

    def test_not_json(self):
        ans = self.fault(3, "notjson")
        self.assertIn("not JSON", ans["error_message"])

    def test_not_an_object(self):
        ans = self.fault(4, "notobject")
        self.assertIn("not a JSON object", ans["error_message"])

    def test_connection_closed_without_reply(self):
        self.fault(5, "close")

    def test_slow_drip(self):
        ans = self.fault(6, "drip", seconds=8)
        self.assertIn("timed out", ans["error_message"])

    def test_response_too_large(self):
        ans = self.fault(7, "big", bytes=200000)
        self.assertIn("too large", ans["error_message"])

    def test_refused_connection(self):
        port = free_port()  # nothing listens there
        cfg = self.config({"Riley": port}, name="refused.ini", herd={
            "places_api": "legacy", "places_url": "http://127.0.0.1:%d/maps/api/place/nearbysearch/json" % free_port(),
            "places_timeout": TIMEOUT})
        self.start_worker(cfg, "Riley", port, env={"HERD_PLACES_KEY": self.key})
        c = self.client(port)
        c.ask("IAMAT k %s 5" % UCLA)
        t0 = time.monotonic()
        at, body = c.whatsat("k", 10, 5, timeout=TIMEOUT + 5)
        self.assertLess(time.monotonic() - t0, TIMEOUT + 1)
        self.assert_unknown_error(body)

    def test_google_error_status_passes_through_uncached(self):
        self.mock.mode("status", status="OVER_QUERY_LIMIT",
                       error_message="You have exceeded your daily request quota.")
        for _ in range(2):
            at, body = self.whatsat(8, 5)
            self.assert_layout(body)
            ans = parse_answer(body)
            self.assertEqual(ans["status"], "OVER_QUERY_LIMIT")
            self.assertEqual(ans["error_message"], "You have exceeded your daily request quota.")
        self.assertEqual(len(self.mock.requests()), 2, "an error status is not cached")

    def test_errors_are_not_cached(self):
        self.mock.mode("http500")
        self.whatsat(9, 5)
        self.whatsat(9, 5)
        self.assertEqual(len(self.mock.requests()), 2)


class NoKey(PlacesCase):
    with_key = False

    def test_request_denied_and_nothing_sent(self):
        at, body = self.whatsat(10, 5)
        self.assertEqual(at, self.at)
        self.assert_layout(body)
        ans = parse_answer(body)
        self.assertEqual(ans["status"], "REQUEST_DENIED")
        self.assertEqual(ans["results"], [])
        self.assertIn("HERD_PLACES_KEY", ans["error_message"])
        self.assertIn("places_key_file", ans["error_message"])
        self.assertEqual(self.mock.requests(), [])

    def test_key_file(self):
        path = self.path("places.key")
        with open(path, "w") as f:
            f.write(self.key + "\n\n")
        os.chmod(path, 0o600)
        port = free_port()
        cfg = self.config({"Riley": port}, name="keyfile.ini", herd={
            "places_api": "legacy", "places_url": self.mock.url, "places_key_file": path,
            "places_timeout": TIMEOUT})
        self.start_worker(cfg, "Riley", port, env={"no_proxy": "*", "NO_PROXY": "*"})
        c = self.client(port)
        c.ask("IAMAT k %s 5" % UCLA)
        at, body = c.whatsat("k", 10, 5, timeout=TIMEOUT + 5)
        self.assertEqual(parse_answer(body)["status"], "OK")
        self.assertEqual(self.mock.requests()[-1]["query"]["key"], self.key)

    def test_wrong_key_is_googles_request_denied(self):
        port = free_port()
        cfg = self.config({"Riley": port}, name="wrong.ini", herd={
            "places_api": "legacy", "places_url": self.mock.url, "places_timeout": TIMEOUT})
        self.start_worker(cfg, "Riley", port, env={"HERD_PLACES_KEY": "wrong-key",
                                                   "no_proxy": "*", "NO_PROXY": "*"})
        c = self.client(port)
        c.ask("IAMAT k %s 5" % UCLA)
        at, body = c.whatsat("k", 10, 5, timeout=TIMEOUT + 5)
        ans = parse_answer(body)
        self.assertEqual(ans["status"], "REQUEST_DENIED")
        self.assertEqual(ans["error_message"], "The provided API key is invalid.")


class SlowPlaces(PlacesCase):
    herd = {"places_timeout": 6}

    def test_others_answered_while_places_is_slow(self):
        self.mock.mode("delay", seconds=3)
        slow = self.client(self.port, timeout=10)
        t0 = time.monotonic()
        # A WHATSAT, then an IAMAT pipelined behind it on the same connection.
        slow.send("WHATSAT kiwi.cs.ucla.edu 10 3\nIAMAT behind +2+2 7.5\n")
        wait_for(lambda: self.mock.stats()["active"] == 1, 3, 0.01, "the slow request")
        waits = []
        others = [self.client(self.port) for _ in range(3)]
        for i in range(10):
            for j, c in enumerate(others):
                s = time.monotonic()
                reply = c.ask("IAMAT o%d-%d +1+1 %d.5" % (j, i, i + 1))
                waits.append(time.monotonic() - s)
                self.assertTrue(reply.startswith("AT Riley "), reply)
            time.sleep(0.1)
        self.assertLess(time.monotonic() - t0, 3, "still inside the slow request")
        # A blocked loop would hold every IAMAT for the 3 s. Within 50 ms
        # each; a loaded test machine may deschedule the worker now and then,
        # so up to 10% of them may take longer, but never 0.5 s.
        waits.sort()
        self.assertLess(waits[int(len(waits) * 0.9) - 1], 0.05, "IAMAT waits: %s" % waits)
        self.assertLess(waits[-1], 0.5, "IAMAT waits: %s" % waits)
        # The pipelined IAMAT comes back after the slow WHATSAT's answer.
        self.assertEqual(slow.recv_line(timeout=8), self.at)
        body = slow.recv_until(b"\n\n", timeout=8)
        self.assertGreaterEqual(time.monotonic() - t0, 2.9)
        self.assertEqual(parse_answer(body)["status"], "OK")
        self.assertTrue(slow.recv_line(timeout=5).startswith("AT Riley "))


class Coalescing(PlacesCase):
    herd = {"places_timeout": 5}

    def test_twenty_identical_questions_one_request(self):
        self.mock.mode("delay", seconds=1)
        full = len(self.mock.answer("34.068930,-118.445127", "10000", self.key)["results"])
        clients = [self.client(self.port, timeout=10) for _ in range(20)]
        for i, c in enumerate(clients):
            c.line("WHATSAT kiwi.cs.ucla.edu 10 %d" % i)
        for i, c in enumerate(clients):
            self.assertEqual(c.recv_line(timeout=8), self.at)
            ans = parse_answer(c.recv_until(b"\n\n", timeout=8))
            self.assertEqual(len(ans["results"]), min(i, full))
        self.assertEqual(len(self.mock.requests()), 1)

    def test_client_gone_does_not_disturb_the_others(self):
        self.mock.mode("delay", seconds=1)
        gone = self.client(self.port)
        gone.line("WHATSAT kiwi.cs.ucla.edu 10 2")
        stay = self.client(self.port, timeout=10)
        stay.line("WHATSAT kiwi.cs.ucla.edu 10 2")
        wait_for(lambda: self.mock.stats()["active"] == 1, 3, 0.01, "the request")
        gone.close()
        self.assertEqual(stay.recv_line(timeout=8), self.at)
        self.assertEqual(len(parse_answer(stay.recv_until(b"\n\n", timeout=8))["results"]), 2)
        self.assert_alive()


class BoundedConnections(PlacesCase):
    herd = {"places_timeout": 5, "places_max_connections": 2}

    def test_at_most_max_connections_upstream(self):
        self.mock.mode("delay", seconds=0.5)
        clients = [self.client(self.port, timeout=10) for _ in range(6)]
        for i, c in enumerate(clients):
            c.line("WHATSAT kiwi.cs.ucla.edu %d 1" % (i + 1))
        for c in clients:
            self.assertEqual(c.recv_line(timeout=8), self.at)
            self.assertEqual(parse_answer(c.recv_until(b"\n\n", timeout=8))["status"], "OK")
        self.assertEqual(self.mock.stats()["requests"], 6)
        self.assertLessEqual(self.mock.stats()["max_active"], 2)
        self.assertLessEqual(len({r["client_port"] for r in self.mock.requests()}), 2)


class BoundedPending(PlacesCase):
    herd = {"places_timeout": 5, "places_max_pending": 2}

    def test_questions_past_max_pending_fail_fast(self):
        self.mock.mode("delay", seconds=1.5)
        clients = [self.client(self.port, timeout=10) for _ in range(3)]
        for i, c in enumerate(clients[:2]):
            c.line("WHATSAT kiwi.cs.ucla.edu %d 1" % (i + 1))
        wait_for(lambda: self.mock.stats()["active"] == 2, 3, 0.01, "two slow requests")
        t0 = time.monotonic()
        clients[2].line("WHATSAT kiwi.cs.ucla.edu 3 1")
        self.assertEqual(clients[2].recv_line(timeout=8), self.at)
        ans = self.assert_unknown_error(clients[2].recv_until(b"\n\n", timeout=8))
        self.assertLess(time.monotonic() - t0, 0.5, "answered at once, not queued")
        self.assertIn("in flight", ans["error_message"])
        for c in clients[:2]:   # the two in flight still get Places' answer
            self.assertEqual(c.recv_line(timeout=8), self.at)
            self.assertEqual(parse_answer(c.recv_until(b"\n\n", timeout=8))["status"], "OK")
        self.assertEqual(self.mock.stats()["requests"], 2)


class Cache(PlacesCase):
    herd = {"places_cache_ttl": 1}

    def test_answer_cached_until_its_ttl(self):
        at, first = self.whatsat(10, 3)
        at, again = self.whatsat(10, 5)   # another bound: same question
        self.assertEqual(len(self.mock.requests()), 1)
        self.assertEqual(len(parse_answer(again)["results"]), 5)
        self.whatsat(11, 3)               # another radius: another question
        self.assertEqual(len(self.mock.requests()), 2)
        time.sleep(1.3)
        at, later = self.whatsat(10, 3)
        self.assertEqual(len(self.mock.requests()), 3)
        self.assertEqual(later, first)


class NoCache(PlacesCase):
    herd = {"places_cache_ttl": 0}

    def test_ttl_zero_disables_the_cache(self):
        self.whatsat(10, 3)
        self.whatsat(10, 3)
        self.assertEqual(len(self.mock.requests()), 2)


if __name__ == "__main__":
    import unittest
    unittest.main()
