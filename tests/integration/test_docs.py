"""test_docs.py - documents against the real binary: `quantgate docs ingest`
of tests/data/docs (counts, then an unchanged re-ingest that embeds
nothing), `quantgate docs search --json`, then `serve` on the same data
directory answering GET /api/docs/search with the citation; an ingest by
the CLI while the server runs is seen at the next search; uploads through
POST /api/docs (a client gets 403, a server path is refused), bad q/n are
400s naming the parameter, DELETE /api/docs removes a document."""

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402

ATR_QUERY = "Average True Range volatility trailing stop multiple of the ATR"


class DocsTest(qgtest.ServerTest):
    @classmethod
    def setUpClass(cls):
        # The CLI ingests into the data directory before the server starts.
        cls.srv = qgtest.Server(env=cls.SERVER_ENV, master_key=True)
        try:
            cls.docdir = os.path.join(cls.srv.tmp, "docs")
            shutil.copytree(os.path.join(qgtest.DATA, "docs"), cls.docdir)
            cls.first = cls.cli("ingest", cls.docdir, "--json")
            cls.second = cls.cli("ingest", cls.docdir, "--json")
            cls.srv.start()
        except Exception:
            cls.srv.cleanup()
            raise
        cls.admin = cls.srv.admin_token()
        cls.developer = cls.srv.make_user("developer")["access"]
        cls.client = cls.srv.make_user("client")["access"]

    @classmethod
    def cli(cls, *args, expect=0):
        env = cls.srv.env()
        r = qgtest.run_cli(["docs"] + list(args), env=env)
        assert r.returncode == expect, "docs %s: rc %d\n%s\n%s" % (args, r.returncode, r.stdout, r.stderr)
        if "--json" in args and expect == 0:
            return json.loads(r.stdout)
        return r

    def search(self, q, n=None, token=None):
        query = {"q": q}
        if n is not None:
            query["n"] = n
        return self.srv.request("GET", "/api/docs/search", token=token or self.client, query=query)

    def test_cli_ingest_counts(self):
        c = self.first
        self.assertEqual(c["files_seen"], 7)
        self.assertEqual(c["files_changed"], 7)
        self.assertEqual(c["embedder"], "hash")
        self.assertGreater(c["chunks_added"], 20)
        self.assertEqual(c["embedded"], c["chunks_added"])
        again = self.second
        self.assertEqual(again["files_unchanged"], 7)
        self.assertEqual(again["embedded"], 0, "nothing is embedded again")

    def test_cli_search_json(self):
        out = self.cli("search", ATR_QUERY, "-n", "3", "--json")
        self.assertEqual(len(out["items"]), 3)
        top = out["items"][0]
        self.assertTrue(top["path"].endswith("/mql5_reference.md"), top)
        self.assertEqual(top["heading"], "MQL5 Reference Notes > Indicators > iATR")
        self.assertEqual((top["line_start"], top["line_end"]), (40, 45))
        r = self.cli("search", "x", "-n", "51", expect=2)
        self.assertIn("-n", r.stderr)

    def test_http_search_citation(self):
        r = self.search(ATR_QUERY, n=5)
        self.assertEqual(r.status, 200, r)
        items = r.json["items"]
        self.assertEqual(len(items), 5)
        top = items[0]
        self.assertTrue(top["path"].endswith("/mql5_reference.md"), top)
        self.assertEqual(top["heading"], "MQL5 Reference Notes > Indicators > iATR")
        self.assertEqual(top["line_start"], 40)
        self.assertEqual(top["line_end"], 45)
        self.assertIn("trailing", top["text"])
        scores = [i["score"] for i in items]
        self.assertEqual(scores, sorted(scores, reverse=True), "best first")

    def test_http_search_bad_parameters(self):
        self.assertError(self.search(""), 400, "validation_failed", r"\bq\b")
        r = self.srv.request("GET", "/api/docs/search", token=self.client)
        self.assertError(r, 400, "validation_failed", r"\bq\b")
        self.assertError(self.search("atr", n=0), 400, "validation_failed", r"'n'")
        self.assertError(self.search("atr", n=51), 400, "validation_failed", r"'n'")
        self.assertError(self.search("atr", n="ten"), 400, "validation_failed", r"'n'")
        r = self.srv.request("GET", "/api/docs/search", query={"q": "atr"})
        self.assertEqual(r.status, 401, r)

    def test_upload_roles_and_paths(self):
        doc = {"path": "desk/rules.md", "content": "# Desk rules\n\nNo trading on Fridays after the US close.\n"}
        r = self.srv.request("POST", "/api/docs", doc, token=self.client)
        self.assertError(r, 403)
        r = self.srv.request("POST", "/api/docs", doc, token=self.developer)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["chunks_added"], 1)
        self.assertEqual(r.json["embedded"], 1)
        r = self.srv.request("POST", "/api/docs", {"documents": [doc]}, token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["files_unchanged"], 1)
        self.assertEqual(r.json["embedded"], 0)
        r = self.search("trading on Fridays after the close", n=1)
        self.assertEqual(r.json["items"][0]["path"], "desk/rules.md")
        self.assertEqual(r.json["items"][0]["heading"], "Desk rules")

        # server paths are names, never files the server reads
        for bad in ("/etc/passwd.md", "../../etc/x.md", "a/../../b.md", os.path.join(self.docdir, "team_guide.md")):
            r = self.srv.request("POST", "/api/docs", {"path": bad, "content": "x"}, token=self.developer)
            self.assertError(r, 400, "validation_failed", r"path")
        r = self.srv.request("POST", "/api/docs", {"path": "x.exe", "content": "x"}, token=self.developer)
        self.assertError(r, 400, "validation_failed", r"\.exe")
        r = self.srv.request("POST", "/api/docs", {"path": "x.md"}, token=self.developer)
        self.assertError(r, 400, "validation_failed", r"content")

        r = self.srv.request("GET", "/api/docs", token=self.client)
        self.assertEqual(r.status, 200, r)
        paths = [f["path"] for f in r.json["items"]]
        self.assertIn("desk/rules.md", paths)

        r = self.srv.request("DELETE", "/api/docs", token=self.client, query={"path": "desk/rules.md"})
        self.assertError(r, 403)
        r = self.srv.request("DELETE", "/api/docs", token=self.developer, query={"path": "desk/rules.md"})
        self.assertEqual(r.status, 204, r)
        r = self.srv.request("DELETE", "/api/docs", token=self.developer, query={"path": "desk/rules.md"})
        self.assertError(r, 404)

    def test_cli_ingest_seen_by_running_server(self):
        with open(os.path.join(self.docdir, "fresh_notes.md"), "w") as f:
            f.write("# Liquidity sweeps\n\nA liquidity sweep takes the stops resting above an equal-highs "
                    "level and reverses; wait for the displacement candle before entering.\n")
        c = self.cli("ingest", self.docdir, "--json")
        self.assertEqual(c["files_changed"], 1)
        self.assertEqual(c["embedded"], 1)
        r = self.search("liquidity sweep equal highs displacement candle", n=1)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["items"][0]["path"].endswith("/fresh_notes.md"), r.json)
        os.remove(os.path.join(self.docdir, "fresh_notes.md"))
        c = self.cli("ingest", self.docdir, "--json")
        self.assertEqual(c["files_removed"], 1)
        self.assertEqual(c["embedded"], 0)
        r = self.search("liquidity sweep equal highs displacement candle", n=10)
        self.assertFalse([i for i in r.json["items"] if i["path"].endswith("/fresh_notes.md")])


if __name__ == "__main__":
    qgtest.main()
