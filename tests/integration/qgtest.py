"""qgtest.py - shared harness for the integration tests of `quantgate serve`.

Each test_*.py file is run by ctest as

    python3 tests/integration/test_X.py <quantgate binary> <tests/data dir>

and imports this module from its own directory. The harness starts the real
server on a free loopback port with a private data directory, talks HTTP/1.1
to it with http.client (Python standard library only), stops it with SIGTERM
and insists on a graceful exit (status 0 within 15 s), then scans everything
the server wrote for every secret the test handled: passwords, access and
refresh tokens, machine tokens, vault values and the master key. A secret in
a log fails the test, whatever else passed.

Secrets are collected automatically: password/value fields of JSON request
bodies and token fields of JSON responses are remembered by Server.request;
tests add others with Server.secret(). Values shorter than 10 characters are
not tracked (they would match innocent text).
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets as pysecrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

BIN = None  # path of the quantgate binary (argv[1])
DATA = None  # tests/data directory (argv[2])
SRC = None  # repository root, derived from DATA

START_TIMEOUT = 20.0  # ASan builds start slowly
STOP_TIMEOUT = 15.0

# A developer's real provider keys must never reach a test server.
PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GEMINI_BASE_URL",
    "OLLAMA_HOST",
)

SECRET_REQUEST_FIELDS = ("password", "new_password", "current_password", "value", "refresh_token")
SECRET_RESPONSE_FIELDS = ("access_token", "refresh_token", "token")


def main():
    """Entry point of every test file: takes the two arguments, runs unittest."""
    global BIN, DATA, SRC
    if len(sys.argv) < 3:
        sys.stderr.write("usage: %s QUANTGATE_BINARY TESTS_DATA_DIR [unittest args]\n" % sys.argv[0])
        sys.exit(2)
    BIN = os.path.abspath(sys.argv[1])
    DATA = os.path.abspath(sys.argv[2])
    SRC = os.path.dirname(os.path.dirname(DATA))
    rest = sys.argv[3:]
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rand_password():
    return "pw-" + pysecrets.token_urlsafe(15)


def rand_email(tag="user"):
    return "%s-%s@example.com" % (tag, pysecrets.token_hex(4))


# ---------------------------------------------------------------- JWT helpers
def b64url_encode(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_decode(s):
    s = s + "=" * (-len(s) % 4)
    return base64.urlsafe_b64decode(s.encode())


def jwt_parts(token):
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), s


def jwt_sign_hs256(header, payload, key):
    h = b64url_encode(json.dumps(header, separators=(",", ":")).encode())
    p = b64url_encode(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(key, (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64url_encode(sig)


# ---------------------------------------------------------------- responses
class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.header_list = headers  # [(name, value)]
        self.headers = {}
        for k, v in headers:
            k = k.lower()
            self.headers[k] = self.headers[k] + ", " + v if k in self.headers else v
        self.body = body
        self.text = body.decode("utf-8", "replace")
        self.json = None
        ctype = self.headers.get("content-type", "")
        if "json" in ctype or (self.text[:1] in ("{", "[")):
            try:
                self.json = json.loads(self.text)
            except ValueError:
                self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<%d %s %s>" % (self.status, self.headers.get("content-type", ""), self.text[:400])

    # triple-style access used by tests: status, headers, data = resp
    def __iter__(self):
        yield self.status
        yield self.headers
        yield self.json if self.json is not None else self.text


# ---------------------------------------------------------------- server
class Server:
    """One `quantgate serve` process with a private data directory.

    env: extra environment (e.g. {"QG_ACCESS_TTL": "2"}). Rate limits are off
    unless env sets QG_RATE_LIMITS. master_key=False runs without
    QG_MASTER_KEY (the vault then uses <data dir>/master.key)."""

    def __init__(self, env=None, master_key=True, data_dir=None):
        self.tmp = tempfile.mkdtemp(prefix="qgit-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.master_key = pysecrets.token_hex(32) if master_key else None
        self.extra_env = dict(env or {})
        self.proc = None
        self.tls_context = None  # an ssl.SSLContext: talk HTTPS (QG_TLS_CERT servers)
        self.port = None
        self.runs = 0
        self.log_files = []
        self.secrets = set()
        self.admin_email = None
        self.admin_password = None  # current admin password
        self.initial_admin_password = None
        self._admin_token = None
        self.bodies_seen = []  # response bodies, for "never in a response" checks
        if self.master_key:
            self.secret(self.master_key)

    # -- environment
    def env(self):
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("QG_") or k in PROVIDER_ENV or k == "DATABASE_URL":
                del e[k]
        e.update(
            {
                "QG_DATA_DIR": self.data_dir,
                "QG_ARGON2_FAST": "1",
                "QG_LOG_LEVEL": "info",
                "QG_RATE_LIMITS": "off",
                "QG_ENV_FILE": os.path.join(self.tmp, "no.env"),
                "QG_PROMPTS_DIR": os.path.join(SRC or "", "prompts"),
                "ASAN_OPTIONS": e.get("ASAN_OPTIONS", "detect_leaks=1"),
            }
        )
        # h2o's recycle caches are not leaks of ours (see tests/lsan.supp)
        supp = os.path.join(SRC or "", "tests", "lsan.supp")
        if "LSAN_OPTIONS" not in e and os.path.exists(supp):
            e["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % supp
        if self.master_key:
            e["QG_MASTER_KEY"] = self.master_key
        e.update(self.extra_env)
        return e

    def secret(self, value):
        if isinstance(value, str) and len(value) >= 10:
            self.secrets.add(value)
        return value

    # -- process
    def start(self):
        assert self.proc is None, "server already running"
        self.runs += 1
        self.port = free_port()
        out = os.path.join(self.tmp, "stdout.%d" % self.runs)
        err = os.path.join(self.tmp, "stderr.%d" % self.runs)
        self.log_files += [out, err]
        self.stdout_path, self.stderr_path = out, err
        with open(out, "wb") as fo, open(err, "wb") as fe:
            self.proc = subprocess.Popen(
                [BIN, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=fo,
                stderr=fe,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                cwd=self.tmp,
            )
        deadline = time.time() + START_TIMEOUT
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "quantgate serve exited with %d before answering /health\n%s"
                    % (self.proc.returncode, self.log_tail())
                )
            try:
                r = self.request("GET", "/health", timeout=2)
                if r.status == 200:
                    break
                last = r
            except OSError as e:
                last = e
            time.sleep(0.1)
        else:
            self.kill()
            raise AssertionError("no 200 from /health within %.0f s (last: %r)\n%s" % (START_TIMEOUT, last, self.log_tail()))
        self._parse_first_admin()
        return self

    def _parse_first_admin(self):
        if self.admin_email:
            return
        pat = re.compile(r"first admin:?\s*(\S+@\S+?)[,;]?\s+(?:one-time\s+)?password:?\s*(\S+)", re.I)
        deadline = time.time() + 3
        while time.time() < deadline:
            for path in (self.stdout_path, self.stderr_path):
                with open(path, "r", errors="replace") as f:
                    m = pat.search(f.read())
                if m:
                    self.admin_email = m.group(1)
                    self.initial_admin_password = self.admin_password = m.group(2)
                    self.secret(self.admin_password)
                    return
            time.sleep(0.1)

    def stop(self, expect_rc=0):
        """SIGTERM, wait, assert the exit status; then check the logs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("quantgate serve did not exit within %.0f s of SIGTERM\n%s" % (STOP_TIMEOUT, self.log_tail()))
        self.proc = None
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError("quantgate serve exited with %d after SIGTERM, expected %d\n%s" % (rc, expect_rc, self.log_tail()))
        self.check_logs()
        return rc

    def kill(self):
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(5)
            except Exception:
                pass
            self.proc = None

    def cleanup(self):
        self.kill()
        if os.environ.get("QG_IT_KEEP"):
            sys.stderr.write("kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, n=40):
        out = []
        for p in self.log_files[-2:]:
            try:
                with open(p, "r", errors="replace") as f:
                    lines = f.read().splitlines()
                out.append("--- %s (last %d lines)\n%s" % (os.path.basename(p), n, "\n".join(lines[-n:])))
            except OSError:
                pass
        return "\n".join(out)

    def check_logs(self, extra_texts=()):
        """Fails when any tracked secret appears in a captured log. The one
        line that prints the first admin's one-time password is expected."""
        found = []
        texts = []
        for p in self.log_files:
            with open(p, "r", errors="replace") as f:
                texts.append((p, f.read()))
        texts += list(extra_texts)
        for name, text in texts:
            lines = [l for l in text.splitlines() if not re.search(r"first admin", l, re.I)]
            text = "\n".join(lines)
            for s in self.secrets:
                if s in text:
                    found.append("%s contains secret %s...%s" % (os.path.basename(name), s[:4], s[-2:]))
        if found:
            raise AssertionError("secrets leaked into logs:\n" + "\n".join(found))

    def log_text(self):
        t = ""
        for p in self.log_files:
            with open(p, "r", errors="replace") as f:
                t += f.read()
        return t

    # -- HTTP
    def request(self, method, path, body=None, token=None, headers=None, timeout=30, query=None):
        """body: dict/list (sent as JSON), bytes/str (raw), or None."""
        hdrs = {}
        data = None
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
            if isinstance(body, dict):
                for k in SECRET_REQUEST_FIELDS:
                    if isinstance(body.get(k), str):
                        self.secret(body[k])
        elif isinstance(body, str):
            data = body.encode()
        elif body is not None:
            data = body
        if token:
            hdrs["Authorization"] = "Bearer " + token
        hdrs.update(headers or {})
        if query:
            path = path + "?" + urllib.parse.urlencode(query)
        if self.tls_context is not None:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.tls_context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            try:
                conn.request(method, path, body=data, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer (413) before reading the whole body
            resp = conn.getresponse()
            r = Response(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()
        if len(r.body) < (1 << 20):
            self.bodies_seen.append(r.text)
        if isinstance(r.json, dict):
            for k in SECRET_RESPONSE_FIELDS:
                if isinstance(r.json.get(k), str):
                    self.secret(r.json[k])
        return r

    # -- accounts
    def login(self, email, password):
        r = self.request("POST", "/api/auth/login", {"email": email, "password": password})
        return r

    def admin_token(self):
        """Logs the first-run admin in, changing the one-time password on the
        first call; returns an access token (cached)."""
        if self._admin_token:
            r = self.request("GET", "/api/me", token=self._admin_token)
            if r.status == 200:
                return self._admin_token
        assert self.admin_email, "no first-admin line found in the server output\n" + self.log_tail()
        r = self.login(self.admin_email, self.admin_password)
        assert r.status == 200, "admin login: %r" % r
        tok = r.json["access_token"]
        if r.json.get("password_change_required"):
            newpw = rand_password()
            r2 = self.request(
                "POST", "/api/me/password", {"current_password": self.admin_password, "new_password": newpw}, token=tok
            )
            assert r2.status in (200, 204), "admin password change: %r" % r2
            self.admin_password = newpw
            r = self.login(self.admin_email, newpw)
            assert r.status == 200, "admin login after change: %r" % r
            tok = r.json["access_token"]
        self._admin_token = tok
        return tok

    def make_user(self, role="developer", tag=None):
        """Creates an approved user through the admin API and logs it in.
        Returns a dict: id, email, password, role, access, refresh."""
        email = rand_email(tag or role)
        pw = rand_password()
        r = self.request("POST", "/api/users", {"email": email, "password": pw, "role": role}, token=self.admin_token())
        assert r.status == 201, "create user: %r" % r
        uid = r.json["id"]
        r = self.login(email, pw)
        assert r.status == 200, "login of new user: %r" % r
        return {
            "id": uid,
            "email": email,
            "password": pw,
            "role": role,
            "access": r.json["access_token"],
            "refresh": r.json["refresh_token"],
        }


def run_cli(args, env=None, input=None, timeout=120):
    """Runs `quantgate args...`; returns CompletedProcess with text output."""
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("QG_") or k == "DATABASE_URL":
            del e[k]
    e.update(env or {})
    return subprocess.run([BIN] + list(args), env=e, input=input, capture_output=True, text=True, timeout=timeout)


class ServerTest(unittest.TestCase):
    """Base class: one server per test class (SERVER_ENV), started in
    setUpClass and stopped (graceful exit and log scan asserted) in
    tearDownClass."""

    SERVER_ENV = {}
    MASTER_KEY = True

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env=cls.SERVER_ENV, master_key=cls.MASTER_KEY)
        try:
            cls.srv.start()
        except Exception:
            cls.srv.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.srv.proc is not None:
                cls.srv.stop()
            else:
                cls.srv.check_logs()
        finally:
            cls.srv.cleanup()

    # assertion helpers
    def assertError(self, r, status, code=None, msg_re=None):
        self.assertEqual(r.status, status, "expected %d, got %r" % (status, r))
        self.assertIsInstance(r.json, dict, "error body is not JSON: %r" % r)
        self.assertIn("error", r.json, r)
        e = r.json["error"]
        self.assertIsInstance(e, dict, r)
        self.assertIsInstance(e.get("code"), str, r)
        self.assertIsInstance(e.get("message"), str, r)
        self.assertTrue(e["message"], r)
        if code:
            self.assertEqual(e["code"], code, r)
        if msg_re:
            self.assertRegex(e["message"], msg_re, r)

    def assertStatus(self, r, *statuses):
        self.assertIn(r.status, statuses, "expected %s, got %r" % (statuses, r))


def wait_backtest(srv, token, bt_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = srv.request("GET", "/api/backtests/" + bt_id, token=token)
        assert r.status == 200, r
        if r.json["status"] in ("done", "failed", "cancelled"):
            return r.json
        time.sleep(0.1)
    raise AssertionError("backtest %s not finished within %d s" % (bt_id, timeout))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def upload(srv, token, path_or_bytes, ctype="text/csv", **query):
    query.setdefault("name", "upload")  # the server requires a name
    data = bytes(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else read_bytes(path_or_bytes)
    return srv.request("POST", "/api/datasets", data, token=token, headers={"Content-Type": ctype}, query=query)
