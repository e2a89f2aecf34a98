#!/usr/bin/env python3
"""places_mock: a stand-in for Google Places Nearby Search, for herd's tests.

A real HTTP/1.1 server (keep-alive, Python standard library only) speaking
both of Google's Nearby Search APIs from one fixture of invented places:

  legacy  GET .../nearbysearch/json?location=LAT,LNG&radius=METRES&key=KEY,
          in Google's response shape and byte layout (JsonCpp's StyledWriter:
          3-space indent, "key" : value, short scalar arrays on one line).
  New     POST /v1/places:searchNearby with X-Goog-Api-Key, X-Goog-FieldMask
          and a JSON body {"locationRestriction": {"circle": {"center":
          {"latitude", "longitude"}, "radius"}}, "maxResultCount"}, checked as
          Google checks it: a missing key is 403 PERMISSION_DENIED, a wrong one
          400 INVALID_ARGUMENT with reason API_KEY_INVALID, a missing or empty
          field mask, an unknown member, radius outside 0..50000, a centre out
          of range or maxResultCount outside 1..20 are 400 INVALID_ARGUMENT, all
          in Google's {"error": {"code", "message", "status"}} shape. The answer
          {"places": [...]} (or {} when none) holds the fields of the mask
          only, for places in the circle around the request's centre, nearest
          first; some places lack optional fields (rating, opening hours,
          price level, plus code), as real ones do.

Control endpoints, for tests to switch faults at run time:
  POST /_mock/mode      {"mode": M, ...}   M is one of
        ok                  normal answers (the default)
        delay    seconds    wait, then answer normally
        http500             HTTP 500 with an HTML body
        notjson             HTTP 200 with an HTML body
        notobject           HTTP 200 with a valid JSON array
        close               close the connection without a reply
        drip     seconds    send the headers, then the body a few bytes at a
                            time spread over SECONDS
        big      bytes      HTTP 200 with a valid JSON object of BYTES bytes
        status   status     legacy: HTTP 200 with a Google error status
                            (OVER_QUERY_LIMIT, INVALID_REQUEST, ...)
        error    code, status, message
                            New: Google's error answer (default 429
                            RESOURCE_EXHAUSTED, a quota message)
        (optional "count": N applies the mode to the next N requests only)
  GET  /_mock/requests  the requests received so far (JSON list of {"time",
                        "method", "path", "raw_query", "query", "client_port"},
                        New ones with "headers" {lower-case name: value} and
                        "body", the JSON body as received, or its text)
  GET  /_mock/stats     {"requests": N, "active": N, "max_active": N}: how
                        many Nearby Search requests were served at once
  POST /_mock/reset     forgets the requests and goes back to mode ok
  GET  /_mock/health    {"ok": true}

Usage: places_mock.py [--port P] [--key KEY] [--verbose]
Prints "LISTENING <port>" on stdout once it accepts connections (port 0
picks a free one). Listens on 127.0.0.1 only.
"""

import argparse
import hashlib
import json
import math
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EARTH_RADIUS_M = 6371008.8
MAX_RESULTS = 20          # Google's page size
INVALID_KEY = "The provided API key is invalid."

UCLA = (34.0689, -118.4452)

