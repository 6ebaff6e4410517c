"""test_signals_restart.py - a signal acknowledged with 202 is processed
exactly once across a `kill -9`.

1. Paused pipeline: the signal is durable (202) but not processed; kill -9
   right after the 202; the restart on the same data directory is still
   paused (persisted), the signal is still `received`; resume: it reaches
   done with exactly one Telegram message per chat id.
2. Killed mid-notification: the Telegram receiver answers 500 and the
   notifier keeps retrying, so the worker is inside the notify stage with
   the analysis stored (state analysed) when the server is killed; the
   restart resumes it from its last recorded stage: done, one message per
   chat id, the analysis not redone.
3. A restart after done does nothing more: no message, no new event.
"""

import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402
from fake_notify import FakeNotify  # noqa: E402

SECRET = "whsec-" + uuid.uuid4().hex
TOKEN = "654321:" + uuid.uuid4().hex
CHATS = ("333", "444")


def payload(symbol):
    return {
        "symbol": symbol,
        "timeframe": "15m",
        "signal_type": "CHoCH",
        "confidence": 85,
        "timestamp": "2026-03-10T12:30:00Z",
        "price_data": {"open": 1.085, "high": 1.0875, "low": 1.0825, "close": 1.0865},
        "sl": 1.08,
        "tp": 1.095,
        "multi_tf": True,
        "confluences": ["HTF_BIAS_BULL", "FVG", "OB"],
        "id": "r-" + uuid.uuid4().hex,
    }


class RestartTest(qgtest.ServerTest):
    SYNC = "pipelined"  # QG_SIGNAL_SYNC: the default

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeNotify(token=TOKEN).start()
        cls.SERVER_ENV = {
            "WEBHOOK_SECRET": SECRET,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_CHAT_ID": ",".join(CHATS),
            "QG_TELEGRAM_API_URL": cls.fake.url,
            "QG_NOTIFY_RETRIES": "20",
            "QG_NOTIFY_RETRY_BASE_MS": "200",
            "QG_SIGNAL_RETRIES": "0",
            "QG_SIGNAL_SYNC": cls.SYNC,
        }
        super().setUpClass()
        cls.srv.secret(SECRET)
        cls.srv.secret(TOKEN)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.stop()

    def send(self, body):
        r = self.srv.request("POST", "/api/webhook/receive", body, headers={"X-Webhook-Secret": SECRET})
        self.assertEqual(r.status, 202, r)
        return r.json["id"]

    def get(self, sid):
        r = self.srv.request("GET", "/api/signals/" + sid, token=self.srv.admin_token())
        self.assertEqual(r.status, 200, r)
        return r.json

    def wait_state(self, sid, states=("done", "failed", "filtered", "escalated"), timeout=30):
        deadline = time.time() + timeout
        while True:
            s = self.get(sid)
            if s["state"] in states:
                return s
            if time.time() > deadline:
                self.fail("signal %s still %s: %s" % (sid, s["state"], json.dumps(s)[:2000]))
            time.sleep(0.1)

    def messages_for(self, sid):
        return [m for m in self.fake.messages_for("telegram") if sid in (m.get("text") or "")]

    def restart(self):
        self.srv.kill()  # SIGKILL
        self.srv.start()

    def assertOnePerChat(self, sid):
        time.sleep(0.5)
        msgs = self.messages_for(sid)
        self.assertEqual(sorted(str(m["chat_id"]) for m in msgs), sorted(CHATS), msgs)

    def test_1_kill_after_202_while_paused(self):
        admin = self.srv.admin_token()
        self.assertEqual(self.srv.request("POST", "/api/signals/pause", token=admin).status, 200)
        sid = self.send(payload("RSTA"))
        self.restart()  # kill -9 right after the 202
        admin = self.srv.admin_token()
        st = self.srv.request("GET", "/api/signals/status", token=admin).json
        self.assertTrue(st["paused"], st)
        time.sleep(0.5)
        self.assertEqual(self.get(sid)["state"], "received")
        self.assertEqual(self.messages_for(sid), [])
        self.assertEqual(self.srv.request("POST", "/api/signals/resume", token=admin).status, 200)
        s = self.wait_state(sid)
        self.assertEqual(s["state"], "done", s)
        self.assertOnePerChat(sid)
        # 3. a restart after done does nothing more
        events = len(s["events"])
        self.restart()
        time.sleep(1.5)
        s2 = self.get(sid)
        self.assertEqual(s2["state"], "done")
        self.assertEqual(len(s2["events"]), events, s2["events"])
        self.assertOnePerChat(sid)

    def test_2_kill_inside_notify_resumes_from_analysed(self):
        self.fake.fail_next("telegram", 500, n=100000)
        try:
            sid = self.send(payload("RSTB"))
            s = self.wait_state(sid, states=("analysed",), timeout=20)
            analysis = s["analysis"]
            time.sleep(0.3)  # the notifier is retrying the 500s
            self.restart()
        finally:
            self.fake.reset()
        s = self.wait_state(sid)
        self.assertEqual(s["state"], "done", s)
        self.assertOnePerChat(sid)
        stages = [e["stage"] for e in s["events"]]
        self.assertEqual(stages.count("analyse"), 1, stages)  # resumed after the analysis
        self.assertEqual(stages.count("remember"), 1, stages)
        self.assertEqual(s["analysis"]["score"], analysis["score"])
        sent = [d for d in s["deliveries"] if d["status"] == "sent"]
        self.assertEqual(len(sent), 2, s["deliveries"])


class RestartCommitSyncTest(RestartTest):
    """The same guarantees when each COMMIT syncs itself."""

    SYNC = "commit"

    def test_3_an_unknown_sync_mode_is_refused(self):
        bad = qgtest.Server(env={"QG_SIGNAL_SYNC": "sometimes"})
        try:
            with self.assertRaises(AssertionError) as cm:
                bad.start()
            self.assertIn("QG_SIGNAL_SYNC='sometimes': must be pipelined or commit", str(cm.exception))
        finally:
            bad.cleanup()


if __name__ == "__main__":
    qgtest.main()
