"""test_auth.py - accounts and tokens end to end: the first-run admin's
one-time password, signup and approval, login, refresh rotation, logout,
access-token expiry, forged JWTs (tampered payload, alg none, wrong key),
machine tokens and their scopes, the login throttle and the audit log."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402
from qgtest import b64url_decode, b64url_encode, jwt_parts, jwt_sign_hs256, rand_email, rand_password  # noqa: E402


class AuthTest(qgtest.ServerTest):
    def test_00_first_admin_must_change_password(self):
        s = self.srv
        self.assertTrue(s.admin_email, "no 'first admin: EMAIL password: PW' line in the output\n" + s.log_tail())
        r = s.login(s.admin_email, s.initial_admin_password)
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json.get("password_change_required"), True, r)
        tok = r.json["access_token"]
        r = s.request("GET", "/api/me", token=tok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["role"], "admin")
        self.assertIs(r.json["password_change_required"], True)
        for method, path in (("GET", "/api/users"), ("GET", "/api/datasets"), ("GET", "/api/secrets")):
            self.assertError(s.request(method, path, token=tok), 403, "password_change_required")
        # wrong current password is refused
        r = s.request("POST", "/api/me/password", {"current_password": "not-the-password-1", "new_password": rand_password()}, token=tok)
        self.assertIn(r.status, (400, 401, 403), r)
        # too short a new password is refused, naming the field
        r = s.request("POST", "/api/me/password", {"current_password": s.admin_password, "new_password": "short"}, token=tok)
        self.assertError(r, 400, "validation_failed", "password")
        # the real change
        newpw = rand_password()
        r = s.request("POST", "/api/me/password", {"current_password": s.admin_password, "new_password": newpw}, token=tok)
        self.assertIn(r.status, (200, 204), r)
        old = s.admin_password
        s.admin_password = newpw
        self.assertError(s.login(s.admin_email, old), 401, "unauthorized")
        r = s.login(s.admin_email, newpw)
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.json.get("password_change_required", False))
        self.assertEqual(s.request("GET", "/api/users", token=r.json["access_token"]).status, 200)

    def test_signup_approval_login_refresh_logout(self):
        s = self.srv
        email, pw = rand_email("signup"), rand_password()
        r = s.request("POST", "/api/auth/signup", {"email": email, "password": pw})
        self.assertEqual(r.status, 201, r)
        uid = r.json["id"]
        self.assertTrue(uid.startswith("usr_"), r)
        self.assertIs(r.json["approved"], False)
        self.assertNotIn("password", r.text.lower().replace("password_change_required", ""))
        # duplicate email
        self.assertError(s.request("POST", "/api/auth/signup", {"email": email.upper(), "password": pw}), 409, "conflict")
        # pending: login refused with 403
        self.assertError(s.login(email, pw), 403, "forbidden", "(?i)pending|approv")
        admin = s.admin_token()
        r = s.request("GET", "/api/users", token=admin, query={"status": "pending"})
        self.assertEqual(r.status, 200, r)
        self.assertIn(uid, [u["id"] for u in r.json["items"]])
        self.assertTrue(all(not u["approved"] for u in r.json["items"]), r)
        r = s.request("POST", "/api/users/%s/approve" % uid, token=admin)
        self.assertIn(r.status, (200, 204), r)
        r = s.login(email, pw)
        self.assertEqual(r.status, 200, r)
        for k in ("access_token", "refresh_token", "token_type", "expires_in"):
            self.assertIn(k, r.json)
        self.assertEqual(r.json["token_type"].lower(), "bearer")
        self.assertTrue(r.json["refresh_token"].startswith("rt_"))
        hdr, claims, _ = jwt_parts(r.json["access_token"])
        self.assertEqual(hdr["alg"], "HS256")
        self.assertEqual(claims["sub"], uid)
        self.assertEqual(claims["iss"], "quantgate")
        self.assertEqual(claims["typ"], "access")
        self.assertEqual(claims["exp"] - claims["iat"], r.json["expires_in"])
        access, refresh = r.json["access_token"], r.json["refresh_token"]
        r = s.request("GET", "/api/me", token=access)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["email"], email)
        self.assertEqual(r.json["role"], "client")  # the default role of a signup
        # refresh rotates: the new pair works, the old refresh token is dead
        r = s.request("POST", "/api/auth/refresh", {"refresh_token": refresh})
        self.assertEqual(r.status, 200, r)
        access2, refresh2 = r.json["access_token"], r.json["refresh_token"]
        self.assertNotEqual(refresh2, refresh)
        self.assertEqual(s.request("GET", "/api/me", token=access2).status, 200)
        self.assertError(s.request("POST", "/api/auth/refresh", {"refresh_token": refresh}), 401, "unauthorized")
        # logout revokes the refresh token
        r = s.request("POST", "/api/auth/logout", {"refresh_token": refresh2})
        self.assertEqual(r.status, 204, r)
        self.assertError(s.request("POST", "/api/auth/refresh", {"refresh_token": refresh2}), 401, "unauthorized")
        # signup cannot choose its role or approve itself
        e2 = rand_email("escalate")
        r = s.request("POST", "/api/auth/signup", {"email": e2, "password": rand_password(), "role": "admin", "approved": True})
        self.assertIn(r.status, (201, 400), r)
        if r.status == 201:
            self.assertEqual(r.json["role"], "client", r)
            self.assertIs(r.json["approved"], False, r)
        # garbage refresh token
        self.assertError(s.request("POST", "/api/auth/refresh", {"refresh_token": "rt_" + "A" * 43}), 401, "unauthorized")

    def test_login_throttle_survives_rate_limits_off(self):
        # this server runs with QG_RATE_LIMITS=off: request limits are off,
        # the per-account login throttle must not be
        s = self.srv
        u = s.make_user("client")
        for i in range(5):
            self.assertError(s.login(u["email"], "not-the-password-%d" % i), 401, "unauthorized")
        r = s.login(u["email"], u["password"])
        self.assertError(r, 429, "rate_limited")
        self.assertTrue((r.header("Retry-After") or "").isdigit(), r)

    def test_login_unknown_and_wrong_same_message(self):
        s = self.srv
        u = s.make_user("client")
        r1 = s.login(u["email"], "wrong-password-" + u["password"][-4:])
        r2 = s.login(rand_email("nobody"), "wrong-password-xyz")
        self.assertError(r1, 401, "unauthorized")
        self.assertError(r2, 401, "unauthorized")
        self.assertEqual(r1.json["error"]["message"], r2.json["error"]["message"])

    def test_forged_jwts(self):
        s = self.srv
        u = s.make_user("client")
        tok = u["access"]
        self.assertEqual(s.request("GET", "/api/me", token=tok).status, 200)
        h, p, sig = tok.split(".")
        claims = jwt_parts(tok)[1]
        # 1. flip one character of the payload
        mid = len(p) // 2
        flipped = p[:mid] + ("A" if p[mid] != "A" else "B") + p[mid + 1 :]
        self.assertError(s.request("GET", "/api/me", token=h + "." + flipped + "." + sig), 401, "unauthorized")
        # 2. re-encoded payload claiming admin, old signature
        c2 = dict(claims, role="admin")
        p2 = b64url_encode(__import__("json").dumps(c2, separators=(",", ":")).encode())
        self.assertError(s.request("GET", "/api/users", token=h + "." + p2 + "." + sig), 401, "unauthorized")
        # 3. alg none with the real payload (with and without a trailing signature)
        hn = b64url_encode(b'{"alg":"none","typ":"JWT"}')
        self.assertError(s.request("GET", "/api/me", token=hn + "." + p + "."), 401, "unauthorized")
        self.assertError(s.request("GET", "/api/me", token=hn + "." + p + "." + sig), 401, "unauthorized")
        hn2 = b64url_encode(b'{"alg":"None","typ":"JWT"}')
        self.assertError(s.request("GET", "/api/me", token=hn2 + "." + p + "."), 401, "unauthorized")
        # 4. HS256 with a wrong key
        forged = jwt_sign_hs256({"alg": "HS256", "typ": "JWT"}, claims, b"k" * 32)
        self.assertError(s.request("GET", "/api/me", token=forged), 401, "unauthorized")
        # 5. HS512 / HS384 header (other algorithms refused)
        forged = jwt_sign_hs256({"alg": "HS512", "typ": "JWT"}, claims, b"k" * 32)
        self.assertError(s.request("GET", "/api/me", token=forged), 401, "unauthorized")
        # 6. garbage and wrong schemes
        for bad in ("x", "a.b.c", tok + "x", ""):
            self.assertError(s.request("GET", "/api/me", headers={"Authorization": "Bearer " + bad}), 401, "unauthorized")
        self.assertError(s.request("GET", "/api/me", headers={"Authorization": "Basic " + tok}), 401, "unauthorized")
        self.assertError(s.request("GET", "/api/me"), 401, "unauthorized")
        # the right token still works after all that
        self.assertEqual(s.request("GET", "/api/me", token=tok).status, 200)

    def test_machine_tokens(self):
        s = self.srv
        u = s.make_user("developer")
        r = s.request("POST", "/api/tokens", {"name": "ci-read", "scope": "read"}, token=u["access"])
        self.assertEqual(r.status, 201, r)
        rtok = r.json["token"]
        self.assertRegex(rtok, r"^qg_[A-Za-z0-9_-]{43}$")
        self.assertEqual(r.json["scope"], "read")
        self.assertTrue(rtok.startswith(r.json["prefix"]), r)
        rid = r.json["id"]
        r = s.request("POST", "/api/tokens", {"name": "ci-write", "scope": "write"}, token=u["access"])
        self.assertEqual(r.status, 201, r)
        wtok, wid = r.json["token"], r.json["id"]
        # bad scope
        self.assertError(s.request("POST", "/api/tokens", {"name": "x", "scope": "root"}, token=u["access"]), 400, "validation_failed", "scope")
        # listing never shows the secret
        r = s.request("GET", "/api/tokens", token=u["access"])
        self.assertEqual(r.status, 200, r)
        ids = [t["id"] for t in r.json["items"]]
        self.assertIn(rid, ids)
        self.assertIn(wid, ids)
        self.assertNotIn(rtok, r.text)
        self.assertNotIn(wtok, r.text)
        self.assertTrue(all("token" not in t for t in r.json["items"]), r)
        # use: the token acts as its owner
        r = s.request("GET", "/api/me", token=rtok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["id"], u["id"])
        self.assertEqual(s.request("GET", "/api/datasets", token=rtok).status, 200)
        # read scope: no mutations
        csv = qgtest.read_bytes(os.path.join(qgtest.DATA, "bars_good.csv"))
        self.assertError(qgtest.upload(s, rtok, csv), 403, "forbidden")
        self.assertError(s.request("POST", "/api/tokens", {"name": "y", "scope": "write"}, token=rtok), 403, "forbidden")
        # write scope: mutations allowed
        r = qgtest.upload(s, wtok, csv, name="via-token")
        self.assertEqual(r.status, 201, r)
        # last_used_at gets recorded
        r = s.request("GET", "/api/tokens", token=u["access"])
        used = {t["id"]: t.get("last_used_at") for t in r.json["items"]}
        self.assertTrue(used[rid], r)
        # revoke -> 401
        self.assertEqual(s.request("DELETE", "/api/tokens/" + rid, token=u["access"]).status, 204)
        self.assertError(s.request("GET", "/api/me", token=rtok), 401, "unauthorized")
        self.assertEqual(s.request("GET", "/api/me", token=wtok).status, 200)
        self.assertError(s.request("DELETE", "/api/tokens/" + rid, token=u["access"]), 404, "not_found")
        # a well-formed but unknown machine token
        self.assertError(s.request("GET", "/api/me", token="qg_" + "A" * 43), 401, "unauthorized")

class ThrottleAuditTest(qgtest.ServerTest):
    # QG_RATE_LIMITS=off also turns the login throttle off, so this server
    # has request limits too high to matter instead.
    SERVER_ENV = {"QG_RATE_LIMITS": "auth=1000/s:1000,read=1000/s:1000,write=1000/s:1000,heavy=1000/s:1000"}

    def test_login_throttle_and_audit(self):
        s = self.srv
        u = s.make_user("client")
        for i in range(5):
            r = s.login(u["email"], "wrong-password-%d-%s" % (i, u["password"][-3:]))
            self.assertError(r, 401, "unauthorized")
        r = s.login(u["email"], u["password"])
        self.assertError(r, 429, "rate_limited")
        ra = r.header("Retry-After")
        self.assertIsNotNone(ra, r)
        self.assertTrue(ra.isdigit() and int(ra) > 0, ra)
        # another account is not affected
        v = s.make_user("client")
        self.assertEqual(s.login(v["email"], v["password"]).status, 200)

        admin = s.admin_token()
        r = s.request("GET", "/api/audit", token=admin, query={"action": "auth.login", "outcome": "denied", "limit": 500})
        self.assertEqual(r.status, 200, r)
        items = r.json["items"]
        self.assertTrue(items)
        self.assertTrue(all(i["action"] == "auth.login" and i["outcome"] == "denied" for i in items), r)
        mine = [i for i in items if i.get("actor_email") == u["email"] or i.get("actor_id") == u["id"] or u["email"] in str(i.get("target"))]
        self.assertGreaterEqual(len(mine), 5, items[:3])
        for k in ("id", "ts", "actor_id", "actor_email", "action", "target", "outcome", "status", "address", "request_id"):
            self.assertIn(k, items[0])
        r = s.request("GET", "/api/audit", token=admin, query={"action": "auth.login", "outcome": "ok", "limit": 500})
        self.assertEqual(r.status, 200, r)
        oks = r.json["items"]
        self.assertTrue(any(i.get("actor_id") == v["id"] for i in oks), oks[:3])
        self.assertTrue(all(i["outcome"] == "ok" for i in oks))
        # a mutation: user creation by the admin, filtered by action and actor
        r = s.request("GET", "/api/audit", token=admin, query={"action": "POST /api/users", "limit": 500})
        self.assertEqual(r.status, 200, r)
        targets = [i.get("target") for i in r.json["items"]]
        self.assertIn(u["id"], targets, r.json["items"][:3])
        self.assertTrue(all(i["action"] == "POST /api/users" for i in r.json["items"]))
        self.assertTrue(all(i["status"] == 201 and i["outcome"] == "ok" for i in r.json["items"] if i["target"] == u["id"]))
        admin_id = s.request("GET", "/api/me", token=admin).json["id"]
        r = s.request("GET", "/api/audit", token=admin, query={"actor": admin_id, "limit": 500})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["items"])
        self.assertTrue(all(i["actor_id"] == admin_id for i in r.json["items"]))
        # a denied mutation (client trying to upload) is audited as denied
        csv = qgtest.read_bytes(os.path.join(qgtest.DATA, "bars_good.csv"))
        self.assertError(qgtest.upload(s, v["access"], csv), 403, "forbidden")
        r = s.request("GET", "/api/audit", token=admin, query={"actor": v["id"], "outcome": "denied"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(any(i["action"] == "POST /api/datasets" and i["status"] == 403 for i in r.json["items"]), r.json)
        # the audit log is no place for passwords either
        self.assertNotIn(u["password"], r.text)
        # the audit row carries the request id the client sent
        r = s.request("POST", "/api/users", {"email": rand_email("traced"), "password": rand_password(), "role": "client"}, token=admin, headers={"X-Request-Id": "audit-trace-0001"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.header("X-Request-Id"), "audit-trace-0001")
        r = s.request("GET", "/api/audit", token=admin, query={"action": "POST /api/users", "limit": 5})
        self.assertIn("audit-trace-0001", [i["request_id"] for i in r.json["items"]], r.json["items"])
        # paging: limit + next cursor
        r = s.request("GET", "/api/audit", token=admin, query={"limit": 2})
        self.assertEqual(len(r.json["items"]), 2)
        self.assertTrue(r.json["next"])
        r2 = s.request("GET", "/api/audit", token=admin, query={"limit": 2, "before": r.json["next"]})
        self.assertEqual(r2.status, 200, r2)
        self.assertFalse({i["id"] for i in r.json["items"]} & {i["id"] for i in r2.json["items"]})


class AccessExpiryTest(qgtest.ServerTest):
    SERVER_ENV = {"QG_ACCESS_TTL": "2"}

    def test_access_token_expires(self):
        s = self.srv
        u = s.make_user("client")
        r = s.login(u["email"], u["password"])
        self.assertEqual(r.json["expires_in"], 2)
        tok = r.json["access_token"]
        self.assertEqual(s.request("GET", "/api/me", token=tok).status, 200)
        time.sleep(3.1)
        self.assertError(s.request("GET", "/api/me", token=tok), 401, "unauthorized")
        # the refresh token still gets a fresh access token
        r = s.request("POST", "/api/auth/refresh", {"refresh_token": r.json["refresh_token"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(s.request("GET", "/api/me", token=r.json["access_token"]).status, 200)


if __name__ == "__main__":
    qgtest.main()
