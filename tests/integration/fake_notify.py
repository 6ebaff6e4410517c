"""fake_notify.py - a local notification receiver for the tests and benchmarks.

One loopback HTTP/1.1 server (standard library only: ThreadingHTTPServer,
keep-alive) that speaks the wire formats quantgate sends to:

  Telegram Bot API   POST /bot<token>/sendMessage   (JSON or form body)
                     200 {"ok":true,"result":{"message_id":..,"chat":{..},"date":..,"text":..}}
                     errors {"ok":false,"error_code":N,"description":"..."}; a 429 carries
                     "parameters":{"retry_after":N} and a Retry-After header
  Slack webhook      POST /slack/<anything>          200 text "ok"
  Discord webhook    POST /discord/<anything>        204 (200 + the message JSON with ?wait=true);
                     429 {"message":"You are being rate limited.","retry_after":1.5,"global":false}
                     plus Retry-After
  generic webhook    POST /webhook/<anything>        200 {"ok":true}

Every request is recorded (Fake.requests) and every accepted message too
(Fake.messages: dicts with channel, path, chat_id, text, body, headers,
time). Failures are injected per path or channel with fail_next().

Python use (other tests import this module from the same directory):

    from fake_notify import FakeNotify
    fake = FakeNotify(token="123:ABC").start()
    env = {"QG_TELEGRAM_API_URL": fake.url, "TELEGRAM_BOT_TOKEN": "123:ABC",
           "TELEGRAM_CHAT_ID": "111,222",
           "QG_SLACK_WEBHOOK_URL": fake.url + "/slack/T000/B000/XXXX",
           "QG_DISCORD_WEBHOOK_URL": fake.url + "/discord/1/abc",
           "QG_NOTIFY_WEBHOOK_URL": fake.url + "/webhook/hook"}
    fake.fail_next("telegram", 429, n=1, retry_after=1)   # or an exact path / path prefix
    ...
    fake.wait_for(3, timeout=10)   # at least 3 accepted messages
    fake.messages                   # list of dicts
    fake.stop()

Command line (benchmarks, manual runs): `python3 fake_notify.py [--port N]
[--token T] [--quiet]` prints "FAKE_NOTIFY_URL=http://127.0.0.1:N" and
serves until SIGTERM/SIGINT. Out-of-process control endpoints:
  GET  /_fake/messages          the recorded messages (JSON list)
  GET  /_fake/stats             {"messages":N,"requests":N,"by_channel":{..}}
  POST /_fake/fail              {"path":"telegram","status":429,"n":2,"retry_after":1}
  POST /_fake/reset             forget messages, requests, pending failures and the delay
  POST /_fake/delay             {"seconds":0.5}: sleep that long before every answer
"""

import argparse
import json
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHANNELS = ("telegram", "slack", "discord", "webhook")
TELEGRAM_MAX = 4096
DISCORD_MAX = 2000


def channel_of(path):
    """The channel a request path belongs to, or None."""
    if path.startswith("/bot"):
        return "telegram"
    for ch in ("slack", "discord", "webhook"):
        if path == "/" + ch or path.startswith("/" + ch + "/"):
            return ch
    return None


