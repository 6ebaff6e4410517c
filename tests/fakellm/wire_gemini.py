"""wire_gemini.py - the Gemini API's generateContent for fakellm.

POST /v1beta/models/{model}:generateContent            one JSON reply
POST /v1beta/models/{model}:streamGenerateContent?alt=sse
                                                       Server-Sent Events
POST /v1beta/models/{model}:streamGenerateContent      a JSON array (no alt=sse)

Replies are GenerateContentResponse objects: candidates[0].content.parts with
"text" and "functionCall" {name, args} parts (no ids, as Gemini), a
finishReason (STOP, MAX_TOKENS, SAFETY; STOP after function calls too),
usageMetadata {promptTokenCount, candidatesTokenCount, totalTokenCount,
cachedContentTokenCount} and modelVersion. A stream sends one event per text
piece, then the function calls, and the last event carries finishReason and
the full usage; the body simply ends (no [DONE]).

Embeddings: POST /v1beta/models/{model}:embedContent ({"content": {"parts":
[{"text"}]}} -> {"embedding": {"values": [...]}}) and :batchEmbedContents
({"requests": [{"model": "models/{model}", "content": ...}]} ->
{"embeddings": [{"values": [...]}, ...]}), embedvec.py's vectors, and no
token count, as Gemini.

Errors: {"error": {"code", "message", "status", "details"}} with the
google.rpc status for the HTTP status (401 UNAUTHENTICATED, 429
RESOURCE_EXHAUSTED, 503 UNAVAILABLE, ...). A step's "retry_after" becomes a
google.rpc.RetryInfo detail {"retryDelay": "<n>s"} (Gemini sends no
Retry-After header). "kind" may be "context_length" (400 INVALID_ARGUMENT
"The input token count ... exceeds ...") or "api_key_invalid" (400
INVALID_ARGUMENT with reason API_KEY_INVALID, what Gemini answers a bad
key with). Extension: a streamed step with "stream_error": 503 sends its text
and then an error event.
"""

import itertools
import json

import embedvec

_ids = itertools.count(1)

STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

DEFAULT_MESSAGES = {
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "UNAUTHENTICATED": "Request had invalid authentication credentials.",
    "PERMISSION_DENIED": "The caller does not have permission",
    "NOT_FOUND": "models/unknown is not found for API version v1beta.",
    "RESOURCE_EXHAUSTED": "You exceeded your current quota, please check your plan and billing details.",
    "INTERNAL": "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    "UNAVAILABLE": "The model is overloaded. Please try again later.",
    "DEADLINE_EXCEEDED": "Deadline expired before operation could complete.",
}

FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}


def _part_texts(parts):
    out = []
    for p in parts or []:
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("text"), str):
            out.append(p["text"])
        elif isinstance(p.get("functionResponse"), dict):
            out.append(json.dumps(p["functionResponse"].get("response")))
    return out


def _echo(ctx):
    body = ctx.body if isinstance(ctx.body, dict) else {}
    contents = body.get("contents") or []
    last = ""
    for c in reversed(contents):
        if isinstance(c, dict) and c.get("role", "user") == "user":
            last = " ".join(t for t in _part_texts(c.get("parts")) if t)
            break
    si = body.get("systemInstruction")
    prompt = _part_texts(si.get("parts")) if isinstance(si, dict) else []
    for c in contents:
        if isinstance(c, dict):
            prompt.extend(_part_texts(c.get("parts")))
    return ctx.echo_step(ctx.last_user_text(last), " ".join(prompt))


def _error_body(status, step):
    kind = step.get("kind")
    gstatus = STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    msg = DEFAULT_MESSAGES[gstatus]
    details = []
    if kind == "context_length":
        gstatus, msg = "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
    elif kind == "api_key_invalid":
        gstatus, msg = "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        )
    if step.get("retry_after") is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "%ss" % step["retry_after"]})
    err = {"code": status, "message": step.get("message") or msg, "status": gstatus}
    if details:
        err["details"] = details
    return {"error": err}


def _parts(step):
    parts = []
    if step.get("text"):
        parts.append({"text": step["text"]})
    for c in step.get("tool_calls") or []:
        args = c.get("arguments", {})
        if isinstance(args, str):
            args = json.loads(args) if args.strip() else {}
        parts.append({"functionCall": {"name": c["name"], "args": args}})
    return parts