# (name, metres north, metres east of UCLA, vicinity, types, rating, ratings)
# Invented places; some names carry &, <, quotes and non-ASCII on purpose.
_NEAR_UCLA = [
    ("Royce Quad Reading Room", 40, -30, "Royce Drive, Los Angeles",
     ["library", "point_of_interest", "establishment"], 4.8, 812),
    ("Bruin Bean Coffee", 120, 60, "308 Westwood Plaza, Los Angeles",
     ["cafe", "food", "point_of_interest", "store", "establishment"], 4.3, 1203),
    ("Janss Steps Overlook", -90, 150, "Janss Steps, Los Angeles",
     ["tourist_attraction", "point_of_interest", "establishment"], 4.7, 311),
    ("Kerckhoff Noodle & Dumpling", 210, -80, "308 Westwood Plaza, Los Angeles",
     ["restaurant", "food", "point_of_interest", "establishment"], 4.1, 564),
    ("Ackerman Student Store", 260, 20, "308 Westwood Plaza, Los Angeles",
     ["book_store", "clothing_store", "store", "point_of_interest",
      "establishment"], 4.4, 2211),
    ("Pauley Court / Arena", -330, -210, "301 Westwood Plaza, Los Angeles",
     ["stadium", "point_of_interest", "establishment"], 4.7, 3120),
    ("Sculpture Garden Café", 380, 240, "245 Charles E Young Dr E, Los Angeles",
     ["cafe", "food", "point_of_interest", "establishment"], 4.5, 97),
    ("Boelter Hall Vending <24h>", -420, 310, "580 Portola Plaza, Los Angeles",
     ["food", "point_of_interest", "establishment"], 3.2, 41),
    ("Sunset Canyon Pool", 520, -470, "604 Charles E Young Dr W, Los Angeles",
     ["gym", "health", "point_of_interest", "establishment"], 4.6, 188),
    ("Drake Track Stadium", -610, -380, "Westwood Plaza, Los Angeles",
     ["stadium", "point_of_interest", "establishment"], 4.6, 402),
    ("Westwood \"Village\" Books", -780, 120, "1001 Broxton Ave, Los Angeles",
     ["book_store", "store", "point_of_interest", "establishment"], 4.2, 355),
    ("Gayley Taqueria", -850, -260, "1110 Gayley Ave, Los Angeles",
     ["restaurant", "food", "point_of_interest", "establishment"], 4.4, 1730),
    ("Broxton Bike Repair", -920, 40, "1050 Broxton Ave, Los Angeles",
     ["bicycle_store", "store", "point_of_interest", "establishment"], 4.9, 73),
    ("Le Conte Ramen", -990, 330, "1030 Le Conte Ave, Los Angeles",
     ["restaurant", "food", "point_of_interest", "establishment"], 4.0, 902),
    ("Hilgard Flowers", -640, 710, "1050 Hilgard Ave, Los Angeles",
     ["florist", "store", "point_of_interest", "establishment"], 4.8, 66),
    ("Strathmore Laundromat", 300, 880, "520 Strathmore Dr, Los Angeles",
     ["laundry", "point_of_interest", "establishment"], 3.9, 58),
    ("Bel Air Gate Lookout", 1350, -150, "Stone Canyon Rd, Los Angeles",
     ["point_of_interest", "establishment"], 4.5, 24),
    ("Westwood Cinema Palace", -1150, -60, "961 Broxton Ave, Los Angeles",
     ["movie_theater", "point_of_interest", "establishment"], 4.6, 4122),
    ("Wilshire & Westwood Pharmacy", -1700, 90, "10900 Wilshire Blvd, Los Angeles",
     ["pharmacy", "health", "store", "point_of_interest", "establishment"],
     3.8, 211),
    ("Veteran Avenue Dog Park", -1400, -1200, "Veteran Ave, Los Angeles",
     ["park", "point_of_interest", "establishment"], 4.3, 147),
    ("Holmby Hills Tea Room", 600, 1750, "Beverly Glen Blvd, Los Angeles",
     ["cafe", "food", "point_of_interest", "establishment"], 4.7, 39),
    ("Federal Building Plaza", -2200, -1100, "11000 Wilshire Blvd, Los Angeles",
     ["local_government_office", "point_of_interest", "establishment"],
     3.5, 520),
    ("Sawtelle Mochi Bar", -2900, -2300, "2000 Sawtelle Blvd, Los Angeles",
     ["bakery", "food", "store", "point_of_interest", "establishment"], 4.6, 1504),
    ("Century City Observatory Deck", -2600, 2900, "Avenue of the Stars, Los Angeles",
     ["tourist_attraction", "point_of_interest", "establishment"], 4.2, 866),
    ("Brentwood Farmers Market", 400, -3800, "741 S Gretna Green Way, Los Angeles",
     ["grocery_or_supermarket", "food", "store", "point_of_interest",
      "establishment"], 4.7, 730),
    ("Getty Hillside Trail", 3600, -4900, "N Sepulveda Blvd, Los Angeles",
     ["park", "tourist_attraction", "point_of_interest", "establishment"],
     4.8, 2890),
    ("Beverly Hills Fountain", -1900, 4400, "Santa Monica Blvd, Beverly Hills",
     ["tourist_attraction", "point_of_interest", "establishment"], 4.6, 3377),
    ("Culver City Stairs", -9800, 2100, "6300 Hetzler Rd, Culver City",
     ["park", "point_of_interest", "establishment"], 4.8, 5120),
    ("Santa Monica Pier Arcade", -7100, -10900, "350 Santa Monica Pier, Santa Monica",
     ["amusement_park", "tourist_attraction", "point_of_interest",
      "establishment"], 4.5, 9012),
    ("Sherman Oaks Galleria Food Court", 13200, 800, "15301 Ventura Blvd, Sherman Oaks",
     ["shopping_mall", "food", "point_of_interest", "establishment"], 4.1, 2330),
]

