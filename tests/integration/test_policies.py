"""test_policies.py - the signal policies API against the real server:
create, read, list (the QG_SIGNAL_POLICY policies first, read-only), replace,
enable/disable, delete; roles (developers read, admins change, clients get
403); validation errors naming the field; 409 on a taken name (a database
or a configuration policy's); audit rows; a policy survives a restart; and
the pipeline applies a new policy to the next signal."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402

BASE = "/api/signals/policies"
CONFIG_POLICIES = [{"name": "cfg-floor", "min_confidence": 10}]
WEBHOOK_SECRET = "policies-test-webhook-secret"


class PoliciesTest(qgtest.ServerTest):
    SERVER_ENV = {
        "QG_SIGNAL_POLICY": json.dumps(CONFIG_POLICIES),
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        # the filters that would hide the policy's decision are off
        "QG_SIGNAL_KILLZONE_REQUIRED": "false",
        "QG_SIGNAL_MIN_CONFLUENCES": "0",
        "MIN_CONFIDENCE_SCORE": "0",
    }

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.srv
        s.secret(WEBHOOK_SECRET)
        cls.admin = s.admin_token()
        cls.client = s.make_user("client")["access"]
        cls.developer = s.make_user("developer")["access"]

    def req(self, method, path, body=None, token=None):
        return self.srv.request(method, path, body, token=token or self.admin)

    def create(self, body, token=None):
        return self.req("POST", BASE, body, token)

    # ------------------------------------------------------------------ CRUD
    def test_crud(self):
        rule = {"name": "crud-one", "min_confidence": 70, "blocked_types": ["error"], "action": "drop"}
        r = self.create(rule)
        self.assertEqual(r.status, 201, r)
        p = r.json
        pid = p["id"]
        self.assertTrue(pid.startswith("pol_"), p)
        self.assertEqual(p["name"], "crud-one")
        self.assertEqual(p["source"], "database")
        self.assertIs(p["enabled"], True)
        self.assertIs(p["read_only"], False)
        self.assertEqual(p["rule"], rule)
        self.assertIs(p["applied"], True, p)
        self.assertTrue(p["created_at"])
        self.assertTrue(p["created_by"])

        r = self.req("GET", BASE + "/" + pid, token=self.developer)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["rule"], rule)
        self.assertNotIn("applied", r.json)

        # replace the rule; the name stays when the body leaves it out
        r = self.req("PUT", BASE + "/" + pid, {"min_confidence": 80})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["rule"], {"name": "crud-one", "min_confidence": 80})
        self.assertEqual(r.json["name"], "crud-one")
        self.assertIs(r.json["enabled"], True)

        # disable only: the rule is kept
        r = self.req("PUT", BASE + "/" + pid, {"enabled": False})
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["enabled"], False)
        self.assertEqual(r.json["rule"]["min_confidence"], 80)

        # rename and enable in one go
        r = self.req("PUT", BASE + "/" + pid, {"name": "crud-renamed", "min_confidence": 75, "enabled": True})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["name"], "crud-renamed")
        self.assertIs(r.json["enabled"], True)
        self.assertNotIn("enabled", r.json["rule"])

        r = self.req("GET", BASE, token=self.developer)
        self.assertEqual(r.status, 200, r)
        names = [i["name"] for i in r.json["items"]]
        self.assertIn("crud-renamed", names)
        self.assertNotIn("crud-one", names)

        r = self.req("DELETE", BASE + "/" + pid)
        self.assertEqual(r.status, 204, r)
        self.assertError(self.req("GET", BASE + "/" + pid), 404)
        self.assertError(self.req("DELETE", BASE + "/" + pid), 404)
        self.assertError(self.req("PUT", BASE + "/" + pid, {"enabled": True}), 404)
        r = self.req("GET", BASE)
        self.assertNotIn("crud-renamed", [i["name"] for i in r.json["items"]])

    def test_created_disabled(self):
        r = self.create({"name": "born-off", "min_confidence": 20, "enabled": False})
        self.assertEqual(r.status, 201, r)
        self.assertIs(r.json["enabled"], False)
        self.assertNotIn("enabled", r.json["rule"])

    def test_list_config_first_read_only(self):
        self.assertEqual(self.create({"name": "listed-db", "min_confidence": 30}).status, 201)
        r = self.req("GET", BASE, token=self.developer)
        self.assertEqual(r.status, 200, r)
        self.assertIn("next", r.json)
        items = r.json["items"]
        self.assertEqual(items[0]["name"], "cfg-floor")
        self.assertEqual(items[0]["source"], "config")
        self.assertIs(items[0]["read_only"], True)
        self.assertIsNone(items[0]["id"])
        self.assertEqual(items[0]["rule"], CONFIG_POLICIES[0])
        db = [i for i in items if i["name"] == "listed-db"]
        self.assertEqual(len(db), 1)
        self.assertEqual(db[0]["source"], "database")

    # ------------------------------------------------------------------ errors
    def test_duplicate_name_409(self):
        self.assertEqual(self.create({"name": "dup", "min_confidence": 40}).status, 201)
        self.assertError(self.create({"name": "dup", "min_confidence": 41}), 409, "conflict", r"dup")
        # a configuration policy's name is taken too
        self.assertError(self.create({"name": "cfg-floor", "min_confidence": 41}), 409, "conflict", r"cfg-floor")
        # renaming onto a taken name
        r = self.create({"name": "dup-other", "min_confidence": 42})
        self.assertEqual(r.status, 201, r)
        self.assertError(self.req("PUT", BASE + "/" + r.json["id"], {"name": "dup"}), 409, "conflict")
        self.assertEqual(self.req("GET", BASE + "/" + r.json["id"]).json["name"], "dup-other")

    def test_validation_names_the_field(self):
        cases = [
            ({"min_confidence": 50}, "name"),
            ({"name": "", "min_confidence": 50}, "name"),
            ({"name": 7}, "name"),
            ({"name": "x" * 64}, "name"),
            ({"name": "v1", "min_confidence": "high"}, "min_confidence"),
            ({"name": "v2", "colour": "red"}, "colour"),
            ({"name": "v3", "action": "explode"}, "action"),
            ({"name": "v4", "blocked_types": [5]}, "blocked_types"),
            ({"name": "v5", "enabled": "yes"}, "enabled"),
        ]
        for body, field in cases:
            r = self.create(body)
            self.assertError(r, 400, "validation_failed", field)
        r = self.create({"name": "valid-base", "min_confidence": 50})
        self.assertEqual(r.status, 201, r)
        pid = r.json["id"]
        self.assertError(self.req("PUT", BASE + "/" + pid, {"min_confidence": "high"}), 400, "validation_failed", "min_confidence")
        self.assertError(self.req("PUT", BASE + "/" + pid, {"enabled": 1}), 400, "validation_failed", "enabled")
        self.assertError(self.req("PUT", BASE + "/" + pid, {}), 400, "validation_failed")
        self.assertEqual(self.req("GET", BASE + "/" + pid).json["rule"]["min_confidence"], 50)
        # none of the rejected policies was stored
        names = [i["name"] for i in self.req("GET", BASE).json["items"]]
        for n in ("v1", "v2", "v3", "v4", "v5"):
            self.assertNotIn(n, names)

    # ------------------------------------------------------------------ roles
    def test_roles(self):
        self.assertError(self.req("GET", BASE, token=self.client), 403)
        self.assertError(self.create({"name": "role-x", "min_confidence": 1}, token=self.client), 403)
        self.assertError(self.create({"name": "role-x", "min_confidence": 1}, token=self.developer), 403)
        self.assertError(self.srv.request("GET", BASE), 401)
        r = self.create({"name": "role-owned", "min_confidence": 1})
        self.assertEqual(r.status, 201, r)
        pid = r.json["id"]
        for tok in (self.client, self.developer):
            self.assertError(self.req("PUT", BASE + "/" + pid, {"enabled": False}, token=tok), 403)
            self.assertError(self.req("DELETE", BASE + "/" + pid, token=tok), 403)
        self.assertError(self.req("GET", BASE + "/" + pid, token=self.client), 403)
        self.assertEqual(self.req("GET", BASE + "/" + pid, token=self.developer).status, 200)

    def test_mutations_are_audited(self):
        r = self.create({"name": "audited", "min_confidence": 5})
        self.assertEqual(r.status, 201, r)
        pid = r.json["id"]
        self.assertEqual(self.req("PUT", BASE + "/" + pid, {"enabled": False}).status, 200)
        self.assertEqual(self.req("DELETE", BASE + "/" + pid).status, 204)
        r = self.req("GET", "/api/audit?limit=500")
        self.assertEqual(r.status, 200, r)
        mine = [e for e in r.json["items"] if e.get("target") == pid]
        actions = " ".join(e.get("action") or "" for e in mine)
        for verb in ("POST", "PUT", "DELETE"):
            self.assertIn(verb, actions, mine)

    # ------------------------------------------------------------------ the pipeline sees it
    def test_pipeline_applies_new_policy(self):
        r = self.create({"name": "block-test-type", "blocked_types": ["policy_probe"], "action": "drop"})
        self.assertEqual(r.status, 201, r)
        self.assertIs(r.json["applied"], True, r)
        sig = {
            "symbol": "EURUSD",
            "timeframe": "15m",
            "signal_type": "policy_probe",
            "confidence": 90,
            "timestamp": int(time.time() * 1000),
            "price_data": {"open": 1.1, "high": 1.2, "low": 1.0, "close": 1.15},
            "confluences": ["bos", "fvg", "ob"],
        }
        r = self.srv.request("POST", "/api/webhook/receive", sig, headers={"X-Webhook-Secret": WEBHOOK_SECRET})
        self.assertIn(r.status, (200, 202), r)
        sid = r.json["id"]
        deadline = time.time() + 20
        state = None
        while time.time() < deadline:
            g = self.req("GET", "/api/signals/" + sid, token=self.developer)
            self.assertEqual(g.status, 200, g)
            state = g.json.get("state")
            if state not in ("received",):
                break
            time.sleep(0.1)
        self.assertEqual(state, "filtered", g)
        self.assertIn("block-test-type", json.dumps(g.json), g)

        # disabled: the next signal of that type is not stopped by it
        lst = self.req("GET", BASE).json["items"]
        pid = [i["id"] for i in lst if i["name"] == "block-test-type"][0]
        d = self.req("PUT", BASE + "/" + pid, {"enabled": False})
        self.assertEqual(d.status, 200, d)
        self.assertIs(d.json["applied"], True, d)
        sig["timestamp"] += 60000
        sig["id"] = "policy-probe-2"
        r = self.srv.request("POST", "/api/webhook/receive", sig, headers={"X-Webhook-Secret": WEBHOOK_SECRET})
        self.assertIn(r.status, (200, 202), r)
        sid = r.json["id"]
        deadline = time.time() + 20
        while time.time() < deadline:
            g = self.req("GET", "/api/signals/" + sid, token=self.developer)
            if g.json.get("state") != "received":
                break
            time.sleep(0.1)
        self.assertNotEqual(g.json.get("state"), "received", g)
        self.assertNotIn("block-test-type", json.dumps(g.json), g)

    # ------------------------------------------------------------------ restart
    def test_zz_survives_restart(self):
        r = self.create({"name": "durable", "min_confidence": 60})
        self.assertEqual(r.status, 201, r)
        pid = r.json["id"]
        self.srv.stop()
        self.srv.start()
        self.__class__.admin = self.srv.admin_token()
        r = self.req("GET", BASE + "/" + pid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["rule"], {"name": "durable", "min_confidence": 60})


if __name__ == "__main__":
    qgtest.main()
