"""test_detect.py - the native ICT detector end to end: `quantgate detect`
on a hand-built file (table and --json webhook lines), and POST /api/bars
against the real server: every invalid input is a 400 naming the bar index
and field, bars not after the last posted one are refused, the caller needs
the developer role, and the detections go into the signal pipeline (each
answered with its ingest outcome and stored id)."""

import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402

# swing high 12 (bar 1), swing low 10.2 (bar 3); bar 4 closes above 12
# (BoS up, order block = bar 3); bar 6 closes below 10.2 (CHoCH down,
# order block = bar 4). docs/ict.md walks through it.
BARS = [
    (10, 11, 9, 10.5),
    (10.5, 12, 10, 11.5),
    (11.5, 11.8, 10.5, 11),
    (11, 11.2, 10.2, 10.4),
    (10.4, 12.5, 10.3, 12.3),
    (12.3, 12.4, 11, 11.2),
    (11.2, 11.3, 9.8, 10.0),
]
EXPECTED = [("BoS", 4), ("OB", 4), ("CHoCH", 6), ("OB", 6)]
HOUR = 3600 * 1000


class DetectCliTest(qgtest.ServerTest):
    def data(self):
        return os.path.join(qgtest.DATA, "ict", "structure_1h.csv")

    def test_table(self):
        p = qgtest.run_cli(["detect", "--data", self.data(), "--swing", "1", "--all"])
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l.split() for l in p.stdout.splitlines() if l.startswith("2024-")]
        kinds = [(r[0], r[1], r[2]) for r in rows]
        self.assertIn(("2024-01-02T02:00:00Z", "swing_high", "bear"), kinds, p.stdout)
        self.assertIn(("2024-01-02T04:00:00Z", "BoS", "bull"), kinds, p.stdout)
        self.assertIn(("2024-01-02T04:00:00Z", "OB", "bull"), kinds, p.stdout)
        self.assertIn(("2024-01-02T06:00:00Z", "CHoCH", "bear"), kinds, p.stdout)
        self.assertIn("4 signals in 7 bars of STRUCTURE_1H 1h", p.stdout)
        self.assertIn("BoS 1, CHoCH 1, FVG 0, OB 2", p.stdout)

    def test_json_lines(self):
        p = qgtest.run_cli(["detect", "--data", self.data(), "--swing", "1", "--json", "--symbol", "eurusd"])
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual([(s["signal_type"], s["timestamp"][11:13]) for s in lines],
                         [(t, "%02d" % h) for t, h in EXPECTED])
        bos = lines[0]
        self.assertEqual(bos["symbol"], "EURUSD")
        self.assertEqual(bos["timeframe"], "1h")
        self.assertEqual(bos["price_data"], {"open": 10.4, "high": 12.5, "low": 10.3, "close": 12.3})
        self.assertEqual(bos["sl"], 10.2)
        self.assertAlmostEqual(bos["tp"], 16.5)
        self.assertIn("KILLZONE_ASIA", bos["confluences"])  # 23:00 New York time
        self.assertTrue(0 <= bos["confidence"] <= 100)
        self.assertTrue(bos["id"].startswith("ict_"))
        self.assertEqual(len({s["id"] for s in lines}), 4)
        self.assertIn("4 signals in 7 bars", p.stderr)

    def test_bad_options(self):
        p = qgtest.run_cli(["detect", "--data", self.data(), "--htf", "4x"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("--htf", p.stderr)
        p = qgtest.run_cli(["detect", "--data", self.data(), "--swing", "0"])
        self.assertEqual(p.returncode, 2)
        p = qgtest.run_cli(["detect", "--data", "/nonexistent.csv"])
        self.assertEqual(p.returncode, 1)


class BarsApiTest(qgtest.ServerTest):
    SERVER_ENV = {"QG_DETECT_SWING": "1"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dev = cls.srv.make_user("developer", "dev")
        cls.client = cls.srv.make_user("client", "cli")
        # recent bars (yesterday), on the hour
        cls.t0 = (int(time.time() * 1000) // HOUR - 30) * HOUR

    def post(self, body, user=None):
        return self.srv.request("POST", "/api/bars", body, token=(user or self.dev)["access"])

    def bars(self, t0=None, n=len(BARS)):
        t0 = self.t0 if t0 is None else t0
        return [[t0 + i * HOUR, o, h, l, c, 100] for i, (o, h, l, c) in enumerate(BARS[:n])]

    def test_validation(self):
        ok = self.bars()
        cases = [
            ({"timeframe": "1h", "bars": ok}, r"symbol"),
            ({"symbol": "EURUSD", "bars": ok}, r"timeframe"),
            ({"symbol": "EURUSD", "timeframe": "1h"}, r"bars"),
            ({"symbol": "EUR USD", "timeframe": "1h", "bars": ok}, r"symbol"),
            ({"symbol": "EURUSD", "timeframe": "1h", "bars": ok, "extra": 1}, r"extra: unknown field"),
            ({"symbol": "EURUSD", "timeframe": "1h", "bars": []}, r"bars: 0 bars"),
            ({"symbol": "EURUSD", "timeframe": "1h", "bars": [ok[0], [1, 2]]}, r"bars\[1\]: must be an array"),
            ({"symbol": "EURUSD", "timeframe": "1h", "bars": [ok[0], ["yesterday", 1, 1, 1, 1, 1]]},
             r"bars\[1\]\.ts"),
            ({"symbol": "EURUSD", "timeframe": "1h", "bars": [ok[0], [ok[1][0], 10, 9, 9.5, 9.8, 1]]},
             r"bars\[1\]\.high: must be >= open, close and low"),
            ({"symbol": "EURUSD", "timeframe": "1h", "bars": [[ok[0][0], 10, 11, 10.5, 10.2, 1]]},
             r"bars\[0\]\.low"),
            ({"symbol": "EURUSD", "timeframe": "1h", "bars": [[ok[0][0], 10, 11, 9, "x", 1]]},
             r"bars\[0\]\.close: must be a number"),
            ({"symbol": "EURUSD", "timeframe": "1h", "bars": [[ok[0][0], 10, 11, 9, 10, -1]]},
             r"bars\[0\]\.volume"),
            ({"symbol": "EURUSD", "timeframe": "1h", "bars": [ok[1], ok[0]]},
             r"bars\[1\]: .* is not after bars\[0\]"),
        ]
        for body, msg in cases:
            with self.subTest(msg=msg):
                self.assertError(self.post(body), 400, "validation_failed", msg)

    def test_client_role_is_refused(self):
        r = self.post({"symbol": "EURUSD", "timeframe": "1h", "bars": self.bars()}, user=self.client)
        self.assertEqual(r.status, 403, r)

    def test_iso_timestamps_and_order_across_requests(self):
        iso = [["2024-03-01T00:00:00Z", 1, 1.2, 0.9, 1.1, 5], ["2024-03-01T01:00:00Z", 1.1, 1.3, 1.0, 1.2, 5]]
        r = self.post({"symbol": "ISOTEST", "timeframe": "1h", "bars": iso})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["bars"], 2)
        self.assertEqual(r.json["signals"], [])
        # the same bars again: nothing after the last one, refused with the index
        r = self.post({"symbol": "isotest", "timeframe": "1h", "bars": iso[1:]})
        self.assertError(r, 400, "validation_failed",
                         r"bars\[0\]: 2024-03-01T01:00:00Z is not after the last bar of ISOTEST 1h")
        # another timeframe is another detector
        r = self.post({"symbol": "ISOTEST", "timeframe": "2h", "bars": iso})
        self.assertEqual(r.status, 200, r)

    def test_detections_go_to_the_pipeline(self):
        # the first five bars: only the BoS and its order block so far
        r = self.post({"symbol": "ICTTEST", "timeframe": "1h", "bars": self.bars(n=5)})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["bars"], 5)
        got = [(s["signal"]["signal_type"], s["direction"]) for s in r.json["signals"]]
        self.assertEqual(got, [("BoS", "bull"), ("OB", "bull")])
        # the rest: the CHoCH down and its order block (the detector kept its state)
        r2 = self.post({"symbol": "ICTTEST", "timeframe": "1h", "bars": self.bars()[5:]})
        self.assertEqual(r2.status, 200, r2)
        got = [(s["signal"]["signal_type"], s["direction"]) for s in r2.json["signals"]]
        self.assertEqual(got, [("CHoCH", "bear"), ("OB", "bear")])
        for s in r.json["signals"] + r2.json["signals"]:
            sig = s["signal"]
            self.assertEqual(sig["symbol"], "ICTTEST")
            self.assertEqual(sig["timeframe"], "1h")
            self.assertTrue(sig["id"].startswith("ict_"), sig)
        bos = r.json["signals"][0]["signal"]
        self.assertEqual(bos["price_data"]["close"], 12.3)
        self.assertEqual(bos["sl"], 10.2)
        # acceptance: every detection was stored by ingest (received, or
        # ignored below MIN_CONFIDENCE_SCORE) and is readable by its id
        for s in r.json["signals"] + r2.json["signals"]:
            self.assertIn(s["status"], ("received", "ignored"), s)
            self.assertTrue(s["id"] and s["id"].startswith("sig_"), s)
        g = self.srv.request("GET", "/api/signals/" + r.json["signals"][0]["id"], token=self.dev["access"])
        self.assertEqual(g.status, 200, g)
        self.assertIn("BoS", g.text)
        self.assertIn("detector", g.text)


class BarsRestartTest(qgtest.ServerTest):
    """The live detectors survive a restart: their recent bars are stored
    and replayed at start (QG_DETECT_KEEP_BARS), so a pattern that spans
    the restart is still found, and old bars are still refused."""

    SERVER_ENV = {"QG_DETECT_SWING": "1", "QG_DETECT_KEEP_BARS": "6"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dev = cls.srv.make_user("developer", "dev")
        cls.t0 = (int(time.time() * 1000) // HOUR - 30) * HOUR

    def post(self, body):
        return self.srv.request("POST", "/api/bars", body, token=self.dev["access"])

    def bars(self):
        return [[self.t0 + i * HOUR, o, h, l, c, 100] for i, (o, h, l, c) in enumerate(BARS)]

    def restart(self):
        self.srv.stop()
        self.srv.start()
        r = self.srv.login(self.dev["email"], self.dev["password"])
        self.assertEqual(r.status, 200, r)
        type(self).dev = dict(self.dev, access=r.json["access_token"])

    def test_state_survives_a_restart(self):
        bars = self.bars()
        r = self.post({"symbol": "RESTART", "timeframe": "1h", "bars": bars[:5]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([s["signal"]["signal_type"] for s in r.json["signals"]], ["BoS", "OB"])
        # a pair that is then forgotten: its bars go too
        r = self.post({"symbol": "FORGET", "timeframe": "1h", "bars": bars[:5]})
        self.assertEqual(r.status, 200, r)
        r = self.srv.request("DELETE", "/api/bars", token=self.dev["access"],
                             query={"symbol": "forget", "timeframe": "1h"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"forgotten": True, "stored_bars_deleted": 5})
        r = self.srv.request("DELETE", "/api/bars", token=self.dev["access"],
                             query={"symbol": "FORGET", "timeframe": "1h"})
        self.assertError(r, 404, None, "no bars of FORGET 1h")
        r = self.srv.request("DELETE", "/api/bars", token=self.dev["access"], query={"symbol": "X"})
        self.assertError(r, 400, "validation_failed", "timeframe: is required")

        self.restart()
        with open(self.srv.stderr_path, errors="replace") as f:
            self.assertRegex(f.read(), r"live detector: \d+ bars of \d+ symbol/timeframe pairs replayed")
        # the replay submitted nothing again: still exactly two detector signals
        listed = self.srv.request("GET", "/api/signals", token=self.dev["access"], query={"symbol": "RESTART"})
        self.assertEqual(listed.status, 200, listed)
        self.assertEqual(len(listed.json["items"]), 2, listed.json)
        # old bars are still refused after the restart
        r = self.post({"symbol": "RESTART", "timeframe": "1h", "bars": bars[4:5]})
        self.assertError(r, 400, "validation_failed", r"bars\[0\]: .* is not after the last bar of RESTART 1h")
        # the CHoCH needs the swing low of bar 3, seen before the restart
        r = self.post({"symbol": "RESTART", "timeframe": "1h", "bars": bars[5:]})
        self.assertEqual(r.status, 200, r)
        got = [(s["signal"]["signal_type"], s["direction"]) for s in r.json["signals"]]
        self.assertEqual(got, [("CHoCH", "bear"), ("OB", "bear")])
        # the forgotten pair starts afresh: its first bars are not "old"
        r = self.post({"symbol": "FORGET", "timeframe": "1h", "bars": bars[:2]})
        self.assertEqual(r.status, 200, r)

    def test_a_failed_store_applies_nothing(self):
        bars = [[self.t0 - (60 - i) * HOUR, 10, 11, 9, 10, 1] for i in range(3)]
        con = sqlite3.connect(os.path.join(self.srv.data_dir, "quantgate.db"), timeout=10)
        try:
            con.execute("ALTER TABLE detector_bars RENAME TO detector_bars_away")
            con.commit()
            r = self.post({"symbol": "NOSTORE", "timeframe": "1h", "bars": bars})
            self.assertEqual(r.status, 500, r)
            with open(self.srv.stderr_path, errors="replace") as f:
                self.assertIn("storing the bars of NOSTORE 1h", f.read())
        finally:
            con.execute("ALTER TABLE detector_bars_away RENAME TO detector_bars")
            con.commit()
            con.close()
        # the detector never saw them: the same bars are not "old"
        r = self.post({"symbol": "NOSTORE", "timeframe": "1h", "bars": bars})
        self.assertEqual(r.status, 200, r)

    def test_trimmed_to_the_newest_bars(self):
        # keep 6: after 12 bars the store holds between 6 and 6 + 6/8
        bars = [[self.t0 - (40 - i) * HOUR, 10, 11, 9, 10, 1] for i in range(12)]
        for b in bars:
            self.assertEqual(self.post({"symbol": "TRIM", "timeframe": "1h", "bars": [b]}).status, 200)
        r = self.srv.request("DELETE", "/api/bars", token=self.dev["access"],
                             query={"symbol": "TRIM", "timeframe": "1h"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["stored_bars_deleted"], 6, r.json)


if __name__ == "__main__":
    qgtest.main()
