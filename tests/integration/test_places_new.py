"""WHATSAT on Places API (New) (places_api = new, the default) against a real
herd-worker and the Places mock: the request on the wire (POST, headers, body
values), the reply translated into the legacy shape byte for byte (optional
fields absent where Google sends none), ZERO_RESULTS, bound 0, each of
Google's errors mapped to its legacy status with the key redacted, cache and
coalescing, the key in no log, and places_max_rate / places_max_per_day
answering OVER_QUERY_LIMIT with no request reaching the mock."""
import json
import os
import sys
import time
import urllib.request
import uuid

from herdtest import ROOT, HerdTestCase, free_port, wait_for

sys.path.insert(0, os.path.join(ROOT, "tests", "places-mock"))
import places_mock  # noqa: E402
from test_places import Mock, parse_answer  # noqa: E402

UCLA = "+34.068930-118.445127"
TIMEOUT = 2.0
DEFAULT_MASK = ("places.id,places.displayName,places.location,places.viewport,"
                "places.shortFormattedAddress,places.types,places.businessStatus,"
                "places.plusCode,places.iconMaskBaseUri,places.iconBackgroundColor")
# Every field the translation maps but the icons (DefaultMask has those), in
# places_fields' short form too: an INI line holds at most ~200 bytes.
FULL = ["id", "displayName", "location", "viewport", "shortFormattedAddress", "types",
        "businessStatus", "plusCode", "rating", "userRatingCount", "currentOpeningHours",
        "priceLevel"]
FULL_MASK = ",".join("places." + f for f in FULL)
FULL_FIELDS = ", ".join(FULL[:-1]) + ", places." + FULL[-1]
PRICE = {"PRICE_LEVEL_FREE": 0, "PRICE_LEVEL_INEXPENSIVE": 1, "PRICE_LEVEL_MODERATE": 2,
         "PRICE_LEVEL_EXPENSIVE": 3, "PRICE_LEVEL_VERY_EXPENSIVE": 4}


def latlng(p):
    return {"lat": p["latitude"], "lng": p["longitude"]}


def legacy_of(native):
    """docs/places.md's table, written again in Python: what a client must get."""
    results = []
    for p in native.get("places", []):
        r = {}
        if "businessStatus" in p:
            r["business_status"] = p["businessStatus"]
        geo = {}
        if "location" in p:
            geo["location"] = latlng(p["location"])
        if "viewport" in p:
            geo["viewport"] = {"northeast": latlng(p["viewport"]["high"]),
                               "southwest": latlng(p["viewport"]["low"])}
        if geo:
            r["geometry"] = geo
        for new, old in (("iconBackgroundColor", "icon_background_color"),
                         ("iconMaskBaseUri", "icon_mask_base_uri")):
            if new in p:
                r[old] = p[new]
        if "displayName" in p:
            r["name"] = p["displayName"]["text"]
        if "openNow" in p.get("currentOpeningHours", {}):
            r["opening_hours"] = {"open_now": p["currentOpeningHours"]["openNow"]}
        if "id" in p:
            r["place_id"] = p["id"]
        if "plusCode" in p:
            r["plus_code"] = {"compound_code": p["plusCode"]["compoundCode"],
                              "global_code": p["plusCode"]["globalCode"]}
        if p.get("priceLevel") in PRICE:
            r["price_level"] = PRICE[p["priceLevel"]]
        for new, old in (("rating", "rating"), ("types", "types"),
                         ("userRatingCount", "user_ratings_total"),
                         ("shortFormattedAddress", "vicinity")):
            if new in p:
                r[old] = p[new]
        results.append(r)
    return {"html_attributions": [], "results": results,
            "status": "OK" if results else "ZERO_RESULTS"}


