"""test_notify.py - notifications and the Telegram bot webhook, end to end.

`quantgate notify test` against fake_notify.py (a local server speaking the
Telegram Bot API and the Slack, Discord and generic webhook formats): one
line per delivery, several chat ids, a 429 with retry_after waited out, a
500 retried, a 400 final with exit status 1, and neither the bot token nor
a webhook URL in anything printed.

POST /api/telegram/command on the real server: the secret-token header
(403 without it or when wrong), allowed chats served and other chats
ignored (200, nothing done, logged), each command's reply as a sendMessage
webhook answer (/help, /status, /pause then /status paused, /resume,
/last n, /stats from recorded outcomes, unknown commands), and the
notifier's counters in /metrics."""

import json
import os
import sqlite3
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402
from fake_notify import FakeNotify  # noqa: E402

TOKEN = "4242424242:AAF" + uuid.uuid4().hex[:30]
TG_SECRET = "tgsec-" + uuid.uuid4().hex
WEBHOOK_SECRET = "whsec-" + uuid.uuid4().hex
CMD_PATH = "/api/telegram/command"


class NotifyCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeNotify(token=TOKEN).start()

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.fake.reset()
        self.slack = self.fake.url + "/slack/T0001/B0001/SLACKSECRET" + uuid.uuid4().hex[:8]
        self.discord = self.fake.url + "/discord/1234/DISCORDSECRET" + uuid.uuid4().hex[:8]
        self.hook = self.fake.url + "/webhook/HOOKSECRET" + uuid.uuid4().hex[:8]

    def env(self, **over):
        e = {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_CHAT_ID": "111,-1002223334445",
            "QG_TELEGRAM_API_URL": self.fake.url,
            "QG_SLACK_WEBHOOK_URL": self.slack,
            "QG_DISCORD_WEBHOOK_URL": self.discord,
            "QG_NOTIFY_WEBHOOK_URL": self.hook,
            "QG_NOTIFY_RETRY_BASE_MS": "50",
            "QG_ENV_FILE": "/nonexistent/.env",
        }
        e.update(over)
        return e

    def run_notify(self, *args, **env):
        p = qgtest.run_cli(["notify", "test"] + list(args), env=self.env(**env), timeout=60)
        out = p.stdout + p.stderr
        for secret in (TOKEN, self.slack, self.discord, self.hook, "SLACKSECRET", "DISCORDSECRET", "HOOKSECRET"):
            self.assertNotIn(secret, out, "a secret was printed")
        return p

    def lines(self, p):
        rows = {}
        for line in p.stdout.splitlines():
            parts = line.split()
            rows.setdefault(parts[0], []).append(line)
        return rows

    def test_every_target_receives_the_text(self):
        p = self.run_notify("--text", "hello from the test")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        rows = self.lines(p)
        self.assertEqual(len(rows["telegram"]), 2, p.stdout)
        for ch in ("slack", "discord", "webhook"):
            self.assertEqual(len(rows[ch]), 1, p.stdout)
        for line in p.stdout.splitlines():
            self.assertRegex(line, r"\bok\b +attempts=1 http=(200|204)$")
        self.assertIn("-1002223334445", p.stdout)
        self.assertIn("http://127.0.0.1:%d/" % self.fake.port, p.stdout)  # masked URL: scheme and host
        msgs = self.fake.wait_for(5)
        tg = [m for m in msgs if m["channel"] == "telegram"]
        self.assertEqual(sorted(str(m["chat_id"]) for m in tg), ["-1002223334445", "111"])
        for m in tg:
            self.assertEqual(m["text"], "hello from the test")
            self.assertIs(m["body"]["disable_web_page_preview"], True)
        slack = self.fake.messages_for("slack")[0]
        self.assertEqual(slack["body"], {"text": "hello from the test"})
        discord = self.fake.messages_for("discord")[0]
        self.assertEqual(discord["body"]["content"], "hello from the test")
        hook = self.fake.messages_for("webhook")[0]
        self.assertEqual(hook["body"]["event"], "message")
        self.assertEqual(hook["body"]["text"], "hello from the test")

    def test_default_text(self):
        p = self.run_notify(QG_SLACK_WEBHOOK_URL="", QG_DISCORD_WEBHOOK_URL="", QG_NOTIFY_WEBHOOK_URL="")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for m in self.fake.wait_for(2):
            self.assertTrue(m["text"].startswith("quantgate test notification ("), m["text"])

    def test_429_retry_after_is_waited(self):
        self.fake.fail_next("telegram", 429, n=1, retry_after=1)
        t0 = time.time()
        p = self.run_notify(TELEGRAM_CHAT_ID="111", QG_SLACK_WEBHOOK_URL="", QG_DISCORD_WEBHOOK_URL="", QG_NOTIFY_WEBHOOK_URL="")
        took = time.time() - t0
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"telegram +111 +ok +attempts=2 http=200")
        self.assertGreaterEqual(took, 1.0)
        reqs = [r for r in self.fake.requests if r["channel"] == "telegram"]
        self.assertEqual([r["status"] for r in reqs], [429, 200])
        self.assertGreaterEqual(reqs[1]["time"] - reqs[0]["time"], 0.95)

    def test_500_is_retried_and_400_is_final(self):
        self.fake.fail_next("slack", 500, n=2)
        self.fake.fail_next("discord", 400, n=1)
        p = self.run_notify(TELEGRAM_CHAT_ID="", TELEGRAM_BOT_TOKEN="")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        rows = self.lines(p)
        self.assertRegex(rows["slack"][0], r"\bok +attempts=3 http=200")
        self.assertRegex(rows["discord"][0], r"\bfailed +attempts=1 http=400 +error: HTTP 400")
        self.assertRegex(rows["webhook"][0], r"\bok +attempts=1")
        self.assertIn("1 of 3 deliveries failed", p.stderr)

    def test_retries_exhausted(self):
        self.fake.fail_next("webhook", 503, n=10)
        p = self.run_notify(TELEGRAM_CHAT_ID="", TELEGRAM_BOT_TOKEN="", QG_SLACK_WEBHOOK_URL="", QG_DISCORD_WEBHOOK_URL="", QG_NOTIFY_RETRIES="2")
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stdout, r"webhook .* failed +attempts=3 http=503 +error: HTTP 503")

    def test_configuration_errors(self):
        p = self.run_notify(TELEGRAM_CHAT_ID="abc")
        self.assertEqual(p.returncode, 1)
        self.assertIn("TELEGRAM_CHAT_ID", p.stderr)
        p = self.run_notify(QG_SLACK_WEBHOOK_URL="ftp://example.com/SLACKSECRET")
        self.assertEqual(p.returncode, 1)
        self.assertIn("QG_SLACK_WEBHOOK_URL: entry 1 is not an http(s) URL", p.stderr)
        p = self.run_notify(TELEGRAM_CHAT_ID="", TELEGRAM_BOT_TOKEN="", QG_SLACK_WEBHOOK_URL="", QG_DISCORD_WEBHOOK_URL="", QG_NOTIFY_WEBHOOK_URL="")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no notification target", p.stderr)