# Far away: never near UCLA, found only when asked about their own city.
_ELSEWHERE = [
    ("Harbour Bridge Lookout", -33.8523, 151.2108, "Dawes Point, Sydney",
     ["tourist_attraction", "point_of_interest", "establishment"], 4.8, 10321),
    ("Quai des Livres", 48.8530, 2.3499, "Quai de Montebello, Paris",
     ["book_store", "store", "point_of_interest", "establishment"], 4.6, 811),
    ("Shibuya Crossing Kissaten 喫茶", 35.6595, 139.7005, "Shibuya City, Tokyo",
     ["cafe", "food", "point_of_interest", "establishment"], 4.3, 950),
    ("Bowling Green Bagels", 40.7049, -74.0137, "Broadway, New York",
     ["bakery", "food", "store", "point_of_interest", "establishment"], 4.4, 2044),
]

_ICONS = {
    "cafe": ("cafe", "#FF9E67", "cafe_pinlet"),
    "restaurant": ("restaurant", "#FF9E67", "restaurant_pinlet"),
    "bakery": ("cafe", "#FF9E67", "cafe_pinlet"),
    "store": ("shopping", "#4B96F3", "shopping_pinlet"),
    "park": ("park", "#4DB546", "tree_pinlet"),
}


def _metres_to_degrees(lat, north_m, east_m):
    dlat = north_m / 111_320.0
    dlng = east_m / (111_320.0 * math.cos(math.radians(lat)))
    return dlat, dlng


