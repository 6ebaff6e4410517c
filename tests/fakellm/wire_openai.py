"""wire_openai.py - the OpenAI Chat Completions API for fakellm.

POST /v1/chat/completions (OpenAI, and the /v1 of Ollama, vLLM, LM Studio,
OpenRouter), POST /openai/deployments/{deployment}/chat/completions (Azure
OpenAI; the deployment is the model) and GET /v1/models.

Embeddings: POST /v1/embeddings and POST /openai/deployments/{d}/embeddings
take {"model", "input": "text" | ["text", ...]} and answer {"object": "list",
"data": [{"object": "embedding", "index": i, "embedding": [...]}], "model",
"usage": {"prompt_tokens", "total_tokens"}} with embedvec.py's vectors.

Replies follow the real wire format: a "chat.completion" object whose
choices[0].message has content (null when the model only calls tools) and
tool_calls ({id, type: "function", function: {name, arguments: JSON text}}),
a finish_reason (stop / length / tool_calls / content_filter) and usage
{prompt_tokens (cached included), completion_tokens, total_tokens,
prompt_tokens_details.cached_tokens}.

Streams ("stream": true) are SSE "data:" lines of "chat.completion.chunk":
the first delta carries role "assistant" and content "", then text pieces,
then each tool call as a first fragment (index, id, type, function.name,
arguments "") followed by argument pieces, then an empty delta with the
finish_reason; with stream_options.include_usage a last chunk with
"choices": [] and the usage; then "data: [DONE]".

Errors: {"error": {"message", "type", "param", "code"}} with OpenAI's type
and code for the status (401 invalid_api_key, 429 rate_limit_exceeded,
500 server_error, 503 overloaded, ...), a Retry-After header when the step
has "retry_after" (and retry-after-ms with "retry_after_ms"). A step's
"kind" may be "context_length" (400 context_length_exceeded),
"insufficient_quota" (429) or "model_not_found" (404). Extension: a
streamed step with "stream_error": "server_error" sends its text and then
data: {"error": {...}} instead of finishing, as OpenAI does mid-stream.
"""

import itertools
import json
import time

import embedvec

_ids = itertools.count(1)

ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-fake********************wxyz. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model `%s` does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for %s on requests per min (RPM): Limit 3, Used 3, Requested 1."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "That model is currently overloaded with other requests. You can retry your request."),
}

KINDS = {
    "context_length": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens. "
        "Please reduce the length of the messages.",
    ),
    "insufficient_quota": (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "model_not_found": (404, "invalid_request_error", "model_not_found", "The model `%s` does not exist or you do not have access to it."),
}


def _texts(content):
    """The text of a message's content (a string, null, or a list of parts)."""
    if isinstance(content, str):
        return [content]
    return [p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text"]


def _echo(ctx):
    body = ctx.body if isinstance(ctx.body, dict) else {}
    msgs = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last = ""
    for m in reversed(msgs):
        if m.get("role") == "user":
            last = " ".join(t for t in _texts(m.get("content")) if t)
            break
    prompt = []
    for m in msgs:
        prompt.extend(_texts(m.get("content")))
    return ctx.echo_step(ctx.last_user_text(last), " ".join(prompt))


def _model(ctx):
    if ctx.match and ctx.match.groupdict().get("deployment"):
        return ctx.match.group("deployment")
    body = ctx.body if isinstance(ctx.body, dict) else {}
    return body.get("model") or "gpt-fake"


def error_body(message, etype, code, param=None):
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def _error(ctx, step, model):
    status = int(step["status"])
    kind = step.get("kind")
    if kind in KINDS:
        status_k, etype, code, msg = KINDS[kind]
        if "status" not in step:
            status = status_k
    else:
        etype, code, msg = ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None, "HTTP %d" % status))
        if kind:
            code = kind
    if "%s" in msg:
        msg = msg % model
    msg = step.get("message") or msg
    headers = {"x-request-id": "req_fake_%d" % next(_ids)}
    if step.get("retry_after") is not None:
        headers["Retry-After"] = str(step["retry_after"])
    if step.get("retry_after_ms") is not None:
        headers["retry-after-ms"] = str(step["retry_after_ms"])
    ctx.send_json(status, error_body(msg, etype, code, "messages" if code == "context_length_exceeded" else None), headers)


def _calls(step):
    out = []
    for i, c in enumerate(step.get("tool_calls") or []):
        args = c.get("arguments", {})
        if not isinstance(args, str):
            args = json.dumps(args)
        out.append({"id": c.get("id") or "call_fake_%d" % i, "type": "function", "function": {"name": c["name"], "arguments": args}})
    return out