class NewCase(HerdTestCase):
    """A mock and one worker on the New API (the default), with a key."""

    herd = {}

    def setUp(self):
        super().setUp()
        self.key = "AIzaNew-" + uuid.uuid4().hex
        self.mock = Mock(self, self.key)
        self.url = self.mock.base + places_mock.NEW_PATH
        self.port = free_port()
        herd = {"places_url": self.url, "places_timeout": TIMEOUT, "places_max_rate": 0}
        herd.update(self.herd)
        self.cfg = self.config({"Riley": self.port}, herd=herd)
        self.worker = self.start_worker(self.cfg, "Riley", self.port, env={
            "HERD_PLACES_KEY": self.key, "no_proxy": "*", "NO_PROXY": "*"})
        self.c = self.client(self.port, timeout=10)
        self.at = self.c.ask("IAMAT kiwi.cs.ucla.edu %s 1621464827.959498503" % UCLA)

    def whatsat(self, radius=10, bound=5, cid="kiwi.cs.ucla.edu", client=None):
        at, body = (client or self.c).whatsat(cid, radius, bound, timeout=TIMEOUT + 5)
        self.assertIsNotNone(body, at)
        self.assertEqual(at.split()[:2], ["AT", "Riley"])
        self.assertTrue(body.endswith("}\n\n"), body[-20:])
        self.assertNotIn("\n\n", body[:-2])
        return parse_answer(body), body

    def expected(self, radius_m, bound, mask):
        """The mock's own New answer, translated by legacy_of, in Google's layout."""
        code, native = places_mock.search_nearby(
            {"x-goog-api-key": self.key, "x-goog-fieldmask": mask,
             "content-type": "application/json"},
            {"locationRestriction": {"circle": {
                "center": {"latitude": 34.068930, "longitude": -118.445127},
                "radius": radius_m}}, "maxResultCount": bound}, self.key)
        self.assertEqual(code, 200)
        return places_mock.google_dumps(legacy_of(native)).rstrip("\n") + "\n\n"

    def error(self, radius, want, **mode):
        self.mock.mode("error", **mode)
        ans, body = self.whatsat(radius, 5)
        self.assertEqual((ans["status"], ans["results"], ans["html_attributions"]),
                         (want, [], []), body)
        self.assertNotIn(self.key, body)
        return ans

    def log(self):
        self.stop(self.worker)
        return self.log_text("Riley")


class OnTheWire(NewCase):
    def test_post_headers_and_body(self):
        self.whatsat(10, 5)
        self.whatsat(1.5, 3)
        self.whatsat(0.0015, 20)
        reqs = self.mock.requests()
        self.assertEqual(len(reqs), 3, reqs)
        for r in reqs:
            self.assertEqual((r["method"], r["path"], r["raw_query"]),
                             ("POST", "/v1/places:searchNearby", ""))
            self.assertTrue(r["headers"]["content-type"].startswith("application/json"))
            self.assertEqual(r["headers"]["x-goog-api-key"], self.key)
            self.assertEqual(r["headers"]["x-goog-fieldmask"], DEFAULT_MASK)
            self.assertEqual(r["body"]["locationRestriction"]["circle"]["center"],
                             {"latitude": 34.06893, "longitude": -118.445127})
            self.assertEqual(set(r["body"]), {"locationRestriction", "maxResultCount"})
        self.assertEqual([r["body"]["locationRestriction"]["circle"]["radius"] for r in reqs],
                         [10000, 1500, 1.5])
        self.assertEqual([r["body"]["maxResultCount"] for r in reqs], [5, 3, 20])

    def test_signs_of_the_location(self):
        self.c.ask("IAMAT syd -33.8523+151.2108 1621464827.5")
        ans, _ = self.whatsat(2, 5, cid="syd")
        self.assertEqual(self.mock.requests()[-1]["body"]["locationRestriction"]["circle"]
                         ["center"], {"latitude": -33.8523, "longitude": 151.2108})
        self.assertEqual(ans["results"][0]["name"], "Harbour Bridge Lookout")

    def test_bound_zero_sends_nothing(self):
        ans, body = self.whatsat(10, 0)
        self.assertEqual(ans, {"html_attributions": [], "results": [], "status": "OK"})
        self.assertEqual(self.mock.requests(), [])

    def test_key_in_no_log(self):
        self.whatsat(10, 5)
        self.error(11, "REQUEST_DENIED", code=403, status="PERMISSION_DENIED",
                   message="Requests from key %s are blocked." % self.key)
        log = self.log()
        self.assertIn("POST %s" % self.url, log)
        self.assertNotIn(self.key, log)
        self.assertNotIn(self.key, self.worker.stderr.read().decode(errors="replace"))


