"""Capability checks: refuse a request the routed model cannot honour, naming the field,
rather than let an upstream fail obscurely or silently ignore it."""

from __future__ import annotations

from typing import Any

from gemgate.catalog import CatalogModel
from gemgate.errors import InvalidArgument

MEDIA_MODALITY = {"image": "IMAGE", "audio": "AUDIO", "video": "VIDEO", "application/pdf": "DOCUMENT"}


def _modality(mime: str) -> str:
    if mime in MEDIA_MODALITY:
        return MEDIA_MODALITY[mime]
    return MEDIA_MODALITY.get(mime.split("/", 1)[0], "TEXT" if mime.startswith("text/") else "DOCUMENT")


def check_capabilities(info: CatalogModel, request: dict[str, Any]) -> None:
    cfg = request.get("generationConfig") or {}
    for modality in cfg.get("responseModalities") or ():
        if modality not in ("TEXT", "MODALITY_UNSPECIFIED") and modality not in info.output_modalities:
            raise InvalidArgument.field(
                "generationConfig.responseModalities",
                f"model {info.id} cannot produce {modality} output",
            )
    image_cfg = cfg.get("imageConfig") or {}
    limits = info.image
    if image_cfg and limits is None and "IMAGE" not in info.output_modalities:
        raise InvalidArgument.field("generationConfig.imageConfig", f"model {info.id} does not generate images")
    if limits is not None:
        ratio = image_cfg.get("aspectRatio")
        if ratio is not None and ratio not in limits.aspect_ratios:
            raise InvalidArgument.field(
                "generationConfig.imageConfig.aspectRatio",
                f"{ratio} is not supported by {info.id}; supported: {', '.join(limits.aspect_ratios)}",
            )
        size = image_cfg.get("imageSize")
        if size is not None and size not in limits.image_sizes:
            raise InvalidArgument.field(
                "generationConfig.imageConfig.imageSize",
                f"{size} is not supported by {info.id}; supported: {', '.join(limits.image_sizes)}",
            )
        images = sum(
            1
            for content in request.get("contents") or ()
            for part in content.get("parts") or ()
            if str((part.get("inlineData") or {}).get("mimeType", "")).startswith("image/")
        )
        if images > limits.max_input_images:
            raise InvalidArgument.field(
                "contents", f"{info.id} accepts at most {limits.max_input_images} input images, got {images}"
            )
    for i, content in enumerate(request.get("contents") or ()):
        for j, part in enumerate(content.get("parts") or ()):
            inline = part.get("inlineData")
            if inline:
                modality = _modality(str(inline.get("mimeType", "")))
                if modality != "TEXT" and modality not in info.input_modalities:
                    raise InvalidArgument.field(
                        f"contents[{i}].parts[{j}].inlineData",
                        f"model {info.id} does not accept {modality.lower()} input",
                    )