def _finish(step):
    f = step.get("finish") or "stop"
    return FINISH.get(f, f)


def _usage(step, final=True):
    u = step.get("usage") or {}
    inp, out, cached = int(u.get("input", 0)), int(u.get("output", 0)), int(u.get("cached", 0))
    if not final:
        return {"promptTokenCount": inp, "totalTokenCount": inp}
    m = {"promptTokenCount": inp, "candidatesTokenCount": out, "totalTokenCount": inp + out}
    if cached:
        m["cachedContentTokenCount"] = cached
    return m


def _response(model, rid, parts, finish, usage):
    cand = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": rid}


def _events(ctx, step, model, rid):
    """The stream's responses, in order."""
    text = step.get("text") or ""
    calls = [p for p in _parts(step) if "functionCall" in p]
    out = []
    pieces = [p for p in ctx.text_pieces(text, step) if p] if text else []
    for p in pieces:
        out.append(_response(model, rid, [{"text": p}], None, _usage(step, False)))
    if calls or not out:
        out.append(_response(model, rid, calls or [{"text": ""}], None, _usage(step, False)))
    last = out[-1]
    last["candidates"][0]["finishReason"] = _finish(step)
    last["usageMetadata"] = _usage(step)
    return out


def handle(ctx):
    model = ctx.match.group(1)
    method = ctx.match.group(2)
    step = ctx.step
    if step is None:
        step = _echo(ctx)
    if step.get("status"):
        status = int(step["status"])
        return ctx.send_json(status, _error_body(status, step))
    rid = "fake-%d" % next(_ids)
    if method == "generateContent":
        return ctx.send_json(200, _response(model, rid, _parts(step) or [{"text": ""}], _finish(step), _usage(step)))
    events = _events(ctx, step, model, rid)
    if "alt=sse" not in ctx.path:
        return ctx.send_json(200, events)
    ctx.start_stream("text/event-stream")
    for ev in events:
        if step.get("stream_error"):  # the stream breaks before it finishes
            ev["candidates"][0].pop("finishReason", None)
            ev["usageMetadata"] = _usage(step, False)
        ctx.write_chunk("data: %s\r\n\r\n" % json.dumps(ev))
    if step.get("stream_error"):
        code = int(step["stream_error"])
        ctx.write_chunk("data: %s\r\n\r\n" % json.dumps(_error_body(code, {})))
    ctx.end_stream()


def _content_text(content):
    parts = (content or {}).get("parts") if isinstance(content, dict) else None
    return "".join(p.get("text", "") for p in parts or [] if isinstance(p, dict))


def handle_embed(ctx):
    model = ctx.match.group(1)
    method = ctx.match.group(2)
    body = ctx.body if isinstance(ctx.body, dict) else {}
    step = ctx.step
    if embedvec.is_error(step):
        status = int(step.get("status") or 400)
        return ctx.send_json(status, _error_body(status, step))
    if method == "embedContent":
        texts = [_content_text(body.get("content"))]
    else:
        reqs = body.get("requests")
        if not isinstance(reqs, list) or not reqs:
            return ctx.send_json(400, _error_body(400, {"message": "* BatchEmbedContentsRequest.requests: at least one request is required"}))
        for r in reqs:
            if not isinstance(r, dict) or r.get("model") != "models/" + model:
                return ctx.send_json(400, _error_body(400, {"message": "Model names in the batch must match the model in the URL"}))
        texts = [_content_text(r.get("content")) for r in reqs]
    if not all(texts):
        return ctx.send_json(400, _error_body(400, {"message": "* EmbedContentRequest.content: contents.parts must not be empty."}))
    vecs, _ = embedvec.answer(texts, step)
    if method == "embedContent":
        return ctx.send_json(200, {"embedding": {"values": vecs[0] if vecs else []}})
    ctx.send_json(200, {"embeddings": [{"values": v} for v in vecs]})


ROUTES = [
    ("POST", r"/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)", handle),
    ("POST", r"/v1beta/models/([^/:]+):(embedContent|batchEmbedContents)", handle_embed),
]