class Translated(NewCase):
    herd = {"places_fields": FULL_FIELDS}

    def test_twenty_places_byte_for_byte(self):
        for radius, bound in ((5, 20), (5, 3), (0.3, 20), (50, 20)):
            ans, body = self.whatsat(radius, bound)
            self.assertEqual(body, self.expected(radius * 1000, bound, FULL_MASK))
        self.assertEqual(self.mock.requests()[-1]["headers"]["x-goog-fieldmask"], FULL_MASK)
        ans, _ = self.whatsat(50, 20)
        res = ans["results"]
        self.assertEqual(len(res), 20)
        self.assertTrue(all("icon" not in r and "reference" not in r for r in res))
        # Optional fields: present on some places, absent on others.
        for field in ("rating", "user_ratings_total", "opening_hours", "price_level",
                      "plus_code"):
            have = sum(1 for r in res if field in r)
            self.assertTrue(0 < have < 20, "%s on %d of 20" % (field, have))
        self.assertTrue(all(0 <= r["price_level"] <= 4 for r in res if "price_level" in r))
        first = res[0]
        self.assertEqual(first["name"], "Royce Quad Reading Room")
        self.assertEqual(sorted(first["geometry"]), ["location", "viewport"])
        self.assertEqual(sorted(first["geometry"]["viewport"]), ["northeast", "southwest"])

    def test_zero_results(self):
        self.c.ask("IAMAT pole -90.0+0.0 5")
        ans, body = self.whatsat(1, 5, cid="pole")
        self.assertEqual(ans, {"html_attributions": [], "results": [], "status": "ZERO_RESULTS"})


class DefaultMask(NewCase):
    def test_default_mask_fields_only(self):
        ans, body = self.whatsat(5, 20)
        self.assertEqual(body, self.expected(5000, 20, DEFAULT_MASK))
        for r in ans["results"]:
            self.assertLessEqual({"name", "place_id", "vicinity", "geometry", "types",
                                  "business_status"}, set(r))
            self.assertFalse({"rating", "user_ratings_total", "opening_hours",
                              "price_level"} & set(r))


class Errors(NewCase):
    def test_quota_429(self):
        ans = self.error(1, "OVER_QUERY_LIMIT")
        self.assertEqual(ans["error_message"], places_mock.QUOTA)

    def test_permission_denied_403_and_hint_once(self):
        msg = "Places API (New) has not been used in project 123 before or it is disabled."
        for radius in (2, 3):
            ans = self.error(radius, "REQUEST_DENIED", code=403, status="PERMISSION_DENIED",
                             message=msg)
            self.assertEqual(ans["error_message"], msg)
        log = self.log()
        self.assertEqual(log.count("enable \"Places API (New)\""), 1, log)

    def test_invalid_argument_400(self):
        ans = self.error(4, "INVALID_REQUEST", code=400, status="INVALID_ARGUMENT",
                         message="Invalid radius.")
        self.assertEqual(ans["error_message"], "Invalid radius.")

    def test_other_status_500(self):
        ans = self.error(5, "UNKNOWN_ERROR", code=500, status="INTERNAL",
                         message="Internal error encountered.")
        self.assertEqual(ans["error_message"], "Internal error encountered.")

    def test_not_json(self):
        self.mock.mode("http500")
        ans, _ = self.whatsat(6, 5)
        self.assertEqual(ans["status"], "UNKNOWN_ERROR")
        self.assertIn("HTTP 500", ans["error_message"])
        self.mock.mode("notjson")
        ans, _ = self.whatsat(6, 5)
        self.assertEqual(ans["status"], "UNKNOWN_ERROR")
        self.assertIn("not JSON", ans["error_message"])

    def test_key_redacted_in_message(self):
        ans = self.error(7, "OVER_QUERY_LIMIT", message="Quota of key %s used up." % self.key)
        self.assertEqual(ans["error_message"], "Quota of key REDACTED used up.")

    def test_errors_not_cached(self):
        self.mock.mode("error", count=1)
        self.assertEqual(self.whatsat(8, 5)[0]["status"], "OVER_QUERY_LIMIT")
        self.assertEqual(self.whatsat(8, 5)[0]["status"], "OK")
        self.assertEqual(len(self.mock.requests()), 2)