def haversine_m(lat1, lng1, lat2, lng2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _place_id(name):
    digest = hashlib.sha256(name.encode()).hexdigest()
    return "ChIJ" + digest[:23]


def _icon(types):
    for t in types:
        if t in _ICONS:
            return _ICONS[t]
    return ("generic_business", "#7B9EB0", "generic_pinlet")


def _place(name, lat, lng, vicinity, types, rating, ratings, n):
    lat, lng = round(lat, 7), round(lng, 7)
    icon, colour, pinlet = _icon(types)
    pid = _place_id(name)
    p = {
        "business_status": "OPERATIONAL",
        "geometry": {
            "location": {"lat": lat, "lng": lng},
            "viewport": {
                "northeast": {"lat": round(lat + 0.0013498, 10),
                              "lng": round(lng + 0.0013498, 10)},
                "southwest": {"lat": round(lat - 0.0013498, 10),
                              "lng": round(lng - 0.0013498, 10)},
            },
        },
        "icon": "https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/"
                + icon + "-71.png",
        "icon_background_color": colour,
        "icon_mask_base_uri": "https://maps.gstatic.com/mapfiles/place_api/icons/v2/"
                              + pinlet,
        "name": name,
    }
    if n % 3 == 0:
        p["opening_hours"] = {"open_now": n % 2 == 0}
    if n % 4 == 1:
        contrib = int(hashlib.sha256(pid.encode()).hexdigest()[:15], 16)
        p["photos"] = [{
            "height": 3024,
            "html_attributions": [
                '<a href="https://maps.google.com/maps/contrib/%d">A Mock User</a>'
                % contrib],
            "photo_reference": "Aap_uE" + hashlib.sha256(name.encode()).hexdigest(),
            "width": 4032,
        }]
    p["place_id"] = pid
    p["plus_code"] = {"compound_code": "%s+%s Mock City" % (pid[4:8].upper(), pid[8:10].upper()),
                      "global_code": "8553%s+%s" % (pid[4:8].upper(), pid[8:10].upper())}
    p["rating"] = rating
    p["reference"] = pid
    p["scope"] = "GOOGLE"
    p["types"] = types
    p["user_ratings_total"] = ratings
    p["vicinity"] = vicinity
    return p


def build_fixture():
    places = []
    for n, (name, north, east, vic, types, rating, ratings) in enumerate(_NEAR_UCLA):
        dlat, dlng = _metres_to_degrees(UCLA[0], north, east)
        places.append(_place(name, UCLA[0] + dlat, UCLA[1] + dlng, vic, types,
                             rating, ratings, n))
    for n, (name, lat, lng, vic, types, rating, ratings) in enumerate(_ELSEWHERE):
        places.append(_place(name, lat, lng, vic, types, rating, ratings,
                             n + len(_NEAR_UCLA)))
    return places


FIXTURE = build_fixture()


# --- Places API (New) -------------------------------------------------------

NEW_PATH = "/v1/places:searchNearby"
NEW_MAX_RESULTS = 20
PRICE_LEVELS = ["PRICE_LEVEL_FREE", "PRICE_LEVEL_INEXPENSIVE", "PRICE_LEVEL_MODERATE",
                "PRICE_LEVEL_EXPENSIVE", "PRICE_LEVEL_VERY_EXPENSIVE"]
# Place fields Google knows (a mask naming another is refused).
PLACE_FIELDS = {
    "name", "id", "types", "formattedAddress", "location", "viewport", "googleMapsUri",
    "businessStatus", "displayName", "shortFormattedAddress", "iconMaskBaseUri",
    "iconBackgroundColor", "utcOffsetMinutes", "rating", "userRatingCount",
    "currentOpeningHours", "regularOpeningHours", "priceLevel", "plusCode", "primaryType",
    "primaryTypeDisplayName", "websiteUri", "nationalPhoneNumber", "internationalPhoneNumber",
    "photos", "reviews", "editorialSummary", "attributions", "addressComponents",
    "adrFormatAddress", "accessibilityOptions", "priceRange", "postalAddress",
}
REQUEST_MEMBERS = {
    "locationRestriction", "maxResultCount", "includedTypes", "excludedTypes",
    "includedPrimaryTypes", "excludedPrimaryTypes", "languageCode", "regionCode",
    "rankPreference", "routingParameters",
}
UNREGISTERED = ("Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.")
BAD_KEY = "API key not valid. Please pass a valid API key."
NO_MASK = ("FieldMask is a required parameter. See https://cloud.google.com/apis/docs/"
           "system-parameters on how to provide it. As an example, you can set the header "
           "'X-Goog-FieldMask' to value 'places.displayName', 'places.id' to ask for the "
           "display name and the place ID of a place. You can also set the value to '*' in "
           "manual testing to get all the available response fields.")
QUOTA = ("Quota exceeded for quota metric 'SearchNearby requests' and limit 'SearchNearby "
         "requests per minute' of service 'places.googleapis.com' for consumer "
         "'project_number:123456789012'.")


def _new_place(p, n):
    """Fixture place P (legacy shape) as Places API (New) has it, every field
    it has; some lack optional ones, as real places do."""
    g = p["geometry"]
    loc, vp = g["location"], g["viewport"]
    q = {
        "name": "places/" + p["place_id"],
        "id": p["place_id"],
        "types": p["types"],
        "formattedAddress": p["vicinity"] + ", USA",
        "location": {"latitude": loc["lat"], "longitude": loc["lng"]},
        "viewport": {
            "low": {"latitude": vp["southwest"]["lat"], "longitude": vp["southwest"]["lng"]},
            "high": {"latitude": vp["northeast"]["lat"], "longitude": vp["northeast"]["lng"]},
        },
        "googleMapsUri": "https://maps.google.com/?cid=%d" % (1000 + n),
        "utcOffsetMinutes": -480,
        "businessStatus": p["business_status"],
        "displayName": {"text": p["name"], "languageCode": "en"},
        "shortFormattedAddress": p["vicinity"],
        "iconMaskBaseUri": p["icon_mask_base_uri"],
        "iconBackgroundColor": p["icon_background_color"],
    }
    if n % 5 != 4:
        q["rating"] = p["rating"]
        q["userRatingCount"] = p["user_ratings_total"]
    if "opening_hours" in p:
        q["currentOpeningHours"] = {
            "openNow": p["opening_hours"]["open_now"],
            "weekdayDescriptions": ["Monday: 8:00 AM – 6:00 PM"],
        }
    if "food" in p["types"]:
        q["priceLevel"] = "PRICE_LEVEL_UNSPECIFIED" if n % 11 == 0 else PRICE_LEVELS[1 + n % 3]
    if n % 7 != 6:
        q["plusCode"] = {"globalCode": p["plus_code"]["global_code"],
                         "compoundCode": p["plus_code"]["compound_code"]}
    return q


NEW_FIXTURE = [_new_place(p, n) for n, p in enumerate(FIXTURE)]


def google_error(code, status, message, reason=None, field=None):
    """Google's error answer for the APIs on googleapis.com (a dict)."""
    err = {"code": code, "message": message, "status": status}
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                           "reason": reason, "domain": "googleapis.com",
                           "metadata": {"service": "places.googleapis.com"}}]
    elif field:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                           "fieldViolations": [{"field": field, "description": message}]}]
    return {"error": err}


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_circle(body):
    """Why BODY's circle is refused (the field and message), or None."""
    for k in body:
        if k not in REQUEST_MEMBERS:
            return None, 'Invalid JSON payload received. Unknown name "%s": Cannot find field.' % k
    circle = (body.get("locationRestriction") or {}).get("circle") if isinstance(
        body.get("locationRestriction"), dict) else None
    if not isinstance(circle, dict):
        return "location_restriction", "Invalid location_restriction. Must specify a circle."
    center = circle.get("center")
    if not isinstance(center, dict) or not _number(center.get("latitude")) or \
            not _number(center.get("longitude")):
        return "location_restriction.circle.center", "Invalid center: latitude and longitude."
    if not (-90 <= center["latitude"] <= 90 and -180 <= center["longitude"] <= 180):
        return "location_restriction.circle.center", "Invalid center: out of range."
    radius = circle.get("radius")
    if not _number(radius) or not 0 <= radius <= 50000:
        return ("location_restriction.circle.radius",
                "Invalid radius. Must be between 0.0 and 50000.0, inclusive.")
    n = body.get("maxResultCount", NEW_MAX_RESULTS)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= NEW_MAX_RESULTS:
        return "max_result_count", "max_result_count must be between 1 and 20, inclusive."
    return None, None