def _usage(step):
    u = step.get("usage") or {}
    inp, out, cached = int(u.get("input", 0)), int(u.get("output", 0)), int(u.get("cached", 0))
    return {
        "prompt_tokens": inp,
        "completion_tokens": out,
        "total_tokens": inp + out,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _finish(step, calls):
    return step.get("finish") or ("tool_calls" if calls else "stop")


def _pieces(s, n=3):
    size = max(1, -(-len(s) // n))
    return [s[i : i + size] for i in range(0, len(s), size)] or [""]


def _stream(ctx, step, model):
    body = ctx.body if isinstance(ctx.body, dict) else {}
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    cid = "chatcmpl-fake%d" % next(_ids)
    created = int(time.time())
    text = step.get("text") or ""
    calls = _calls(step)

    def chunk(delta, finish=None, choices=True, usage=None):
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_fake"}
        obj["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else []
        if include_usage:
            obj["usage"] = usage
        ctx.write_chunk("data: %s\n\n" % json.dumps(obj))

    ctx.start_stream("text/event-stream; charset=utf-8")
    chunk({"role": "assistant", "content": "", "refusal": None})
    if text:
        for piece in ctx.text_pieces(text, step):
            if piece:
                chunk({"content": piece})
    if step.get("stream_error"):
        status = {"server_error": 500, "rate_limit_exceeded": 429}.get(step["stream_error"], 500)
        etype, code, msg = ERRORS.get(status, ERRORS[500])
        if "%s" in msg:
            msg = msg % model
        ctx.write_chunk("data: %s\n\n" % json.dumps(error_body(msg, etype, code)))
        ctx.end_stream()
        return
    for i, c in enumerate(calls):
        first = {"index": i, "id": c["id"], "type": "function", "function": {"name": c["function"]["name"], "arguments": ""}}
        chunk({"tool_calls": [first]})
        for piece in _pieces(c["function"]["arguments"]):
            chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    chunk({}, _finish(step, calls))
    if include_usage:
        chunk(None, choices=False, usage=_usage(step))
    ctx.write_chunk("data: [DONE]\n\n")
    ctx.end_stream()


def handle_chat(ctx):
    body = ctx.body if isinstance(ctx.body, dict) else {}
    model = _model(ctx)
    step = ctx.step
    if step is None:
        step = _echo(ctx)
    if step.get("status") or step.get("kind"):
        if "status" not in step:
            step = dict(step, status=KINDS.get(step["kind"], (400,))[0])
        return _error(ctx, step, model)
    if not isinstance(ctx.body, dict) or not body.get("messages"):
        return ctx.send_json(400, error_body("you must provide a messages parameter", "invalid_request_error", None, "messages"))
    if body.get("stream"):
        return _stream(ctx, step, model)
    calls = _calls(step)
    text = step.get("text") or ""
    message = {"role": "assistant", "content": text if (text or not calls) else None, "refusal": None, "annotations": []}
    if calls:
        message["tool_calls"] = calls
    reply = {
        "id": "chatcmpl-fake%d" % next(_ids),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(step, calls)}],
        "usage": _usage(step),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }
    ctx.send_json(200, reply, {"x-request-id": "req_fake_%d" % next(_ids)})


def handle_embeddings(ctx):
    body = ctx.body if isinstance(ctx.body, dict) else {}
    model = _model(ctx)
    step = ctx.step
    if embedvec.is_error(step):
        if "status" not in step:
            step = dict(step, status=KINDS.get(step["kind"], (400,))[0])
        return _error(ctx, step, model)
    inp = body.get("input")
    if isinstance(inp, str):
        inp = [inp]
    if not isinstance(inp, list) or not inp or not all(isinstance(t, str) and t for t in inp):
        return ctx.send_json(400, error_body("'$.input' is invalid. Please check the API reference.", "invalid_request_error", None, "input"))
    vecs, toks = embedvec.answer(inp, step)
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)]
    ctx.send_json(200, {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": toks, "total_tokens": toks}})


def handle_models(ctx):
    names = {"gpt-4o-mini", "gpt-4o"}
    state = getattr(ctx.h.server, "state", None)
    if state is not None:
        with state.lock:
            names.update(k for k in state.scripts if k != "*")
    data = [{"id": n, "object": "model", "created": 1715367049, "owned_by": "system"} for n in sorted(names)]
    ctx.send_json(200, {"object": "list", "data": data})


ROUTES = [
    ("POST", r"/v1/chat/completions", handle_chat),
    ("POST", r"/openai/deployments/(?P<deployment>[^/]+)/chat/completions", handle_chat),
    ("GET", r"/v1/models", handle_models),
    ("POST", r"/v1/embeddings", handle_embeddings),
    ("POST", r"/openai/deployments/(?P<deployment>[^/]+)/embeddings", handle_embeddings),
]
