"""test_isolation.py - one user's datasets, backtests and tokens are
invisible to another (404, as if they did not exist), and the admin's user
management takes effect at once: role changes, disabling (existing tokens
stop working) and deletion."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402


class IsolationTest(qgtest.ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.srv
        cls.a = s.make_user("developer", "alice")
        cls.b = s.make_user("developer", "bob")
        cls.gen = os.path.join(s.tmp, "gen.csv")
        p = qgtest.run_cli(["gen-data", "--bars", "2000", "--timeframe", "1m", "--seed", "3", "--out", cls.gen, "--quiet"])
        assert p.returncode == 0, p.stderr
        for u in (cls.a, cls.b):
            r = qgtest.upload(s, u["access"], cls.gen, name="ds-" + u["email"][:5], symbol="TEST")
            assert r.status == 201, r
            u["ds"] = r.json["id"]
            r = s.request("POST", "/api/backtests", {"dataset_id": u["ds"], "strategy": "sma_cross", "params": {"fast": 5, "slow": 20}}, token=u["access"])
            assert r.status == 202, r
            u["bt"] = r.json["id"]
            qgtest.wait_backtest(s, u["access"], u["bt"])
            r = s.request("POST", "/api/tokens", {"name": "t", "scope": "read"}, token=u["access"])
            assert r.status == 201, r
            u["tok"] = r.json["id"]

    def test_owner_sees_own(self):
        s, a = self.srv, self.a
        self.assertEqual(s.request("GET", "/api/datasets/" + a["ds"], token=a["access"]).status, 200)
        self.assertEqual(s.request("GET", "/api/datasets/%s/candles" % a["ds"], token=a["access"]).status, 200)
        self.assertEqual(s.request("GET", "/api/backtests/" + a["bt"], token=a["access"]).status, 200)

    def test_lists_are_private(self):
        s = self.srv
        for me, other in ((self.a, self.b), (self.b, self.a)):
            for path, key in (("/api/datasets", "ds"), ("/api/backtests", "bt"), ("/api/tokens", "tok")):
                r = s.request("GET", path, token=me["access"])
                self.assertEqual(r.status, 200, r)
                ids = [i["id"] for i in r.json["items"]]
                self.assertIn(me[key], ids, path)
                self.assertNotIn(other[key], ids, path)

    def test_cross_access_is_404(self):
        s = self.srv
        for me, other in ((self.a, self.b), (self.b, self.a)):
            t = me["access"]
            for method, path in (
                ("GET", "/api/datasets/" + other["ds"]),
                ("GET", "/api/datasets/%s/candles" % other["ds"]),
                ("GET", "/api/backtests/" + other["bt"]),
                ("GET", "/api/backtests/%s/events" % other["bt"]),
                ("DELETE", "/api/tokens/" + other["tok"]),
            ):
                self.assertError(s.request(method, path, token=t), 404, "not_found")
            # starting a backtest on someone else's dataset
            r = s.request("POST", "/api/backtests", {"dataset_id": other["ds"], "strategy": "sma_cross"}, token=t)
            self.assertIn(r.status, (400, 404), r)
            self.assertIn(r.json["error"]["code"], ("not_found", "validation_failed"))
        # deletes last, then check the owner still has everything
        for me, other in ((self.a, self.b), (self.b, self.a)):
            self.assertError(s.request("DELETE", "/api/datasets/" + other["ds"], token=me["access"]), 404, "not_found")
            self.assertError(s.request("DELETE", "/api/backtests/" + other["bt"], token=me["access"]), 404, "not_found")
        for u in (self.a, self.b):
            self.assertEqual(s.request("GET", "/api/datasets/" + u["ds"], token=u["access"]).status, 200)
            self.assertEqual(s.request("GET", "/api/backtests/" + u["bt"], token=u["access"]).status, 200)
        # a nonexistent id answers the same as someone else's
        r1 = s.request("GET", "/api/datasets/" + self.b["ds"], token=self.a["access"])
        r2 = s.request("GET", "/api/datasets/ds_00000000000000000000000000", token=self.a["access"])
        self.assertEqual((r1.status, r1.json["error"]["code"]), (r2.status, r2.json["error"]["code"]))

    def test_owner_deletes(self):
        s = self.srv
        u = s.make_user("developer", "carol")
        r = qgtest.upload(s, u["access"], os.path.join(qgtest.DATA, "bars_good.csv"))
        self.assertEqual(r.status, 201, r)
        ds = r.json["id"]
        self.assertEqual(s.request("DELETE", "/api/datasets/" + ds, token=u["access"]).status, 204)
        self.assertError(s.request("GET", "/api/datasets/" + ds, token=u["access"]), 404, "not_found")

    def test_admin_user_management(self):
        s = self.srv
        admin = s.admin_token()
        email, pw = qgtest.rand_email("managed"), qgtest.rand_password()
        r = s.request("POST", "/api/users", {"email": email, "password": pw, "role": "client"}, token=admin)
        self.assertEqual(r.status, 201, r)
        uid = r.json["id"]
        self.assertEqual(r.json["role"], "client")
        self.assertIs(r.json["approved"], True)
        self.assertError(s.request("POST", "/api/users", {"email": email, "password": pw, "role": "client"}, token=admin), 409, "conflict")
        self.assertError(s.request("POST", "/api/users", {"email": "not-an-email", "password": pw, "role": "client"}, token=admin), 400, "validation_failed", "email")
        self.assertError(s.request("POST", "/api/users", {"email": qgtest.rand_email(), "password": pw, "role": "king"}, token=admin), 400, "validation_failed", "role")
        r = s.request("GET", "/api/users/" + uid, token=admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["email"], email)
        self.assertNotIn("hash", r.text)
        r = s.request("GET", "/api/users", token=admin)
        self.assertIn(uid, [u["id"] for u in r.json["items"]])
        tok = s.login(email, pw).json["access_token"]
        csv = qgtest.read_bytes(os.path.join(qgtest.DATA, "bars_good.csv"))
        self.assertError(qgtest.upload(s, tok, csv), 403, "forbidden")
        # promote: the same access token now carries the new role
        r = s.request("PATCH", "/api/users/" + uid, {"role": "developer"}, token=admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["role"], "developer")
        self.assertEqual(s.request("GET", "/api/me", token=tok).json["role"], "developer")
        self.assertEqual(qgtest.upload(s, tok, csv).status, 201)
        self.assertError(s.request("PATCH", "/api/users/" + uid, {"role": "emperor"}, token=admin), 400, "validation_failed", "role")
        # a write-scope machine token follows its owner's current role
        r = s.request("POST", "/api/tokens", {"name": "m", "scope": "write"}, token=tok)
        self.assertEqual(r.status, 201, r)
        mtok = r.json["token"]
        self.assertEqual(qgtest.upload(s, mtok, csv).status, 201)
        r = s.request("PATCH", "/api/users/" + uid, {"role": "client"}, token=admin)
        self.assertEqual(r.status, 200, r)
        self.assertError(qgtest.upload(s, mtok, csv), 403, "forbidden")
        self.assertError(qgtest.upload(s, tok, csv), 403, "forbidden")
        self.assertEqual(s.request("PATCH", "/api/users/" + uid, {"role": "developer"}, token=admin).status, 200)
        # disable: the existing token stops working at once, login too
        r = s.request("PATCH", "/api/users/" + uid, {"disabled": True}, token=admin)
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["disabled"], True)
        r = s.request("GET", "/api/me", token=tok)
        self.assertIn(r.status, (401, 403), r)
        r = s.request("GET", "/api/me", token=mtok)
        self.assertIn(r.status, (401, 403), r)
        # the admin cannot lock themselves out
        me = s.request("GET", "/api/me", token=admin).json["id"]
        r = s.request("PATCH", "/api/users/" + me, {"disabled": True}, token=admin)
        self.assertNotEqual(r.status, 200, "an admin disabled their own account: %r" % r)
        self.assertError(s.login(email, pw), 403, "forbidden")
        # enable again
        r = s.request("PATCH", "/api/users/" + uid, {"disabled": False}, token=admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(s.request("GET", "/api/me", token=tok).status, 200)
        # delete: token dead, user gone
        self.assertEqual(s.request("DELETE", "/api/users/" + uid, token=admin).status, 204)
        self.assertError(s.request("GET", "/api/me", token=tok), 401, "unauthorized")
        self.assertError(s.request("GET", "/api/me", token=mtok), 401, "unauthorized")
        self.assertError(s.request("GET", "/api/users/" + uid, token=admin), 404, "not_found")
        self.assertError(s.request("DELETE", "/api/users/" + uid, token=admin), 404, "not_found")
        self.assertError(s.login(email, pw), 401, "unauthorized")
        self.assertError(s.request("PATCH", "/api/users/usr_doesnotexist", {"role": "client"}, token=admin), 404, "not_found")


if __name__ == "__main__":
    qgtest.main()