class WrongKey(HerdTestCase):
    def test_googles_api_key_invalid_is_request_denied(self):
        mock = Mock(self, "the-right-key")
        port = free_port()
        cfg = self.config({"Riley": port}, herd={
            "places_url": mock.base + places_mock.NEW_PATH, "places_timeout": TIMEOUT})
        self.start_worker(cfg, "Riley", port, env={"HERD_PLACES_KEY": "wrong-key",
                                                   "no_proxy": "*", "NO_PROXY": "*"})
        c = self.client(port)
        c.ask("IAMAT k %s 5" % UCLA)
        at, body = c.whatsat("k", 10, 5, timeout=TIMEOUT + 5)
        ans = parse_answer(body)
        self.assertEqual(ans["status"], "REQUEST_DENIED")
        self.assertEqual(ans["error_message"], places_mock.BAD_KEY)


class CacheAndCoalescing(NewCase):
    herd = {"places_cache_ttl": 1, "places_timeout": 5}

    def test_cached_per_question_and_bound(self):
        ans, first = self.whatsat(10, 3)
        self.assertEqual(self.whatsat(10, 3)[1], first)
        self.assertEqual(len(self.mock.requests()), 1)
        self.whatsat(10, 4)  # maxResultCount changes the answer: another question
        self.assertEqual(len(self.mock.requests()), 2)
        time.sleep(1.3)
        self.assertEqual(self.whatsat(10, 3)[1], first)
        self.assertEqual(len(self.mock.requests()), 3)

    def test_identical_questions_one_request(self):
        self.mock.mode("delay", seconds=1)
        clients = [self.client(self.port, timeout=10) for _ in range(10)]
        for c in clients:
            c.line("WHATSAT kiwi.cs.ucla.edu 10 5")
        for c in clients:
            self.assertEqual(c.recv_line(timeout=8), self.at)
            self.assertEqual(len(parse_answer(c.recv_until(b"\n\n", timeout=8))["results"]), 5)
        self.assertEqual(len(self.mock.requests()), 1)


class RateCap(NewCase):
    herd = {"places_max_rate": 1}

    def test_past_the_rate_no_request(self):
        # Pipelined: the three questions arrive within far less than a second.
        self.c.send("".join("WHATSAT kiwi.cs.ucla.edu %d 2\n" % r for r in (1, 2, 3)))
        statuses = []
        for _ in range(3):
            self.assertEqual(self.c.recv_line(timeout=8), self.at)
            ans = parse_answer(self.c.recv_until(b"\n\n", timeout=8))
            statuses.append(ans["status"])
            if ans["status"] == "OVER_QUERY_LIMIT":
                self.assertIn("places_max_rate", ans["error_message"])
        self.assertEqual(statuses, ["OK", "OVER_QUERY_LIMIT", "OVER_QUERY_LIMIT"])
        self.assertEqual(len(self.mock.requests()), 1)
        self.assertEqual(self.whatsat(1, 2)[0]["status"], "OK")  # cached: no token needed
        time.sleep(1.2)
        self.assertEqual(self.whatsat(4, 2)[0]["status"], "OK")
        self.assertEqual(len(self.mock.requests()), 2)
        log = self.log()
        self.assertEqual(log.count("places_max_rate reached"), 1, "one warning, not one each")


