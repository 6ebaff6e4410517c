"""fakellm.py - a local LLM provider server for tests and benchmarks.

It speaks the exact wire formats of the providers quantgate supports, over
loopback, so the production code path (libcurl, the provider encoders and
decoders, the framers) runs unchanged in tests:

    OpenAI Chat Completions   POST /v1/chat/completions          (wire_openai.py)
                              POST /openai/deployments/{d}/chat/completions (Azure)
    Anthropic Messages        POST /v1/messages                  (wire_anthropic.py)
    Gemini generateContent    POST /v1beta/models/{m}:generateContent
                              POST /v1beta/models/{m}:streamGenerateContent?alt=sse
    Ollama native chat        POST /api/chat                     (wire_ollama.py)
    Embeddings                POST /v1/embeddings, /openai/deployments/{d}/embeddings,
                              /v1beta/models/{m}:embedContent, :batchEmbedContents,
                              /api/embed (vectors: embedvec.py)

What it answers is scripted per model through a control API:

    POST   /_fake/script   {"model": "m" | "*", "steps": [STEP, ...]}  appends steps
    GET    /_fake/requests the recorded requests, oldest first
    DELETE /_fake/requests forgets recorded requests and scripts

A STEP is one reply, consumed in order (a model's own steps before "*"):

    {"text": "hi", "tool_calls": [{"id": "call_1", "name": "f", "arguments": {...}}],
     "usage": {"input": 10, "output": 5, "cached": 0}, "finish": "stop",
     "delay_ms": 0,        # before the status line
     "chunk_delay_ms": 0,  # between stream chunks
     "chunks": 3}          # how many pieces the text is streamed in (default: per word)
    {"status": 429, "retry_after": "1", "message": "slow down"}  # an error reply
    {"status": 400, "kind": "context_length"}                     # provider-specific error code
    {"hang_ms": 5000}      # accept, then say nothing for that long
    {"close": true}        # close the connection without replying

With no step left the server echoes: text "echo: <last user text>", usage
from word counts, and tool calls never.

Run standalone: python3 tests/fakellm/fakellm.py [--port N]; it prints
"fakellm listening on PORT" on stdout. Tests import FakeLLM and use
start()/stop()/script()/requests().
"""

import http.server
import json
import os
import re
import socketserver
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Each wire module defines ROUTES: a list of (method, regex, handler) where
# handler(ctx) writes the reply. ctx is a Ctx (below).
WIRES = []
for _name in ("wire_openai", "wire_anthropic", "wire_gemini", "wire_ollama"):
    try:
        WIRES.append(__import__(_name))
    except ImportError:  # a wire not written yet
        pass