def _mask_fields(mask):
    """The place fields MASK names, or the name of one Google does not know."""
    keep = set()
    for f in (x.strip() for x in mask.split(",")):
        if f in ("*", "places"):
            return PLACE_FIELDS, None
        if not f.startswith("places.") or f[7:].split(".")[0] not in PLACE_FIELDS:
            return None, f
        keep.add(f[7:].split(".")[0])
    return keep, None


def search_nearby(headers, body, key):
    """Google's (HTTP code, answer dict) for a searchNearby request with these
    headers (lower-case names) and BODY (parsed JSON, or None if it was not)."""
    got = headers.get("x-goog-api-key")
    if not got:
        return 403, google_error(403, "PERMISSION_DENIED", UNREGISTERED)
    if got != key:
        return 400, google_error(400, "INVALID_ARGUMENT", BAD_KEY, reason="API_KEY_INVALID")
    mask = headers.get("x-goog-fieldmask", "").strip()
    if not mask:
        return 400, google_error(400, "INVALID_ARGUMENT", NO_MASK)
    if not headers.get("content-type", "").startswith("application/json"):
        return 400, google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    if not isinstance(body, dict):
        return 400, google_error(400, "INVALID_ARGUMENT",
                                 "Invalid JSON payload received. Unexpected token.")
    field, why = _check_circle(body)
    if why:
        return 400, google_error(400, "INVALID_ARGUMENT", why, field=field)
    keep, bad = _mask_fields(mask)
    if bad is not None:
        return 400, google_error(400, "INVALID_ARGUMENT",
                                 "Error expanding 'fields' parameter. Cannot find matching "
                                 "fields for path '%s'." % bad)
    circle = body["locationRestriction"]["circle"]
    lat, lng = circle["center"]["latitude"], circle["center"]["longitude"]
    hits = sorted(((haversine_m(lat, lng, p["location"]["latitude"], p["location"]["longitude"]),
                    i, p) for i, p in enumerate(NEW_FIXTURE)), key=lambda t: (t[0], t[1]))
    n = body.get("maxResultCount", NEW_MAX_RESULTS)
    places = [{k: v for k, v in p.items() if k in keep}
              for d, _, p in hits if d <= circle["radius"]][:n]
    return 200, ({"places": places} if places else {})


