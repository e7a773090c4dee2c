"""Files endpoints, as the SDKs drive them.

``POST {prefix}/upload/{v}/files`` starts an upload (resumable: ``X-Goog-Upload-Protocol:
resumable`` + ``X-Goog-Upload-Command: start``; or whole, with ``uploadType=multipart`` /
``media``). A resumable start answers ``X-Goog-Upload-URL``: this same path with the
upload id in the query, an absolute URL of the gateway; each chunk then POSTs there with
``X-Goog-Upload-Command`` (``upload``, ``upload, finalize``, ``finalize``, ``query``,
``cancel``) and ``X-Goog-Upload-Offset``, and every answer says
``x-goog-upload-status`` (``active``, ``final`` with ``{"file": ...}``, ``cancelled``).
The body of a chunk streams straight into the content store.

``GET {v}/files`` (pageSize up to 100), ``GET|DELETE {v}/files/{id}``,
``GET {v}/files/{id}:download?alt=media`` (also under ``/download/``).
"""

from __future__ import annotations

import base64
import mimetypes
from typing import Any

from gemgate.asgi import send_chunk, start_stream
from gemgate.doors.gemini_resources import (
    Call,
    ResourceDoor,
    field,
    page_size,
    page_token,
    read_page_token,
    send_error,
)
from gemgate.errors import InvalidArgument
from gemgate.resources import names
from gemgate.resources.files import FileService, Upload
from gemgate.resources.multipart import MultipartUpload, boundary_of
from gemgate.store.files_sql import FileRow
from gemgate.types.validate import parse_json

STATUS = b"x-goog-upload-status"
DEFAULT_PAGE, MAX_PAGE = 10, 100
GRANULARITY = 256 * 1024


def file_resource(row: FileRow, base: str, version: str) -> dict[str, Any]:
    uri = f"{base}/{version}/files/{row.id}"
    data: dict[str, Any] = {"name": f"files/{row.id}"}
    if row.display_name:
        data["displayName"] = row.display_name
    data |= {
        "mimeType": row.mime_type,
        "sizeBytes": str(row.size_bytes),
        "createTime": names.timestamp(row.created_at),
        "updateTime": names.timestamp(row.updated_at),
        "expirationTime": names.timestamp(row.expires_at),
    }
    if row.sha256:
        # Google's form: the base64 of the hex digest.
        data["sha256Hash"] = base64.b64encode(row.sha256.encode()).decode()
    data |= {
        "uri": uri,
        "downloadUri": f"{uri}:download?alt=media",
        "state": row.state if row.state != "UPLOADING" else "PROCESSING",
        "source": row.source,
    }
    return data


def _int_header(call: Call, name: str) -> int | None:
    raw = call.req.headers.get(name.lower())
    if raw is None or raw.strip() == "":
        return None
    if not raw.strip().isdigit():
        raise InvalidArgument.field(name, f"must be a whole number of bytes, got {raw!r}")
    return int(raw.strip())


