"""test_http.py - the HTTP layer: JSON parse errors with line and column,
missing fields named, the body size cap (413), CORS (allowed origin echoed,
others not, preflight), X-Request-Id, /metrics, /ready, rate limits with
Retry-After while /health is never limited, and keep-alive."""

import http.client
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402

ORIGIN = "https://app.example.com"


class HttpTest(qgtest.ServerTest):
    SERVER_ENV = {"QG_MAX_BODY": "65536", "QG_CORS_ORIGINS": ORIGIN}

    def test_invalid_json_line_column(self):
        s = self.srv
        body = b'{"email": "a@b.co",\n  "password": }\n'
        r = s.request("POST", "/api/auth/login", body, headers={"Content-Type": "application/json"})
        self.assertError(r, 400, "invalid_json")
        msg = r.json["error"]["message"]
        self.assertRegex(msg, r"(?i)(line\s*2\b|\b2:\d+)", msg)
        self.assertRegex(msg, r"(?i)(col(umn)?\s*\d+|\b2:\d+)", msg)
        for bad in (b"", b"{", b"[1,2", b"nul", b'{"a":1} trailing'):
            r = s.request("POST", "/api/auth/login", bad, headers={"Content-Type": "application/json"})
            self.assertIn(r.status, (400,), (bad, r))
            self.assertIn(r.json["error"]["code"], ("invalid_json", "validation_failed"), (bad, r))
        # valid JSON but not an object
        r = s.request("POST", "/api/auth/login", [1, 2])
        self.assertError(r, 400, "validation_failed")

    def test_missing_and_wrong_fields(self):
        s = self.srv
        self.assertError(s.request("POST", "/api/auth/signup", {"email": "x@y.co"}), 400, "validation_failed", "password")
        self.assertError(s.request("POST", "/api/auth/signup", {"password": "long-enough-pw"}), 400, "validation_failed", "email")
        self.assertError(s.request("POST", "/api/auth/signup", {"email": 5, "password": "long-enough-pw"}), 400, "validation_failed", "email")
        self.assertError(s.request("POST", "/api/auth/signup", {"email": qgtest.rand_email(), "password": "short"}), 400, "validation_failed", "password")
        self.assertError(s.request("POST", "/api/auth/login", {"email": "x@y.co"}), 400, "validation_failed", "password")
        self.assertError(s.request("POST", "/api/auth/refresh", {}), 400, "validation_failed", "refresh_token")
        dev = s.make_user("developer")
        self.assertError(s.request("POST", "/api/tokens", {"scope": "read"}, token=dev["access"]), 400, "validation_failed", "name")
        self.assertError(s.request("POST", "/api/backtests", {"strategy": "sma_cross"}, token=dev["access"]), 400, "validation_failed", "dataset_id")
        self.assertError(s.request("GET", "/api/datasets", token=dev["access"], query={"limit": "abc"}), 400, "validation_failed", "limit")
        self.assertError(s.request("GET", "/api/datasets", token=dev["access"], query={"limit": "100000"}), 400, "validation_failed", "limit")

    def test_body_too_large(self):
        s = self.srv
        dev = s.make_user("developer")
        big = b"timestamp,open,high,low,close,volume\n" + b"2024-01-01T00:00:00Z,1,1,1,1,1\n" * 3400  # ~100 KB
        self.assertGreater(len(big), 100000)
        r = qgtest.upload(s, dev["access"], big)
        self.assertError(r, 413, "payload_too_large")
        big_json = b'{"email":"' + b"a" * 100000 + b'@x.co","password":"xxxxxxxxxxxx"}'
        r = s.request("POST", "/api/auth/login", big_json, headers={"Content-Type": "application/json"})
        self.assertError(r, 413, "payload_too_large")
        # chunked upload over the cap, no Content-Length
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        try:

            def chunks():
                for _ in range(25):
                    yield b"x" * 4096

            try:
                conn.request("POST", "/api/datasets", body=chunks(), headers={"Authorization": "Bearer " + dev["access"], "Content-Type": "text/csv"}, encode_chunked=True)
            except (BrokenPipeError, ConnectionResetError):
                pass
            resp = conn.getresponse()
            r = qgtest.Response(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()
        self.assertError(r, 413, "payload_too_large")
        # the server is fine afterwards
        self.assertEqual(s.request("GET", "/health").status, 200)

    def test_cors(self):
        s = self.srv
        r = s.request("GET", "/health", headers={"Origin": ORIGIN})
        self.assertEqual(r.header("Access-Control-Allow-Origin"), ORIGIN, r.headers)
        r = s.request("GET", "/api/me", headers={"Origin": ORIGIN})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), ORIGIN, r.headers)
        r = s.request("GET", "/health", headers={"Origin": "https://evil.example.com"})
        self.assertIsNone(r.header("Access-Control-Allow-Origin"), r.headers)
        r = s.request("GET", "/health")
        self.assertIsNone(r.header("Access-Control-Allow-Origin"), r.headers)
        r = s.request(
            "OPTIONS",
            "/api/datasets",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"},
        )
        self.assertIn(r.status, (200, 204), r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), ORIGIN, r.headers)
        methods = (r.header("Access-Control-Allow-Methods") or "").upper()
        self.assertIn("POST", methods, r.headers)
        hdrs = (r.header("Access-Control-Allow-Headers") or "").lower()
        self.assertIn("authorization", hdrs, r.headers)
        self.assertIn("content-type", hdrs, r.headers)
        r = s.request("OPTIONS", "/api/datasets", headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
        self.assertIsNone(r.header("Access-Control-Allow-Origin"), r.headers)

    def test_request_id(self):
        s = self.srv
        ids = set()
        for path in ("/health", "/api/me", "/api/nope"):
            r = s.request("GET", path)
            rid = r.header("X-Request-Id")
            self.assertTrue(rid, (path, r.headers))
            ids.add(rid)
        self.assertEqual(len(ids), 3, ids)
        r = s.request("GET", "/health", headers={"X-Request-Id": "client-req-12345"})
        self.assertEqual(r.header("X-Request-Id"), "client-req-12345")
        r = s.request("GET", "/health", headers={"X-Request-Id": "bad id <script>" + "x" * 300})
        self.assertTrue(r.header("X-Request-Id"))
        self.assertNotIn("<", r.header("X-Request-Id"))
        self.assertLess(len(r.header("X-Request-Id")), 200)
        # a 500-class body would carry it; an error body at least is JSON
        r = s.request("GET", "/api/me", headers={"X-Request-Id": "trace-abcdef"})
        self.assertEqual(r.header("X-Request-Id"), "trace-abcdef")

    def test_metrics_ready_health(self):
        s = self.srv
        r = s.request("GET", "/health")
        self.assertEqual((r.status, r.json), (200, {"status": "ok"}))
        r = s.request("GET", "/ready")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json.get("status"), "ready")
        s.request("GET", "/api/nope")
        r = s.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"), r.headers)
        self.assertIn("quantgate_http_requests_total", r.text)
        self.assertRegex(r.text, r"(?m)^quantgate_build_info\{[^}]*version=\"[^\"]+\"[^}]*\} 1\b")
        self.assertRegex(r.text, r"(?m)^# TYPE quantgate_http_requests_total counter")
        self.assertRegex(r.text, r'(?m)^quantgate_http_requests_total\{[^}]*\} \d+')
        # every sample line parses as NAME{labels} VALUE
        for line in r.text.splitlines():
            if line and not line.startswith("#"):
                self.assertRegex(line, r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEInfa]+( \d+)?$")

    def test_keep_alive(self):
        s = self.srv
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        try:
            conn.request("GET", "/health")
            r = conn.getresponse()
            r.read()
            sock = conn.sock
            self.assertIsNotNone(sock)
            self.assertFalse(r.will_close, r.getheaders())
            for path in ("/health", "/api/openapi.json", "/api/me", "/ready", "/api/nope", "/health"):
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                self.assertFalse(r.will_close, (path, r.getheaders()))
                self.assertIs(conn.sock, sock, "connection was not kept alive after " + path)
        finally:
            conn.close()

    def test_pipelined_requests(self):
        s = self.srv
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            sock.sendall(req * 3)
            data = b""
            while data.count(b'{"status":"ok"}') < 3:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertEqual(len(re.findall(rb"HTTP/1.1 200", data)), 3, data[:500])


class RateLimitTest(qgtest.ServerTest):
    SERVER_ENV = {"QG_RATE_LIMITS": "read=1/s:3"}

    def test_read_bucket(self):
        s = self.srv
        statuses = []
        last = None
        for _ in range(4):
            last = s.request("GET", "/api/openapi.json")
            statuses.append(last.status)
        self.assertEqual(statuses[:3], [200, 200, 200], statuses)
        self.assertError(last, 429, "rate_limited")
        ra = last.header("Retry-After")
        self.assertTrue(ra and ra.isdigit() and int(ra) >= 1, last.headers)
        for _ in range(50):
            self.assertEqual(s.request("GET", "/health").status, 200)
        self.assertEqual(s.request("GET", "/ready").status, 200)
        self.assertEqual(s.request("GET", "/metrics").status, 200)
        import time

        time.sleep(int(ra) + 0.2)
        self.assertEqual(s.request("GET", "/api/openapi.json").status, 200)


if __name__ == "__main__":
    qgtest.main()
