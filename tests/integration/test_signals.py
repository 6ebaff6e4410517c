"""test_signals.py - the signal pipeline and its API against the real server.

A local Telegram-compatible server (fake_notify.py) receives the alerts.
Covered: a good signal in a killzone goes received -> analysed -> notified
-> done with one Telegram message per chat id and the analysis stored;
drops by confluence count, killzone (judged on the signal's timestamp,
edges on both sides of the US daylight-saving change), cooldown, policy
(drop, defer until QG_SIGNAL_DEFER_MAX, escalate), score threshold, each
with its reason in the history; the score values; the dead-letter queue
(notifications failing for good -> parked with the error; replay after the
receiver is fixed -> done with exactly one message; discard); outcomes and
/api/stats (win rate, expectancy) and similar past setups with their
outcomes in a later analysis; pause and resume; the SSE stream; /metrics;
with a remember queue of one analysis, the workers wait for the rememberer
instead of dropping: every analysis is in memory; a configured plan whose
notify step's timeout_s cancels the send still on its way.
"""

import json
import os
import socket
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402
from fake_notify import FakeNotify  # noqa: E402

SECRET = "whsec-" + uuid.uuid4().hex
TOKEN = "123456:" + uuid.uuid4().hex
CHATS = ("111", "222")
TERMINAL = ("done", "filtered", "failed", "escalated")

# 2026-03-10 is a Tuesday after the US switched to daylight saving time
# (2026-03-08) and before the UK does (2026-03-29): new_york 07:00-10:00
# local is 11:00-14:00 UTC, london 07:00-10:00 local is 07:00-10:00 UTC.
IN_NY = "2026-03-10T12:30:00Z"
OUTSIDE = "2026-03-10T16:00:00Z"

POLICIES = [
    {"name": "no-blocked", "blocked_symbols": ["BLOCKD"]},
    {"name": "defer-low", "when": {"symbol": "DEFERX"}, "min_confidence": 99, "action": "defer"},
    {"name": "esc-low", "when": {"symbol": "ESCALX"}, "min_confidence": 99, "action": "escalate"},
]

FAKE = FakeNotify(token=TOKEN).start()


def sym(prefix="S"):
    return (prefix + uuid.uuid4().hex[:8]).upper()


def payload(symbol, ts=IN_NY, signal_type="CHoCH", confluences=("HTF_BIAS_BULL", "FVG", "OB"), **over):
    p = {
        "symbol": symbol,
        "timeframe": "15m",
        "signal_type": signal_type,
        "confidence": 85,
        "timestamp": ts,
        "price_data": {"open": 1.085, "high": 1.0875, "low": 1.0825, "close": 1.0865},
        "sl": 1.08,
        "tp": 1.095,
        "multi_tf": True,
        "confluences": list(confluences),
        "id": "t-" + uuid.uuid4().hex,
    }
    p.update(over)
    return p


