"""Python's standard library (Debian's python3) publishes plain JSON, NDJSON
and gzip bodies at ingest: urllib.request and http.client, nothing else.
INGEST_URL names the ingest under test (the CTest driver sets it)."""
import gzip
import http.client
import json
import os
import random
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

BASE = os.environ["INGEST_URL"]
RUN = f"{int(time.time() * 1000):x}{random.randrange(1 << 20):x}"
TOPIC = f"python.logs.r{RUN}"


def event(event_id, **payload):
    return {"topic": TOPIC, "event_id": event_id, "timestamp": "2026-11-24T10:00:00+01:00",
            "source": "python", "payload": payload}


def ndjson(events):
    return "".join(json.dumps(e) + "\n" for e in events).encode()


def urllib_post(body, content_type, **headers):
    request = urllib.request.Request(f"{BASE}/publish", data=body, method="POST",
                                     headers={"Content-Type": content_type, **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def http_client_post(body, headers):
    url = urllib.parse.urlsplit(BASE)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("POST", "/publish", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def stored(count):
    deadline = time.monotonic() + 30
    events = []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{BASE}/events?topic={TOPIC}&limit=1000", timeout=30) as r:
            events = json.load(r)["events"]
        if len(events) >= count:
            break
        time.sleep(0.1)
    return events


class PythonClients(unittest.TestCase):
    def test_1_urllib_plain_json(self):
        status, report = urllib_post(json.dumps(event("py-1", n=1)).encode(), "application/json")
        self.assertEqual(status, 200, report)
        self.assertEqual(report["results"][0]["status"], "accepted")
        status, report = urllib_post(json.dumps(event("py-1", n=2)).encode(), "application/json")
        self.assertEqual(report["duplicates"], 1, report)

    def test_2_urllib_ndjson_with_a_bad_line(self):
        body = ndjson([event("nd-1"), event("nd-2")]) + b'{"topic": "no"}\n' + ndjson([event("nd-3")])
        status, report = urllib_post(body, "application/x-ndjson")
        self.assertEqual(status, 200, report)
        self.assertEqual(report["accepted"], 3, report)
        self.assertEqual(report["results"][2]["status"], "rejected")
        self.assertTrue(report["results"][2]["error"].startswith("line 3: "), report)

    def test_3_http_client_gzip(self):
        events = [event(f"gz-{i}", message="log line " * 10, i=i) for i in range(250)]
        body = gzip.compress(ndjson(events))
        status, report = http_client_post(body, {"Content-Type": "application/x-ndjson",
                                                 "Content-Encoding": "gzip"})
        self.assertEqual(status, 200, report)
        self.assertEqual(report["accepted"], 250, report)
        status, report = http_client_post(gzip.compress(json.dumps(event("gz-json")).encode()),
                                          {"Content-Type": "application/json",
                                           "Content-Encoding": "gzip"})
        self.assertEqual(status, 200, report)

    def test_4_http_client_gzip_bomb_is_413(self):
        bomb = gzip.compress(bytes(16 << 20))
        status, report = http_client_post(bomb, {"Content-Type": "application/json",
                                                 "Content-Encoding": "gzip"})
        self.assertEqual(status, 413, report)
        self.assertIn("INGEST_MAX_BODY_BYTES", report["error"])

    def test_5_everything_accepted_is_stored_once(self):
        events = stored(1 + 3 + 250 + 1)
        ids = [e["event_id"] for e in events]
        self.assertEqual(len(ids), 255, ids[:10])
        self.assertEqual(len(set(ids)), len(ids))
        first = next(e for e in events if e["event_id"] == "py-1")
        self.assertEqual(first["payload"], {"n": 1}, "first write wins")
        self.assertEqual(first["timestamp"], "2026-11-24T09:00:00.000000Z")


if __name__ == "__main__":
    unittest.main(verbosity=2)
