"""test_vault_cli.py - the server's operator commands on a real data dir:
the vault key file (created 0600 when QG_MASTER_KEY is unset), `quantgate
vault list` and `vault rotate` between two server runs (secrets survive,
access tokens signed under the old key stop working), `quantgate user add`
with the password on stdin, and `quantgate migrate`."""

import os
import re
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402


class VaultCliTest(qgtest.ServerTest):
    MASTER_KEY = False  # the key lives in <data dir>/master.key

    def cli(self, *args, input=None):
        s = self.srv
        env = {"QG_DATA_DIR": s.data_dir, "QG_ARGON2_FAST": "1", "QG_ENV_FILE": os.path.join(s.tmp, "no.env")}
        p = qgtest.run_cli(list(args), env=env, input=input)
        self.cli_outputs.append(("quantgate " + " ".join(args), p.stdout + p.stderr))
        return p

    def setUp(self):
        self.cli_outputs = []

    def tearDown(self):
        self.srv.check_logs(self.cli_outputs)

    def key_file(self):
        path = os.path.join(self.srv.data_dir, "master.key")
        self.assertTrue(os.path.exists(path), "no master.key in the data dir: %s" % os.listdir(self.srv.data_dir))
        mode = stat.S_IMODE(os.stat(path).st_mode)
        self.assertEqual(mode, 0o600, "master.key mode %o" % mode)
        with open(path, "rb") as f:
            data = f.read()
        self.srv.secret(data.decode("latin-1").strip())
        return data

    def parse_list(self, text):
        """NAME -> masked from `vault list` output: a line per secret with the
        name first and the masked value somewhere after it."""
        out = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", parts[0]):
                out[parts[0]] = line
        return out

    def test_rotate_user_add_migrate(self):
        s = self.srv
        admin = s.admin_token()
        key1 = self.key_file()
        values = {}
        for name in ("OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN", "EXCHANGE.secret-1"):
            values[name] = s.secret("val-" + name[:3] + "-" + qgtest.pysecrets.token_hex(16))
            r = s.request("PUT", "/api/secrets/" + name, {"value": values[name]}, token=admin)
            self.assertIn(r.status, (200, 201, 204), r)
        masked = {i["name"]: i["masked"] for i in s.request("GET", "/api/secrets", token=admin).json["items"]}
        self.assertEqual(set(masked), set(values))
        u = s.make_user("developer", "rot")
        s.stop()

        # vault list: names and masked values only
        p = self.cli("vault", "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        listed = self.parse_list(p.stdout)
        for name, m in masked.items():
            self.assertIn(name, listed, p.stdout)
            self.assertIn(m, listed[name])
            self.assertNotIn(values[name], p.stdout + p.stderr)

        # rotate under the key file
        p = self.cli("vault", "rotate")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout + p.stderr, r"\b3\b", "rotate should say how many secrets it re-encrypted")
        key2 = self.key_file()
        self.assertNotEqual(key1, key2)
        self.assertFalse(os.path.exists(os.path.join(s.data_dir, "master.key.new")))
        p = self.cli("vault", "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        listed = self.parse_list(p.stdout)
        for name, m in masked.items():
            self.assertIn(m, listed.get(name, ""), p.stdout)

        # a wrong key is refused, not silently used
        bad_env = {"QG_DATA_DIR": s.data_dir, "QG_MASTER_KEY": "ab" * 32}
        p = qgtest.run_cli(["vault", "list"], env=bad_env)
        self.assertNotEqual(p.returncode, 0, p.stdout)

        # a group-readable key file is refused
        kf = os.path.join(s.data_dir, "master.key")
        os.chmod(kf, 0o640)
        p = self.cli("vault", "list")
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("master.key", p.stderr)
        os.chmod(kf, 0o600)

        # user add with the password on stdin
        email, pw = qgtest.rand_email("cli"), s.secret(qgtest.rand_password())
        p = self.cli("user", "add", "--email", email, "--role", "developer", input=pw + "\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = self.cli("user", "add", "--email", email, "--role", "developer", input=pw + "\n")
        self.assertNotEqual(p.returncode, 0, "duplicate email accepted")
        p = self.cli("user", "add", "--email", qgtest.rand_email(), "--role", "developer", input="short\n")
        self.assertNotEqual(p.returncode, 0, "short password accepted")
        p = self.cli("user", "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(email, p.stdout)

        # migrate prints the schema version and is idempotent
        p = self.cli("migrate")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"\d+")
        v1 = re.findall(r"\d+", p.stdout)
        p = self.cli("migrate")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(re.findall(r"\d+", p.stdout), v1)

        s.start()
        # access tokens were signed with a key derived from the old master key
        self.assertError(s.request("GET", "/api/me", token=u["access"]), 401, "unauthorized")
        r = s.login(s.admin_email, s.admin_password)
        self.assertEqual(r.status, 200, r)
        admin = s._admin_token = r.json["access_token"]
        r = s.request("GET", "/api/secrets", token=admin)
        self.assertEqual({i["name"]: i["masked"] for i in r.json["items"]}, masked)
        # new secrets still work under the new key
        v = s.secret("new-" + qgtest.pysecrets.token_hex(16))
        self.assertIn(s.request("PUT", "/api/secrets/AFTER_ROTATE", {"value": v}, token=admin).status, (200, 201, 204))
        # refresh tokens are database rows, not signed: still valid
        self.assertEqual(s.request("POST", "/api/auth/refresh", {"refresh_token": u["refresh"]}).status, 200)
        r = s.login(email, pw)
        self.assertEqual(r.status, 200, r)
        me = s.request("GET", "/api/me", token=r.json["access_token"]).json
        self.assertEqual((me["email"], me["role"], me["approved"]), (email, "developer", True))


class MigrateFreshTest(qgtest.ServerTest):
    """`migrate` on an empty data dir creates the schema; the server then
    starts on it and creates the first admin."""

    @classmethod
    def setUpClass(cls):
        cls.srv = qgtest.Server()
        p = qgtest.run_cli(["migrate"], env={"QG_DATA_DIR": cls.srv.data_dir, "QG_MASTER_KEY": cls.srv.master_key})
        cls.migrate_out = p
        cls.srv.start()

    def test_fresh(self):
        p = self.migrate_out
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"\d+")
        self.assertTrue(self.srv.admin_email)
        self.assertEqual(self.srv.request("GET", "/ready").status, 200)


if __name__ == "__main__":
    qgtest.main()