class SignalsTest(qgtest.ServerTest):
    SERVER_ENV = {
        "WEBHOOK_SECRET": SECRET,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_ID": ",".join(CHATS),
        "QG_TELEGRAM_API_URL": FAKE.url,
        "QG_NOTIFY_RETRIES": "1",
        "QG_NOTIFY_RETRY_BASE_MS": "10",
        "QG_SIGNAL_RETRIES": "1",
        "QG_SIGNAL_RETRY_BASE_MS": "10",
        "QG_SIGNAL_COOLDOWN_S": "600",
        "QG_SIGNAL_SCORE_THRESHOLD": "95",
        "QG_SIGNAL_MIN_CONFLUENCES": "2",
        "QG_SIGNAL_POLICY": json.dumps(POLICIES),
        "QG_SIGNAL_DEFER_S": "1",
        "QG_SIGNAL_DEFER_MAX": "2",
    }

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.srv.secret(SECRET)
        cls.srv.secret(TOKEN)
        cls.admin = cls.srv.admin_token()
        cls.client = cls.srv.make_user("client")["access"]
        cls.dev = cls.srv.make_user("developer")["access"]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()

    # -- helpers
    def send(self, body):
        r = self.srv.request("POST", "/api/webhook/receive", body, headers={"X-Webhook-Secret": SECRET})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["status"], "received", r)
        return r.json["id"]

    def get(self, sid, token=None):
        r = self.srv.request("GET", "/api/signals/" + sid, token=token or self.client)
        self.assertEqual(r.status, 200, r)
        return r.json

    def wait_state(self, sid, states=TERMINAL, timeout=30):
        deadline = time.time() + timeout
        while True:
            s = self.get(sid)
            if s["state"] in states:
                return s
            if time.time() > deadline:
                self.fail("signal %s still %s after %ss: %s" % (sid, s["state"], timeout, json.dumps(s)[:2000]))
            time.sleep(0.1)

    def messages_for(self, sid):
        return [m for m in FAKE.messages_for("telegram") if sid in (m.get("text") or "")]


    # -- the happy path
    def test_good_signal_flow(self):
        sid = self.send(payload(sym()))
        s = self.wait_state(sid)
        self.assertEqual(s["state"], "done", s)
        self.assertEqual(s["session"], "new_york", s)
        self.assertEqual(s["score"], 100, s)  # 60 + 3*10 + 10 killzone + 10 CHoCH, capped
        st = states_of(s)
        for a, b in (("received", "analysed"), ("analysed", "notified"), ("notified", "done")):
            self.assertLess(st.index(a), st.index(b), st)
        # notified and done are written together: both events stay, each
        # with its own reason, and the row ends at done with the analysis
        ev = {e["state"]: e for e in s["events"]}
        self.assertEqual(ev["notified"]["reason"], "2 of 2 targets delivered", ev["notified"])
        self.assertEqual((ev["notified"]["stage"], ev["done"]["stage"]), ("notify", "done"), s["events"])
        self.assertIsNone(ev["done"]["reason"], ev["done"])
        self.assertIsNone(s.get("reason"), s)
        an = s["analysis"]
        for k in ("score", "risk", "entry", "exit", "explanation"):
            self.assertIn(k, an, an)
        self.assertTrue(0 <= an["score"] <= 100, an)
        self.assertEqual(len(s["deliveries"]), 2, s["deliveries"])
        self.assertEqual({d["status"] for d in s["deliveries"]}, {"sent"})
        self.assertEqual(s["payload"]["symbol"], s["symbol"])
        # exactly one message per chat id
        time.sleep(0.3)
        msgs = self.messages_for(sid)
        self.assertEqual(sorted(str(m["chat_id"]) for m in msgs), sorted(CHATS), msgs)
        # the list finds it with filters, newest first
        r = self.srv.request("GET", "/api/signals", token=self.client, query={"symbol": s["symbol"], "state": "done"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([i["id"] for i in r.json["items"]], [sid])
        self.assertIsNone(r.json["next"])

    def test_list_pagination_and_validation(self):
        symbol = sym()
        ids = [self.send(payload(symbol, confluences=["A"], ts="2026-03-10T12:%02d:00Z" % i)) for i in range(3)]
        for i in ids:
            self.wait_state(i)
        r = self.srv.request("GET", "/api/signals", token=self.client, query={"symbol": symbol, "limit": 2})
        self.assertEqual([i["id"] for i in r.json["items"]], ids[::-1][:2], r)
        self.assertIsNotNone(r.json["next"])
        r2 = self.srv.request(
            "GET", "/api/signals", token=self.client, query={"symbol": symbol, "limit": 2, "before": r.json["next"]}
        )
        self.assertEqual([i["id"] for i in r2.json["items"]], [ids[0]], r2)
        self.assertIsNone(r2.json["next"])
        self.assertError(self.srv.request("GET", "/api/signals", token=self.client, query={"state": "bogus"}), 400, "validation_failed", "state")
        self.assertError(self.srv.request("GET", "/api/signals/sig_nope", token=self.client), 404)
        self.assertEqual(self.srv.request("GET", "/api/signals").status, 401)

    # -- drops, each with its reason
    def assertFiltered(self, sid, stage, reason_re):
        s = self.wait_state(sid)
        self.assertEqual(s["state"], "filtered", s)
        self.assertEqual(s["stage"], stage, s)
        self.assertRegex(s["reason"], reason_re, s)
        last = s["events"][-1]
        self.assertEqual((last["state"], last["stage"]), ("filtered", stage), s["events"])
        self.assertRegex(last["reason"], reason_re)
        self.assertEqual(self.messages_for(sid), [])
        return s

    def test_filtered_by_confluences(self):
        sid = self.send(payload(sym(), confluences=["FVG"]))
        self.assertFiltered(sid, "confluence", r"1 confluence, minimum 2")

    def test_killzone_edges_and_dst(self):
        cases = [
            ("2026-03-10T10:59:00Z", False),  # after london (10:00 GMT), before new_york (07:00 EDT)
            ("2026-03-10T11:00:00Z", True),  # new_york opens at 07:00 EDT
            ("2026-03-10T13:59:00Z", True),
            ("2026-03-10T14:00:00Z", False),  # new_york closes at 10:00 EDT
            ("2026-03-06T11:30:00Z", False),  # before the switch: 06:30 EST
            ("2026-03-06T12:00:00Z", True),  # 07:00 EST
            ("2026-03-10T07:00:00Z", True),  # london 07:00 GMT
            (OUTSIDE, False),
        ]
        for ts, inside in cases:
            sid = self.send(payload(sym("K"), ts=ts))
            s = self.wait_state(sid)
            if inside:
                self.assertEqual(s["state"], "done", (ts, s["reason"]))
                self.assertIn(s["session"], ("new_york", "london"), ts)
            else:
                self.assertEqual((s["state"], s["stage"]), ("filtered", "killzone"), (ts, s))
                self.assertRegex(s["reason"], r"outside every session window", ts)

    def test_cooldown(self):
        symbol = sym("C")
        first = self.send(payload(symbol, ts="2026-03-10T12:00:00Z"))
        self.assertEqual(self.wait_state(first)["state"], "done")
        second = self.send(payload(symbol, ts="2026-03-10T12:05:00Z"))
        self.assertFiltered(second, "cooldown", r"cooling down: .* of 600 s left")
        # another signal type of the same symbol is not cooling down
        other = self.send(payload(symbol, ts="2026-03-10T12:06:00Z", signal_type="BoS"))
        self.assertEqual(self.wait_state(other)["state"], "done")

    def test_policy_drop_with_decision_recorded(self):
        sid = self.send(payload("BLOCKD", ts="2026-03-10T12:%02d:%02dZ" % (time.time() % 60, time.time() % 60)))
        s = self.assertFiltered(sid, "policy", r"blocked_symbols.*no-blocked")
        d = s["events"][-1]["detail"]
        self.assertEqual(d["action"], "drop", d)
        self.assertEqual(d["policy"], "no-blocked", d)
        # an allowed signal records the verdict too
        ok = self.wait_state(self.send(payload(sym())))
        pol = [e for e in ok["events"] if e["stage"] == "policy"]
        self.assertEqual(len(pol), 1, ok["events"])
        self.assertEqual(pol[0]["detail"]["action"], "allow")

    def test_policy_defer_then_give_up(self):
        sid = self.send(payload("DEFERX", ts="2026-03-10T12:%02d:00Z" % (int(time.time()) % 60)))
        s = self.wait_state(sid, states=("filtered", "done", "failed", "escalated"), timeout=30)
        self.assertEqual((s["state"], s["stage"]), ("filtered", "policy"), s)
        self.assertRegex(s["reason"], r"deferred 2 times")
        self.assertEqual(states_of(s).count("deferred"), 2, states_of(s))

    def test_policy_escalate(self):
        sid = self.send(payload("ESCALX", ts="2026-03-10T12:%02d:00Z" % (int(time.time()) % 60)))
        s = self.wait_state(sid)
        self.assertEqual(s["state"], "escalated", s)
        self.assertRegex(s["reason"], r"confidence 85 below min_confidence 99")
        FAKE.wait_for(1, timeout=10)
        time.sleep(0.3)
        msgs = self.messages_for(sid)
        self.assertEqual(len(msgs), 2, msgs)
        self.assertTrue(all("ESCALATION" in m["text"] for m in msgs), msgs)

    def test_scoring_and_threshold(self):
        # FVG with 2 confluences in a killzone: 60 + 20 + 10 = 90 < 95
        low = self.send(payload(sym(), signal_type="FVG", confluences=["A", "B"]))
        s = self.assertFiltered(low, "threshold", r"score 90 below threshold 95")
        self.assertEqual(s["score"], 90)
        # BoS with 2 confluences: 60 + 20 + 10 + 10 = 100
        hi = self.wait_state(self.send(payload(sym(), signal_type="BoS", confluences=["A", "B"])))
        self.assertEqual((hi["state"], hi["score"]), ("done", 100), hi)

    # -- the dead-letter queue
    def test_dlq_replay_and_discard(self):
        FAKE.fail_next("telegram", 500, n=1000)
        try:
            sid = self.send(payload(sym("D")))
            s = self.wait_state(sid)
            self.assertEqual((s["state"], s["stage"]), ("failed", "notify"), s)
            self.assertRegex(s["error"], r"notify: all 2 targets failed")
            self.assertTrue(all(d["status"] == "failed" for d in s["deliveries"]), s["deliveries"])
            r = self.srv.request("GET", "/api/dlq", token=self.admin)
            self.assertEqual(r.status, 200, r)
            row = [i for i in r.json["items"] if i["id"] == sid]
            self.assertEqual(len(row), 1, r.json)
            self.assertEqual(row[0]["stage"], "notify")
            self.assertEqual(row[0]["attempts"], 2)
            self.assertRegex(row[0]["error"], r"500|failed")
            self.assertIsNotNone(s["dlq"])
            # a second one to discard
            other = self.send(payload(sym("D")))
            self.assertEqual(self.wait_state(other)["state"], "failed")
        finally:
            FAKE.reset()
        self.assertEqual(self.srv.request("GET", "/api/dlq", token=self.client).status, 403)
        r = self.srv.request("POST", "/api/dlq/%s/replay" % sid, token=self.admin)
        self.assertEqual(r.status, 202, r)
        s = self.wait_state(sid, states=("done", "failed"))
        self.assertEqual(s["state"], "done", s)
        self.assertIsNone(s["dlq"])
        time.sleep(0.3)
        msgs = self.messages_for(sid)
        self.assertEqual(sorted(str(m["chat_id"]) for m in msgs), sorted(CHATS), msgs)
        self.assertIn("replayed from the dead-letter queue", [e["reason"] for e in s["events"]])
        # replaying again: not parked any more
        self.assertError(self.srv.request("POST", "/api/dlq/%s/replay" % sid, token=self.admin), 404)
        # discard
        r = self.srv.request("DELETE", "/api/dlq/" + other, token=self.admin)
        self.assertEqual(r.status, 204, r)
        ids = [i["id"] for i in self.srv.request("GET", "/api/dlq", token=self.admin).json["items"]]
        self.assertNotIn(other, ids)
        self.assertNotIn(sid, ids)
        o = self.get(other)
        self.assertEqual(o["state"], "failed")
        self.assertEqual(o["events"][-1]["reason"], "discarded from the dead-letter queue")
        self.assertError(self.srv.request("DELETE", "/api/dlq/" + other, token=self.admin), 404)
        self.assertEqual(self.messages_for(other), [])

    # -- outcomes and stats
    def test_alerts_queued_behind_a_429_go_out_merged(self):
        # The first signal's sends to both chats get a 429 (retry_after 1 s):
        # while they wait, alerts for those chats queue and then go out
        # joined, each exactly once per chat, each recorded as sent.
        FAKE.fail_next("telegram", 429, n=2, retry_after=1)
        # A setup unlike the other tests' (they look for their own among
        # the most similar ones in memory).
        unlike = dict(timeframe="4h", signal_type="Sweep", confluences=("EQUAL_LOWS", "PDL_TAKEN", "DISCOUNT"))
        try:
            first = self.send(payload(sym("Q"), **unlike))
            time.sleep(0.3)
            rest = [self.send(payload(sym("Q"), **unlike)) for _ in range(5)]
            done = [self.wait_state(i) for i in [first] + rest]
        finally:
            FAKE.clear_failures()
        time.sleep(0.3)
        for s in done:
            self.assertEqual(s["state"], "done", s)
            self.assertEqual({d["status"] for d in s["deliveries"]}, {"sent"}, s["deliveries"])
            msgs = self.messages_for(s["id"])
            self.assertEqual(sorted(str(m["chat_id"]) for m in msgs), sorted(CHATS), msgs)
        merged = [m for m in FAKE.messages_for("telegram") if sum(i in m["text"] for i in rest) >= 2]
        self.assertTrue(merged, "no message carried two of the queued alerts")
        for m in merged:
            self.assertIn("\n\n\U0001F3AF TRADING ALERT", m["text"])
            self.assertLessEqual(len(m["text"]), 4096)
        r = self.srv.request("GET", "/metrics")
        line = [l for l in r.text.splitlines() if l.startswith('quantgate_notify_merged_total{channel="telegram"}')]
        self.assertGreaterEqual(float(line[0].split()[-1]), 2, line)

    def test_outcomes_stats_and_similar_setups(self):
        symbol = sym("O")
        # A confluence of their own makes these four signals each other's
        # nearest setups, whatever the other tests left in memory (the
        # search spans every symbol).
        conf = ("HTF_BIAS_BULL", "FVG", "OB", "TAG_" + symbol)
        a = self.send(payload(symbol, ts="2026-03-10T12:00:00Z", confluences=conf))
        b = self.send(payload(symbol, ts="2026-03-10T12:00:00Z", signal_type="BoS", confluences=conf))
        c = self.send(payload(symbol, ts="2026-03-10T12:00:00Z", signal_type="OB", confluences=conf))
        for i in (a, b, c):
            self.assertEqual(self.wait_state(i)["state"], "done")
        path = "/api/signals/%s/outcome"
        self.assertEqual(self.srv.request("POST", path % a, {"outcome": "win", "pnl": 10}, token=self.client).status, 403)
        self.assertError(self.srv.request("POST", path % a, {"outcome": "maybe"}, token=self.dev), 400, "validation_failed", "outcome")
        self.assertError(self.srv.request("POST", path % a, {"outcome": "win", "x": 1}, token=self.dev), 400, "validation_failed", "x")
        self.assertError(self.srv.request("POST", path % "sig_nope", {"outcome": "win"}, token=self.dev), 404)
        r = self.srv.request("POST", path % a, {"outcome": "win", "pnl": 10}, token=self.dev)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["outcome"], r.json["pnl"]), ("win", 10))
        self.assertEqual(self.srv.request("POST", path % b, {"outcome": "loss", "pnl": -4}, token=self.dev).status, 200)
        self.assertEqual(self.srv.request("POST", path % c, {"outcome": "breakeven"}, token=self.dev).status, 200)
        r = self.srv.request("GET", "/api/stats", token=self.client)
        self.assertEqual(r.status, 200, r)
        st = r.json["by_symbol"][symbol]
        self.assertEqual((st["signals"], st["outcomes"], st["wins"], st["losses"], st["breakevens"]), (3, 3, 1, 1, 1), st)
        self.assertAlmostEqual(st["win_rate"], 1 / 3, places=4)
        self.assertAlmostEqual(st["expectancy"], 3.0)  # (10 - 4) / 2 trades with a pnl
        self.assertEqual(r.json["by_signal_type"]["CHoCH"]["wins"] >= 1, True)
        self.assertIn("new_york", r.json["by_session"])
        self.assertGreaterEqual(r.json["overall"]["outcomes"], 3)
        future = self.srv.request("GET", "/api/stats", token=self.client, query={"since": "2100-01-01T00:00:00Z"})
        self.assertEqual(future.json["overall"]["signals"], 0, future)
        # history has the outcome; a later signal of the same setup sees it
        self.assertIn("outcome", [e["stage"] for e in self.get(a)["events"]])
        d = self.wait_state(self.send(payload(symbol, ts="2026-03-10T12:01:00Z", signal_type="FVG", confluences=conf)))
        sim = d["analysis"]["similar_setups"]
        self.assertTrue(sim, d["analysis"])
        known = {x["signal_id"]: x["outcome"] for x in sim}
        self.assertEqual(known.get(a), "win", sim)
        self.assertEqual(known.get(b), "loss", sim)

    # -- pause and resume
    def test_pause_resume(self):
        self.assertEqual(self.srv.request("POST", "/api/signals/pause", token=self.dev).status, 403)
        r = self.srv.request("POST", "/api/signals/pause", token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["paused"])
        try:
            sid = self.send(payload(sym("P")))
            time.sleep(0.8)
            self.assertEqual(self.get(sid)["state"], "received")
            st = self.srv.request("GET", "/api/signals/status", token=self.client).json
            self.assertTrue(st["paused"], st)
        finally:
            r = self.srv.request("POST", "/api/signals/resume", token=self.admin)
            self.assertEqual(r.status, 200, r)
        self.assertEqual(self.wait_state(sid)["state"], "done")
        self.assertFalse(self.srv.request("GET", "/api/signals/status", token=self.client).json["paused"])

    # -- live events
    def test_stream(self):
        head = self.srv.request("GET", "/api/signals/status", token=self.client).json["events_head"]
        sock = socket.create_connection(("127.0.0.1", self.srv.port), timeout=15)
        try:
            req = "GET /api/signals/stream?after=%d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % (head, self.client)
            sock.sendall(req.encode())
            sid = self.send(payload(sym("E")))
            buf = b""
            deadline = time.time() + 20
            seen = []
            while time.time() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                seen = [json.loads(l[6:]) for l in buf.decode(errors="replace").splitlines() if l.startswith("data: {")]
                if any(e.get("signal_id") == sid and e["state"] == "done" for e in seen):
                    break
            text = buf.decode(errors="replace")
            self.assertIn("text/event-stream", text.split("\r\n\r\n")[0])
            mine = [e["state"] for e in seen if e.get("signal_id") == sid]
            for state in ("analysed", "notified", "done"):
                self.assertIn(state, mine, text[-3000:])
            self.assertRegex(text, r"id: \d+\nevent: done\n")
        finally:
            sock.close()

    def test_stream_resumes_from_last_event_id(self):
        # An EventSource reconnects with Last-Event-ID: the events it missed come first.
        head = self.srv.request("GET", "/api/signals/status", token=self.client).json["events_head"]
        sid = self.send(payload(sym("L")))
        self.wait_state(sid)
        sock = socket.create_connection(("127.0.0.1", self.srv.port), timeout=15)
        try:
            req = "GET /api/signals/stream HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %d\r\nAuthorization: Bearer %s\r\n\r\n" % (
                head,
                self.client,
            )
            sock.sendall(req.encode())
            buf = b""
            deadline = time.time() + 10
            while time.time() < deadline and b'"state":"done"' not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
            seen = [json.loads(l[6:]) for l in buf.decode(errors="replace").splitlines() if l.startswith("data: {")]
            self.assertIn("done", [e["state"] for e in seen if e.get("signal_id") == sid], buf[-2000:])
        finally:
            sock.close()

    # -- /metrics
    def test_metrics(self):
        self.wait_state(self.send(payload(sym("M"), confluences=["ONE"])))
        self.wait_state(self.send(payload(sym("M"))))
        r = self.srv.request("GET", "/metrics")
        self.assertEqual(r.status, 200)
        t = r.text

        def val(name):
            for line in t.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
            self.fail("%s not in /metrics" % name)

        self.assertGreaterEqual(val("quantgate_signals_done_total"), 1)
        self.assertGreaterEqual(val("quantgate_signals_accepted_total"), 2)
        self.assertGreaterEqual(val('quantgate_signals_dropped_total{reason="confluence"}'), 1)
        self.assertGreaterEqual(val('quantgate_signal_stage_seconds_count{stage="analyse"}'), 1)
        self.assertIn('quantgate_signal_stage_seconds_bucket{stage="notify",le="+Inf"}', t)
        self.assertIn("quantgate_signals_dlq ", t)
        # the group-commit writer: every accept and state change went through it
        self.assertGreaterEqual(val("quantgate_signal_writer_ops_total"), 2)
        self.assertGreaterEqual(val("quantgate_signal_writer_commits_total"), 1)
        self.assertGreaterEqual(val("quantgate_signal_writer_checkpoints_total"), 0)