class _Failure:
    def __init__(self, match, status, n, retry_after, body):
        self.match = match
        self.status = status
        self.left = n
        self.retry_after = retry_after
        self.body = body

    def matches(self, path, channel):
        if self.match in CHANNELS:
            return channel == self.match
        return path == self.match or path.startswith(self.match)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-notify/1"

    def log_message(self, fmt, *args):  # quiet unless asked
        if not self.server.fake.quiet:
            sys.stderr.write("fake_notify: " + (fmt % args) + "\n")

    # -- helpers ---------------------------------------------------------
    def _send(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Content-Length", "0")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if status != 204 and body:
            self.wfile.write(body)

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _parse(self, raw):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            return {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode(), keep_blank_values=True).items()}
        if not raw:
            return {}
        return json.loads(raw.decode())

    # -- dispatch --------------------------------------------------------
    def do_GET(self):
        fake = self.server.fake
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_fake/messages":
            with fake.lock:
                return self._send(200, list(fake._messages))
        if path == "/_fake/stats":
            return self._send(200, fake.stats())
        if path.startswith("/bot") and path.endswith("/getMe"):
            return self._send(200, {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "fake", "username": "fake_bot"}})
        return self._send(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    def do_POST(self):
        fake = self.server.fake
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        query = urllib.parse.parse_qs(split.query)
        raw = self._read_body()
        if path.startswith("/_fake/"):
            return self._control(path, raw)
        channel = channel_of(path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = self._parse(raw)
        except (ValueError, UnicodeDecodeError):
            body = None
        req = {"channel": channel, "path": path, "body": body, "raw": raw.decode("utf-8", "replace"), "headers": headers, "time": time.time()}
        if fake.delay > 0:
            time.sleep(fake.delay)
        failure = fake._take_failure(path, channel)
        if failure is not None:
            req["status"] = failure.status
            fake._record(req, None)
            return self._fail(channel, failure)
        if channel == "telegram":
            status, reply, msg = self._telegram(path, body)
        elif channel == "slack":
            status, reply, msg = self._slack(body)
        elif channel == "discord":
            status, reply, msg = self._discord(body, query)
        elif channel == "webhook":
            status, reply, msg = 200, {"ok": True}, None
            if not isinstance(body, dict):
                status, reply = 400, {"ok": False, "error": "body is not a JSON object"}
            else:
                msg = {"text": body.get("text"), "event": body.get("event")}
        else:
            status, reply, msg = 404, {"ok": False, "error_code": 404, "description": "Not Found"}, None
        req["status"] = status
        if msg is not None:
            msg.update({"channel": channel, "path": path, "body": body, "headers": headers, "time": req["time"]})
        fake._record(req, msg)
        if isinstance(reply, tuple):  # (status-less text body, content type)
            return self._send(status, reply[0], reply[1])
        return self._send(status, reply if status != 204 else b"")

    # -- per channel -----------------------------------------------------
    def _telegram(self, path, body):
        fake = self.server.fake
        parts = path.split("/")  # ['', 'bot<token>', 'sendMessage']
        if len(parts) != 3:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, None
        token, method = parts[1][3:], parts[2]
        if fake.token is not None and token != fake.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, None
        if method != "sendMessage":
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}, None
        if not isinstance(body, dict):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid request body"}, None
        chat_id = body.get("chat_id")
        text = body.get("text")
        if chat_id is None or chat_id == "":
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat_id is empty"}, None
        if not isinstance(text, str) or not text.strip():
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}, None
        if len(text) > TELEGRAM_MAX:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}, None
        if str(chat_id) in fake.unknown_chats:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, None
        pm = body.get("parse_mode")
        if pm not in (None, "", "HTML", "MarkdownV2", "Markdown"):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: unsupported parse_mode"}, None
        with fake.lock:
            fake._next_id += 1
            mid = fake._next_id
        is_channel = isinstance(chat_id, str) and chat_id.startswith("@")
        chat = {"id": chat_id if not is_channel else -1001000000000 - mid, "type": "channel" if is_channel else "private"}
        if is_channel:
            chat["username"] = chat_id[1:]
        result = {
            "message_id": mid,
            "from": {"id": 1, "is_bot": True, "first_name": "fake", "username": "fake_bot"},
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        msg = {"chat_id": chat_id, "text": text, "parse_mode": pm, "message_id": mid}
        return 200, {"ok": True, "result": result}, msg

    def _slack(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
            return 400, ("invalid_payload", "text/plain"), None
        return 200, ("ok", "text/plain"), {"text": body["text"]}

    def _discord(self, body, query):
        fake = self.server.fake
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content:
            return 400, {"message": "Cannot send an empty message", "code": 50006}, None
        if len(content) > DISCORD_MAX:
            return 400, {"message": "Invalid Form Body", "code": 50035,
                         "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}}, None
        msg = {"text": content}
        if query.get("wait", ["false"])[-1].lower() == "true":
            with fake.lock:
                fake._next_id += 1
                mid = fake._next_id
            return 200, {"id": str(mid), "content": content, "type": 0}, msg
        return 204, None, msg

    def _fail(self, channel, f):
        st = f.status
        hdrs = {}
        if f.retry_after is not None:
            hdrs["Retry-After"] = str(int(f.retry_after) if float(f.retry_after).is_integer() else f.retry_after)
        if f.body is not None:
            return self._send(st, f.body, "application/json" if not isinstance(f.body, str) else "text/plain", hdrs)
        if channel == "telegram":
            desc = {400: "Bad Request: chat not found", 401: "Unauthorized", 403: "Forbidden: bot was blocked by the user",
                    429: "Too Many Requests: retry after %s" % (f.retry_after if f.retry_after is not None else 1)}.get(st, "Internal Server Error" if st >= 500 else "Error")
            body = {"ok": False, "error_code": st, "description": desc}
            if st == 429:
                ra = f.retry_after if f.retry_after is not None else 1
                body["parameters"] = {"retry_after": int(ra) if float(ra).is_integer() else ra}
            return self._send(st, body, "application/json", hdrs)
        if channel == "discord":
            if st == 429:
                ra = float(f.retry_after if f.retry_after is not None else 1)
                return self._send(st, {"message": "You are being rate limited.", "retry_after": ra, "global": False}, "application/json", hdrs)
            return self._send(st, {"message": "error %d" % st, "code": 0}, "application/json", hdrs)
        if channel == "slack":
            return self._send(st, "rate_limited" if st == 429 else ("invalid_payload" if st < 500 else "internal_error"), "text/plain", hdrs)
        return self._send(st, {"ok": False, "error": "injected %d" % st}, "application/json", hdrs)

    # -- control ---------------------------------------------------------
    def _control(self, path, raw):
        fake = self.server.fake
        if path == "/_fake/reset":
            fake.reset()
            return self._send(200, {"ok": True})
        if path == "/_fake/fail":
            try:
                c = json.loads(raw.decode() or "{}")
                fake.fail_next(c["path"], int(c["status"]), int(c.get("n", 1)), c.get("retry_after"), c.get("body"))
            except (ValueError, KeyError, TypeError) as e:
                return self._send(400, {"ok": False, "error": str(e)})
            return self._send(200, {"ok": True})
        if path == "/_fake/delay":
            try:
                fake.delay = float(json.loads(raw.decode() or "{}")["seconds"])
            except (ValueError, KeyError, TypeError) as e:
                return self._send(400, {"ok": False, "error": str(e)})
            return self._send(200, {"ok": True})
        return self._send(404, {"ok": False})


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that gave up (a deadline, a stop) closed the connection
        # while a delayed answer was being written: expected, not an error.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class FakeNotify:
    """A fake Telegram / Slack / Discord / webhook receiver on 127.0.0.1."""

    def __init__(self, port=0, token=None, quiet=True, host="127.0.0.1"):
        self.host = host
        self.port = port
        self.token = token  # when set, other bot tokens get 401
        self.quiet = quiet
        self.delay = 0.0  # seconds to sleep before answering (timeouts)
        self.unknown_chats = set()  # chat ids answered "chat not found" (400)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self._messages = []
        self._requests = []
        self._failures = []
        self._next_id = 0
        self._httpd = None
        self._thread = None

    # -- lifecycle -------------------------------------------------------
    def start(self):
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake_notify", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        """Base URL (no trailing slash): QG_TELEGRAM_API_URL, and the prefix of the webhook URLs."""
        return "http://%s:%d" % (self.host, self.port)

    def telegram_path(self, token=None):
        return "/bot%s/sendMessage" % (token if token is not None else self.token)

    # -- inspection ------------------------------------------------------
    @property
    def messages(self):
        """Accepted messages (a copy), oldest first."""
        with self.lock:
            return list(self._messages)

    @property
    def requests(self):
        """Every POST received (accepted or failed), oldest first; each has 'status'."""
        with self.lock:
            return list(self._requests)

    def messages_for(self, channel):
        return [m for m in self.messages if m["channel"] == channel]

    def wait_for(self, count, timeout=10.0, channel=None):
        """Waits until at least `count` messages (of `channel`, when given) were accepted; returns them."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                got = [m for m in self._messages if channel is None or m["channel"] == channel]
                if len(got) >= count:
                    return got
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("fake_notify: %d message(s) after %.1fs, wanted %d: %r" % (len(got), timeout, count, got))
                self.cond.wait(left)

    def stats(self):
        with self.lock:
            by = {}
            for m in self._messages:
                by[m["channel"]] = by.get(m["channel"], 0) + 1
            return {"messages": len(self._messages), "requests": len(self._requests), "by_channel": by}

    # -- control ---------------------------------------------------------
    def fail_next(self, path, status, n=1, retry_after=None, body=None):
        """Answers the next n requests matching `path` with `status`.

        path: a channel name ("telegram", "slack", "discord", "webhook"), an
        exact request path or a path prefix. retry_after (seconds) goes into
        the Retry-After header and, for Telegram and Discord, the JSON body.
        body: an optional body replacing the platform's usual error body.
        """
        with self.lock:
            self._failures.append(_Failure(path, status, n, retry_after, body))

    def clear_failures(self):
        """Drops the failures fail_next armed and no request used yet."""
        with self.lock:
            self._failures.clear()

    def reset(self):
        with self.lock:
            self._messages.clear()
            self._requests.clear()
            self._failures.clear()
            self.delay = 0.0

    # -- internal --------------------------------------------------------
    def _take_failure(self, path, channel):
        with self.lock:
            for f in self._failures:
                if f.left > 0 and f.matches(path, channel):
                    f.left -= 1
                    return f
            self._failures = [f for f in self._failures if f.left > 0]
        return None

    def _record(self, req, msg):
        with self.cond:
            self._requests.append(req)
            if msg is not None:
                self._messages.append(msg)
            self.cond.notify_all()


def _main():
    ap = argparse.ArgumentParser(description="fake Telegram/Slack/Discord/webhook receiver")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default=None, help="accept only this bot token")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    fake = FakeNotify(port=a.port, token=a.token, quiet=a.quiet).start()
    print("FAKE_NOTIFY_URL=%s" % fake.url, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    fake.stop()


if __name__ == "__main__":
    _main()
