"""test_memory.py - the memory API against the real server: two users each
see only their own memories (another user's id answers 404 like a missing
one); add, search with filters, list, delete; market-setup search;
collections (listing with counts, creation by developers only); working
memory; every bad input is a 400 naming the field or parameter; and after a
restart the same search answers the same (snapshot), also when the snapshot
file is gone (rebuild from the database)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402

NOTES = [
    ("analyses", "gold swept the asian low then broke above the london high", "XAUUSD", "15m"),
    ("analyses", "euro dollar ranged all day on thin volume before the fed minutes", "EURUSD", "1h"),
    ("signals", "bullish break of structure on gold after a fair value gap retest", "XAUUSD", "5m"),
    ("signals", "nasdaq rejected the weekly high with a bearish order block", "NAS100", "1h"),
]


def setup(drift, session):
    close, p = [], 100.0
    for i in range(40):
        p += drift + ((i * 7919) % 13 - 6) * 0.05
        close.append(round(p, 4))
    return {"close": close, "trend": "up" if drift > 0 else "down", "session": session,
            "signal_type": "BoS_bull" if drift > 0 else "BoS_bear"}


class MemoryTest(qgtest.ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.srv
        cls.a = s.make_user("client", "alice")
        cls.b = s.make_user("client", "bob")
        cls.dev = s.make_user("developer", "dev")
        cls.ids = {"a": [], "b": []}
        for who, u in (("a", cls.a), ("b", cls.b)):
            for coll, text, sym, tf in NOTES:
                r = s.request("POST", "/api/memory", {"collection": coll, "text": "%s (%s)" % (text, who),
                                                       "symbol": sym, "timeframe": tf,
                                                       "meta": {"outcome": "win", "r": 2.5}}, token=u["access"])
                assert r.status == 201, r
                cls.ids[who].append(r.json["id"])

    def req(self, method, path, body=None, user=None, query=None):
        return self.srv.request(method, path, body, token=(user or self.a)["access"], query=query)

    def search(self, user=None, **query):
        r = self.req("GET", "/api/memory/search", user=user, query=query)
        self.assertEqual(r.status, 200, r)
        return r.json["items"]

    # ------------------------------------------------------------------ basics
    def test_add_reply_shape(self):
        r = self.req("POST", "/api/memory", {"collection": "analyses", "text": "cable faded the london open",
                                             "symbol": "GBPUSD", "session": "london", "ts": "2024-03-01T08:00:00Z",
                                             "meta": {"k": [1, 2]}})
        self.assertEqual(r.status, 201, r)
        it = r.json
        self.assertTrue(it["id"].startswith("mem_"), it)
        self.assertEqual(it["collection"], "analyses")
        self.assertEqual(it["kind"], "long")
        self.assertEqual(it["metadata"]["symbol"], "GBPUSD")
        self.assertEqual(it["metadata"]["session"], "london")
        self.assertEqual(it["metadata"]["ts"], "2024-03-01T08:00:00Z")
        self.assertEqual(it["metadata"]["meta"], {"k": [1, 2]})
        self.assertIsNone(it["expires_at"])
        r = self.req("GET", "/api/memory/" + it["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["text"], "cable faded the london open")

    def test_search_ranks_and_filters(self):
        items = self.search(q="gold swept the asian low and broke the london high", collection="analyses", n=2)
        self.assertEqual(len(items), 2)
        self.assertEqual(items[0]["id"], self.ids["a"][0])
        self.assertGreater(items[0]["score"], items[1]["score"])
        self.assertLessEqual(items[0]["score"], 1.0001)
        # no collection: every text collection; filter by symbol and timeframe
        items = self.search(q="gold structure", symbol="XAUUSD", n=10)
        self.assertGreaterEqual(len(items), 2)
        for it in items:
            self.assertEqual(it["metadata"]["symbol"], "XAUUSD")
        items = self.search(q="gold", symbol="XAUUSD", timeframe="5m")
        self.assertEqual([i["id"] for i in items], [self.ids["a"][2]])
        self.assertEqual(self.search(q="gold", symbol="NOPE"), [])

    def test_users_are_isolated(self):
        for me, other in (("a", "b"), ("b", "a")):
            user = self.a if me == "a" else self.b
            items = self.search(user=user, q="gold london fed nasdaq euro", n=100)
            ids = {i["id"] for i in items}
            self.assertTrue(set(self.ids[me]) <= ids, "own memories found")
            self.assertFalse(ids & set(self.ids[other]), "another user's memories never appear")
            r = self.req("GET", "/api/memory", user=user, query={"limit": 500})
            self.assertEqual(r.status, 200, r)
            listed = {i["id"] for i in r.json["items"]}
            self.assertFalse(listed & set(self.ids[other]))
            for oid in self.ids[other][:2]:
                self.assertError(self.req("GET", "/api/memory/" + oid, user=user), 404, "not_found")
                self.assertError(self.req("DELETE", "/api/memory/" + oid, user=user), 404, "not_found")
        # the other user's items survived the attempts
        self.assertEqual(self.req("GET", "/api/memory/" + self.ids["b"][0], user=self.b).status, 200)
        # an unknown id answers the same as someone else's
        r1 = self.req("GET", "/api/memory/" + self.ids["b"][1])
        r2 = self.req("GET", "/api/memory/mem_00000000000000000000000000")
        self.assertEqual((r1.status, r1.json["error"]["code"]), (r2.status, r2.json["error"]["code"]))

    def test_delete(self):
        r = self.req("POST", "/api/memory", {"collection": "signals", "text": "short lived test memory about yen"})
        self.assertEqual(r.status, 201, r)
        mid = r.json["id"]
        self.assertEqual(self.search(q="test memory about yen", collection="signals", n=1)[0]["id"], mid)
        r = self.req("DELETE", "/api/memory/" + mid)
        self.assertEqual(r.status, 204, r)
        self.assertError(self.req("DELETE", "/api/memory/" + mid), 404, "not_found")
        self.assertNotIn(mid, [i["id"] for i in self.search(q="test memory about yen", collection="signals")])

    def test_list_paging(self):
        r = self.req("GET", "/api/memory", query={"collection": "analyses", "limit": 1}, user=self.b)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["items"]), 1)
        self.assertEqual(r.json["items"][0]["id"], self.ids["b"][1], "newest first")
        nxt = r.json["next"]
        self.assertTrue(nxt)
        r = self.req("GET", "/api/memory", query={"collection": "analyses", "limit": 1, "cursor": nxt}, user=self.b)
        self.assertEqual([i["id"] for i in r.json["items"]], [self.ids["b"][0]])

    def test_kinds(self):
        c = self.srv.make_user("client", "kinds")
        r = self.req("POST", "/api/memory", {"kind": "episodic", "text": "risk 1% per trade, no trading on Fridays"}, user=c)
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json["collection"], r.json["kind"]), ("facts", "episodic"))
        r = self.req("POST", "/api/memory", {"kind": "short", "text": "asked about gold", "session": "chat-9"}, user=c)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["collection"], "conversations")
        self.assertIsNotNone(r.json["expires_at"], "short-term memories expire")
        r = self.req("GET", "/api/memory", query={"kind": "episodic"}, user=c)
        self.assertEqual([i["text"] for i in r.json["items"]], ["risk 1% per trade, no trading on Fridays"])
        items = self.search(user=c, q="trading fridays risk", kind="episodic")
        self.assertEqual(len(items), 1)
        r = self.req("DELETE", "/api/memory", query={"session": "chat-9"}, user=c)
        self.assertEqual((r.status, r.json), (200, {"removed": 1}))

    def test_working_memory(self):
        r = self.req("PUT", "/api/memory/working/s1/plan", {"value": {"step": 1, "symbol": "XAUUSD"}})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["value"], {"step": 1, "symbol": "XAUUSD"})
        r = self.req("PUT", "/api/memory/working/s1/plan", {"value": {"step": 2}})
        self.assertEqual(r.status, 200, r)
        r = self.req("POST", "/api/memory", {"kind": "working", "session": "s1", "key": "note", "value": "hi"})
        self.assertEqual(r.status, 201, r)
        r = self.req("GET", "/api/memory/working/s1/plan")
        self.assertEqual(r.json["value"], {"step": 2})
        r = self.req("GET", "/api/memory/working/s1")
        self.assertEqual([e["key"] for e in r.json["items"]], ["note", "plan"])
        r = self.req("GET", "/api/memory", query={"kind": "working", "session": "s1"})
        self.assertEqual(len(r.json["items"]), 2)
        self.assertError(self.req("GET", "/api/memory/working/s1/plan", user=self.b), 404, "not_found")
        self.assertEqual(self.req("DELETE", "/api/memory/working/s1/note").status, 204)
        self.assertEqual(self.req("DELETE", "/api/memory/working/s1").status, 204)
        self.assertError(self.req("GET", "/api/memory/working/s1/plan"), 404, "not_found")
        self.assertError(self.req("PUT", "/api/memory/working/s1/k", {}), 400, "validation_failed", "value")

    def test_market_setups(self):
        r = self.req("POST", "/api/memory", {"setup": setup(0.8, "london"), "text": "bull BoS, ended +2R", "symbol": "XAUUSD"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["collection"], "setups")
        self.assertEqual(r.json["metadata"]["session"], "london")
        up = r.json["id"]
        r = self.req("POST", "/api/memory", {"setup": setup(-0.8, "new_york"), "text": "bear BoS, stopped out"})
        self.assertEqual(r.status, 201, r)
        r = self.req("POST", "/api/memory/search", {"setup": setup(0.7, "london"), "n": 2})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["items"][0]["id"], up)
        self.assertEqual(len(r.json["items"]), 2)
        r = self.req("POST", "/api/memory/search", {"setup": {"close": [1, 2, 3], "trend": "sideways"}})
        self.assertError(r, 400, "validation_failed", "trend")

    def test_collections(self):
        r = self.req("GET", "/api/memory/collections")
        self.assertEqual(r.status, 200, r)
        cs = {c["name"]: c for c in r.json["items"]}
        for name in ("signals", "analyses", "conversations", "facts", "setups"):
            self.assertIn(name, cs)
        self.assertEqual((cs["setups"]["embedder"], cs["setups"]["dim"]), ("market", 64))
        self.assertEqual((cs["signals"]["embedder"], cs["signals"]["dim"], cs["signals"]["metric"]), ("hash", 256, "cosine"))
        self.assertGreaterEqual(cs["analyses"]["count"], 2)
        self.assertGreaterEqual(cs["analyses"]["total"], 4)
        # developers create, clients may not
        self.assertError(self.req("POST", "/api/memory/collections", {"name": "playbook"}), 403, "forbidden")
        r = self.req("POST", "/api/memory/collections", {"name": "playbook", "metric": "dot", "description": "rules"}, user=self.dev)
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json["name"], r.json["embedder"], r.json["metric"], r.json["dim"]), ("playbook", "hash", "dot", 256))
        self.assertError(self.req("POST", "/api/memory/collections", {"name": "playbook"}, user=self.dev), 409)
        r = self.req("POST", "/api/memory", {"collection": "playbook", "text": "never add to a loser"})
        self.assertEqual(r.status, 201, r)
        m = self.srv.request("GET", "/metrics")
        self.assertEqual(m.status, 200)
        self.assertRegex(m.text, r'qg_memory_items\{collection="playbook"\} 1\n')
        self.assertIn("qg_memory_searches_total", m.text)

    def test_bad_input_names_the_field(self):
        cases = [
            ("POST", "/api/memory", {"text": "x"}, "collection"),
            ("POST", "/api/memory", {"collection": "nope", "text": "x"}, "collection"),
            ("POST", "/api/memory", {"collection": "signals"}, "text"),
            ("POST", "/api/memory", {"collection": "signals", "text": "x", "kind": "forever"}, "kind"),
            ("POST", "/api/memory", {"collection": "signals", "text": "x", "meta": [1]}, "meta"),
            ("POST", "/api/memory", {"collection": "signals", "text": "x", "ttl_s": -1}, "ttl_s"),
            ("POST", "/api/memory", {"collection": "signals", "text": "x", "ts": "yesterday"}, "ts"),
            ("POST", "/api/memory", {"collection": "signals", "text": "x", "colour": "red"}, "colour"),
            ("POST", "/api/memory", {"collection": "signals", "text": "x", "symbol": 5}, "symbol"),
            ("POST", "/api/memory", {"collection": "setups", "text": "x"}, "setup"),
            ("POST", "/api/memory", {"kind": "working", "session": "s", "value": 1}, "key"),
            ("POST", "/api/memory/search", {"n": 3}, "q"),
            ("POST", "/api/memory/collections", {"name": "Bad Name"}, "name"),
            ("POST", "/api/memory/collections", {"name": "ok", "embedder": "word2vec"}, "embedder"),
        ]
        for method, path, body, field in cases:
            user = self.dev if "collections" in path else self.a
            r = self.req(method, path, body, user=user)
            self.assertError(r, 400, "validation_failed", field)
        for query, field in (({}, "q"), ({"q": "x", "n": 0}, "n"), ({"q": "x", "n": "many"}, "n"),
                             ({"q": "x", "kind": "working"}, "kind"), ({"q": "x", "since": "soon"}, "since"),
                             ({"q": "x", "collection": "nope"}, "collection")):
            self.assertError(self.req("GET", "/api/memory/search", query=query), 400, "validation_failed", field)
        self.assertError(self.req("GET", "/api/memory", query={"limit": 0}), 400, "validation_failed", "limit")
        self.assertError(self.req("DELETE", "/api/memory"), 400, "validation_failed", "collection")

    def test_needs_credentials(self):
        self.assertEqual(self.srv.request("GET", "/api/memory/search?q=x").status, 401)

    # ------------------------------------------------------------------ restart
    def test_zz_restart_keeps_memories(self):
        q = {"q": "gold london high structure", "n": 5}
        before = [(i["id"], i["score"]) for i in self.search(**q)]
        self.assertTrue(before)
        self.srv.stop()
        snap = os.path.join(self.srv.data_dir, "memory", "analyses.qgvx")
        self.assertTrue(os.path.exists(snap), "a snapshot is written at shutdown")
        self.srv.start()
        self.a["access"] = self.srv.login(self.a["email"], self.a["password"]).json["access_token"]
        after = [(i["id"], i["score"]) for i in self.search(**q)]
        self.assertEqual([i for i, _ in before], [i for i, _ in after])
        for (_, s1), (_, s2) in zip(before, after):
            self.assertAlmostEqual(s1, s2, places=5)
        # without snapshots: rebuilt from the database
        self.srv.stop()
        for f in os.listdir(os.path.join(self.srv.data_dir, "memory")):
            os.unlink(os.path.join(self.srv.data_dir, "memory", f))
        self.srv.start()
        self.a["access"] = self.srv.login(self.a["email"], self.a["password"]).json["access_token"]
        again = [i["id"] for i in self.search(**q)]
        self.assertEqual([i for i, _ in before], again)


if __name__ == "__main__":
    qgtest.main()
