"""The OpenAI door's embeddings and images endpoints, as canonical requests and answers.

``/v1/embeddings`` becomes ``batchEmbedContents``; ``/v1/images/generations`` and
``/v1/images/edits`` (multipart) become ``generateContent`` on an image model with
``responseModalities: ["IMAGE"]`` and ``imageConfig`` derived from ``size``.
"""

from __future__ import annotations

import base64
import math
import struct
import time
from collections.abc import Sequence
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from gemgate.asgi import Request
from gemgate.catalog import CatalogModel
from gemgate.errors import InvalidArgument
from gemgate.pipeline.door import Answer, ModelLookup
from gemgate.types import parse_json
from gemgate.types.canonical import CanonicalRequest

EMBED_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
IMAGE_FIELDS = frozenset(
    {"model", "prompt", "n", "size", "response_format", "quality", "style", "user", "output_format", "background", "moderation"}
)
DEFAULT_VALUES = {"quality": ("auto", "standard"), "style": ("vivid", "natural"), "output_format": ("png",), "background": ("auto",), "moderation": ("auto",)}
MAX_IMAGES = 4
NAMED_SIZES = {"256x256": None, "512x512": ("1:1", "512"), "1024x1024": ("1:1", "1K"), "1536x1024": ("3:2", "1K"),
               "1024x1536": ("2:3", "1K"), "1792x1024": ("16:9", "1K"), "1024x1792": ("9:16", "1K")}


