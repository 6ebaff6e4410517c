"""test_budgets.py - AI usage and budgets through the real server.

The server's `analyst` model goes to the fake provider (tests/fakellm) over
loopback, priced at $1 per input and $1 per output token
(QG_OPENAI_PRICE_IN/OUT = 1000000 per million) so costs are whole dollars;
every scripted reply uses 2 input and 1 output token: $3 and 3 tokens a
call. Calls go through POST /v1/chat/completions with a user's access token
or an API token.

Covered: each call recorded and reported by GET /api/usage (totals, groups
by user, model and day, callers limited to their own calls); a user budget
refusing with the documented message before anything reaches the provider
(the fake sees no request); the soft alert once (audit row
ai.budget.soft_limit, /metrics counter); a token budget that refuses the
API token but not the same user's access token; budgets listed with their
spend (all for admins, the applicable ones for others); replacing and
deleting budgets; validation errors; the provider key never in a reply or a
log (the harness scans the logs at shutdown).
"""

import os
import re
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402

STEP = {"text": "fine", "usage": {"input": 2, "output": 1, "cached": 0}}
RESET_RE = r"resets \d{4}-\d\d-\d\dT00:00:00Z"


class BudgetsTest(qgtest.ServerTest):
    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, os.path.join(qgtest.SRC, "tests", "fakellm"))
        from fakellm import FakeLLM  # noqa: E402

        cls.fake = FakeLLM().start()
        cls.key = "sk-budget-" + secrets.token_hex(20)
        cls.SERVER_ENV = {
            "OPENAI_API_KEY": cls.key,
            "OPENAI_BASE_URL": cls.fake.url + "/v1",
            "QG_OPENAI_PRICE_IN": "1000000",
            "QG_OPENAI_PRICE_OUT": "1000000",
        }
        try:
            super().setUpClass()
        except Exception:
            cls.fake.stop()
            raise
        cls.srv.secret(cls.key)
        cls.admin = cls.srv.admin_token()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.stop()

    def setUp(self):
        self.fake.reset()

    # ---- helpers
    def chat(self, token, model="analyst", text="hello"):
        self.fake.script("*", dict(STEP))
        return self.srv.request(
            "POST",
            "/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": text}]},
            token=token,
        )

    def chat_ok(self, token, model="analyst"):
        r = self.chat(token, model)
        self.assertEqual(r.status, 200, r)
        return r

    def refused(self, r, pattern):
        self.assertIn(r.status, (402, 403, 429), r)
        self.assertRegex(r.text, pattern, r)
        self.assertNotIn(self.key, r.text)

    def budget(self, **body):
        body.setdefault("soft_pct", 0.8)
        r = self.srv.request("POST", "/api/budgets", body, token=self.admin)
        self.assertIn(r.status, (200, 201), r)
        return r.json

    def usage(self, token, **query):
        r = self.srv.request("GET", "/api/usage", token=token, query=query or None)
        self.assertEqual(r.status, 200, r)
        return r.json

    def provider_calls(self):
        return len(self.fake.requests("openai"))

    def metric(self, name):
        r = self.srv.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        m = re.search(r"^%s (\S+)$" % re.escape(name), r.text, re.M)
        self.assertIsNotNone(m, "%s not in /metrics" % name)
        return float(m.group(1))

    # ---- tests
    def test_usage_is_recorded_and_grouped(self):
        u1 = self.srv.make_user("developer", "usage1")
        u2 = self.srv.make_user("client", "usage2")
        self.chat_ok(u1["access"])
        self.chat_ok(u1["access"])
        self.chat_ok(u1["access"], model="builtin")
        self.assertEqual(self.provider_calls(), 2)

        mine = self.usage(u1["access"])
        self.assertEqual(mine["user_id"], u1["id"])
        self.assertEqual(mine["totals"]["calls"], 3)
        self.assertEqual(mine["totals"]["failures"], 0)
        self.assertEqual(mine["rows"], [])
        by_model = self.usage(u1["access"], group_by="model")
        self.assertEqual(by_model["group_by"], ["model"])
        rows = {row["model"]: row for row in by_model["rows"]}
        self.assertEqual(set(rows), {"analyst", "builtin"}, by_model)
        self.assertEqual(rows["analyst"]["calls"], 2)
        self.assertEqual(rows["analyst"]["input_tokens"], 4)
        self.assertEqual(rows["analyst"]["output_tokens"], 2)
        self.assertAlmostEqual(rows["analyst"]["cost_usd"], 6.0, places=6)
        self.assertGreaterEqual(rows["analyst"]["avg_latency_ms"], 0)

        # others see only their own calls
        self.assertEqual(self.usage(u2["access"])["totals"]["calls"], 0)
        r = self.srv.request("GET", "/api/usage", token=u2["access"], query={"user_id": u1["id"]})
        self.assertError(r, 403, "forbidden")

        # admins see everyone, grouped by user, model and day
        everyone = self.usage(self.admin, group_by="user,model,day")
        self.assertEqual(everyone["group_by"], ["user", "model", "day"])
        mine_rows = [row for row in everyone["rows"] if row["user_id"] == u1["id"]]
        self.assertEqual(sum(row["calls"] for row in mine_rows), 3, everyone)
        for row in mine_rows:
            self.assertRegex(row["day"], r"^\d{4}-\d\d-\d\d$")
        one = self.usage(self.admin, user_id=u1["id"], model="analyst")
        self.assertEqual(one["totals"]["calls"], 2)
        later = self.usage(self.admin, user_id=u1["id"], **{"from": "2999-01-01"})
        self.assertEqual(later["totals"]["calls"], 0)

        r = self.srv.request("GET", "/api/usage", token=self.admin, query={"group_by": "user,planet"})
        self.assertError(r, 400, "validation_failed", "planet")
        r = self.srv.request("GET", "/api/usage", token=self.admin, query={"from": "yesterday"})
        self.assertError(r, 400, "validation_failed", "from")
        r = self.srv.request("GET", "/api/usage")
        self.assertError(r, 401)

    def test_user_budget_refuses_before_sending(self):
        u = self.srv.make_user("developer", "spender")
        other = self.srv.make_user("developer", "bystander")
        b = self.budget(scope="user", subject=u["id"], period="month", max_cost=5, soft_pct=0.5)
        self.assertTrue(b["id"].startswith("bud_"), b)
        self.assertEqual(b["max_cost"], 5)
        self.assertIsNone(b["max_tokens"])
        soft_before = self.metric("qg_ai_budget_soft_alerts_total")
        refusals_before = self.metric("qg_ai_budget_refusals_total")

        self.chat_ok(u["access"])  # $3: past the soft threshold ($2.50)
        self.chat_ok(u["access"])  # $6: past the limit
        self.assertEqual(self.provider_calls(), 2)
        r = self.chat(u["access"])
        self.refused(r, r"user budget exhausted: spent \$6\.00 of \$5\.00 this month; " + RESET_RE)
        self.assertRegex(r.text, r"resets \d{4}-\d\d-01T00:00:00Z")
        self.assertEqual(self.provider_calls(), 2, "a refused call reached the provider")
        # the builtin model is refused as well: the budget is the user's
        self.refused(self.chat(u["access"], model="builtin"), r"user budget exhausted")
        self.chat_ok(other["access"])

        # the alert fired once, the refusals were counted
        self.assertEqual(self.metric("qg_ai_budget_soft_alerts_total"), soft_before + 1)
        self.assertGreaterEqual(self.metric("qg_ai_budget_refusals_total"), refusals_before + 2)
        r = self.srv.request(
            "GET", "/api/audit", token=self.admin, query={"action": "ai.budget.soft_limit", "limit": 100}
        )
        self.assertEqual(r.status, 200, r)
        self.assertEqual([e["target"] for e in r.json["items"]].count(b["id"]), 1, r.json)

        # the spender sees the budget with its spend
        r = self.srv.request("GET", "/api/budgets", token=u["access"])
        self.assertEqual(r.status, 200, r)
        mine = [x for x in r.json["items"] if x["id"] == b["id"]]
        self.assertEqual(len(mine), 1, r.json)
        self.assertAlmostEqual(mine[0]["spent_cost"], 6.0, places=6)
        self.assertEqual(mine[0]["spent_tokens"], 6)
        self.assertTrue(mine[0]["exhausted"])
        self.assertTrue(mine[0]["alerted"])
        self.assertRegex(mine[0]["resets_at"], r"-01T00:00:00Z$")
        # ... the bystander does not
        r = self.srv.request("GET", "/api/budgets", token=other["access"])
        self.assertEqual([x for x in r.json["items"] if x["id"] == b["id"]], [])

        # raising the limit (same scope, subject, period) replaces the budget
        b2 = self.budget(scope="user", subject=u["id"], period="month", max_cost=100, soft_pct=0.5)
        self.assertEqual(b2["id"], b["id"])
        self.chat_ok(u["access"])
        # deleting it lifts it
        self.budget(scope="user", subject=u["id"], period="month", max_cost=1)
        self.refused(self.chat(u["access"]), r"user budget exhausted")
        r = self.srv.request("DELETE", "/api/budgets/" + b["id"], token=self.admin)
        self.assertEqual(r.status, 204, r)
        r = self.srv.request("DELETE", "/api/budgets/" + b["id"], token=self.admin)
        self.assertError(r, 404)
        self.chat_ok(u["access"])

    def test_token_budget_applies_to_that_token_only(self):
        u = self.srv.make_user("developer", "tokenuser")
        r = self.srv.request("POST", "/api/tokens", {"name": "bot", "scope": "write"}, token=u["access"])
        self.assertEqual(r.status, 201, r)
        api_token, token_id = r.json["token"], r.json["id"]
        self.budget(scope="token", subject=token_id, period="day", max_tokens=3)

        self.chat_ok(api_token)  # 3 tokens: at the limit
        r = self.chat(api_token)
        self.refused(r, r"token budget exhausted: used 3 of 3 tokens today; " + RESET_RE)
        self.assertEqual(self.provider_calls(), 1)
        self.chat_ok(u["access"])  # the same user without that token

        usage = self.usage(u["access"])
        self.assertEqual(usage["totals"]["calls"], 3)  # the refusal is recorded too
        self.assertEqual(usage["totals"]["failures"], 1)
        r = self.srv.request("GET", "/api/budgets", token=u["access"])
        tb = [x for x in r.json["items"] if x["scope"] == "token"]
        self.assertEqual(len(tb), 1, r.json)
        self.assertEqual(tb[0]["subject"], token_id)
        self.assertEqual(tb[0]["spent_tokens"], 3)

    def test_global_budget_and_admin_api(self):
        u = self.srv.make_user("developer", "globaluser")
        bad = [
            ({"scope": "planet", "period": "day", "max_cost": 1}, "scope"),
            ({"scope": "global", "period": "week", "max_cost": 1}, "period"),
            ({"scope": "user", "subject": "usr_nobody", "period": "day", "max_cost": 1}, "no user"),
            ({"scope": "token", "subject": "tok_nobody", "period": "day", "max_cost": 1}, "no API token"),
            ({"scope": "global", "period": "day"}, "max_cost, max_tokens"),
            ({"scope": "global", "period": "day", "max_cost": -1}, "max_cost"),
            ({"scope": "global", "period": "day", "max_cost": 1, "soft_pct": 0}, "soft_pct"),
            ({"period": "day", "max_cost": 1}, "scope"),
        ]
        for body, want in bad:
            r = self.srv.request("POST", "/api/budgets", body, token=self.admin)
            self.assertError(r, 400, "validation_failed", want)
        r = self.srv.request("POST", "/api/budgets", {"scope": "global", "period": "day", "max_cost": 1}, token=u["access"])
        self.assertError(r, 403, "forbidden")

        g = self.budget(scope="global", period="day", max_tokens=0)
        try:
            r = self.chat(u["access"])
            self.refused(r, r"global budget exhausted: used \d+ of 0 tokens today; " + RESET_RE)
            self.assertEqual(self.provider_calls(), 0)
            r = self.srv.request("GET", "/api/budgets", token=u["access"])
            self.assertIn(g["id"], [x["id"] for x in r.json["items"]])
        finally:
            r = self.srv.request("DELETE", "/api/budgets/" + g["id"], token=self.admin)
            self.assertEqual(r.status, 204, r)
        self.chat_ok(u["access"])
        r = self.srv.request("GET", "/api/budgets", token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn(g["id"], [x["id"] for x in r.json["items"]])

    def test_metrics_count_calls(self):
        u = self.srv.make_user("developer", "metrics")
        self.chat_ok(u["access"])
        r = self.srv.request("GET", "/metrics")
        self.assertRegex(r.text, r'qg_ai_calls_total\{model="analyst",provider="openai",outcome="ok"\} \d+')
        self.assertRegex(r.text, r'qg_ai_tokens_total\{model="analyst",kind="input"\} \d+')
        self.assertRegex(r.text, r'qg_ai_cost_usd_total\{model="analyst"\} [0-9.]+')
        self.assertRegex(r.text, r'qg_ai_overhead_seconds_bucket\{le="0.001"\} \d+')
        self.assertNotIn(self.key, r.text)


if __name__ == "__main__":
    qgtest.main()
