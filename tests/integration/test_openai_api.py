"""test_openai_api.py - quantgate's OpenAI-compatible endpoint (/v1) driven by
the official `openai` npm package, against the real server whose `analyst`
model goes to the fake provider (tests/fakellm) over loopback.

The SDK runs in node (tests/integration/openai_client.mjs) from
web/node_modules, which scripts/deps.sh installs (npm ci --prefix web); when
node or the package is missing every test here fails and says so.

Covered: the model list (builtin always there) and one model; a
non-streaming completion (the overhead header); a streamed completion
reassembled; a tool call streamed with its arguments reassembled, its result
sent back and the final answer streamed; an API token and a user's access
token both accepted, a bad token refused through the SDK's
AuthenticationError; an unknown model through NotFoundError; an exhausted
budget through RateLimitError (insufficient_quota) before anything is sent;
the
include_usage chunk; the raw SSE wire (content type, one id, data: [DONE])
read with http.client; tokens pushed as they arrive (not on the 100 ms poll
tick); a client that disconnects mid-stream; and the provider key never in
the logs (the harness scans them at shutdown) nor in any reply.
"""

import http.client
import json
import re
import os
import secrets
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "openai_client.mjs")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_price",
            "description": "Last traded price of a symbol",
            "parameters": {
                "type": "object",
                "properties": {"symbol": {"type": "string"}},
                "required": ["symbol"],
            },
        },
    }
]


def web_dir():
    return os.path.join(qgtest.SRC, "web")


def sdk_problem():
    """Why the SDK cannot run here, or None."""
    if not shutil.which("node"):
        return "node is not installed (scripts/deps.sh installs Debian's nodejs and npm)"
    pkg = os.path.join(web_dir(), "node_modules", "openai", "package.json")
    if not os.path.exists(pkg):
        return "%s is missing: run scripts/deps.sh (it runs npm ci --prefix web)" % pkg
    return None


