"""test_data.py - datasets, candles, backtest jobs, Server-Sent Events, the
vault and a restart: uploads (CSV, JSON, bad rows, wrong type), candles
resampled and checked against our own aggregation of the CSV, a backtest job
whose metrics equal `quantgate backtest --json` on the same file, the event
stream ending in `done`, secrets that never come back in plain text, and
everything still there after a graceful restart on the same data dir."""

import calendar
import http.client
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402
from qgtest import upload  # noqa: E402


def iso_ms(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) * 1000


def read_csv(path):
    bars = []
    with open(path) as f:
        next(f)
        for line in f:
            line = line.strip()
            if not line:
                continue
            t, o, h, l, c, v = line.split(",")
            bars.append([iso_ms(t), float(o), float(h), float(l), float(c), float(v)])
    return bars


def resample(bars, step_ms, lo, hi):
    out = {}
    for b in bars:
        if not (lo <= b[0] < hi):
            continue
        k = b[0] // step_ms * step_ms
        if k not in out:
            out[k] = list(b)
            out[k][0] = k
        else:
            a = out[k]
            a[2] = max(a[2], b[2])
            a[3] = min(a[3], b[3])
            a[4] = b[4]
            a[5] += b[5]
    return [out[k] for k in sorted(out)]


def close(a, b, rel=1e-9):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and math.isnan(a):
            return isinstance(b, float) and math.isnan(b)
        return abs(a - b) <= rel * max(1.0, abs(a), abs(b))
    return a == b


def read_sse(resp, limit=10000):
    """Yields (event, data) pairs from a text/event-stream response."""
    event, data = "message", []
    for _ in range(limit):
        line = resp.readline()
        if not line:
            return
        line = line.decode().rstrip("\r\n")
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


