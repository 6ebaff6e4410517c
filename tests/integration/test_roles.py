"""test_roles.py - the role-by-route matrix: every route of
/api/openapi.json, called by anonymous, client, developer and admin callers,
answers 401 / 403 / something else exactly as its required role says; the
OpenAPI document and src/http/routes.c list the same routes with the same
roles; unknown routes answer 404 and wrong methods 405 with Allow; every
error body has the documented shape."""

import http.client
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402

RANK = {"none": 0, "client": 1, "developer": 2, "admin": 3}
METHODS = ("get", "post", "put", "patch", "delete")


# Public routes whose handler checks its own credentials.
SELF_AUTHENTICATED = {("POST", "/api/webhook/receive")}


def parse_routes_c():
    """[(METHOD, path, role)] from the R(...) rows of src/http/routes.c."""
    path = os.path.join(qgtest.SRC, "src", "http", "routes.c")
    rows = []
    with open(path) as f:
        for m in re.finditer(r'\bRS?\(QG_(\w+),\s*"([^"]+)",\s*\w+,\s*QG_ROLE_(\w+)', f.read()):
            rows.append((m.group(1).upper(), m.group(2), m.group(3).lower()))
    return rows


def role_of(op):
    r = op.get("x-required-role")
    if r is None:
        return None
    r = str(r).lower()
    return r if r in RANK else "none"  # "anyone", "public", ... mean no credentials


class RolesTest(qgtest.ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.srv
        cls.tokens = {"admin": s.admin_token()}
        for role in ("client", "developer"):
            cls.tokens[role] = s.make_user(role)["access"]
        r = s.request("GET", "/api/openapi.json")
        assert r.status == 200, r
        cls.doc = r.json
        cls.c_rows = parse_routes_c()

    def doc_routes(self):
        out = []
        for path, item in self.doc["paths"].items():
            for m, op in item.items():
                if m in METHODS:
                    out.append((m.upper(), path, op))
        return out

    def test_openapi_document(self):
        self.assertTrue(str(self.doc.get("openapi", "")).startswith("3.1"), self.doc.get("openapi"))
        self.assertIn("paths", self.doc)
        self.assertTrue(self.doc.get("info", {}).get("title"))

    def test_openapi_matches_routes_c(self):
        self.assertGreater(len(self.c_rows), 30, "could not parse routes.c")
        doc = {(m, p): op for m, p, op in self.doc_routes()}
        c = {(m, p): role for m, p, role in self.c_rows}
        self.assertEqual(sorted(set(c) - set(doc)), [], "in routes.c but not in openapi.json")
        self.assertEqual(sorted(set(doc) - set(c)), [], "in openapi.json but not in routes.c")
        missing_role = []
        for key, op in doc.items():
            r = role_of(op)
            if r is None:
                missing_role.append(key)
            else:
                self.assertEqual(r, c[key], "x-required-role of %s %s" % key)
        self.assertEqual(missing_role, [], "operations without x-required-role")

    def fill(self, path):
        return re.sub(r"\{(\w+)\}", lambda m: "DUMMY_name" if m.group(1) == "name" else "xx_doesnotexist", path)

    def call(self, method, path, token):
        if method == "GET" and path.endswith("/stream"):
            return self.open_stream(path, token)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        return self.srv.request(method, path, body, token=token)

    def open_stream(self, path, token):
        """A live event stream never ends: read the status and headers (and
        the body of an error), then hang up."""
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        try:
            conn.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
            resp = conn.getresponse()
            body = resp.read() if resp.status != 200 else b""
            return qgtest.Response(resp.status, resp.getheaders(), body)
        finally:
            conn.close()

    def test_role_matrix(self):
        c = {(m, p): role for m, p, role in self.c_rows}
        failures = []
        checked = 0
        for method, path, op in self.doc_routes():
            need = role_of(op) or c.get((method, path), "none")
            url = self.fill(path)
            if path == "/api/backtests/{id}/events":
                pass  # a dummy id answers 404 before any stream starts
            for who in ("anonymous", "client", "developer", "admin"):
                r = self.call(method, url, None if who == "anonymous" else self.tokens[who])
                checked += 1
                have = 0 if who == "anonymous" else RANK[who]
                if (method, path) in SELF_AUTHENTICATED and who == "anonymous":
                    # open by role, but the handler wants its own credentials
                    # (the webhook secret or a signature)
                    want = "401/403 from the handler"
                    ok = r.status in (401, 403) and self._err_ok(r, None)
                elif need != "none" and who == "anonymous":
                    want = "401"
                    ok = r.status == 401 and self._err_ok(r, "unauthorized")
                elif RANK[need] > have:
                    want = "403"
                    ok = r.status == 403 and self._err_ok(r, "forbidden")
                else:
                    want = "not 401/403/405/5xx"
                    ok = r.status not in (401, 403, 405) and r.status < 500
                    if r.status >= 400:
                        ok = ok and self._err_ok(r, None)
                if not ok:
                    failures.append("%s %s as %s (needs %s): want %s, got %r" % (method, url, who, need, want, r))
        self.assertGreater(checked, 100)
        self.assertEqual(failures, [], "\n".join(failures))

    def _err_ok(self, r, code):
        if not isinstance(r.json, dict) or not isinstance(r.json.get("error"), dict):
            return False
        e = r.json["error"]
        if not isinstance(e.get("code"), str) or not isinstance(e.get("message"), str) or not e["message"]:
            return False
        return code is None or e["code"] == code

    def test_unknown_route_404(self):
        s = self.srv
        for path in ("/api/nope", "/nope", "/api/datasets/x/y/z", "/api"):
            for tok in (None, self.tokens["admin"]):
                self.assertError(s.request("GET", path, token=tok), 404, "not_found")
        self.assertError(s.request("POST", "/api/nope", {}, token=self.tokens["admin"]), 404, "not_found")

    def test_wrong_method_405(self):
        s = self.srv
        by_path = {}
        for m, p, _ in self.c_rows:
            by_path.setdefault(p, set()).add(m)
        cases = [("DELETE", "/api/me"), ("PUT", "/api/datasets"), ("POST", "/health"), ("PATCH", "/api/backtests"), ("PUT", "/api/users/{id}"), ("GET", "/api/users/{id}/approve")]
        for method, path in cases:
            for tok in (self.tokens["admin"], None):
                body = {} if method in ("POST", "PUT", "PATCH") else None
                r = s.request(method, self.fill(path), body, token=tok)
                self.assertError(r, 405, "method_not_allowed")
                allow = r.header("Allow")
                self.assertIsNotNone(allow, r)
                got = {a.strip().upper() for a in allow.split(",") if a.strip()}
                want = set(by_path[path])
                # HEAD and OPTIONS may be added; the real methods must all be there, the wrong one not
                self.assertTrue(want <= got, "%s %s: Allow %r, want %s" % (method, path, allow, want))
                self.assertNotIn(method, got)


if __name__ == "__main__":
    qgtest.main()