class OpenAIEndpointTest(qgtest.ServerTest):
    @classmethod
    def setUpClass(cls):
        problem = sdk_problem()
        if problem:
            raise AssertionError("the official openai client is needed for these tests: " + problem)
        sys.path.insert(0, os.path.join(qgtest.SRC, "tests", "fakellm"))
        from fakellm import FakeLLM  # noqa: E402

        cls.fake = FakeLLM().start()
        cls.key = "sk-test-" + secrets.token_hex(20)
        cls.SERVER_ENV = {
            "OPENAI_API_KEY": cls.key,
            "OPENAI_BASE_URL": cls.fake.url + "/v1",
        }
        try:
            super().setUpClass()
        except Exception:
            cls.fake.stop()
            raise
        s = cls.srv
        s.secret(cls.key)
        cls.outputs = []  # everything node printed, scanned for the key
        dev = s.make_user("developer")
        r = s.request("POST", "/api/tokens", {"name": "sdk", "scope": "write"}, token=dev["access"])
        assert r.status == 201, r
        cls.api_token = r.json["token"]
        cls.dev_access = dev["access"]
        cls.client_access = s.make_user("client")["access"]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.stop()

    def setUp(self):
        self.fake.reset()

    # ---- helpers
    def base_url(self):
        return "http://127.0.0.1:%d/v1" % self.srv.port

    def sdk(self, scenario, token=None, **inp):
        inp.setdefault("baseURL", self.base_url())
        inp.setdefault("apiKey", token or self.api_token)
        p = subprocess.run(
            ["node", CLIENT, scenario],
            input=json.dumps(inp),
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, QG_WEB_DIR=web_dir()),
        )
        self.outputs.append(p.stdout + p.stderr)
        self.assertEqual(p.returncode, 0, "openai_client.mjs %s failed:\n%s%s" % (scenario, p.stdout, p.stderr))
        return json.loads(p.stdout)

    def ok(self, res):
        self.assertNotIn("error", res, "the SDK raised: %r" % res.get("error"))
        return res

    def sdk_error(self, res, cls, status):
        self.assertIn("error", res, "expected %s, got %r" % (cls, res))
        e = res["error"]
        self.assertEqual(e["class"], cls, e)
        self.assertEqual(e["status"], status, e)
        return e

    def raw(self, body, token=None, stream=False):
        """POST /v1/chat/completions with http.client; returns (response, conn)."""
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        c.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(body),
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + (token or self.api_token)},
        )
        return c.getresponse(), c

    def upstream(self):
        return [r for r in self.fake.requests() if r["path"].endswith("/chat/completions")]

    # ---- models
    def test_models_list_has_builtin(self):
        res = self.ok(self.sdk("models"))
        ids = [m["id"] for m in res["models"]]
        for name in ("builtin", "analyst", "fast"):
            self.assertIn(name, ids)
        self.assertEqual(len(ids), len(set(ids)), ids)
        for m in res["models"]:
            self.assertEqual(m["object"], "model", m)
            self.assertEqual(m["owned_by"], "quantgate", m)
            self.assertIsInstance(m["created"], int, m)

    def test_model_retrieve(self):
        res = self.ok(self.sdk("retrieve", model="analyst"))
        self.assertEqual(res["model"]["id"], "analyst")
        e = self.sdk_error(self.sdk("retrieve", model="no-such-model"), "NotFoundError", 404)
        self.assertEqual(e["code"], "model_not_found")

    # ---- completions
    def test_chat_non_streaming(self):
        self.fake.script("*", {"text": "The trend is up.", "usage": {"input": 12, "output": 5, "cached": 0}})
        res = self.ok(self.sdk("chat", model="analyst", prompt="How is BTC doing?"))
        c = res["completion"]
        self.assertEqual(c["object"], "chat.completion")
        self.assertTrue(c["id"].startswith("chatcmpl-"), c["id"])
        self.assertEqual(c["model"], "analyst")
        self.assertEqual(c["choices"][0]["message"]["role"], "assistant")
        self.assertEqual(c["choices"][0]["message"]["content"], "The trend is up.")
        self.assertEqual(c["choices"][0]["finish_reason"], "stop")
        self.assertEqual(c["usage"]["prompt_tokens"], 12)
        self.assertEqual(c["usage"]["completion_tokens"], 5)
        self.assertEqual(c["usage"]["total_tokens"], 17)
        self.assertGreaterEqual(float(res["overhead_ms"]), 0.0)
        ups = self.upstream()
        self.assertEqual(len(ups), 1, ups)
        self.assertEqual(ups[0]["headers"].get("authorization"), "Bearer " + self.key)
        self.assertIn("How is BTC doing?", json.dumps(ups[0]["body"]["messages"]))

    def test_chat_streaming_reassembled(self):
        text = "Momentum is fading into resistance near the weekly high."
        self.fake.script("*", {"text": text, "usage": {"input": 9, "output": 10, "cached": 0}})
        res = self.ok(self.sdk("stream", model="analyst"))
        self.assertEqual(res["text"], text)
        self.assertEqual(res["roles"], ["assistant"], "role only on the first chunk")
        self.assertEqual(res["finish_reason"], "stop")
        self.assertEqual(len(res["ids"]), 1, res["ids"])
        self.assertGreaterEqual(res["chunks"], 3, res)
        self.assertIsNone(res["usage"], "usage only with stream_options.include_usage")
        ups = self.upstream()
        self.assertEqual(len(ups), 1, ups)
        self.assertIs(ups[0]["body"].get("stream"), True, "streamed from the provider too")

    def test_include_usage_chunk(self):
        self.fake.script("*", {"text": "ok then", "usage": {"input": 11, "output": 7, "cached": 0}})
        res = self.ok(self.sdk("stream", model="analyst", include_usage=True))
        self.assertEqual(res["text"], "ok then")
        self.assertIsNotNone(res["usage"], res)
        self.assertEqual(res["usage"]["prompt_tokens"], 11)
        self.assertEqual(res["usage"]["completion_tokens"], 7)
        self.assertEqual(res["usage"]["total_tokens"], 18)

    def test_tool_call_round_trip(self):
        self.fake.script(
            "*",
            {"tool_calls": [{"id": "call_px1", "name": "get_price", "arguments": {"symbol": "BTC", "venue": "spot"}}]},
            {"text": "BTC trades at 42."},
        )
        res = self.ok(
            self.sdk(
                "tool_round_trip",
                model="analyst",
                prompt="What is BTC at?",
                tools=TOOLS,
                tool_result='{"price": 42}',
            )
        )
        first, second = res["first"], res["second"]
        calls = [c for c in first["tool_calls"] if c]
        self.assertEqual(len(calls), 1, first)
        self.assertEqual(calls[0]["id"], "call_px1")
        self.assertEqual(calls[0]["name"], "get_price")
        self.assertEqual(json.loads(calls[0]["arguments"]), {"symbol": "BTC", "venue": "spot"})
        self.assertEqual(first["finish_reason"], "tool_calls")
        self.assertEqual(second["text"], "BTC trades at 42.")
        self.assertEqual(second["finish_reason"], "stop")
        ups = self.upstream()
        self.assertEqual(len(ups), 2, ups)
        self.assertEqual(ups[0]["body"]["tools"][0]["function"]["name"], "get_price")
        msgs = ups[1]["body"]["messages"]
        tool_msgs = [m for m in msgs if m.get("role") == "tool"]
        self.assertEqual(len(tool_msgs), 1, msgs)
        self.assertEqual(tool_msgs[0]["tool_call_id"], "call_px1")
        self.assertIn("42", json.dumps(tool_msgs[0]["content"]))
        asst = [m for m in msgs if m.get("role") == "assistant"]
        self.assertEqual(asst[0]["tool_calls"][0]["id"], "call_px1", msgs)

    # ---- who may call
    def test_api_token_and_access_tokens(self):
        for label, tok in (("api token", self.api_token), ("developer access", self.dev_access), ("client access", self.client_access)):
            res = self.sdk("chat", token=tok, model="builtin", prompt="hello")
            self.assertNotIn("error", res, "%s: %r" % (label, res.get("error")))
            self.assertTrue(res["completion"]["choices"][0]["message"]["content"], label)
            res = self.sdk("stream", token=tok, model="builtin", prompt="proceed")
            self.assertNotIn("error", res, "%s (stream): %r" % (label, res.get("error")))
            self.assertTrue(res["text"], label)

    def test_bad_token_is_authentication_error(self):
        for bad in ("qg_" + secrets.token_hex(24), "not-a-token", self.dev_access[:-4] + "AAAA"):
            res = self.sdk("chat", token=bad, model="builtin")
            self.sdk_error(res, "AuthenticationError", 401)
            res = self.sdk("models", token=bad)
            self.sdk_error(res, "AuthenticationError", 401)

    def test_budget_exceeded_is_429_before_sending(self):
        """A token whose daily token budget is used up (a limit of 0 tokens,
        set through the budgets admin API): refused with OpenAI's
        insufficient_quota / budget_exceeded and nothing sent upstream; the
        same user's other credentials are not affected."""
        s = self.srv
        r = s.request("POST", "/api/tokens", {"name": "capped", "scope": "write"}, token=self.dev_access)
        self.assertEqual(r.status, 201, r)
        capped, capped_id = r.json["token"], r.json["id"]
        r = s.request(
            "POST",
            "/api/budgets",
            {"scope": "token", "subject": capped_id, "period": "day", "max_tokens": 0},
            token=s.admin_token(),
        )
        self.assertIn(r.status, (200, 201), r)
        for scenario in ("chat", "stream"):
            e = self.sdk_error(self.sdk(scenario, token=capped, model="analyst"), "RateLimitError", 429)
            self.assertEqual(e["code"], "budget_exceeded", e)
            self.assertEqual(e["type"], "insufficient_quota", e)
            self.assertIn("budget", e["message"])
        self.assertEqual(self.upstream(), [], "refused before anything was sent")
        r, c = self.raw({"model": "analyst", "messages": [{"role": "user", "content": "x"}]}, token=capped)
        r.read()
        c.close()
        self.assertEqual(r.status, 429)
        self.assertEqual(r.getheader("x-should-retry"), "false")
        self.fake.script("*", {"text": "fine"})
        res = self.ok(self.sdk("chat", token=self.dev_access, model="analyst"))
        self.assertEqual(res["completion"]["choices"][0]["message"]["content"], "fine")

    def test_unknown_model_is_not_found(self):
        for scenario in ("chat", "stream"):
            e = self.sdk_error(self.sdk(scenario, model="no-such-model"), "NotFoundError", 404)
            self.assertEqual(e["code"], "model_not_found", e)
            self.assertIn("no-such-model", e["message"])
        self.assertEqual(self.upstream(), [], "nothing sent for an unknown model")

    def test_bad_request_names_the_field(self):
        for body, field in (
            ({"model": "builtin", "messages": []}, "messages"),
            ({"messages": [{"role": "user", "content": "x"}]}, "model"),
            ({"model": "builtin", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ):
            for stream in (False, True):
                b = dict(body, stream=stream)
                r, c = self.raw(b)
                data = r.read()
                c.close()
                self.assertEqual(r.status, 400, (b, data))
                err = json.loads(data)["error"]
                self.assertEqual(err["type"], "invalid_request_error", err)
                self.assertIn(field, err["message"], err)
        r, c = self.raw({})
        r.read()
        c.close()
        self.assertEqual(r.status, 400)

    # ---- the wire
    def test_raw_sse_wire(self):
        self.fake.script("*", {"text": "alpha beta gamma", "usage": {"input": 3, "output": 3, "cached": 0}})
        r, c = self.raw(
            {
                "model": "analyst",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "hi"}],
            }
        )
        body = r.read().decode()
        c.close()
        self.assertEqual(r.status, 200, body)
        self.assertTrue(r.getheader("content-type", "").startswith("text/event-stream"), r.getheaders())
        self.assertEqual(r.getheader("cache-control"), "no-cache")
        self.assertTrue(r.getheader("x-request-id"))
        self.assertTrue(body.endswith("data: [DONE]\n\n"), body[-200:])
        events = [e for e in body.split("\n\n") if e]
        self.assertEqual(events[-1], "data: [DONE]")
        objs = []
        for e in events[:-1]:
            self.assertTrue(e.startswith("data: "), e)
            objs.append(json.loads(e[len("data: ") :]))
        self.assertEqual({o["id"] for o in objs}.__len__(), 1)
        self.assertTrue(all(o["object"] == "chat.completion.chunk" for o in objs))
        text = "".join(ch["delta"].get("content") or "" for o in objs for ch in o["choices"])
        self.assertEqual(text, "alpha beta gamma")
        self.assertEqual(objs[-1]["choices"], [])
        self.assertEqual(objs[-1]["usage"]["total_tokens"], 6)
        self.assertEqual(objs[-2]["choices"][0]["finish_reason"], "stop")

    def test_non_streaming_raw_headers(self):
        r, c = self.raw({"model": "builtin", "messages": [{"role": "user", "content": "hi"}]})
        body = json.loads(r.read())
        c.close()
        self.assertEqual(r.status, 200, body)
        self.assertTrue(r.getheader("content-type", "").startswith("application/json"))
        self.assertGreaterEqual(float(r.getheader("x-quantgate-overhead-ms")), 0.0)
        self.assertEqual(body["object"], "chat.completion")

    def overhead_series(self, name):
        r = self.srv.request("GET", "/metrics")
        count = re.search(r"^%s_count (\d+)$" % name, r.text, re.M)
        total = re.search(r"^%s_sum ([0-9.eE+-]+)$" % name, r.text, re.M)
        self.assertIsNotNone(count, "%s is missing from /metrics" % name)
        return int(count.group(1)), float(total.group(1))

    def request_overhead_count(self):
        return self.overhead_series("qg_ai_request_overhead_seconds")[0]

    def stream_overhead(self):
        return self.overhead_series("qg_ai_stream_overhead_seconds")

    def test_request_overhead_histogram(self):
        """Each non-streaming call counts once in what quantgate added to the
        request; a stream counts in the stream histogram instead, whether it
        ended before its first chunk (builtin) or streamed live."""
        before = self.request_overhead_count()
        sbefore, _ = self.stream_overhead()
        r, c = self.raw({"model": "builtin", "messages": [{"role": "user", "content": "hi"}]})
        r.read()
        c.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(self.request_overhead_count(), before + 1)
        r, c = self.raw({"model": "builtin", "stream": True,
                         "messages": [{"role": "user", "content": "hi"}]})
        r.read()
        c.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(self.request_overhead_count(), before + 1)
        self.assertEqual(self.stream_overhead()[0], sbefore + 1)

    def test_stream_overhead_leaves_out_the_provider(self):
        """A live stream from a slow provider (5 pieces 80 ms apart) counts
        once, and what quantgate added is its own time, not the ~320 ms the
        provider took."""
        self.fake.script("*", {"text": "a b c d e", "chunks": 5, "chunk_delay_ms": 80})
        n0, sum0 = self.stream_overhead()
        t0 = time.monotonic()
        r, c = self.raw({"model": "analyst", "stream": True,
                         "messages": [{"role": "user", "content": "go"}]})
        self.assertEqual(r.status, 200)
        body = r.read()
        c.close()
        took = time.monotonic() - t0
        self.assertIn(b"[DONE]", body)
        self.assertGreater(took, 0.3)
        n1, sum1 = self.stream_overhead()
        self.assertEqual(n1, n0 + 1)
        self.assertLess(sum1 - sum0, 0.15, "the provider's time was not subtracted")

    def test_tokens_are_pushed_not_polled(self):
        """Six pieces 60 ms apart: pushed through the stream waker they arrive
        about 60 ms apart; on the 100 ms poll tick alone they would come in
        pairs (gaps of ~0 and ~100 ms)."""
        self.fake.script("*", {"text": "a b c d e f", "chunks": 6, "chunk_delay_ms": 60})
        r, c = self.raw({"model": "analyst", "stream": True, "messages": [{"role": "user", "content": "go"}]})
        self.assertEqual(r.status, 200)
        arrivals, buf = [], b""
        while True:
            data = r.read1(65536)
            if not data:
                break
            now = time.monotonic()
            buf += data
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                if ev.startswith(b"data: {") and b'"content"' in ev:
                    arrivals.append(now)
        c.close()
        self.assertEqual(len(arrivals), 6, "one event per piece")
        gaps = [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:])]
        # Tick-driven gaps are multiples of 100 ms (measured: 101, 99, 0,
        # 100, 100); pushed ones sit near 60 ms. Some slack for a loaded
        # machine (ASan, parallel ctest).
        paced = [g for g in gaps if 20 <= g <= 90]
        self.assertGreaterEqual(len(paced), 2, "gaps between tokens (ms): %s" % ["%.0f" % g for g in gaps])

    def test_client_disconnect_mid_stream(self):
        self.fake.script("*", {"text": " ".join("w%d" % i for i in range(40)), "chunk_delay_ms": 50})
        r, c = self.raw({"model": "analyst", "stream": True, "messages": [{"role": "user", "content": "long"}]})
        self.assertEqual(r.status, 200)
        first = r.read1(65536)
        self.assertIn(b"data: {", first)
        c.close()  # gone: the server must cancel the call and free the stream
        time.sleep(0.3)
        self.fake.script("*", {"text": "still here"})
        res = self.ok(self.sdk("stream", model="analyst"))
        self.assertEqual(res["text"], "still here")

    def test_concurrent_streams(self):
        """Several SDK streams at once, each gets its own text whole."""
        procs = []
        for i in range(6):
            inp = {"baseURL": self.base_url(), "apiKey": self.api_token, "model": "builtin", "prompt": "go back to requirements %d" % i}
            p = subprocess.Popen(
                ["node", CLIENT, "stream"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(os.environ, QG_WEB_DIR=web_dir()),
            )
            p.stdin.write(json.dumps(inp))
            p.stdin.close()
            procs.append(p)
        for p in procs:
            out = p.stdout.read()
            err = p.stderr.read()
            p.wait(60)
            self.outputs.append(out + err)
            self.assertEqual(p.returncode, 0, err)
            res = json.loads(out)
            self.assertNotIn("error", res, res)
            self.assertTrue(res["text"])
            self.assertEqual(res["finish_reason"], "stop")

    def test_zz_key_never_in_replies(self):
        # runs last (alphabetical): every SDK output so far and every body
        # the harness saw
        for text in self.outputs + self.srv.bodies_seen:
            self.assertNotIn(self.key, text)
        self.assertNotIn(self.key, self.srv.log_text())


if __name__ == "__main__":
    qgtest.main()