def states_of(s):
    """The states of a signal's events, oldest first."""
    return [e["state"] for e in s["events"]]


def metric_of(test, name):
    """The value of an unlabelled series in test.srv's /metrics."""
    r = test.srv.request("GET", "/metrics")
    test.assertEqual(r.status, 200, r)
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    test.fail("%s not in /metrics" % name)


def accept_paused(test, admin, count, prefix):
    """Pauses test.srv's pipeline and has it accept count signals: their ids."""
    test.assertEqual(test.srv.request("POST", "/api/signals/pause", token=admin).status, 200)
    ids = []
    for _ in range(count):
        r = test.srv.request("POST", "/api/webhook/receive", payload(sym(prefix)), headers={"X-Webhook-Secret": SECRET})
        test.assertEqual(r.status, 202, r)
        ids.append(r.json["id"])
    return ids


class RememberQueueTest(qgtest.ServerTest):
    """A remember queue of one: the workers outrun the rememberer at once."""

    SERVER_ENV = {
        "WEBHOOK_SECRET": SECRET,
        "QG_SIGNAL_WORKERS": "4",
        "QG_SIGNAL_REMEMBER_QUEUE": "1",
    }

    def test_a_full_remember_queue_holds_the_workers_back_and_drops_nothing(self):
        self.srv.secret(SECRET)
        admin = self.srv.admin_token()
        ids = accept_paused(self, admin, 40, "R")
        self.assertEqual(self.srv.request("POST", "/api/signals/resume", token=admin).status, 200)
        deadline = time.time() + 60
        while metric_of(self, "quantgate_signals_remembered_total") < len(ids) or metric_of(self, "quantgate_signals_done_total") < len(ids):
            self.assertLess(time.time(), deadline, "not all done and remembered")
            time.sleep(0.1)
        self.assertEqual(metric_of(self, "quantgate_signals_remember_dropped_total"), 0)
        self.assertEqual(metric_of(self, "quantgate_signals_remember_queued"), 0)
        for sid in ids:
            r = self.srv.request("GET", "/api/signals/" + sid, token=admin)
            self.assertEqual(r.json["state"], "done", r)
            rem = [e for e in r.json["events"] if e["stage"] == "remember"]
            self.assertEqual(len(rem), 1, r.json["events"])
            self.assertTrue(rem[0]["detail"]["memory_id"].startswith("mem_"), rem)
        items = self.srv.request("GET", "/api/memory", token=admin, query={"collection": "analyses", "limit": 100})
        self.assertEqual(items.status, 200, items)
        self.assertEqual(len(items.json["items"]), len(ids), items.json)