def _float32_b64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def parse_embeddings(body: dict[str, Any]) -> CanonicalRequest:
    """``/v1/embeddings`` -> ``batchEmbedContents``, one request per input string."""
    for name in body:
        if name not in EMBED_FIELDS:
            raise InvalidArgument.field(name, f"unrecognized request argument supplied: {name}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidArgument.field("model", "you must provide a model parameter")
    inputs = body.get("input")
    if isinstance(inputs, str):
        texts = [inputs]
    elif isinstance(inputs, list) and inputs and all(isinstance(t, str) for t in inputs):
        texts = list(inputs)
    elif isinstance(inputs, list) and inputs and all(isinstance(t, int | list) for t in inputs):
        raise InvalidArgument.field("input", "token arrays are not supported; send strings")
    else:
        raise InvalidArgument.field("input", "must be a non-empty string or a list of strings")
    if any(not t for t in texts):
        raise InvalidArgument.field("input", "input strings must not be empty")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise InvalidArgument.field("encoding_format", "must be 'float' or 'base64'")
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise InvalidArgument.field("dimensions", "must be a positive integer")
    public = model.removeprefix("models/")
    extra = {"outputDimensionality": dims} if dims else {}
    request = {
        "requests": [
            {"model": f"models/{public}", "content": {"parts": [{"text": t}]}, **extra} for t in texts
        ]
    }
    return CanonicalRequest(
        model=public,
        method="batchEmbedContents",
        body=request,
        protocol="openai.embeddings",
        options={"kind": "embeddings", "format": fmt},
    )


def render_embeddings(creq: CanonicalRequest, answer: Answer) -> dict[str, Any]:
    vectors = answer.reply.json().get("embeddings") or []
    base64_out = creq.options["format"] == "base64"
    data = []
    for i, item in enumerate(vectors):
        values = [float(v) for v in (item or {}).get("values") or []]
        data.append(
            {"object": "embedding", "index": i, "embedding": _float32_b64(values) if base64_out else values}
        )
    tokens = answer.usage.prompt_total
    return {
        "object": "list",
        "data": data,
        "model": creq.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --- images ----------------------------------------------------------------------------------


def image_config(size: Any, info: CatalogModel) -> dict[str, str]:
    """OpenAI's ``size`` (``WxH`` or ``auto``) -> Gemini's imageConfig, within the model's limits."""
    if size is None or size == "auto":
        return {}
    if not isinstance(size, str):
        raise InvalidArgument.field("size", "must be a string like '1024x1024'")
    if size in NAMED_SIZES and NAMED_SIZES[size] is not None:
        ratio, image_size = NAMED_SIZES[size]  # type: ignore[misc]
    else:
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise InvalidArgument.field("size", f"invalid size {size!r}; expected WIDTHxHEIGHT") from None
        if w < 1 or h < 1:
            raise InvalidArgument.field("size", f"invalid size {size!r}")
        g = math.gcd(w, h)
        ratio = f"{w // g}:{h // g}"
        longest = max(w, h)
        image_size = "512" if longest <= 512 else "1K" if longest <= 1024 else "2K" if longest <= 2048 else "4K"
    limits = info.image
    if limits is not None:
        if ratio not in limits.aspect_ratios:
            raise InvalidArgument.field("size", f"aspect ratio {ratio} is not supported by {info.id}; supported: {', '.join(limits.aspect_ratios)}")
        if image_size not in limits.image_sizes:
            raise InvalidArgument.field("size", f"image size {image_size} is not supported by {info.id}; supported: {', '.join(limits.image_sizes)}")
    config = {"aspectRatio": ratio}
    if image_size != "1K":
        config["imageSize"] = image_size
    return config


def _sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _multipart(req: Request, raw: bytes) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """Fields and image files from a multipart/form-data body."""
    ctype = req.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise InvalidArgument("images/edits expects a multipart/form-data body")
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw)
    if not isinstance(msg, EmailMessage) or not msg.is_multipart():
        raise InvalidArgument("the multipart body could not be parsed")
    fields: dict[str, Any] = {}
    images: list[tuple[str, bytes]] = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name in ("image", "image[]"):
            mime = _sniff_image(data)
            if mime is None:
                raise InvalidArgument.field("image", "each image must be a PNG, JPEG or WebP file")
            images.append((mime, data))
        elif name == "mask":
            raise InvalidArgument.field("mask", "masks are not supported; describe the region to change in the prompt")
        else:
            fields[name] = data.decode("utf-8", "replace")
    if "n" in fields:
        try:
            fields["n"] = int(fields["n"])
        except ValueError:
            raise InvalidArgument.field("n", "must be an integer") from None
    return fields, images


def parse_images(
    req: Request, raw: bytes, lookup: ModelLookup, *, edit: bool
) -> CanonicalRequest:
    """``/v1/images/generations`` and ``/v1/images/edits`` -> ``generateContent`` with
    image output, ``n`` separate calls."""
    if edit:
        fields, images = _multipart(req, raw)
        if not images:
            raise InvalidArgument.field("image", "at least one image is required")
    else:
        data = parse_json(raw)
        if not isinstance(data, dict):
            raise InvalidArgument("The request body must be a JSON object.")
        fields, images = data, []
    for name, value in fields.items():
        if name not in IMAGE_FIELDS:
            raise InvalidArgument.field(name, f"unrecognized request argument supplied: {name}")
        if name in DEFAULT_VALUES and value not in DEFAULT_VALUES[name]:
            raise InvalidArgument.field(name, f"{name}={value!r} is not supported by this gateway")
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidArgument.field("prompt", "a non-empty prompt is required")
    if fields.get("response_format", "b64_json") != "b64_json":
        raise InvalidArgument.field("response_format", "only b64_json is supported")
    n = fields.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_IMAGES:
        raise InvalidArgument.field("n", f"must be between 1 and {MAX_IMAGES}")
    model = fields.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidArgument.field("model", "you must provide a model parameter")
    public = model.removeprefix("models/")
    parts: list[dict[str, Any]] = [{"text": prompt}]
    parts += [
        {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}
        for mime, data in images
    ]
    config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
    info = lookup(public)
    if info is not None:  # (an unknown model is refused when it is routed)
        if "IMAGE" not in info.output_modalities:
            raise InvalidArgument.field("model", f"model {info.id} does not generate images")
        image_cfg = image_config(fields.get("size"), info)
        if image_cfg:
            config["imageConfig"] = image_cfg
    request = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
    return CanonicalRequest(
        model=public,
        method="generateContent",
        body=request,
        protocol="openai.images",
        client_bytes=len(raw),
        repeat=n,
        options={"kind": "images"},
    )


def render_images(answers: Sequence[Answer]) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    totals = {"input_tokens": 0, "output_tokens": 0, "image_tokens": 0, "text_tokens": 0}
    for answer in answers:
        u = answer.usage
        totals["input_tokens"] += u.prompt_total
        totals["output_tokens"] += u.candidates_total + u.thoughts
        totals["image_tokens"] += u.prompt_image
        totals["text_tokens"] += u.prompt_text
        out.extend(_images_of(answer.reply.json()))
    return {
        "created": int(time.time()),
        "data": out,
        "usage": {
            "input_tokens": totals["input_tokens"],
            "output_tokens": totals["output_tokens"],
            "total_tokens": totals["input_tokens"] + totals["output_tokens"],
            "input_tokens_details": {
                "text_tokens": totals["text_tokens"],
                "image_tokens": totals["image_tokens"],
            },
        },
    }


def _images_of(resp: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    reasons = []
    for cand in resp.get("candidates") or ():
        reasons.append(str((cand or {}).get("finishReason") or ""))
        texts = []
        for part in ((cand or {}).get("content") or {}).get("parts") or ():
            inline = part.get("inlineData") if isinstance(part, dict) else None
            if isinstance(inline, dict) and str(inline.get("mimeType", "")).startswith("image/") and not part.get("thought"):
                found.append({"b64_json": inline.get("data", "")})
            elif isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"])
        if found and texts:
            found[-1]["revised_prompt"] = "".join(texts)
    if not found:
        why = ", ".join(r for r in reasons if r) or (resp.get("promptFeedback") or {}).get("blockReason") or "no image"
        raise InvalidArgument(f"The model returned no image ({why}).", reason="IMAGE_NOT_GENERATED")
    return found
