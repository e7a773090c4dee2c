"""The canonical (Gemini API) request as Vertex AI takes it, and Vertex's embeddings back.

Vertex's ``generateContent`` takes the Gemini JSON body with a few differences, so the
Vertex provider translates instead of forwarding the client's bytes:

- ``contents[].role`` is required on Vertex (the Gemini API reads a missing role as
  ``user``): a missing or empty role becomes ``"user"``.
- ``serviceTier`` is not a body field on Vertex: Flex and Priority PayGo are asked for with
  the ``X-Vertex-AI-LLM-Shared-Request-Type`` header.
- ``store`` exists only on the Gemini API; ``cachedContent`` must name a Vertex cache
  (``projects/.../cachedContents/...``), not an AI Studio one.

Text embeddings are ``:predict`` calls with ``instances`` (one per text) and come back as
``predictions[].embeddings.values``; they are answered in Gemini's ``embedContent`` /
``batchEmbedContents`` shape. Everything else passes untouched, unknown fields included.
"""

from __future__ import annotations

from typing import Any

from gemgate.errors import BadGateway, InvalidArgument

SHARED_REQUEST_TYPE = "X-Vertex-AI-LLM-Shared-Request-Type"
_TIER_HEADERS = {"flex": "flex", "priority": "priority"}
# Vertex takes one instance per :predict call for the Gemini embedding models.
_ONE_INSTANCE_PREFIX = "gemini-embedding"
MAX_INSTANCES = 250


def _tier(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    name = value.strip().lower().removeprefix("service_tier_")
    return name


def _contents(contents: object) -> object:
    if not isinstance(contents, list):
        return contents
    out = []
    for content in contents:
        if isinstance(content, dict) and not content.get("role"):
            content = {**content, "role": "user"}
        out.append(content)
    return out


def generate_body(request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A ``generateContent`` / ``streamGenerateContent`` body for Vertex, and the headers
    that carry what Vertex takes as headers."""
    body = dict(request)
    headers: dict[str, str] = {}
    body.pop("model", None)  # the URL names the model
    if "contents" in body:
        body["contents"] = _contents(body["contents"])
    tier = body.pop("serviceTier", None)
    if tier is not None:
        name = _tier(tier)
        if name in _TIER_HEADERS:
            headers[SHARED_REQUEST_TYPE] = _TIER_HEADERS[name]
        elif name not in ("standard", "default", "auto", "unspecified"):
            raise InvalidArgument.field(
                "serviceTier", f"must be standard, flex or priority, got {tier!r}"
            )
    store = body.pop("store", None)
    if store:
        raise InvalidArgument.field(
            "store", "stored interactions exist only on the Gemini API, not on Vertex AI"
        )
    cached = body.get("cachedContent")
    if isinstance(cached, str) and not cached.startswith("projects/"):
        raise InvalidArgument.field(
            "cachedContent",
            f"{cached} is not a Vertex AI cache (projects/.../cachedContents/...): "
            "a Google AI Studio cache cannot be read from Vertex AI",
        )
    return body, headers


def count_body(request: dict[str, Any]) -> dict[str, Any]:
    """A ``countTokens`` body: Vertex takes the generate fields at the top level."""
    inner = request.get("generateContentRequest")
    source = inner if isinstance(inner, dict) else request
    body = {k: v for k, v in source.items() if k in ("contents", "systemInstruction", "tools", "generationConfig")}
    if "contents" in body:
        body["contents"] = _contents(body["contents"])
    return body


def _text(content: object) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "\n".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def _instance(request: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    instance: dict[str, Any] = {"content": _text(request.get("content"))}
    if request.get("taskType"):
        instance["task_type"] = request["taskType"]
    if request.get("title"):
        instance["title"] = request["title"]
    dims = request.get("outputDimensionality")
    return instance, dims if isinstance(dims, int) else None


def predict_bodies(method: str, request: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """The ``:predict`` bodies for an ``embedContent`` or ``batchEmbedContents`` request, in
    order: texts that share their parameters go in one call (one each for the Gemini
    embedding models, which take a single instance)."""
    if method == "batchEmbedContents":
        subs = request.get("requests")
        if not isinstance(subs, list) or not subs:
            raise InvalidArgument.field("requests", "must list at least one request")
        items = [_instance(r if isinstance(r, dict) else {}) for r in subs]
    else:
        items = [_instance(request)]
    per_call = 1 if model.startswith(_ONE_INSTANCE_PREFIX) else MAX_INSTANCES
    bodies: list[dict[str, Any]] = []
    group: list[dict[str, Any]] = []
    group_dims: int | None = None
    for instance, dims in items:
        if group and (dims != group_dims or len(group) >= per_call):
            bodies.append(_predict(group, group_dims))
            group = []
        group.append(instance)
        group_dims = dims
    bodies.append(_predict(group, group_dims))
    return bodies


def _predict(instances: list[dict[str, Any]], dims: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"instances": instances}
    if dims is not None:
        body["parameters"] = {"outputDimensionality": dims}
    return body


def embeddings(answers: list[dict[str, Any]], provider: str) -> tuple[list[list[float]], int]:
    """The vectors of ``:predict`` answers, in order, and the tokens Vertex counted."""
    vectors: list[list[float]] = []
    tokens = 0
    for answer in answers:
        predictions = answer.get("predictions")
        if not isinstance(predictions, list):
            raise BadGateway(f"Upstream '{provider}' sent embeddings without predictions.")
        for prediction in predictions:
            emb = prediction.get("embeddings") if isinstance(prediction, dict) else None
            values = emb.get("values") if isinstance(emb, dict) else None
            if not isinstance(values, list):
                raise BadGateway(f"Upstream '{provider}' sent a prediction without values.")
            vectors.append(values)
            stats = emb.get("statistics") if isinstance(emb, dict) else None
            count = stats.get("token_count") if isinstance(stats, dict) else None
            if isinstance(count, int | float):
                tokens += int(count)
    return vectors, tokens


def embed_answer(method: str, vectors: list[list[float]]) -> dict[str, Any]:
    if method == "batchEmbedContents":
        return {"embeddings": [{"values": v} for v in vectors]}
    return {"embedding": {"values": vectors[0] if vectors else []}}