class DataTest(qgtest.ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.srv
        cls.dev = s.make_user("developer")
        cls.gen = os.path.join(s.tmp, "gen.csv")
        p = qgtest.run_cli(["gen-data", "--bars", "5000", "--timeframe", "1m", "--seed", "1", "--out", cls.gen, "--quiet"])
        assert p.returncode == 0, p.stderr
        r = upload(s, cls.dev["access"], cls.gen, name="gen-5000", symbol="GEN")
        assert r.status == 201, r
        cls.ds = r.json

    def test_upload_csv_json(self):
        s, t = self.srv, self.dev["access"]
        d = self.ds
        self.assertTrue(d["id"].startswith("ds_"), d)
        self.assertEqual(d["rows"], 5000)
        self.assertEqual(d["name"], "gen-5000")
        self.assertEqual(d["symbol"], "GEN")
        self.assertEqual(d["timeframe"], "1m")
        self.assertEqual(d["first"], "2024-01-01T00:00:00Z")
        self.assertEqual(d["skipped"], 0)
        # bytes is the size of the stored (re-formatted) CSV, not of the upload
        self.assertGreater(d["bytes"], 5000 * 30)
        r = upload(s, t, os.path.join(qgtest.DATA, "bars_good.csv"), name="good")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["rows"], 5)
        self.assertEqual(r.json["first"], "2024-01-01T00:00:00Z")
        self.assertEqual(r.json["last"], "2024-01-01T00:04:00Z")
        r = upload(s, t, os.path.join(qgtest.DATA, "bars_good.json"), ctype="application/json", name="goodjson", timeframe="1m")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["rows"], 3)
        self.assertEqual(r.json["timeframe"], "1m")
        js = r.json["id"]
        r = s.request("GET", "/api/datasets/%s/candles" % js, token=t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["candles"][0], [1704067200000, 100, 101, 99, 100.5, 10])
        self.assertEqual(r.json["candles"][2][0], 1704067320000)
        # list and get
        r = s.request("GET", "/api/datasets", token=t)
        self.assertEqual(r.status, 200, r)
        ids = [i["id"] for i in r.json["items"]]
        self.assertIn(self.ds["id"], ids)
        self.assertIn(js, ids)
        self.assertEqual(ids[0], js, "newest first")
        r = s.request("GET", "/api/datasets", token=t, query={"limit": 1})
        self.assertEqual(len(r.json["items"]), 1)
        self.assertTrue(r.json["next"])
        r2 = s.request("GET", "/api/datasets", token=t, query={"limit": 1, "before": r.json["next"]})
        self.assertEqual(r2.status, 200, r2)
        self.assertNotEqual(r2.json["items"][0]["id"], r.json["items"][0]["id"])
        r = s.request("GET", "/api/datasets/" + self.ds["id"], token=t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["rows"], 5000)

    def test_upload_errors(self):
        s, t = self.srv, self.dev["access"]
        bad = os.path.join(qgtest.DATA, "bars_bad.csv")
        r = upload(s, t, bad)
        self.assertError(r, 400, "validation_failed", r"\b3:3\b")
        self.assertIn("high", r.json["error"]["message"])
        r = upload(s, t, bad, lenient="true")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["rows"], 3)
        self.assertEqual(r.json["skipped"], 5)
        r = upload(s, t, os.path.join(qgtest.DATA, "bars_bad.json"), ctype="application/json")
        self.assertError(r, 400, "validation_failed")
        r = upload(s, t, os.path.join(qgtest.DATA, "bars_good.csv"), ctype="application/xml")
        self.assertError(r, 415, "unsupported_media_type")
        r = upload(s, t, b"", ctype="text/csv")
        self.assertError(r, 400, "validation_failed")
        r = upload(s, t, os.path.join(qgtest.DATA, "bars_good.csv"), timeframe="7q")
        self.assertError(r, 400, "validation_failed", "timeframe")

    def test_candles(self):
        s, t = self.srv, self.dev["access"]
        bars = read_csv(self.gen)
        base = "/api/datasets/%s/candles" % self.ds["id"]
        # raw, first page
        r = s.request("GET", base, token=t, query={"limit": 10})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["timeframe"], "1m")
        self.assertIs(r.json["truncated"], True)
        self.assertEqual(len(r.json["candles"]), 10)
        for got, want in zip(r.json["candles"], bars[:10]):
            self.assertTrue(all(close(a, b) for a, b in zip(got, want)), (got, want))
        # default limit 1000
        r = s.request("GET", base, token=t)
        self.assertEqual(len(r.json["candles"]), 1000)
        # resampled 1h between from and to
        lo, hi = iso_ms("2024-01-01T02:00:00Z"), iso_ms("2024-01-01T06:00:00Z")
        r = s.request("GET", base, token=t, query={"from": "2024-01-01T02:00:00Z", "to": "2024-01-01T06:00:00Z", "timeframe": "1h"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["timeframe"], "1h")
        self.assertIs(r.json["truncated"], False)
        want = resample(bars, 3600000, lo, hi)
        self.assertEqual(len(want), 4)
        self.assertEqual(len(r.json["candles"]), 4, r.json)
        for got, w in zip(r.json["candles"], want):
            self.assertEqual(len(got), 6)
            self.assertTrue(all(close(a, b, 1e-9) for a, b in zip(got, w)), (got, w))
        # 15m over a whole day, date-only from/to
        lo, hi = iso_ms("2024-01-02T00:00:00Z"), iso_ms("2024-01-03T00:00:00Z")
        r = s.request("GET", base, token=t, query={"from": "2024-01-02", "to": "2024-01-03", "timeframe": "15m", "limit": 10000})
        self.assertEqual(r.status, 200, r)
        want = resample(bars, 900000, lo, hi)
        self.assertEqual(len(r.json["candles"]), len(want))
        for got, w in zip(r.json["candles"], want):
            self.assertTrue(all(close(a, b, 1e-9) for a, b in zip(got, w)), (got, w))
        # errors
        self.assertError(s.request("GET", base, token=t, query={"timeframe": "bogus"}), 400, "validation_failed", "timeframe")
        self.assertError(s.request("GET", base, token=t, query={"from": "yesterday-ish"}), 400, "validation_failed", "from")
        self.assertError(s.request("GET", base, token=t, query={"limit": "20000"}), 400, "validation_failed", "limit")

    def _cli_backtest(self, extra):
        p = qgtest.run_cli(["backtest", "--data", self.gen, "--strategy", "sma_cross", "--json", "--quiet"] + extra)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_backtest_matches_cli(self):
        s, t = self.srv, self.dev["access"]
        cases = [
            (
                {"params": {"fast": 10, "slow": 30}, "cash": 10000, "fee_bps": 10, "slippage_bps": 2, "direction": "long"},
                ["--param", "fast=10", "--param", "slow=30", "--cash", "10000", "--fee-bps", "10", "--slippage-bps", "2", "--direction", "long"],
            ),
            (
                {"params": {"fast": 5, "slow": 20}, "timeframe": "15m", "cash": 5000, "direction": "both", "from": "2024-01-02", "to": "2024-01-03T12:00:00Z"},
                ["--param", "fast=5", "--param", "slow=20", "--timeframe", "15m", "--cash", "5000", "--direction", "both", "--from", "2024-01-02", "--to", "2024-01-03T12:00:00Z"],
            ),
        ]
        for body, args in cases:
            body = dict(body, dataset_id=self.ds["id"], strategy="sma_cross")
            r = s.request("POST", "/api/backtests", body, token=t)
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["status"], "queued")
            self.assertTrue(r.json["id"].startswith("bt_"))
            st = qgtest.wait_backtest(s, t, r.json["id"])
            self.assertEqual(st["status"], "done", st)
            self.assertEqual(st["progress"], 1)
            self.assertIsNone(st["error"])
            for k in ("created_at", "started_at", "finished_at", "request"):
                self.assertTrue(st.get(k), k)
            cli = self._cli_backtest(args)
            m = st["metrics"]
            self.assertIsInstance(m, dict, st)
            diffs = [(k, v, m.get(k)) for k, v in cli["metrics"].items() if not close(v, m.get(k))]
            self.assertEqual(diffs, [], "API metrics differ from the CLI's (key, cli, api)")
            self.assertEqual(len(st["trades"]), len(cli["trades"]))
            for a, b in zip(st["trades"], cli["trades"]):
                self.assertTrue(all(close(b[k], a.get(k)) for k in b), (a, b))
        r = s.request("GET", "/api/backtests", token=t)
        self.assertGreaterEqual(len(r.json["items"]), 2)

    def test_backtest_errors(self):
        s, t = self.srv, self.dev["access"]
        self.assertError(s.request("POST", "/api/backtests", {"dataset_id": self.ds["id"], "strategy": "no_such"}, token=t), 400, "validation_failed", "strategy")
        self.assertError(s.request("POST", "/api/backtests", {"dataset_id": self.ds["id"], "strategy": "sma_cross", "cash": -5}, token=t), 400, "validation_failed", "cash")
        self.assertError(s.request("POST", "/api/backtests", {"dataset_id": self.ds["id"], "strategy": "sma_cross", "params": {"nope": 1}}, token=t), 400, "validation_failed", "nope")
        r = s.request("POST", "/api/backtests", {"dataset_id": "ds_nope", "strategy": "sma_cross"}, token=t)
        self.assertIn(r.status, (400, 404), r)
        r = s.request("GET", "/api/strategies", token=t)
        self.assertEqual(r.status, 200, r)
        names = json.dumps(r.json)
        for n in ("sma_cross", "ema_cross", "rsi_reversion"):
            self.assertIn(n, names)

    def test_sse_events(self):
        s, t = self.srv, self.dev["access"]
        r = s.request("POST", "/api/backtests", {"dataset_id": self.ds["id"], "strategy": "ema_cross"}, token=t)
        self.assertEqual(r.status, 202, r)
        bid = r.json["id"]
        for attempt in range(2):  # live, then after completion
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
            try:
                conn.request("GET", "/api/backtests/%s/events" % bid, headers={"Authorization": "Bearer " + t, "Accept": "text/event-stream"})
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                self.assertTrue(resp.getheader("Content-Type", "").startswith("text/event-stream"), resp.getheaders())
                events = list(read_sse(resp))
                rest = resp.read()
            finally:
                conn.close()
            self.assertTrue(events, "no events")
            kinds = [e for e, _ in events]
            self.assertEqual(kinds[-1], "done", kinds)
            self.assertEqual(kinds.count("done"), 1)
            self.assertTrue(all(k == "progress" for k in kinds[:-1]), kinds)
            prog = [json.loads(d)["progress"] for e, d in events if e == "progress"]
            self.assertEqual(prog, sorted(prog))
            self.assertTrue(all(0 <= p <= 1 for p in prog))
            final = json.loads(events[-1][1])
            self.assertEqual(final["id"], bid)
            self.assertEqual(final["status"], "done")
            self.assertIsInstance(final["metrics"], dict)
            self.assertEqual(rest.strip(), b"")

    def test_sse_large_result_live(self):
        """A job still running when the stream opens, whose final status
        object (metrics + ~5800 trades) is over 1 MiB: the stream must still
        end with `event: done` carrying it."""
        s, t = self.srv, self.dev["access"]
        big = os.path.join(s.tmp, "big.csv")
        p = qgtest.run_cli(["gen-data", "--bars", "300000", "--timeframe", "1m", "--seed", "2", "--out", big, "--quiet"])
        self.assertEqual(p.returncode, 0, p.stderr)
        r = upload(s, t, big, name="big")
        self.assertEqual(r.status, 201, r)
        r = s.request("POST", "/api/backtests", {"dataset_id": r.json["id"], "strategy": "sma_cross"}, token=t)
        self.assertEqual(r.status, 202, r)
        bid = r.json["id"]
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
        try:
            conn.request("GET", "/api/backtests/%s/events" % bid, headers={"Authorization": "Bearer " + t})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            cache_control = resp.getheader("Cache-Control")
            events = list(read_sse(resp, limit=1000000))
        finally:
            conn.close()
        kinds = [e for e, _ in events]
        self.assertTrue(kinds, "empty stream")
        self.assertEqual(kinds[-1], "done", "stream ended without the final event: %s" % kinds[-5:])
        final = json.loads(events[-1][1])
        self.assertEqual(final["status"], "done")
        self.assertGreater(len(final["trades"]), 1000)
        self.assertEqual(final, qgtest.wait_backtest(s, t, bid))
        self.assertEqual(cache_control, "no-cache", "Cache-Control sent once")

    def test_vault_round_trip(self):
        s = self.srv
        admin = s.admin_token()
        value = s.secret("sk-test-" + qgtest.pysecrets.token_hex(20))
        r = s.request("PUT", "/api/secrets/OPENAI_API_KEY", {"value": value}, token=admin)
        self.assertIn(r.status, (200, 201, 204), r)
        r = s.request("PUT", "/api/secrets/TELEGRAM_BOT_TOKEN", {"value": s.secret("tg-" + qgtest.pysecrets.token_hex(16))}, token=admin)
        self.assertIn(r.status, (200, 201, 204), r)
        self.assertError(s.request("PUT", "/api/secrets/bad%20name%21", {"value": "x" * 12}, token=admin), 400, "validation_failed", "name")
        self.assertError(s.request("PUT", "/api/secrets/" + "N" * 65, {"value": "x" * 12}, token=admin), 400, "validation_failed", "name")
        self.assertError(s.request("PUT", "/api/secrets/EMPTY", {"value": ""}, token=admin), 400, "validation_failed", "value")
        self.assertError(s.request("PUT", "/api/secrets/NOVALUE", {}, token=admin), 400, "validation_failed", "value")
        r = s.request("GET", "/api/secrets", token=admin)
        self.assertEqual(r.status, 200, r)
        items = {i["name"]: i for i in r.json["items"]}
        self.assertIn("OPENAI_API_KEY", items)
        m = items["OPENAI_API_KEY"]["masked"]
        self.assertNotEqual(m, value)
        self.assertNotIn(value, m)
        self.assertLess(len(m), len(value) // 2)
        self.assertTrue(m.endswith(value[-4:]), m)
        self.assertIn("updated_at", items["OPENAI_API_KEY"])
        # replace, delete
        value2 = s.secret("sk-test-" + qgtest.pysecrets.token_hex(20))
        r = s.request("PUT", "/api/secrets/OPENAI_API_KEY", {"value": value2}, token=admin)
        self.assertIn(r.status, (200, 201, 204), r)
        r = s.request("GET", "/api/secrets", token=admin)
        self.assertTrue({i["name"]: i for i in r.json["items"]}["OPENAI_API_KEY"]["masked"].endswith(value2[-4:]))
        self.assertEqual(s.request("DELETE", "/api/secrets/TELEGRAM_BOT_TOKEN", token=admin).status, 204)
        self.assertError(s.request("DELETE", "/api/secrets/TELEGRAM_BOT_TOKEN", token=admin), 404, "not_found")
        r = s.request("GET", "/api/secrets", token=admin)
        self.assertNotIn("TELEGRAM_BOT_TOKEN", [i["name"] for i in r.json["items"]])
        for body in s.bodies_seen:
            self.assertNotIn(value, body)
            self.assertNotIn(value2, body)

    def test_zz_restart_keeps_everything(self):
        s = self.srv
        admin = s.admin_token()
        u = s.make_user("developer", "restart")
        r = upload(s, u["access"], os.path.join(qgtest.DATA, "bars_good.csv"), name="keep")
        self.assertEqual(r.status, 201, r)
        ds = r.json["id"]
        r = s.request("POST", "/api/backtests", {"dataset_id": self.ds["id"], "strategy": "sma_cross"}, token=self.dev["access"])
        self.assertEqual(r.status, 202, r)
        bt = r.json["id"]
        before = qgtest.wait_backtest(s, self.dev["access"], bt)
        r = s.request("POST", "/api/tokens", {"name": "keep", "scope": "write"}, token=u["access"])
        self.assertEqual(r.status, 201, r)
        mtok = r.json["token"]
        secret = s.secret("sk-keep-" + qgtest.pysecrets.token_hex(16))
        self.assertIn(s.request("PUT", "/api/secrets/KEEP_ME", {"value": secret}, token=admin).status, (200, 201, 204))
        masked = {i["name"]: i["masked"] for i in s.request("GET", "/api/secrets", token=admin).json["items"]}

        s.stop()  # asserts exit 0 and scans the logs
        s.start()

        self.assertEqual(s.request("GET", "/api/me", token=u["access"]).status, 200, "access token survives a restart")
        self.assertEqual(s.login(u["email"], u["password"]).status, 200)
        r = s.request("POST", "/api/auth/refresh", {"refresh_token": u["refresh"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(s.login(s.admin_email, s.admin_password).status, 200)
        r = s.request("GET", "/api/datasets/" + ds, token=u["access"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["rows"], 5)
        self.assertEqual(s.request("GET", "/api/datasets/%s/candles" % ds, token=u["access"]).json["candles"][0][1], 100.0)
        r = s.request("GET", "/api/backtests/" + bt, token=self.dev["access"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "done")
        self.assertEqual(r.json["metrics"], before["metrics"])
        r = s.request("GET", "/api/me", token=mtok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["id"], u["id"])
        r = s.request("GET", "/api/secrets", token=s.admin_token())
        self.assertEqual({i["name"]: i["masked"] for i in r.json["items"]}, masked)
        # no new first-admin line on the second start
        with open(s.stdout_path) as f:
            self.assertNotIn("first admin", f.read().lower())


if __name__ == "__main__":
    qgtest.main()
