"""test_webhook.py - POST /api/webhook/receive against the real server.

Authentication (the secret in X-Webhook-Secret or ?secret=, an API token,
an HMAC X-Signature over the raw body or over "<X-Timestamp>.<body>" with
the replay window, HMAC required), each invalid field named in the 400,
duplicates by client id and by payload, MIN_CONFIDENCE_SCORE answering
"ignored" and storing the signal as filtered, rate limits per symbol and
overall with Retry-After (and QG_RATE_LIMITS=off turning them off), and
durability: every 202 of a concurrent burst is in the SQLite file after a
kill -9, and a restart still recognises a duplicate."""

import concurrent.futures
import copy
import hashlib
import hmac
import json
import os
import sqlite3
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402

SECRET = "whsec-" + uuid.uuid4().hex
PATH = "/api/webhook/receive"


def payload(**over):
    p = {
        "symbol": "EURUSD",
        "timeframe": "15m",
        "signal_type": "CHoCH",
        "confidence": 85,
        "timestamp": "2026-03-10T14:30:00Z",
        "price_data": {"open": 1.085, "high": 1.0875, "low": 1.0825, "close": 1.0865},
        "sl": 1.08,
        "tp": 1.092,
        "multi_tf": True,
        "confluences": ["HTF_BIAS_BULL", "DAILY_ABOVE_MID", "4H_SUPPORT"],
    }
    p.update(over)
    return p


def unique(**over):
    """A payload no other test sends (its own client id)."""
    return payload(id="t-" + uuid.uuid4().hex, **over)


