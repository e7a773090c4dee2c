"""The OpenAI door's embeddings and images endpoints, served by the canonical pipeline.

``/v1/embeddings`` becomes ``batchEmbedContents``; ``/v1/images/generations`` and
``/v1/images/edits`` (multipart) become ``generateContent`` on an image model with
``responseModalities: ["IMAGE"]`` and ``imageConfig`` derived from ``size``.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import struct
import time
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any

from gemgate.asgi import Request, Send, send_json
from gemgate.billing import format_usd
from gemgate.catalog import CatalogModel
from gemgate.errors import InvalidArgument
from gemgate.pipeline.capabilities import check_capabilities
from gemgate.pipeline.context import RequestContext, new_request_id
from gemgate.providers.base import UpstreamCall

if TYPE_CHECKING:
    from gemgate.doors.openai import OpenAIDoor

EMBED_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
IMAGE_FIELDS = frozenset(
    {"model", "prompt", "n", "size", "response_format", "quality", "style", "user", "output_format", "background", "moderation"}
)
DEFAULT_VALUES = {"quality": ("auto", "standard"), "style": ("vivid", "natural"), "output_format": ("png",), "background": ("auto",), "moderation": ("auto",)}
MAX_IMAGES = 4
NAMED_SIZES = {"256x256": None, "512x512": ("1:1", "512"), "1024x1024": ("1:1", "1K"), "1536x1024": ("3:2", "1K"),
               "1024x1536": ("2:3", "1K"), "1792x1024": ("16:9", "1K"), "1024x1792": ("9:16", "1K")}


async def handle_media(door: OpenAIDoor, method: str, req: Request, send: Send, ctx: RequestContext) -> None:
    if method == "embeddings":
        ctx.method = "embeddings"
        await _embeddings(door, req, send, ctx)
    elif method in ("images_generate", "images_edit"):
        ctx.method = "images.generations" if method == "images_generate" else "images.edits"
        await _images(door, req, send, ctx, edit=method == "images_edit")
    else:
        raise InvalidArgument(f"unknown endpoint {method}")


# --- embeddings --------------------------------------------------------------------------------


def _float32_b64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


async def _embeddings(door: OpenAIDoor, req: Request, send: Send, ctx: RequestContext) -> None:
    body = await door.body(req)
    for name in body:
        if name not in EMBED_FIELDS:
            raise InvalidArgument.field(name, f"unrecognized request argument supplied: {name}")
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
    route = door.route(ctx, body.get("model"), "embedContent")
    extra = {"outputDimensionality": dims} if dims else {}
    request = {"requests": [
        {"model": f"models/{route.upstream_model}", "content": {"parts": [{"text": t}]}, **extra} for t in texts
    ]}
    call = UpstreamCall(model=route.upstream_model, method="batchEmbedContents", request=request, request_id=ctx.request_id)
    reply, metered = await door.pipeline.embed(ctx, route, call)
    vectors = reply.json().get("embeddings") or []
    data = []
    for i, item in enumerate(vectors):
        values = [float(v) for v in (item or {}).get("values") or []]
        data.append({"object": "embedding", "index": i, "embedding": _float32_b64(values) if fmt == "base64" else values})
    tokens = metered.usage.prompt_total
    answer = {"object": "list", "data": data, "model": route.model_id, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    await send_json(send, 200, answer, [
        (b"x-gemgate-request-id", ctx.request_id.encode()),
        (b"x-gemgate-cost-usd", format_usd(metered.cost_nanos).encode()),
    ])


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


async def _images(door: OpenAIDoor, req: Request, send: Send, ctx: RequestContext, *, edit: bool) -> None:
    if edit:
        fields, images = _multipart(req, await req.body(door.max_body))
        if not images:
            raise InvalidArgument.field("image", "at least one image is required")
    else:
        fields, images = await door.body(req), []
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
    route = door.route(ctx, fields.get("model"), "generateContent")
    if "IMAGE" not in route.info.output_modalities:
        raise InvalidArgument.field("model", f"model {route.model_id} does not generate images")
    parts: list[dict[str, Any]] = [{"text": prompt}]
    parts += [{"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}} for mime, data in images]
    config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
    image_cfg = image_config(fields.get("size"), route.info)
    if image_cfg:
        config["imageConfig"] = image_cfg
    request = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
    check_capabilities(route.info, request)
    out: list[dict[str, Any]] = []
    totals = {"input_tokens": 0, "output_tokens": 0, "image_tokens": 0, "text_tokens": 0}
    cost = 0
    for i in range(n):
        sub = ctx if i == 0 else dataclasses.replace(ctx, request_id=new_request_id())
        call = UpstreamCall(model=route.upstream_model, method="generateContent", request=request, request_id=sub.request_id)
        reply, metered = await door.pipeline.generate(sub, route, call)
        cost += metered.cost_nanos
        u = metered.usage
        totals["input_tokens"] += u.prompt_total
        totals["output_tokens"] += u.candidates_total + u.thoughts
        totals["image_tokens"] += u.prompt_image
        totals["text_tokens"] += u.prompt_text
        out.extend(_images_of(reply.json()))
    answer = {
        "created": int(time.time()),
        "data": out,
        "usage": {
            "input_tokens": totals["input_tokens"],
            "output_tokens": totals["output_tokens"],
            "total_tokens": totals["input_tokens"] + totals["output_tokens"],
            "input_tokens_details": {"text_tokens": totals["text_tokens"], "image_tokens": totals["image_tokens"]},
        },
    }
    await send_json(send, 200, answer, [
        (b"x-gemgate-request-id", ctx.request_id.encode()),
        (b"x-gemgate-cost-usd", format_usd(cost).encode()),
    ])


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