def new_dumps(obj):
    """Google's layout on googleapis.com (2-space indent), final newline."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


# --- Google's layout (JsonCpp StyledWriter) ---------------------------------

INDENT = 3
MARGIN = 74


def _escape(s):
    # Google escapes <, > and & besides what JSON needs; '/' and UTF-8 stay.
    text = json.dumps(s, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return _escape(v)


class _Styled:
    def __init__(self):
        self.doc = []
        self.last = ""

    def put(self, s):
        if s:
            self.doc.append(s)
            self.last = s[-1]

    def indent(self, depth):
        if self.doc:
            if self.last == " ":
                return
            if self.last != "\n":
                self.put("\n")
        self.put(" " * (INDENT * depth))

    def value(self, v, depth):
        if isinstance(v, dict):
            self.obj(v, depth)
        elif isinstance(v, list):
            self.array(v, depth)
        else:
            self.put(_scalar(v))

    def obj(self, v, depth):
        if not v:
            self.put("{}")
            return
        self.indent(depth)
        self.put("{")
        items = list(v.items())
        for i, (k, child) in enumerate(items):
            self.indent(depth + 1)
            self.put(_escape(k) + " : ")
            self.value(child, depth + 1)
            if i + 1 < len(items):
                self.put(",")
        self.indent(depth)
        self.put("}")

    def array(self, v, depth):
        if not v:
            self.put("[]")
            return
        inline = len(v) * 3 < MARGIN and not any(
            isinstance(c, (dict, list)) and c for c in v)
        if inline:
            parts = ["{}" if isinstance(c, dict) else "[]" if isinstance(c, list)
                     else _scalar(c) for c in v]
            text = "[ " + ", ".join(parts) + " ]"
            if len(text) < MARGIN:
                self.put(text)
                return
        self.indent(depth)
        self.put("[")
        for i, child in enumerate(v):
            self.indent(depth + 1)
            self.value(child, depth + 1)
            if i + 1 < len(v):
                self.put(",")
        self.indent(depth)
        self.put("]")


def google_dumps(obj):
    """Serialises OBJ the way Google's web services do, with a final newline."""
    w = _Styled()
    w.value(obj, 0)
    return "".join(w.doc) + "\n"