class Ctx:
    """What a wire handler gets: the request, its step, and writers."""

    def __init__(self, handler, body, match, step):
        self.h = handler
        self.path = handler.path
        self.headers = {k.lower(): v for k, v in handler.headers.items()}
        self.body = body  # parsed JSON (or None)
        self.match = match  # the route regex match
        self.step = step  # the scripted step (dict), or None: echo

    # ---- defaults every wire shares ----
    def last_user_text(self, messages_text):
        return messages_text or ""

    def echo_step(self, last_user_text, prompt_text):
        """The step used when nothing is scripted."""
        return {
            "text": "echo: " + last_user_text,
            "usage": {"input": max(1, len(prompt_text.split())), "output": 1 + len(last_user_text.split()), "cached": 0},
        }

    def text_pieces(self, text, step):
        """Splits text into the pieces a stream sends."""
        n = step.get("chunks")
        if n:
            n = max(1, int(n))
            size = max(1, -(-len(text) // n))
            return [text[i : i + size] for i in range(0, len(text), size)] or [""]
        pieces = re.findall(r"\S+\s*|\s+", text)
        return pieces or [""]

    # ---- writers ----
    def send_json(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.h.send_response(status)
        self.h.send_header("Content-Type", "application/json")
        self.h.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.h.send_header(k, v)
        self.h.end_headers()
        self.h.wfile.write(data)
        self.h.wfile.flush()

    def start_stream(self, content_type):
        """Chunked response for SSE or NDJSON."""
        self.h.send_response(200)
        self.h.send_header("Content-Type", content_type)
        self.h.send_header("Transfer-Encoding", "chunked")
        self.h.send_header("Cache-Control", "no-cache")
        self.h.end_headers()

    def write_chunk(self, data):
        if isinstance(data, str):
            data = data.encode()
        if not data:
            return
        self.h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.h.wfile.flush()
        d = (self.step or {}).get("chunk_delay_ms", 0)
        if d:
            time.sleep(d / 1000.0)

    def end_stream(self):
        self.h.wfile.write(b"0\r\n\r\n")
        self.h.wfile.flush()


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.scripts = {}  # model -> [steps]
        self.requests = []

    def next_step(self, model):
        with self.lock:
            for key in (model, "*"):
                q = self.scripts.get(key)
                if q:
                    return q.pop(0)
        return None


def model_of(path, body):
    """The model a request is for: the body's "model", or Gemini's path."""
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        return body["model"]
    m = re.search(r"/models/([^/:]+):", path) or re.search(r"/deployments/([^/]+)/", path)
    return m.group(1) if m else ""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakellm/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return raw, (json.loads(raw) if raw else None)
        except ValueError:
            return raw, None

    def _control(self, method):
        st = self.server.state
        if self.path == "/_fake/script" and method == "POST":
            _, body = self._body()
            with st.lock:
                st.scripts.setdefault(body.get("model", "*"), []).extend(body.get("steps", []))
            return self._reply_json(200, {"ok": True})
        if self.path == "/_fake/requests" and method == "GET":
            with st.lock:
                data = list(st.requests)
            return self._reply_json(200, data)
        if self.path == "/_fake/requests" and method == "DELETE":
            with st.lock:
                st.requests.clear()
                st.scripts.clear()
            return self._reply_json(200, {"ok": True})
        return self._reply_json(404, {"error": "no such control path"})

    def _reply_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method):
        if self.path.startswith("/_fake/"):
            return self._control(method)
        raw, body = self._body() if method == "POST" else (b"", None)
        path_only = self.path.split("?", 1)[0]
        for wire in WIRES:
            for m, rx, fn in wire.ROUTES:
                if m != method:
                    continue
                match = re.fullmatch(rx, path_only)
                if not match:
                    continue
                st = self.server.state
                with st.lock:
                    st.requests.append(
                        {
                            "method": method,
                            "path": self.path,
                            "wire": wire.__name__[5:],
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body if body is not None else raw.decode("utf-8", "replace"),
                        }
                    )
                step = st.next_step(model_of(self.path, body))
                if step and step.get("close"):
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return
                if step and step.get("hang_ms"):
                    time.sleep(step["hang_ms"] / 1000.0)
                    self.close_connection = True
                    return
                if step and step.get("delay_ms"):
                    time.sleep(step["delay_ms"] / 1000.0)
                try:
                    fn(Ctx(self, body, match, step))
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                return
        return self._reply_json(404, {"error": {"message": "fakellm: no route for %s %s" % (method, path_only)}})

    def do_POST(self):
        self._route("POST")

    def do_GET(self):
        self._route("GET")

    def do_DELETE(self):
        self._route("DELETE")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class FakeLLM:
    """In-process fake for Python tests: start(), url, script(), requests(), stop()."""

    def __init__(self, port=0):
        self.server = Server(("127.0.0.1", port), Handler)
        self.server.state = State()
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def script(self, model, *steps):
        with self.server.state.lock:
            self.server.state.scripts.setdefault(model, []).extend(steps)

    def requests(self, wire=None):
        with self.server.state.lock:
            rs = list(self.server.state.requests)
        return [r for r in rs if wire is None or r["wire"] == wire]

    def reset(self):
        with self.server.state.lock:
            self.server.state.requests.clear()
            self.server.state.scripts.clear()


def main():
    port = 0
    if "--port" in sys.argv:
        port = int(sys.argv[sys.argv.index("--port") + 1])
    f = FakeLLM(port)
    print("fakellm listening on %d" % f.port, flush=True)
    try:
        f.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
