"""test_memory_embed.py - provider embeddings end to end through the real
server: the env model `embed` (QG_OPENAI_EMBED_MODEL) pointed at the fake
provider (tests/fakellm, deterministic word-hash vectors), then

- a memory collection created with "embedder":"model:embed": items added and
  searched (shared words rank higher), every embedding call recorded as the
  user's usage, and the fake saw /v1/embeddings with the deployment's model;
- documents with QG_DOCS_EMBED_MODEL=embed: an upload is embedded by the
  provider, search cites the chunk, an unchanged re-upload sends nothing,
  an edited section is the only text sent again;
- a provider failure (scripted 500s) answers POST /api/memory with 503
  unavailable (the message names the model and the provider's error) and
  writes nothing (the item is not listed, the
  collection's count does not move)."""

import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402

PROVIDER_MODEL = "fake-embed-small"

NOTES = [
    "gold swept the asian low then broke above the london high",
    "euro dollar ranged all day on thin volume before the fed minutes",
    "nasdaq rejected the weekly high with a bearish order block",
]

GUIDE_V1 = """# Risk

Risk one percent of the account per trade and never move the stop loss.

# Sessions

The london session opens the market with the largest ranges of the day.

# Journal

Write every trade into the journal with a screenshot of the chart.
"""


class MemoryEmbedTest(qgtest.ServerTest):
    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, os.path.join(qgtest.SRC, "tests", "fakellm"))
        from fakellm import FakeLLM  # noqa: E402

        cls.fake = FakeLLM().start()
        cls.key = "sk-embed-" + secrets.token_hex(20)
        cls.SERVER_ENV = {
            "OPENAI_API_KEY": cls.key,
            "OPENAI_BASE_URL": cls.fake.url + "/v1",
            "QG_OPENAI_EMBED_MODEL": PROVIDER_MODEL,
            "QG_DOCS_EMBED_MODEL": "embed",
            "QG_AI_RETRIES": "0",
        }
        try:
            super().setUpClass()
        except Exception:
            cls.fake.stop()
            raise
        cls.srv.secret(cls.key)
        cls.dev = cls.srv.make_user("developer", "embdev")
        cls.other = cls.srv.make_user("developer", "embdev2")
        r = cls.srv.request("POST", "/api/memory/collections",
                            {"name": "notes_model", "embedder": "model:embed",
                             "description": "provider-embedded notes"}, token=cls.dev["access"])
        assert r.status == 201, r

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.stop()

    def setUp(self):
        self.fake.reset()

    # ---- helpers
    def req(self, method, path, body=None, user=None, query=None):
        return self.srv.request(method, path, body, token=(user or self.dev)["access"], query=query)

    def embed_requests(self):
        return [r for r in self.fake.requests("openai") if r["path"].endswith("/embeddings")]

    def embedded_texts(self):
        out = []
        for r in self.embed_requests():
            inp = r["body"]["input"]
            out.extend(inp if isinstance(inp, list) else [inp])
        return out

    def add(self, text, user=None, coll="notes_model"):
        return self.req("POST", "/api/memory", {"collection": coll, "text": text, "symbol": "XAUUSD"}, user=user)

    def listed(self, user=None):
        r = self.req("GET", "/api/memory", user=user, query={"collection": "notes_model", "limit": "500"})
        self.assertEqual(r.status, 200, r)
        return r.json["items"]

    def usage_calls(self, user, model="embed"):
        r = self.req("GET", "/api/usage", user=user, query={"group_by": "model"})
        self.assertEqual(r.status, 200, r)
        rows = {row["model"]: row for row in r.json["rows"]}
        return rows.get(model, {}).get("calls", 0)

    # ---- (a) a collection embedded by the provider
    def test_a_collection_with_model_embedder(self):
        u = self.srv.make_user("developer", "embA")
        before = self.usage_calls(u)
        ids = []
        for t in NOTES:
            r = self.add(t, user=u)
            self.assertEqual(r.status, 201, r)
            ids.append(r.json["id"])
        reqs = self.embed_requests()
        self.assertEqual(len(reqs), 3, reqs)
        for rq in reqs:
            self.assertEqual(rq["body"]["model"], PROVIDER_MODEL, rq)
            self.assertEqual(rq["path"], "/v1/embeddings", rq)
            self.assertEqual(rq["headers"].get("authorization"), "Bearer " + self.key)
        self.assertEqual(sorted(self.embedded_texts()), sorted(NOTES))

        cols = {c["name"]: c for c in self.req("GET", "/api/memory/collections", user=u).json["items"]}
        self.assertEqual(cols["notes_model"]["embedder"], "model:embed")
        self.assertEqual(cols["notes_model"]["dim"], 16)  # embedvec.py's dimension
        self.assertEqual(cols["notes_model"]["count"], 3)

        # Shared words rank higher: the query shares most words with NOTES[2].
        r = self.req("GET", "/api/memory/search", user=u,
                     query={"q": "nasdaq rejected the weekly high", "collection": "notes_model", "n": "3"})
        self.assertEqual(r.status, 200, r)
        items = r.json["items"]
        self.assertEqual([i["id"] for i in items][0], ids[2], items)
        self.assertEqual(len(items), 3)
        scores = [i["score"] for i in items]
        self.assertEqual(scores, sorted(scores, reverse=True))
        self.assertGreater(scores[0], scores[1])
        r = self.req("GET", "/api/memory/search", user=u,
                     query={"q": "euro dollar thin volume fed", "collection": "notes_model", "n": "1"})
        self.assertEqual(r.json["items"][0]["id"], ids[1], r)
        # the query was embedded by the provider too
        self.assertIn("euro dollar thin volume fed", self.embedded_texts())

        # 3 adds + 2 searches, recorded as this user's usage of `embed`
        self.assertEqual(self.usage_calls(u) - before, 5)
        # another user sees none of it, and none of the calls
        self.assertEqual(self.listed(self.other), [])
        self.assertEqual(self.usage_calls(self.other), 0)
        self.assertNotIn(self.key, self.srv.log_text())

    # ---- (b) documents embedded by the provider
    def test_b_documents_with_provider(self):
        up = {"path": "team/risk-guide.md", "content": GUIDE_V1}
        r = self.req("POST", "/api/docs", up)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json.get("files_changed"), 1, r)
        texts = self.embedded_texts()
        self.assertGreaterEqual(len(texts), 3, texts)
        for rq in self.embed_requests():
            self.assertEqual(rq["body"]["model"], PROVIDER_MODEL)

        r = self.req("GET", "/api/docs/search", query={"q": "london session ranges", "n": "3"})
        self.assertEqual(r.status, 200, r)
        top = r.json["items"][0]
        self.assertEqual(top["path"], "team/risk-guide.md")
        self.assertEqual(top["heading"], "Sessions", top)
        self.assertIn("london session", top["text"])
        self.assertGreaterEqual(top["line_start"], 1)

        # unchanged re-upload: no new embedding request
        self.fake.reset()
        r = self.req("POST", "/api/docs", up)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json.get("files_unchanged"), 1, r)
        self.assertEqual(self.embed_requests(), [])

        # one section edited: only its text is sent
        self.fake.reset()
        v2 = GUIDE_V1.replace("never move the stop loss", "never widen the stop loss after entry")
        r = self.req("POST", "/api/docs", {"path": "team/risk-guide.md", "content": v2})
        self.assertEqual(r.status, 200, r)
        texts = self.embedded_texts()
        self.assertEqual(len(texts), 1, texts)
        self.assertIn("widen the stop loss", texts[0])
        self.assertEqual(r.json.get("embedded"), 1, r)

        # a provider failure during an upload: an error, the old version stays
        self.fake.reset()
        self.fake.script(PROVIDER_MODEL, {"status": 500}, {"status": 500}, {"status": 500})
        v3 = v2.replace("screenshot of the chart", "screenshot of the chart and the reason")
        r = self.req("POST", "/api/docs", {"path": "team/risk-guide.md", "content": v3})
        self.assertError(r, 503, "unavailable", r"embeddings model 'embed'")
        self.fake.reset()
        r = self.req("GET", "/api/docs/search", query={"q": "journal screenshot", "n": "1"})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("the reason", r.json["items"][0]["text"])

    # ---- (c) a provider failure on add
    def test_c_provider_failure_writes_nothing(self):
        u = self.srv.make_user("developer", "embC")
        r = self.add("first note about gold", user=u)
        self.assertEqual(r.status, 201, r)
        self.fake.script(PROVIDER_MODEL, {"status": 500, "message": "boom"}, {"status": 500}, {"status": 500})
        r = self.add("second note that the provider refuses", user=u)
        # the AI layer's QG_EAGAIN ("try again later"): 503 unavailable, the
        # message names the model and the provider's error
        self.assertError(r, 503, "unavailable", r"embeddings model 'embed': server_error")
        self.assertNotIn(self.key, r.text)
        self.assertTrue(self.embed_requests())
        self.fake.reset()
        listed = self.listed(u)
        self.assertEqual([i["text"] for i in listed], ["first note about gold"])
        cols = {c["name"]: c for c in self.req("GET", "/api/memory/collections", user=u).json["items"]}
        self.assertEqual(cols["notes_model"]["count"], 1)
        # the next add works and is searchable
        r = self.add("third note about the london session", user=u)
        self.assertEqual(r.status, 201, r)
        r = self.req("GET", "/api/memory/search", user=u, query={"q": "london session", "collection": "notes_model"})
        self.assertEqual(r.json["items"][0]["text"], "third note about the london session", r)


if __name__ == "__main__":
    qgtest.main()