def send_and_finish(test, body, token, timeout=30):
    """Sends a webhook on test.srv and waits for a terminal state: (id, signal)."""
    r = test.srv.request("POST", "/api/webhook/receive", body, headers={"X-Webhook-Secret": SECRET})
    test.assertEqual(r.status, 202, r)
    sid = r.json["id"]
    deadline = time.time() + timeout
    while True:
        s = test.srv.request("GET", "/api/signals/" + sid, token=token).json
        if s["state"] in TERMINAL:
            return sid, s
        test.assertLess(time.time(), deadline, s)
        time.sleep(0.1)


class WebhookTargetTest(qgtest.ServerTest):
    """A generic JSON webhook target gets the signal object with its analysis
    (the only channel that reads it: the pipeline builds it just for them)."""

    SERVER_ENV = {
        "WEBHOOK_SECRET": SECRET,
        "QG_NOTIFY_WEBHOOK_URL": FAKE.url + "/webhook/pipeline-hook",
    }

    def test_the_webhook_body_carries_the_signal_and_its_analysis(self):
        self.srv.secret(SECRET)
        admin = self.srv.admin_token()
        body = payload(sym("W"))
        sid, s = send_and_finish(self, body, admin)
        self.assertEqual(s["state"], "done", s)
        self.assertEqual([d["channel"] for d in s["deliveries"]], ["webhook"], s["deliveries"])
        # the masked URL says which target it was; the key is what resume matches
        d = s["deliveries"][0]
        self.assertTrue(d["target"].startswith(FAKE.url + "/"), d)
        self.assertNotIn("pipeline-hook", d["target"], d)
        self.assertTrue(d["key"].startswith("sha256:"), d)
        hooks = [m for m in FAKE.messages_for("webhook") if "pipeline-hook" in m["path"]]
        hooks = [m for m in hooks if (m["body"].get("signal") or {}).get("signal_id") == sid]
        self.assertEqual(len(hooks), 1, hooks)
        sig = hooks[0]["body"]["signal"]
        self.assertEqual(hooks[0]["body"]["event"], "signal")
        self.assertEqual(sig["symbol"], body["symbol"])
        self.assertEqual(sig["confluences"], body["confluences"])
        self.assertEqual(sig["analysis"]["score"], s["analysis"]["score"], sig)
        self.assertEqual(sig["analysis"]["explanation"], s["analysis"]["explanation"])


