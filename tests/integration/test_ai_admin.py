"""test_ai_admin.py - named models and deployments through the admin API of
the real server (src/http/h_ai_admin.c, src/ai/catalog.c).

The server starts with OPENAI_API_KEY and OPENAI_BASE_URL pointing at the
fake provider (tests/fakellm), so `analyst` and `fast` have the deployment
env-openai; QG_AI_MODELS adds a model `quick`.

Covered: GET /api/ai/models for any signed-in user (names, descriptions,
providers only) and for admins (fallback, source, deployments); the
environment's deployments listed with key_ref and a masked key, read-only
through the API; a database model and deployment created with an api_key
that lands in the vault as ai.<id>, is never returned, and is the key the
provider receives on the next call (the catalog is reloaded after each
change); PATCH and DELETE with their errors (404, 409 for environment
entries and for a model that still has deployments, 400 with the field
named); a database model replacing the environment's `analyst` and the
environment's coming back when it is deleted; keys never in a reply or a
log.
"""

import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402


class AIAdminTest(qgtest.ServerTest):
    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, os.path.join(qgtest.SRC, "tests", "fakellm"))
        from fakellm import FakeLLM  # noqa: E402

        cls.fake = FakeLLM().start()
        cls.env_key = "sk-env-" + secrets.token_hex(20)
        cls.SERVER_ENV = {
            "OPENAI_API_KEY": cls.env_key,
            "OPENAI_BASE_URL": cls.fake.url + "/v1",
            "QG_AI_MODELS": "quick=openai:gpt-4o-nano>fast",
        }
        try:
            super().setUpClass()
        except Exception:
            cls.fake.stop()
            raise
        s = cls.srv
        s.secret(cls.env_key)
        cls.admin = s.admin_token()
        cls.client = s.make_user("client")["access"]
        cls.dev = s.make_user("developer")["access"]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.stop()

    def setUp(self):
        self.fake.reset()

    def req(self, method, path, body=None, token=None, status=None):
        r = self.srv.request(method, path, body, token=token or self.admin)
        if status is not None:
            self.assertEqual(r.status, status, r)
        for k in (self.env_key,):
            self.assertNotIn(k, r.text)
        return r

    def models(self, token=None):
        r = self.req("GET", "/api/ai/models", token=token, status=200)
        self.assertIsNone(r.json["next"])
        return {m["name"]: m for m in r.json["items"]}

    def deployments(self):
        r = self.req("GET", "/api/ai/deployments", status=200)
        return r.json["items"]

    def chat(self, model, token=None):
        self.fake.script("*", {"text": "from the fake", "usage": {"input": 3, "output": 2, "cached": 0}})
        return self.srv.request(
            "POST",
            "/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": "hi"}]},
            token=token or self.dev,
        )

    # ---- tests
    def test_models_for_everyone_and_for_admins(self):
        ms = self.models(self.client)
        self.assertTrue({"builtin", "analyst", "fast", "quick"} <= set(ms), ms)
        for m in ms.values():
            self.assertEqual(set(m), {"name", "description", "providers"}, m)
        self.assertEqual(ms["builtin"]["providers"], ["builtin"])
        self.assertEqual(ms["analyst"]["providers"], ["openai"])
        self.assertTrue(ms["analyst"]["description"])

        full = self.models()
        self.assertEqual(full["builtin"]["source"], "builtin")
        self.assertEqual(full["analyst"]["source"], "environment")
        self.assertEqual(full["analyst"]["fallback"], "builtin")
        self.assertEqual(full["analyst"]["deployments"], ["env-openai"])
        self.assertEqual(full["quick"]["fallback"], "fast")
        self.assertEqual(full["quick"]["deployments"], ["env-openai-gpt-4o-nano"])
        self.assertError(self.srv.request("GET", "/api/ai/models"), 401)

    def test_environment_deployments_are_listed_masked_and_read_only(self):
        deps = self.deployments()
        ids = [d["id"] for d in deps]
        self.assertEqual(len(ids), len(set(ids)), ids)
        env = {d["model_name"]: d for d in deps if d["id"] in ("env-openai", "env-openai@fast")}
        self.assertEqual(env["analyst"]["id"], "env-openai")
        self.assertEqual(env["fast"]["id"], "env-openai@fast")
        d = env["analyst"]
        self.assertEqual(d["key_ref"], "env:OPENAI_API_KEY")
        self.assertEqual(d["source"], "environment")
        self.assertEqual(d["provider"], "openai")
        self.assertEqual(d["model"], "gpt-4o-mini")
        self.assertEqual(d["base_url"], self.fake.url + "/v1")
        self.assertTrue(d["key_masked"] and d["key_masked"] != self.env_key, d)
        self.assertTrue(d["key_masked"].endswith(self.env_key[-4:]), d)
        self.assertNotIn("api_key", d)
        b = [x for x in deps if x["id"] == "builtin"]
        self.assertEqual(b[0]["provider"], "builtin")
        self.assertIsNone(b[0]["key_masked"])

        r = self.req("PATCH", "/api/ai/deployments/env-openai", {"enabled": False})
        self.assertError(r, 409, "conflict", "environment")
        r = self.req("DELETE", "/api/ai/deployments/builtin")
        self.assertError(r, 409, "conflict")
        r = self.req("DELETE", "/api/ai/models/analyst")
        self.assertError(r, 404, "not_found", "environment")
        self.assertError(self.srv.request("GET", "/api/ai/deployments", token=self.dev), 403, "forbidden")

    def test_database_model_and_deployment_with_vault_key(self):
        key = self.srv.secret("sk-db-" + secrets.token_hex(20))
        r = self.req("POST", "/api/ai/models", {"name": "research", "description": "deep dives", "fallback": "fast"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["source"], "database")
        self.assertEqual(r.json["deployments"], [])
        self.assertError(self.req("POST", "/api/ai/models", {"name": "research"}), 409, "conflict")
        r = self.req("PUT", "/api/ai/models/research", {"description": "deeper dives", "fallback": "fast"}, status=200)
        self.assertEqual(r.json["description"], "deeper dives")

        r = self.req(
            "POST",
            "/api/ai/deployments",
            {
                "model_name": "research",
                "provider": "openai",
                "model": "gpt-4o",
                "base_url": self.fake.url + "/v1",
                "api_key": key,
                "price_in": 2.5,
                "price_out": 10,
                "priority": 1,
            },
        )
        self.assertEqual(r.status, 201, r)
        dep = r.json
        self.assertNotIn(key, r.text)
        self.assertNotIn("api_key", dep)
        self.assertTrue(dep["id"].startswith("dep_"), dep)
        self.assertEqual(dep["key_ref"], "ai." + dep["id"])
        self.assertTrue(dep["key_masked"].endswith(key[-4:]), dep)
        self.assertEqual(dep["source"], "database")
        self.assertEqual(dep["price_out"], 10)
        self.assertEqual(dep["connect_timeout_ms"], 5000)
        self.assertTrue(dep["enabled"])

        # the key is a vault secret, masked there too
        r = self.req("GET", "/api/secrets", status=200)
        names = {s["name"]: s for s in r.json["items"]}
        self.assertIn("ai." + dep["id"], names)
        self.assertNotIn(key, r.text)

        # the catalog was reloaded: the next call uses the new deployment and key
        self.assertEqual(self.models()["research"]["deployments"], [dep["id"]])
        r = self.chat("research")
        self.assertEqual(r.status, 200, r)
        reqs = self.fake.requests("openai")
        self.assertEqual(len(reqs), 1, reqs)
        self.assertEqual(reqs[0]["headers"].get("authorization"), "Bearer " + key)
        self.assertEqual(reqs[0]["body"]["model"], "gpt-4o")

        # PATCH: a disabled deployment is skipped (research falls back to fast: env-openai)
        r = self.req("PATCH", "/api/ai/deployments/" + dep["id"], {"enabled": False, "model": "gpt-4.1"}, status=200)
        self.assertFalse(r.json["enabled"])
        self.assertEqual(r.json["model"], "gpt-4.1")
        self.assertEqual(r.json["key_ref"], "ai." + dep["id"])
        self.fake.reset()
        self.assertEqual(self.chat("research").status, 200)
        reqs = self.fake.requests("openai")
        self.assertTrue(reqs, "fallback to fast did not reach the provider")
        self.assertEqual(reqs[-1]["headers"].get("authorization"), "Bearer " + self.env_key)

        # PATCH errors name the field
        for body, want in (
            ({"api_key": ""}, "api_key"),
            ({"api_key": "x" * 12, "key_ref": ""}, "api_key"),
            ({"key_ref": "env:HOME"}, "key_ref"),
            ({"base_url": "ftp://example.com"}, "base_url"),
            ({"price_in": -1}, "price_in"),
            ({"provider": "mistral"}, "provider"),
            ({"enabled": "yes"}, "enabled"),
        ):
            r = self.req("PATCH", "/api/ai/deployments/" + dep["id"], body)
            self.assertError(r, 400, "validation_failed", want)
        self.assertError(self.req("PATCH", "/api/ai/deployments/dep_nope", {"enabled": True}), 404)

        # removing the key (key_ref "") deletes the vault secret
        r = self.req("PATCH", "/api/ai/deployments/" + dep["id"], {"key_ref": ""}, status=200)
        self.assertEqual(r.json["key_ref"], "")
        self.assertIsNone(r.json["key_masked"])
        r = self.req("GET", "/api/secrets", status=200)
        self.assertNotIn("ai." + dep["id"], [s["name"] for s in r.json["items"]])
        # and a new key puts it back
        key2 = self.srv.secret("sk-db2-" + secrets.token_hex(20))
        r = self.req("PATCH", "/api/ai/deployments/" + dep["id"], {"api_key": key2}, status=200)
        self.assertNotIn(key2, r.text)
        self.assertTrue(r.json["key_masked"].endswith(key2[-4:]))

        # a model with deployments cannot be deleted; its deployment can
        r = self.req("DELETE", "/api/ai/models/research")
        self.assertError(r, 409, "conflict", "deployment")
        self.req("DELETE", "/api/ai/deployments/" + dep["id"], status=204)
        self.assertError(self.req("DELETE", "/api/ai/deployments/" + dep["id"]), 404)
        r = self.req("GET", "/api/secrets", status=200)
        self.assertNotIn("ai." + dep["id"], [s["name"] for s in r.json["items"]])
        self.req("DELETE", "/api/ai/models/research", status=204)
        self.assertNotIn("research", self.models())

    def test_database_model_replaces_environment_model(self):
        r = self.req("POST", "/api/ai/models", {"name": "analyst", "description": "offline analyst", "fallback": "builtin"})
        self.assertEqual(r.status, 201, r)
        try:
            m = self.models()["analyst"]
            self.assertEqual(m["source"], "database")
            self.assertEqual(m["deployments"], [])
            self.assertEqual(m["description"], "offline analyst")
            r = self.chat("analyst")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.fake.requests("openai"), [], "the replaced env deployment was used")
        finally:
            self.req("DELETE", "/api/ai/models/analyst", status=204)
        m = self.models()["analyst"]
        self.assertEqual(m["source"], "environment")
        self.assertEqual(m["deployments"], ["env-openai"])

    def test_validation(self):
        for body, want in (
            ({"name": "builtin"}, "reserved"),
            ({"name": "a b"}, "name"),
            ({"name": "x", "fallback": "nowhere"}, "fallback"),
            ({"description": "no name"}, "name"),
            ({"name": "y", "description": 5}, "description"),
        ):
            r = self.req("POST", "/api/ai/models", body)
            self.assertError(r, 400, "validation_failed", want)
        r = self.req("PUT", "/api/ai/models/loop1", {"fallback": "fast"}, status=201)
        r = self.req("PUT", "/api/ai/models/loop2", {"fallback": "loop1"}, status=201)
        r = self.req("PUT", "/api/ai/models/loop1", {"fallback": "loop2"})
        self.assertError(r, 400, "validation_failed", "cycle")
        for body, want in (
            ({"model_name": "fast", "provider": "openai", "model": "m"}, "POST /api/ai/models"),
            ({"model_name": "loop1", "provider": "nope", "model": "m"}, "provider"),
            ({"model_name": "loop1", "provider": "openai"}, "model"),
            ({"model_name": "loop1", "provider": "openai", "model": "m", "key_ref": "jwt"}, "key_ref"),
            ({"model_name": "loop1", "provider": "openai", "model": "m", "read_timeout_ms": 0}, "read_timeout_ms"),
        ):
            r = self.req("POST", "/api/ai/deployments", body)
            self.assertError(r, 400, "validation_failed", want)
        self.req("DELETE", "/api/ai/models/loop2", status=204)
        self.req("DELETE", "/api/ai/models/loop1", status=204)
        self.assertError(self.req("DELETE", "/api/ai/models/loop1"), 404)
        self.assertError(self.srv.request("POST", "/api/ai/models", {"name": "z"}, token=self.dev), 403, "forbidden")


if __name__ == "__main__":
    qgtest.main()