class DailyCap(NewCase):
    herd = {"places_max_per_day": 2}

    def test_past_the_daily_cap_no_request(self):
        for radius in (1, 2):
            self.assertEqual(self.whatsat(radius, 2)[0]["status"], "OK")
        for radius in (3, 4, 5):
            ans, _ = self.whatsat(radius, 2)
            self.assertEqual(ans["status"], "OVER_QUERY_LIMIT")
            self.assertIn("places_max_per_day", ans["error_message"])
        self.assertEqual(self.whatsat(1, 2)[0]["status"], "OK")  # from the cache
        self.assertEqual(len(self.mock.requests()), 2)


class LegacyStillSelectable(NewCase):
    def test_legacy_get_when_chosen(self):
        port = free_port()
        cfg = self.config({"Riley": port}, name="legacy.ini", herd={
            "places_api": "legacy", "places_url": self.mock.url, "places_timeout": TIMEOUT})
        self.start_worker(cfg, "Riley", port, env={"HERD_PLACES_KEY": self.key,
                                                   "no_proxy": "*", "NO_PROXY": "*"})
        c = self.client(port)
        c.ask("IAMAT k %s 5" % UCLA)
        at, body = c.whatsat("k", 5, 3, timeout=TIMEOUT + 5)
        want = self.mock.answer("34.068930,-118.445127", "5000", self.key)
        want["results"] = want["results"][:3]
        self.assertEqual(body, places_mock.google_dumps(want).rstrip("\n") + "\n\n")
        r = self.mock.requests()[-1]
        self.assertEqual((r["method"], r["query"]["key"]), ("GET", self.key))


class MockChecks(HerdTestCase):
    """The mock refuses what Google refuses (so the tests above can fail)."""

    def post(self, mock, body, headers):
        req = urllib.request.Request(mock.base + places_mock.NEW_PATH, method="POST",
                                     data=json.dumps(body).encode(), headers=headers)
        try:
            with mock.opener.open(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_refusals(self):
        mock = Mock(self, "k")
        ok = {"Content-Type": "application/json", "X-Goog-Api-Key": "k",
              "X-Goog-FieldMask": "places.id"}
        circle = {"center": {"latitude": 34.0, "longitude": -118.4}, "radius": 500.0}
        good = {"locationRestriction": {"circle": circle}, "maxResultCount": 5}
        self.assertEqual(self.post(mock, good, ok)[0], 200)
        cases = [
            (dict(ok, **{"X-Goog-Api-Key": ""}), good, 403, "PERMISSION_DENIED"),
            (dict(ok, **{"X-Goog-Api-Key": "bad"}), good, 400, "INVALID_ARGUMENT"),
            (dict(ok, **{"X-Goog-FieldMask": ""}), good, 400, "INVALID_ARGUMENT"),
            (ok, dict(good, maxResultCount=21), 400, "INVALID_ARGUMENT"),
            (ok, dict(good, maxResultCount=0), 400, "INVALID_ARGUMENT"),
            (ok, {"locationRestriction": {"circle": dict(circle, radius=50001)}}, 400,
             "INVALID_ARGUMENT"),
            (ok, {"locationRestriction": {"circle": dict(circle, center={
                "latitude": 91, "longitude": 0})}}, 400, "INVALID_ARGUMENT"),
            (ok, dict(good, radius=3), 400, "INVALID_ARGUMENT"),
        ]
        for headers, body, code, status in cases:
            got, ans = self.post(mock, body, headers)
            self.assertEqual((got, ans["error"]["code"], ans["error"]["status"]),
                             (code, code, status), (headers, body))
            self.assertTrue(ans["error"]["message"])
        wait_for(lambda: len(mock.requests()) == len(cases) + 1, 5, what="requests recorded")


if __name__ == "__main__":
    import unittest
    unittest.main()