class SlowChatTest(qgtest.ServerTest):
    """The notify stage hands the alert to the notifier and the worker goes
    on: with one worker and a chat that takes a second to answer, the
    alerts processed meanwhile queue on the chat's lane and go out as the
    next message, in the order they were accepted (a worker that waited
    for each answer would have sent them one by one)."""

    SERVER_ENV = {
        "WEBHOOK_SECRET": SECRET,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_ID": "333",
        "QG_TELEGRAM_API_URL": FAKE.url,
        "QG_SIGNAL_WORKERS": "1",
    }

    def test_a_slow_chat_does_not_hold_the_worker(self):
        self.srv.secret(SECRET)
        self.srv.secret(TOKEN)
        admin = self.srv.admin_token()
        ids = accept_paused(self, admin, 6, "L")
        FAKE.delay = 1.0
        try:
            self.assertEqual(self.srv.request("POST", "/api/signals/resume", token=admin).status, 200)
            deadline = time.time() + 60
            for sid in ids:
                while True:
                    s = self.srv.request("GET", "/api/signals/" + sid, token=admin).json
                    if s["state"] in TERMINAL:
                        break
                    self.assertLess(time.time(), deadline, s)
                    time.sleep(0.1)
                self.assertEqual(s["state"], "done", s)
                self.assertEqual([d["status"] for d in s["deliveries"]], ["sent"], s["deliveries"])
                states = states_of(s)
                self.assertLess(states.index("notified"), states.index("done"), s["events"])
        finally:
            FAKE.delay = 0
        # The first message leaves as soon as the first alert is posted (it
        # may catch the second too); the rest queue behind its slow answer.
        texts = [m["text"] for m in FAKE.messages_for("telegram") if str(m["chat_id"]) == "333"]
        self.assertLessEqual(len(texts), 3, texts)
        self.assertGreaterEqual(max(sum(i in t for i in ids) for t in texts), 3, texts)
        chat = "\n\n".join(texts)
        at = [chat.find(i) for i in ids]
        self.assertTrue(all(x >= 0 for x in at), (ids, texts))
        self.assertEqual([chat.count(i) for i in ids], [1] * len(ids), texts)
        self.assertEqual(at, sorted(at), "the alerts reach the chat in the order they were accepted")
        r = self.srv.request("GET", "/metrics")
        self.assertIn("quantgate_notify_queued 0", r.text)
        self.assertIn("quantgate_signals_notify_posted 0", r.text)


