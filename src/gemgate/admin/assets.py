"""The console's files (``admin/static/``), read once at start and served from memory:
gzip-compressed for clients that take it, revalidated by ETag."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from gemgate.admin.web import Answer
from gemgate.asgi import Request

TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".ico": b"image/x-icon",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: bytes
    etag: bytes


def load_assets() -> dict[str, Asset]:
    out: dict[str, Asset] = {}
    folder = resources.files("gemgate.admin") / "static"
    for entry in folder.iterdir():
        name = entry.name
        kind = TYPES.get(name[name.rfind(".") :]) if "." in name else None
        if kind is None or not entry.is_file():
            continue
        body = entry.read_bytes()
        etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'
        out[name] = Asset(body, gzip.compress(body, 9, mtime=0), kind, etag)
    return out


def serve(asset: Asset, req: Request, status: int = 200) -> Answer:
    headers = [(b"etag", asset.etag), (b"cache-control", b"no-cache"), (b"vary", b"accept-encoding")]
    if req.headers.get("if-none-match", "").encode() == asset.etag:
        return Answer(304, b"", asset.content_type, headers)
    if "gzip" in req.headers.get("accept-encoding", ""):
        return Answer(status, asset.gzipped, asset.content_type, [*headers, (b"content-encoding", b"gzip")])
    return Answer(status, asset.body, asset.content_type, headers)
