"""wire_anthropic.py - the Anthropic Messages API for fakellm.

POST /v1/messages, streaming ("stream": true, Server-Sent Events) and not.

Replies follow the real wire format: a "message" object with content
blocks ("text", "tool_use" with an "input" object), stop_reason
(end_turn / max_tokens / tool_use / refusal) and usage, where input_tokens
excludes cache reads (reported as cache_read_input_tokens), so a step's
usage {"input": 100, "cached": 40} comes back to quantgate as input 100,
cached 40. Streams send message_start, content_block_start / ping /
content_block_delta (text_delta, input_json_delta) / content_block_stop,
message_delta (stop_reason, output_tokens) and message_stop.

Errors: {"type": "error", "error": {"type": ..., "message": ...},
"request_id": ...} with the type Anthropic uses for the status
(401 authentication_error, 429 rate_limit_error, 529 overloaded_error, ...)
and a Retry-After header when the step has "retry_after". A step's "kind"
may name the error type directly ("overloaded_error") or be
"context_length" (400 invalid_request_error "prompt is too long: ...").
Extension: a streamed step with "stream_error": "overloaded_error" sends
its text and then an SSE error event instead of finishing.
"""

import itertools
import json

_ids = itertools.count(1)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

DEFAULT_MESSAGES = {
    "invalid_request_error": "invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "model: not found",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "This request would exceed the rate limit for your organization.",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
    "timeout_error": "Request timed out",
}

FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def _texts(content):
    """The text of a message's content (a string or a list of blocks)."""
    if isinstance(content, str):
        return [content]
    out = []
    for b in content or []:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text":
            out.append(b.get("text", ""))
        elif b.get("type") == "tool_result":
            c = b.get("content")
            out.extend(_texts(c) if isinstance(c, list) else [c if isinstance(c, str) else json.dumps(c)])
    return out


def _echo(ctx):
    body = ctx.body if isinstance(ctx.body, dict) else {}
    msgs = body.get("messages") or []
    last = ""
    for m in reversed(msgs):
        if isinstance(m, dict) and m.get("role") == "user":
            last = " ".join(t for t in _texts(m.get("content")) if t)
            break
    system = body.get("system")
    prompt = [" ".join(_texts(system))] if system else []
    for m in msgs:
        if isinstance(m, dict):
            prompt.extend(_texts(m.get("content")))
    return ctx.echo_step(ctx.last_user_text(last), " ".join(prompt))


def _error(ctx, step):
    status = int(step["status"])
    kind = step.get("kind")
    if kind == "context_length":
        etype, msg = "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"
    else:
        etype = kind if kind in DEFAULT_MESSAGES else ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        msg = DEFAULT_MESSAGES[etype]
    msg = step.get("message") or msg
    headers = {"request-id": "req_fake_%d" % next(_ids)}
    if step.get("retry_after") is not None:
        headers["retry-after"] = str(step["retry_after"])
    body = {"type": "error", "error": {"type": etype, "message": msg}, "request_id": headers["request-id"]}
    ctx.send_json(status, body, headers)


def _calls(step):
    out = []
    for i, c in enumerate(step.get("tool_calls") or []):
        args = c.get("arguments", {})
        if isinstance(args, str):
            args = json.loads(args) if args.strip() else {}
        out.append({"type": "tool_use", "id": c.get("id") or "toolu_fake_%d" % i, "name": c["name"], "input": args})
    return out


def _usage(step):
    u = step.get("usage") or {}
    cached = int(u.get("cached", 0))
    return max(0, int(u.get("input", 0)) - cached), cached, int(u.get("output", 0))


def _stop_reason(step, calls):
    f = step.get("finish")
    if f:
        return FINISH.get(f, f)
    return "tool_use" if calls else "end_turn"


def _sse(ctx, etype, obj):
    obj = {"type": etype, **obj}
    ctx.write_chunk("event: %s\ndata: %s\n\n" % (etype, json.dumps(obj)))


def _json_pieces(s, n=3):
    size = max(1, -(-len(s) // n))
    return [s[i : i + size] for i in range(0, len(s), size)]


def _stream(ctx, step, model):
    text = step.get("text") or ""
    calls = _calls(step)
    inp, cached, out = _usage(step)
    mid = "msg_fake_%d" % next(_ids)
    ctx.start_stream("text/event-stream; charset=utf-8")
    _sse(
        ctx,
        "message_start",
        {
            "message": {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": inp, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached, "output_tokens": 1},
            }
        },
    )
    index = 0
    if text or not calls:
        _sse(ctx, "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        _sse(ctx, "ping", {})
        for piece in ctx.text_pieces(text, step):
            if piece:
                _sse(ctx, "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
        if step.get("stream_error"):
            etype = step["stream_error"]
            _sse(ctx, "error", {"error": {"type": etype, "message": DEFAULT_MESSAGES.get(etype, "error")}})
            ctx.end_stream()
            return
        _sse(ctx, "content_block_stop", {"index": 0})
        index = 1
    for c in calls:
        _sse(ctx, "content_block_start", {"index": index, "content_block": {"type": "tool_use", "id": c["id"], "name": c["name"], "input": {}}})
        _sse(ctx, "content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": ""}})
        for piece in _json_pieces(json.dumps(c["input"])):
            _sse(ctx, "content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})
        _sse(ctx, "content_block_stop", {"index": index})
        index += 1
    _sse(ctx, "message_delta", {"delta": {"stop_reason": _stop_reason(step, calls), "stop_sequence": None}, "usage": {"output_tokens": out}})
    _sse(ctx, "message_stop", {})
    ctx.end_stream()


def handle_messages(ctx):
    body = ctx.body if isinstance(ctx.body, dict) else {}
    model = body.get("model") or "claude-fake"
    step = ctx.step
    if step is None:
        step = _echo(ctx)
    if step.get("status"):
        return _error(ctx, step)
    if body.get("stream"):
        return _stream(ctx, step, model)
    calls = _calls(step)
    text = step.get("text") or ""
    content = ([{"type": "text", "text": text}] if text or not calls else []) + calls
    inp, cached, out = _usage(step)
    reply = {
        "id": "msg_fake_%d" % next(_ids),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(step, calls),
        "stop_sequence": None,
        "usage": {"input_tokens": inp, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached, "output_tokens": out},
    }
    ctx.send_json(200, reply, {"request-id": "req_fake_%d" % next(_ids)})


ROUTES = [("POST", r"/v1/messages", handle_messages)]