class WriteAheadTest(qgtest.ServerTest):
    """With QG_SIGNAL_WRITE_AHEAD at its minimum the workers wait for the
    single writer before each new signal: a backlog still finishes, every
    signal done and remembered, and the writer's queue stays near the
    bound (a worker's own signal adds its few writes past it)."""

    SERVER_ENV = {"WEBHOOK_SECRET": SECRET, "QG_SIGNAL_WRITE_AHEAD": "64", "QG_SIGNAL_WORKERS": "4"}

    def test_a_backlog_finishes_with_the_writer_queue_bounded(self):
        self.srv.secret(SECRET)
        admin = self.srv.admin_token()
        ids = accept_paused(self, admin, 1000, "W")
        self.assertEqual(self.srv.request("POST", "/api/signals/resume", token=admin).status, 200)
        deadline, peak = time.time() + 120, 0
        while metric_of(self, "quantgate_signals_done_total") < len(ids):
            peak = max(peak, metric_of(self, "quantgate_signal_writer_queued"))
            self.assertLess(time.time(), deadline)
            time.sleep(0.02)
        # 4 workers past the bound with a signal each: a few dozen writes over
        self.assertLess(peak, 64 + 4 * 16, "writer queue peaked at %d" % peak)
        for sid in ids[:5] + ids[-5:]:
            s = self.srv.request("GET", "/api/signals/" + sid, token=admin).json
            self.assertEqual(s["state"], "done", s)
        while metric_of(self, "quantgate_signals_remembered_total") < len(ids):
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)