def db_rows(srv, sql, args=()):
    con = sqlite3.connect(os.path.join(srv.data_dir, "quantgate.db"), timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def sign(body, ts=None):
    msg = body if ts is None else ts.encode() + b"." + body
    return "sha256=" + hmac.new(SECRET.encode(), msg, hashlib.sha256).hexdigest()


class WebhookTest(qgtest.ServerTest):
    SERVER_ENV = {
        "WEBHOOK_SECRET": SECRET,
        "MIN_CONFIDENCE_SCORE": "60",
        "QG_WEBHOOK_REPLAY_WINDOW_S": "120",
    }

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.srv.secret(SECRET)
        # Keep the pipeline out of the way: these tests are about the door.
        r = cls.srv.request("POST", "/api/signals/pause", token=cls.srv.admin_token())
        assert r.status in (200, 204), r

    def send(self, body, headers=None, query=None, token=None):
        h = {"X-Webhook-Secret": SECRET}
        if headers is not None:
            h = headers
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = dict(h, **{"Content-Type": "application/json"})
        return self.srv.request("POST", PATH, raw, headers=h, query=query, token=token)

    def assertReceived(self, r):
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["status"], "received", r)
        self.assertTrue(r.json["id"].startswith("sig_"), r)
        self.assertTrue(r.json["correlation_id"], r)
        return r.json["id"]

    # ---- authentication

    def test_secret_header_and_query(self):
        sid = self.assertReceived(self.send(unique()))
        rows = db_rows(self.srv, "SELECT state, source, symbol FROM signals WHERE id = ?", (sid,))
        self.assertEqual(rows, [("received", "webhook", "EURUSD")])
        self.assertReceived(self.send(unique(), headers={}, query={"secret": SECRET}))

    def test_wrong_or_missing_secret(self):
        self.assertError(self.send(unique(), headers={"X-Webhook-Secret": "nope"}), 403, "forbidden", "wrong")
        self.assertError(self.send(unique(), headers={}), 403, "forbidden", "missing webhook secret")
        self.assertError(self.send(unique(), headers={}, query={"secret": SECRET + "x"}), 403)
        # nothing was stored for the refused ones
        before = db_rows(self.srv, "SELECT COUNT(*) FROM signals")[0][0]
        self.send(unique(), headers={"X-Webhook-Secret": SECRET[:-1]})
        self.assertEqual(db_rows(self.srv, "SELECT COUNT(*) FROM signals")[0][0], before)

    def test_api_token(self):
        dev = self.srv.make_user("developer")
        r = self.send(unique(), headers={}, token=dev["access"])
        sid = self.assertReceived(r)
        rows = db_rows(self.srv, "SELECT source, owner_id FROM signals WHERE id = ?", (sid,))
        self.assertEqual(rows, [("api", dev["id"])])
        self.assertEqual(self.send(unique(), headers={}, token="not-a-token").status, 401)

    def test_hmac_body_and_timestamp_forms(self):
        body = json.dumps(unique()).encode()
        ts = str(int(time.time()))
        self.assertReceived(self.send(body, headers={"X-Signature": sign(body), "X-Timestamp": ts}))
        body = json.dumps(unique()).encode()
        self.assertReceived(self.send(body, headers={"X-Signature": sign(body, ts), "X-Timestamp": ts}))
        # milliseconds are accepted too
        body = json.dumps(unique()).encode()
        ms = str(int(time.time() * 1000))
        self.assertReceived(self.send(body, headers={"X-Signature": sign(body), "X-Timestamp": ms}))

    def test_hmac_rejections(self):
        body = json.dumps(unique()).encode()
        ts = str(int(time.time()))
        tampered = body.replace(b"EURUSD", b"GBPUSD")
        self.assertError(
            self.send(tampered, headers={"X-Signature": sign(body), "X-Timestamp": ts}), 401, msg_re="does not match"
        )
        self.assertError(self.send(body, headers={"X-Signature": sign(body)}), 401, msg_re="X-Timestamp")
        old = str(int(time.time()) - 600)
        self.assertError(
            self.send(body, headers={"X-Signature": sign(body, old), "X-Timestamp": old}), 401, msg_re="replay window"
        )
        future = str(int(time.time()) + 600)
        self.assertError(
            self.send(body, headers={"X-Signature": sign(body, future), "X-Timestamp": future}), 401, msg_re="replay"
        )
        self.assertError(self.send(body, headers={"X-Signature": "md5=abc", "X-Timestamp": ts}), 401, msg_re="sha256=")
        # a signature made with another key
        bad = "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()
        self.assertError(self.send(body, headers={"X-Signature": bad, "X-Timestamp": ts}), 401)

    # ---- validation

    def test_each_invalid_field_is_named(self):
        cases = [
            ({k: v for k, v in payload().items() if k != "symbol"}, "symbol"),
            (payload(confidence=140), "confidence"),
            (payload(confidence="high"), "confidence"),
            (payload(timestamp="yesterday-ish"), "timestamp"),
            (payload(price_data={"open": 1.0, "high": 0.9, "low": 0.95, "close": 0.97}), "price_data.high"),
            (payload(price_data={"open": 1.0, "high": 1.1, "low": 0.9}), "price_data.close"),
            (payload(price_data={"open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, "vol": 3}), "price_data.vol"),
            (payload(confluences="HTF_BIAS_BULL"), "confluences"),
            (payload(multi_tf="yes"), "multi_tf"),
            (payload(sl=-1), "sl"),
            (payload(leverage=10), "leverage"),
            (payload(symbol=""), "symbol"),
        ]
        for body, field in cases:
            with self.subTest(field=field):
                r = self.send(body)
                self.assertError(r, 400, "validation_failed")
                self.assertEqual(r.json["error"].get("field"), field, r)
                self.assertIn(field.split(".")[-1], r.json["error"]["message"], r)

    def test_invalid_json_names_the_position(self):
        r = self.send(b'{"symbol": "EURUSD",\n "confidence": }')
        self.assertError(r, 400)
        self.assertRegex(r.json["error"]["message"], r"line 2", r)

    def test_too_large(self):
        r = self.send(b"{" + b" " * (70 << 10) + b"}")
        self.assertError(r, 413, "payload_too_large")

    # ---- duplicates and the minimum confidence

    def test_duplicate_by_client_id(self):
        p = unique()
        first = self.assertReceived(self.send(p))
        again = self.send(p)
        self.assertEqual(again.status, 200, again)
        self.assertEqual(again.json, {"status": "duplicate", "id": first})
        # same client id, different content: still the same alert
        changed = dict(p, confidence=90)
        r = self.send(changed)
        self.assertEqual((r.status, r.json["id"]), (200, first), r)
        self.assertEqual(db_rows(self.srv, "SELECT COUNT(*) FROM signals WHERE client_id = ?", (p["id"],))[0][0], 1)

    def test_duplicate_by_payload(self):
        p = payload(symbol="DUP" + uuid.uuid4().hex[:6].upper())
        first = self.assertReceived(self.send(p))
        r = self.send(dict(reversed(list(p.items()))))  # same content, other key order
        self.assertEqual((r.status, r.json), (200, {"status": "duplicate", "id": first}))
        self.assertReceived(self.send(dict(p, confidence=86)))

    def test_concurrent_copies_accept_one(self):
        p = unique()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            rs = list(ex.map(lambda _: self.send(p), range(8)))
        statuses = sorted(r.status for r in rs)
        self.assertEqual(statuses, [200] * 7 + [202], rs)
        ids = {r.json["id"] for r in rs}
        self.assertEqual(len(ids), 1, rs)

    def test_below_min_confidence_is_ignored_and_recorded(self):
        r = self.send(unique(confidence=40))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["status"], "ignored", r)
        self.assertIn("MIN_CONFIDENCE_SCORE", r.json["reason"])
        rows = db_rows(self.srv, "SELECT state, reason FROM signals WHERE id = ?", (r.json["id"],))
        self.assertEqual(rows[0][0], "filtered")
        self.assertIn("40", rows[0][1])
        # its one event is the filter, with the reason
        s = self.srv.request("GET", "/api/signals/" + r.json["id"], token=self.srv.admin_token()).json
        self.assertEqual([(e["state"], e["stage"]) for e in s["events"]], [("filtered", "confidence")], s)
        self.assertIn("MIN_CONFIDENCE_SCORE", s["events"][0]["reason"], s["events"])

    def test_history_starts_with_received_from_the_row(self):
        r = self.send(unique())
        self.assertReceived(r)
        sid = r.json["id"]
        # the accept stores the signal row only (the pipeline is paused here)
        self.assertEqual(db_rows(self.srv, "SELECT COUNT(*) FROM signal_events WHERE signal_id = ?", (sid,)), [(0,)])
        s = self.srv.request("GET", "/api/signals/" + sid, token=self.srv.admin_token()).json
        self.assertEqual(len(s["events"]), 1, s)
        e = s["events"][0]
        self.assertEqual((e["state"], e["stage"], e["detail"]), ("received", "ingest", None), e)
        self.assertEqual(e["at"], s["received_at"], s)
        self.assertEqual(e["id"], "evt_" + sid[4:], e)

    def test_correlation_id_header(self):
        r = self.send(unique(), headers={"X-Webhook-Secret": SECRET, "X-Correlation-Id": "tv-alert-42"})
        self.assertReceived(r)
        self.assertEqual(r.json["correlation_id"], "tv-alert-42")


RATE_ON = "auth=1000/s:1000,read=1000/s:1000,write=1000/s:1000,heavy=1000/s:1000"


class RateLimitTest(qgtest.ServerTest):
    SERVER_ENV = {
        "WEBHOOK_SECRET": SECRET,
        "QG_RATE_LIMITS": RATE_ON,
        "QG_WEBHOOK_RATE_PER_SYMBOL": "2",
        "QG_WEBHOOK_RATE_GLOBAL": "5",
    }

    def send(self, body):
        return self.srv.request("POST", PATH, body, headers={"X-Webhook-Secret": SECRET})

    def test_per_symbol_then_global(self):
        rs = [self.send(unique(symbol="AAA")) for _ in range(3)]
        self.assertEqual([r.status for r in rs[:2]], [202, 202], rs)
        self.assertError(rs[2], 429, "rate_limited", "PER_SYMBOL")
        self.assertGreaterEqual(int(rs[2].header("retry-after")), 1)
        # other symbols still pass until the global bucket (5/s) is empty
        statuses = [self.send(unique(symbol="S%d" % i)).status for i in range(6)]
        self.assertIn(429, statuses, statuses)
        self.assertLessEqual(statuses.count(202), 3, statuses)
        time.sleep(1.2)
        self.assertEqual(self.send(unique(symbol="AAA")).status, 202)


class RateLimitOffTest(qgtest.ServerTest):
    SERVER_ENV = {"WEBHOOK_SECRET": SECRET, "QG_WEBHOOK_RATE_PER_SYMBOL": "1", "QG_WEBHOOK_RATE_GLOBAL": "1"}

    def test_off_means_unlimited(self):
        # the harness runs with QG_RATE_LIMITS=off
        for _ in range(5):
            r = self.srv.request("POST", PATH, unique(symbol="BBB"), headers={"X-Webhook-Secret": SECRET})
            self.assertEqual(r.status, 202, r)


class HmacRequiredTest(qgtest.ServerTest):
    SERVER_ENV = {"WEBHOOK_SECRET": SECRET, "QG_WEBHOOK_HMAC": "required"}

    def test_secret_alone_is_not_enough(self):
        r = self.srv.request("POST", PATH, unique(), headers={"X-Webhook-Secret": SECRET})
        self.assertError(r, 401, "unauthorized", "required")
        body = json.dumps(unique()).encode()
        ts = str(int(time.time()))
        r = self.srv.request(
            "POST", PATH, body, headers={"X-Signature": sign(body, ts), "X-Timestamp": ts, "Content-Type": "application/json"}
        )
        self.assertEqual(r.status, 202, r)


class DurabilityTest(qgtest.ServerTest):
    SERVER_ENV = {"WEBHOOK_SECRET": SECRET}

    def test_every_202_survives_kill_9(self):
        r = self.srv.request("POST", "/api/signals/pause", token=self.srv.admin_token())
        self.assertIn(r.status, (200, 204), r)
        bodies = [unique(symbol="K%d" % (i % 7)) for i in range(60)]
        send = lambda b: self.srv.request("POST", PATH, b, headers={"X-Webhook-Secret": SECRET})  # noqa: E731
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            rs = list(ex.map(send, bodies))
        ids = [r.json["id"] for r in rs if r.status == 202]
        self.assertEqual(len(ids), 60, [r for r in rs if r.status != 202][:3])
        self.srv.kill()  # SIGKILL: no graceful flush
        stored = {row[0] for row in db_rows(self.srv, "SELECT id FROM signals")}
        self.assertTrue(set(ids) <= stored, "lost: %s" % (set(ids) - stored))
        # after a restart the duplicate table remembers them
        self.srv.start()
        again = self.srv.request("POST", PATH, bodies[0], headers={"X-Webhook-Secret": SECRET})
        self.assertEqual((again.status, again.json.get("id")), (200, ids[0]), again)


if __name__ == "__main__":
    qgtest.main()
