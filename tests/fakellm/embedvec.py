"""embedvec.py - the deterministic embeddings fakellm answers with.

A text's vector: each lower-cased word (runs of letters and digits) hashed
with SHA-256 into `dim` buckets with a sign, then L2-normalised; so equal
texts get equal vectors and texts sharing words are close, on any machine.
Token count: the number of words (at least 1 per input).

A scripted step may change the answer of an embeddings route:
    {"dim": 8}             vectors of that dimension (default 16)
    {"count": 1}           that many vectors whatever the inputs (a broken reply)
    {"ragged": true}       the last vector one value short (mixed dimensions)
    {"usage": {"input": n}} the token count reported
and errors are scripted as for chat ({"status": 429, "retry_after": "1"}, ...).
"""

import hashlib
import math
import re

DEFAULT_DIM = 16


def vector(text, dim=DEFAULT_DIM):
    v = [0.0] * dim
    for w in re.findall(r"[a-z0-9]+", (text or "").lower()):
        h = hashlib.sha256(w.encode()).digest()
        i = int.from_bytes(h[:4], "little") % dim
        v[i] += -1.0 if h[4] & 1 else 1.0
    n = math.sqrt(sum(x * x for x in v))
    if n == 0:
        v[0] = 1.0
        n = 1.0
    return [round(x / n, 6) for x in v]


def tokens(texts):
    return sum(max(1, len(re.findall(r"[a-z0-9]+", (t or "").lower()))) for t in texts)


def answer(texts, step):
    """(vectors, input_tokens) for texts under step (may be None)."""
    step = step or {}
    dim = int(step.get("dim") or DEFAULT_DIM)
    vecs = [vector(t, dim) for t in texts]
    if step.get("count") is not None:
        n = int(step["count"])
        vecs = (vecs * (n // max(1, len(vecs)) + 1))[:n] if vecs else []
    if step.get("ragged") and vecs:
        vecs[-1] = vecs[-1][:-1]
    usage = step.get("usage") or {}
    return vecs, int(usage.get("input", tokens(texts)))


def is_error(step):
    return bool(step and (step.get("status") or step.get("kind")))