def signal_payload(symbol, signal_type="CHoCH"):
    return {
        "id": "tg-" + uuid.uuid4().hex,
        "symbol": symbol,
        "timeframe": "15m",
        "signal_type": signal_type,
        "confidence": 85,
        "timestamp": "2026-03-10T14:30:00Z",
        "price_data": {"open": 1.085, "high": 1.0875, "low": 1.0825, "close": 1.0865},
        "sl": 1.08,
        "tp": 1.092,
        "multi_tf": True,
        "confluences": ["HTF_BIAS_BULL", "DAILY_ABOVE_MID", "4H_SUPPORT"],
    }


class TelegramCommandTest(qgtest.ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeNotify(token=TOKEN).start()
        cls.SERVER_ENV = {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_CHAT_ID": "111,-1002223334445",
            "QG_TELEGRAM_ALLOWED_CHATS": "333",
            "QG_TELEGRAM_API_URL": cls.fake.url,
            "QG_TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "QG_NOTIFY_RETRY_BASE_MS": "20",
        }
        try:
            super().setUpClass()
        except Exception:
            cls.fake.stop()
            raise
        for s in (TOKEN, TG_SECRET, WEBHOOK_SECRET):
            cls.srv.secret(s)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.stop()

    def command(self, text, chat=111, secret=TG_SECRET, update=None):
        body = update or {
            "update_id": 10000 + int(time.time() * 1000) % 100000,
            "message": {
                "message_id": 1,
                "from": {"id": chat, "is_bot": False, "first_name": "T"},
                "chat": {"id": chat, "type": "private" if chat > 0 else "supergroup"},
                "date": int(time.time()),
                "text": text,
            },
        }
        headers = {}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        return self.srv.request("POST", CMD_PATH, body, headers=headers)

    def reply(self, text, chat=111):
        r = self.command(text, chat=chat)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json.get("method"), "sendMessage", r)
        self.assertEqual(r.json.get("chat_id"), chat, r)
        self.assertIsInstance(r.json.get("text"), str)
        self.assertLessEqual(len(r.json["text"]), 4096)
        return r.json["text"]

    def test_secret_token_required(self):
        r = self.command("/status", secret=None)
        self.assertError(r, 403)
        r = self.command("/status", secret="wrong-" + TG_SECRET)
        self.assertError(r, 403)
        self.assertNotIn(TG_SECRET, r.text)

    def test_other_chats_are_ignored(self):
        r = self.command("/pause", chat=999)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {})
        self.assertNotIn("paused", self.reply("/status"))
        time.sleep(0.2)
        self.assertIn("chat 999 ignored", self.srv.log_text())

    def test_allowed_chats(self):
        self.assertIn("Pipeline:", self.reply("/status", chat=-1002223334445))
        self.assertIn("Pipeline:", self.reply("/status", chat=333))

    def test_not_a_command(self):
        r = self.command("hello there")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json, {})
        r = self.command(None, update={"update_id": 5, "my_chat_member": {"chat": {"id": 111}}})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json, {})

    def test_help_and_unknown(self):
        for cmd in ("/help", "/start"):
            t = self.reply(cmd)
            for c in ("/status", "/stats", "/last", "/pause", "/resume"):
                self.assertIn(c, t)
        t = self.reply("/frobnicate")
        self.assertIn("Unknown command /frobnicate", t)
        self.assertIn("/status", t)

    def test_pause_status_resume(self):
        try:
            self.assertIn("paused", self.reply("/pause"))
            t = self.reply("/status")
            self.assertIn("Pipeline: paused", t)
            for field in ("Queued:", "In flight:", "DLQ:", "Received:", "Failed:"):
                self.assertIn(field, t)
            # the bot name suffix of group commands
            self.assertIn("Pipeline: paused", self.reply("/status@quantgate_bot"))
        finally:
            self.assertIn("running", self.reply("/resume"))
        self.assertIn("Pipeline: running", self.reply("/status"))

    def _send_signal(self, symbol):
        r = self.srv.request("POST", "/api/webhook/receive", signal_payload(symbol), headers={"X-Webhook-Secret": WEBHOOK_SECRET})
        self.assertIn(r.status, (200, 202), r)
        return r.json["id"]

    def _set_outcome(self, sig_id, outcome, pnl):
        admin = self.srv.admin_token()
        r = self.srv.request("POST", "/api/signals/%s/outcome" % sig_id, {"outcome": outcome, "pnl": pnl}, token=admin)
        if r.status in (200, 201, 204):
            return
        # the outcome API lives in h_signals.c; without it write the columns directly
        con = sqlite3.connect(os.path.join(self.srv.data_dir, "quantgate.db"), timeout=10)
        try:
            con.execute("UPDATE signals SET outcome = ?, pnl = ?, outcome_at = ? WHERE id = ?", (outcome, pnl, int(time.time() * 1000), sig_id))
            con.commit()
        finally:
            con.close()

    def test_last_and_stats(self):
        a = self._send_signal("TGAAA")
        time.sleep(0.01)
        b = self._send_signal("TGBBB")
        time.sleep(0.01)
        c = self._send_signal("TGBBB")
        self.assertEqual(len({a, b, c}), 3)
        t = self.reply("/last 2")
        lines = t.splitlines()
        self.assertEqual(len(lines), 2, t)
        self.assertIn("TGBBB 15m CHoCH", lines[0])
        self.assertIn("TGBBB 15m CHoCH", lines[1])
        self.assertRegex(lines[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        self.assertIn("TGAAA", self.reply("/last 3"))
        self.assertIn("Usage: /last", self.reply("/last zero"))
        self.assertLessEqual(len(self.reply("/last 500").splitlines()), 20)

        self._set_outcome(a, "win", 30.0)
        self._set_outcome(b, "loss", -10.0)
        self._set_outcome(c, "win", 20.0)
        t = self.reply("/stats")
        self.assertIn("All: 3 trades, 2 win / 1 loss / 0 breakeven, win rate 66.7%, expectancy +13.33 per trade", t)
        self.assertIn("TGBBB: 2 trades, 1 win / 1 loss / 0 breakeven, win rate 50.0%, expectancy +5 per trade", t)
        self.assertIn("TGAAA: 1 trade, 1 win / 0 loss / 0 breakeven, win rate 100.0%, expectancy +30 per trade", t)

    def test_metrics_have_notify_counters(self):
        r = self.srv.request("GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertIn('quantgate_notify_deliveries_total{channel="telegram",result="ok"}', r.text)
        self.assertIn("quantgate_notify_targets 2", r.text)


if __name__ == "__main__":
    qgtest.main()