class FilesEndpoints:
    def __init__(self, files: FileService, door: ResourceDoor) -> None:
        self.files = files
        self.door = door
        self.register(door)

    def register(self, door: ResourceDoor) -> None:
        door.add("files.upload", self.upload, "/upload/{version}/", key_required=False)
        door.add("files.list", self.list, "/{version}/files")
        door.add("files.get", self.get, "/{version}/files")
        door.add("files.delete", self.delete, "/{version}/files")
        door.add("files.download", self.download, "/{version}/files")
        door.add("files.download_root", self.download, "/download/{version}/")

    # --- uploads -------------------------------------------------------------------------

    async def upload(self, call: Call) -> None:
        if "upload_id" in call.req.query:
            await self._chunk(call)
            return
        if call.key is None:
            call.key = await self.door.authenticate(call.req, required=True)
        headers = call.req.headers
        protocol = (headers.get("x-goog-upload-protocol") or call.req.query.get("uploadType") or "").lower()
        if protocol == "resumable":
            await self._start(call)
        elif protocol == "multipart":
            await self._multipart(call)
        elif protocol in ("raw", "media"):
            await self._media(call)
        else:
            raise InvalidArgument.field(
                "uploadType", "give X-Goog-Upload-Protocol: resumable, or uploadType=multipart or media"
            )

    def _metadata(self, meta: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        file = field(meta, "file")
        file = file if isinstance(file, dict) else {}
        if field(file, "name"):
            raise InvalidArgument.field("file.name", "the gateway names files itself; leave it unset")
        name = field(file, "displayName")
        if name is not None and not isinstance(name, str):
            raise InvalidArgument.field("file.displayName", "must be a string")
        return file, name

    def _mime(self, call: Call, file: dict[str, Any], fallback: str | None = None) -> str:
        mime = (
            call.req.headers.get("x-goog-upload-header-content-type")
            or field(file, "mimeType")
            or fallback
        )
        if not mime:
            filename = call.req.headers.get("x-goog-upload-file-name") or ""
            mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if not isinstance(mime, str) or "/" not in mime or len(mime) > 255:
            raise InvalidArgument.field("file.mimeType", f"{mime!r} is not a MIME type")
        return mime

    async def _start(self, call: Call) -> None:
        assert call.key is not None
        command = (call.req.headers.get("x-goog-upload-command") or "").lower()
        if command != "start":
            raise InvalidArgument.field("X-Goog-Upload-Command", "a resumable upload begins with start")
        file, display = self._metadata(await call.body())
        size = _int_header(call, "X-Goog-Upload-Header-Content-Length")
        if size is None:
            declared = field(file, "sizeBytes")
            if declared is None or not str(declared).isdigit():
                raise InvalidArgument.field(
                    "X-Goog-Upload-Header-Content-Length", "the upload's size in bytes is required"
                )
            size = int(declared)
        _row, upload_id = await self.files.start(
            call.key, display_name=display, mime_type=self._mime(call, file), size=size
        )
        url = f"{call.base}/upload/{call.version}/files?upload_id={upload_id}&upload_protocol=resumable"
        extra = [
            (b"x-goog-upload-url", url.encode()),
            (b"x-goog-upload-control-url", url.encode()),
            (STATUS, b"active"),
            (b"x-goog-upload-chunk-granularity", str(GRANULARITY).encode()),
        ]
        await call.json(200, {}, extra)

    async def _chunk(self, call: Call) -> None:
        upload_id = call.req.query["upload_id"]
        commands = {
            c.strip() for c in (call.req.headers.get("x-goog-upload-command") or "").lower().split(",")
        }
        try:
            if "cancel" in commands:
                await self.files.cancel(upload_id, call.key)
                await call.json(200, {}, [(STATUS, b"cancelled")])
                return
            if "query" in commands:
                state = await self.files.query(upload_id, call.key)
                await self._answer(call, state, query=True)
                return
            if not commands & {"upload", "finalize"}:
                raise InvalidArgument.field(
                    "X-Goog-Upload-Command", "expected upload, finalize, query or cancel"
                )
            offset = _int_header(call, "X-Goog-Upload-Offset")
            if offset is None:
                raise InvalidArgument.field("X-Goog-Upload-Offset", "required with upload")
            length = _int_header(call, "Content-Length")
            pieces = call.req.stream() if "upload" in commands else _nothing()
            state = await self.files.receive(
                upload_id,
                call.key,
                offset=offset,
                length=length if "upload" in commands else 0,
                pieces=pieces,
                finalize="finalize" in commands,
            )
        except Exception as exc:
            # Every chunk answer says where the upload stands: the SDKs retry a chunk
            # whose answer says nothing.
            await send_error(call, exc, [(STATUS, b"final")])
            return
        await self._answer(call, state)

    async def _answer(self, call: Call, state: Upload, query: bool = False) -> None:
        extra = [(b"x-goog-upload-size-received", str(state.received).encode())]
        if state.done:
            extra.append((STATUS, b"final"))
            await call.json(200, {"file": file_resource(state.row, call.base, call.version)}, extra)
        else:
            extra.append((STATUS, b"active"))
            await call.json(200, {}, extra)

    async def _multipart(self, call: Call) -> None:
        assert call.key is not None
        parts = MultipartUpload(call.req.stream(), boundary_of(call.req.headers.get("content-type", "")))
        await parts.open()
        meta = parse_json(parts.metadata) if parts.metadata.strip() else {}
        if not isinstance(meta, dict):
            raise InvalidArgument("The metadata part of a multipart upload must be a JSON object.")
        file, display = self._metadata(meta)
        bound = _int_header(call, "Content-Length") or self.files.settings.max_file_mb << 20
        row = await self.files.create(
            call.key,
            display_name=display,
            mime_type=self._mime(call, file, parts.media_type or None),
            size=min(bound, self.files.settings.max_file_mb << 20),
            pieces=parts.media(),
            exact=False,
        )
        await call.json(200, {"file": file_resource(row, call.base, call.version)})

    async def _media(self, call: Call) -> None:
        assert call.key is not None
        size = _int_header(call, "Content-Length")
        if size is None:
            raise InvalidArgument.field("Content-Length", "required for a media upload")
        row = await self.files.create(
            call.key,
            display_name=call.req.headers.get("x-goog-upload-file-name"),
            mime_type=self._mime(call, {}, call.req.headers.get("content-type")),
            size=size,
            pieces=call.req.stream(),
        )
        await call.json(200, {"file": file_resource(row, call.base, call.version)})

    # --- reads ---------------------------------------------------------------------------

    def _id(self, call: Call) -> str:
        ident = names.resource_id(call.params["file"], "files")
        if ident is None:
            raise InvalidArgument.field("name", f"files/{call.params['file']} is not a file name")
        return ident

    async def list(self, call: Call) -> None:
        assert call.key is not None
        size = page_size(call.req.query.get("pageSize"), DEFAULT_PAGE, MAX_PAGE)
        after = read_page_token(call.req.query.get("pageToken"))
        position = (names.parse_timestamp(after[0], "pageToken"), after[1]) if after else None
        rows, more = await self.files.page(call.key, size, position)
        out: dict[str, Any] = {}
        if rows:
            out["files"] = [file_resource(r, call.base, call.version) for r in rows]
        if more:
            last = rows[-1]
            out["nextPageToken"] = page_token((names.timestamp(last.created_at), last.id))
        await call.json(200, out)

    async def get(self, call: Call) -> None:
        assert call.key is not None
        row = await self.files.get(call.key, self._id(call))
        await call.json(200, file_resource(row, call.base, call.version))

    async def delete(self, call: Call) -> None:
        assert call.key is not None
        await self.files.delete(call.key, self._id(call))
        await call.json(200, {})

    async def download(self, call: Call) -> None:
        assert call.key is not None
        if call.req.query.get("alt") != "media":
            raise InvalidArgument.field("alt", "a download needs alt=media")
        row = await self.files.get(call.key, self._id(call))
        content = self.files.content(row.id)
        first = await anext(content, b"")
        headers = call.headers([(b"content-length", str(row.size_bytes).encode())])
        await start_stream(call.send, row.mime_type.encode("latin-1"), headers)
        block = first
        while block:
            await send_chunk(call.send, block)
            block = await anext(content, b"")
        await send_chunk(call.send, b"", more=False)


async def _nothing() -> Any:
    return
    yield  # an empty body

