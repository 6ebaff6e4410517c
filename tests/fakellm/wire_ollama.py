"""wire_ollama.py - Ollama's native chat API for fakellm.

POST /api/chat, and GET /api/tags (the local models) and GET /api/version.

Embeddings: POST /api/embed {"model", "input": "text" | [...]} ->
{"model", "embeddings": [[...], ...], "total_duration", "load_duration",
"prompt_eval_count"} with embedvec.py's vectors.

Ollama streams unless the request says "stream": false. A whole reply is
{model, created_at, message: {role: "assistant", content, tool_calls?},
done: true, done_reason, total_duration, load_duration, prompt_eval_count,
prompt_eval_duration, eval_count, eval_duration}; tool calls are
{function: {name, arguments: OBJECT}} without ids. A stream is
newline-delimited JSON (application/x-ndjson): one object per text piece
with done: false, the tool calls whole in one line, and a last line with
done: true, done_reason ("stop", "length") and the counts. Ollama has no
cached-token count.

Errors: {"error": "text"} with the status; a step's "kind" may be
"model_not_found" (404 'model "x" not found, try pulling it first') or
"context_length"; "retry_after" adds a Retry-After header (a proxy in front
of Ollama would send it). Extension: a streamed step with "stream_error"
sends its text and then an {"error": ...} line, as Ollama does when the
runner dies mid-stream.
"""

import json
import time

import embedvec

KINDS = {
    "model_not_found": (404, 'model "%s" not found, try pulling it first'),
    "context_length": (400, "input length exceeds the context length of the model"),
}

DEFAULT_MESSAGES = {
    400: "invalid request",
    401: "unauthorized",
    404: 'model "%s" not found, try pulling it first',
    429: "too many requests",
    500: "an error was encountered while running the model: unexpected EOF",
    503: "server busy, please try again. maximum pending requests exceeded",
}


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _echo(ctx):
    body = ctx.body if isinstance(ctx.body, dict) else {}
    msgs = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last = ""
    for m in reversed(msgs):
        if m.get("role") == "user":
            last = m.get("content") or ""
            break
    prompt = " ".join(m.get("content") or "" for m in msgs if isinstance(m.get("content"), str))
    return ctx.echo_step(ctx.last_user_text(last), prompt)


def _error(ctx, step, model):
    status = int(step.get("status") or 0)
    kind = step.get("kind")
    if kind in KINDS:
        status = status or KINDS[kind][0]
        msg = KINDS[kind][1]
    else:
        msg = DEFAULT_MESSAGES.get(status, "HTTP %d" % status)
    if "%s" in msg:
        msg = msg % model
    msg = step.get("message") or msg
    headers = {}
    if step.get("retry_after") is not None:
        headers["Retry-After"] = str(step["retry_after"])
    ctx.send_json(status, {"error": msg}, headers)


def _calls(step):
    out = []
    for c in step.get("tool_calls") or []:
        args = c.get("arguments", {})
        if isinstance(args, str):
            args = json.loads(args) if args.strip() else {}
        out.append({"function": {"name": c["name"], "arguments": args}})
    return out


def _done_fields(step, calls):
    u = step.get("usage") or {}
    reason = step.get("finish") or "stop"
    # Ollama says "stop" even when it called tools; "length" when cut off
    reason = "length" if reason == "length" else "stop"
    return {
        "done_reason": reason,
        "done": True,
        "total_duration": 5191566416,
        "load_duration": 2154458,
        "prompt_eval_count": int(u.get("input", 0)),
        "prompt_eval_duration": 383809000,
        "eval_count": int(u.get("output", 0)),
        "eval_duration": 4799921000,
    }


def _stream(ctx, step, model):
    text = step.get("text") or ""
    calls = _calls(step)

    def line(obj):
        ctx.write_chunk(json.dumps(obj) + "\n")

    ctx.start_stream("application/x-ndjson")
    for piece in ctx.text_pieces(text, step) if text else []:
        if piece:
            line({"model": model, "created_at": _now(), "message": {"role": "assistant", "content": piece}, "done": False})
    if step.get("stream_error"):
        msg = step["stream_error"] if isinstance(step["stream_error"], str) and " " in step["stream_error"] else DEFAULT_MESSAGES[500]
        line({"error": msg})
        ctx.end_stream()
        return
    if calls:
        line({"model": model, "created_at": _now(), "message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": False})
    final = {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""}}
    final.update(_done_fields(step, calls))
    line(final)
    ctx.end_stream()


def handle_chat(ctx):
    body = ctx.body if isinstance(ctx.body, dict) else {}
    model = body.get("model") or "llama-fake"
    step = ctx.step
    if step is None:
        step = _echo(ctx)
    if step.get("status") or step.get("kind"):
        return _error(ctx, step, model)
    if not isinstance(ctx.body, dict):
        return ctx.send_json(400, {"error": "invalid character 'x' looking for beginning of value"})
    if body.get("stream", True):
        return _stream(ctx, step, model)
    calls = _calls(step)
    message = {"role": "assistant", "content": step.get("text") or ""}
    if calls:
        message["tool_calls"] = calls
    reply = {"model": model, "created_at": _now(), "message": message}
    reply.update(_done_fields(step, calls))
    ctx.send_json(200, reply)


def handle_tags(ctx):
    names = {"llama3.2:latest", "qwen3:latest"}
    state = getattr(ctx.h.server, "state", None)
    if state is not None:
        with state.lock:
            names.update(k for k in state.scripts if k != "*")
    models = [
        {
            "name": n,
            "model": n,
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B", "quantization_level": "Q4_K_M"},
        }
        for n in sorted(names)
    ]
    ctx.send_json(200, {"models": models})


def handle_version(ctx):
    ctx.send_json(200, {"version": "0.9.0"})


def handle_embed(ctx):
    body = ctx.body if isinstance(ctx.body, dict) else {}
    model = body.get("model") or "llama-fake"
    step = ctx.step
    if embedvec.is_error(step):
        return _error(ctx, step, model)
    inp = body.get("input")
    if isinstance(inp, str):
        inp = [inp]
    if not isinstance(inp, list) or not inp or not all(isinstance(t, str) for t in inp):
        return ctx.send_json(400, {"error": "invalid input type"})
    vecs, toks = embedvec.answer(inp, step)
    ctx.send_json(200, {"model": model, "embeddings": vecs, "total_duration": 14143917, "load_duration": 1019500, "prompt_eval_count": toks})


ROUTES = [
    ("POST", r"/api/chat", handle_chat),
    ("POST", r"/api/embed", handle_embed),
    ("GET", r"/api/tags", handle_tags),
    ("GET", r"/api/version", handle_version),
]