class PlanTimeoutTest(qgtest.ServerTest):
    """A plan step's timeout_s cancels the notification still on its way
    (a notify step, then an escalate step): the plan takes its failure
    edges, each delivery is recorded as failed with the reason, and the
    pipeline's own notify stage delivers afterwards."""

    PLAN = {
        "start": "tell",
        "steps": {
            "tell": {"type": "notify", "timeout_s": 0.3, "on_failure": "shout"},
            "shout": {
                "type": "escalate",
                "params": {"reason": "the notification was slow"},
                "timeout_s": 0.3,
                "on_failure": "note",
            },
            "note": {"type": "record", "params": {"why": "the notification was slow"}},
        },
    }
    SERVER_ENV = {
        "WEBHOOK_SECRET": SECRET,
        "QG_NOTIFY_WEBHOOK_URL": FAKE.url + "/webhook/plan-hook",
        "QG_NOTIFY_RETRIES": "0",
        "QG_SIGNAL_PLAN": json.dumps(PLAN),
    }

    def test_timeout_cancels_the_send_in_flight(self):
        self.srv.secret(SECRET)
        admin = self.srv.admin_token()
        FAKE.delay = 2.0  # every answer, so the plan's send is still on its way at 0.3 s
        try:
            _, s = send_and_finish(self, payload(sym("T")), admin, timeout=60)
        finally:
            FAKE.delay = 0
        self.assertEqual(s["state"], "done", s)
        rep = s["plan_result"]
        self.assertEqual(rep["path"], ["tell", "shout", "note"], rep)
        for step in rep["steps"][:2]:
            self.assertFalse(step["ok"], step)
            self.assertRegex(step["error"], r"timed out after [0-9.]+s \(timeout_s 0.3\)")
            self.assertLess(step["ms"], 1900, step)  # cancelled, not waited out (answers take 2 s)
        failed = [d for d in s["deliveries"] if d["status"] != "sent"]
        sent = [d for d in s["deliveries"] if d["status"] == "sent"]
        self.assertEqual(len(failed), 2, s["deliveries"])
        for d in failed:
            self.assertIn("the plan step's timeout_s passed", d["error"], failed)
        self.assertNotIn("escalated", [e.get("state") for e in s["events"]], s["events"])
        self.assertEqual(len(sent), 1, s["deliveries"])  # the notify stage, after the plan
        self.assertIn("plan step note", [e.get("reason") for e in s["events"]], s["events"])


if __name__ == "__main__":
    try:
        qgtest.main()
    finally:
        FAKE.stop()