# --- the server -------------------------------------------------------------

class MockState:
    def __init__(self, key):
        self.key = key
        self.lock = threading.Lock()
        self.requests = []
        self.mode = {"mode": "ok"}
        self.count = None
        self.active = 0
        self.max_active = 0

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            mode = dict(self.mode)
            if self.count is not None:
                self.count -= 1
                if self.count <= 0:
                    self.mode, self.count = {"mode": "ok"}, None
            return mode


def nearby(params, key):
    """Google's answer (as a dict) to a Nearby Search with these parameters."""
    if params.get("key") != key:
        return {"error_message": INVALID_KEY, "html_attributions": [],
                "results": [], "status": "REQUEST_DENIED"}
    try:
        lat_s, lng_s = params["location"].split(",")
        lat, lng = float(lat_s), float(lng_s)
        radius = float(params["radius"])
        if not (-90 <= lat <= 90 and -180 <= lng <= 180) or radius <= 0:
            raise ValueError
    except (KeyError, ValueError):
        return {"html_attributions": [], "results": [], "status": "INVALID_REQUEST"}
    radius = min(radius, 50000.0)
    hits = sorted(((haversine_m(lat, lng, p["geometry"]["location"]["lat"],
                                p["geometry"]["location"]["lng"]), i, p)
                   for i, p in enumerate(FIXTURE)), key=lambda t: (t[0], t[1]))
    results = [p for d, _, p in hits if d <= radius][:MAX_RESULTS]
    return {"html_attributions": [], "results": results,
            "status": "OK" if results else "ZERO_RESULTS"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as Google serves it
    server_version = "places-mock/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("places-mock: " + (fmt % args) + "\n")

    def _send(self, code, body, ctype="application/json; charset=UTF-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        return json.loads(raw) if raw.strip() else {}

    def do_GET(self):
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):
            pass    # the client gave up (timeout): nothing to say

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path.startswith("/_mock/"):
                self._control(url)
            elif url.path == NEW_PATH:
                self._search_nearby(url)
            else:
                self._send(404, new_dumps(google_error(404, "NOT_FOUND", "Not Found")))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _search_nearby(self, url):
        state = self.server.state
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        mode = state.record({"time": time.time(), "method": "POST", "path": url.path,
                             "raw_query": url.query, "query": {}, "headers": headers,
                             "body": body if body is not None else raw.decode(errors="replace"),
                             "client_port": self.client_address[1]})
        self.api = ("new", headers, body)
        try:
            MODES[mode["mode"]](self, mode, None)
        finally:
            with state.lock:
                state.active -= 1

    def _normal(self, params):
        """The (code, text) a working Google gives this request."""
        if getattr(self, "api", None):
            _, headers, body = self.api
            code, answer = search_nearby(headers, body, self.server.state.key)
            return code, new_dumps(answer)
        return 200, google_dumps(nearby(params, self.server.state.key))

    def _control(self, url):
        state = self.server.state
        try:
            body = self._body_json()
        except ValueError:
            self._send(400, '{"error": "body is not JSON"}\n')
            return
        if url.path == "/_mock/reset":
            with state.lock:
                state.requests = []
                state.mode, state.count = {"mode": "ok"}, None
                state.max_active = state.active
            self._send(200, '{"ok": true}\n')
        elif url.path == "/_mock/mode":
            if body.get("mode") not in MODES:
                self._send(400, json.dumps({"error": "unknown mode"}) + "\n")
                return
            with state.lock:
                state.mode = body
                state.count = body.get("count")
            self._send(200, '{"ok": true}\n')
        else:
            self._send(404, '{"error": "not found"}\n')

    def _get(self):
        state = self.server.state
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_mock/requests":
            with state.lock:
                body = json.dumps(state.requests, indent=1)
            self._send(200, body + "\n")
            return
        if url.path == "/_mock/stats":
            with state.lock:
                body = json.dumps({"requests": len(state.requests),
                                   "active": state.active,
                                   "max_active": state.max_active})
            self._send(200, body + "\n")
            return
        if url.path == "/_mock/health":
            self._send(200, '{"ok": true}\n')
            return
        if not url.path.endswith("/nearbysearch/json"):
            self._send(404, "<html><body>404 Not Found</body></html>\n", "text/html")
            return
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(
            url.query, keep_blank_values=True).items()}
        mode = state.record({"time": time.time(), "method": "GET", "path": url.path,
                             "raw_query": url.query, "query": params,
                             "client_port": self.client_address[1]})
        self.api = None
        try:
            MODES[mode["mode"]](self, mode, params)
        finally:
            with state.lock:
                state.active -= 1

    # --- modes: each answers one Nearby Search request ---

    def mode_ok(self, mode, params):
        self._send(*self._normal(params))

    def mode_delay(self, mode, params):
        time.sleep(float(mode.get("seconds", 3)))
        self.mode_ok(mode, params)

    def mode_http500(self, mode, params):
        self._send(500, "<html><body><h1>500 Server Error</h1></body></html>\n",
                   "text/html; charset=UTF-8")

    def mode_notjson(self, mode, params):
        self._send(200, "<html><body>We're sorry... but your computer or network "
                        "may be sending automated queries.</body></html>\n",
                   "text/html; charset=UTF-8")

    def mode_notobject(self, mode, params):
        self._send(200, google_dumps([{"status": "OK"}, 1, 2, 3]))

    def mode_close(self, mode, params):
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(2)

    def mode_drip(self, mode, params):
        code, text = self._normal(params)
        data = text.encode()
        seconds = float(mode.get("seconds", 10))
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.flush()
        steps = max(1, int(seconds * 10))
        chunk = max(1, len(data) // steps)
        for i in range(0, len(data), chunk):
            self.wfile.write(data[i:i + chunk])
            self.wfile.flush()
            time.sleep(seconds / steps)

    def mode_big(self, mode, params):
        size = int(mode.get("bytes", 8 << 20))
        head = '{"html_attributions" : [], "padding" : "'
        tail = '", "results" : [], "status" : "OK"}\n'
        if getattr(self, "api", None):
            head, tail = '{"places": [], "padding": "', '"}\n'
        pad = max(0, size - len(head) - len(tail))
        self._send(200, head + "x" * pad + tail)

    def mode_status(self, mode, params):
        status = mode.get("status", "OVER_QUERY_LIMIT")
        answer = {"html_attributions": [], "results": [], "status": status}
        if "error_message" in mode:
            answer = {"error_message": mode["error_message"], **answer}
        self._send(200, google_dumps(answer))

    def mode_error(self, mode, params):
        code = int(mode.get("code", 429))
        self._send(code, new_dumps(google_error(code, mode.get("status", "RESOURCE_EXHAUSTED"),
                                                mode.get("message", QUOTA),
                                                reason=mode.get("reason"))))


MODES = {
    "ok": Handler.mode_ok,
    "delay": Handler.mode_delay,
    "http500": Handler.mode_http500,
    "notjson": Handler.mode_notjson,
    "notobject": Handler.mode_notobject,
    "close": Handler.mode_close,
    "drip": Handler.mode_drip,
    "big": Handler.mode_big,
    "status": Handler.mode_status,
    "error": Handler.mode_error,
}


class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--key", default="test-key", help="the API key to accept")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args(argv)

    server = MockServer(("127.0.0.1", args.port), Handler)
    server.state = MockState(args.key)
    server.verbose = args.verbose
    print("LISTENING %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
