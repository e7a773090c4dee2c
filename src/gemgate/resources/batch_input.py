"""A batch's requests, as ``:batchGenerateContent`` / ``:asyncBatchEmbedContent`` give
them: inline (``inputConfig.requests.requests[]``, each ``{request, metadata}``) or as a
JSONL file the key uploaded (each line ``{"key": ..., "request": ...}``), read line by line.

Each request is validated as the model call it will be, its gateway files checked against
the key, and bounded for the budget: its worst case at the batch price, as admission
would reserve for it alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from gemgate.billing import worst_case_nanos
from gemgate.errors import GatewayError, InvalidArgument
from gemgate.pipeline.admit import Admission, embed_prompt, with_references
from gemgate.pipeline.capabilities import check_capabilities
from gemgate.resources.binding import Binder
from gemgate.resources.files import FileService
from gemgate.store.keys import KeyRecord
from gemgate.tokens import reference_bound
from gemgate.types.schema import REQUEST_MESSAGE
from gemgate.types.validate import check_generate, normalise, parse_json

LINE_LIMIT = 20 << 20  # the longest JSONL line taken


@dataclass(slots=True)
class Item:
    idx: int
    key: str | None  # the JSONL line's key
    request: dict[str, Any]
    metadata: Any = None
    worst_nanos: int = 0

    def row(self, batch_id: str) -> dict[str, Any]:
        stored: dict[str, Any] = {"request": self.request}
        if self.metadata is not None:
            stored["metadata"] = self.metadata
        return {"batch_id": batch_id, "idx": self.idx, "item_key": self.key,
                "request": orjson.dumps(stored).decode(), "tries": 0}


def field(obj: Any, camel: str) -> Any:
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get("".join("_" + c.lower() if c.isupper() else c for c in camel))


class BatchInput:
    def __init__(self, files: FileService, binder: Binder, admission: Admission) -> None:
        self.files = files
        self.binder = binder
        self.admission = admission

    def source(self, data: dict[str, Any]) -> tuple[str | None, list[Any] | None, str | None]:
        """(displayName, inline requests, input file id) of a create body."""
        batch = field(data, "batch")
        if not isinstance(batch, dict):
            raise InvalidArgument.field("batch", "required: the batch to create")
        name = field(batch, "displayName")
        config = field(batch, "inputConfig")
        if not isinstance(config, dict):
            raise InvalidArgument.field("batch.inputConfig", "required: requests or a fileName")
        inline = field(field(config, "requests"), "requests")
        file_name = field(config, "fileName")
        if (inline is None) == (file_name is None):
            raise InvalidArgument.field("batch.inputConfig", "give exactly one of requests and fileName")
        if inline is not None and (not isinstance(inline, list) or not inline):
            raise InvalidArgument.field("batch.inputConfig.requests.requests", "must be a non-empty list")
        file_id = None
        if file_name is not None:
            file_id = str(file_name).removeprefix("files/")
        return (str(name) if name is not None else None), inline, file_id

    async def lines(self, key: KeyRecord, file_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(key, request) of each line of the key's JSONL file."""
        row = await self.files.get(key, file_id)
        pending = bytearray()
        number = 0
        async for block in self.files.content(row.id):
            pending += block
            while True:
                cut = pending.find(b"\n")
                if cut < 0:
                    if len(pending) > LINE_LIMIT:
                        raise InvalidArgument(f"files/{file_id}: line {number + 1} is longer than {LINE_LIMIT} bytes")
                    break
                line, pending = bytes(pending[:cut]), pending[cut + 1 :]
                number += 1
                if line.strip():
                    yield self._line(file_id, number, line)
        if pending.strip():
            yield self._line(file_id, number + 1, bytes(pending))

    @staticmethod
    def _line(file_id: str, number: int, line: bytes) -> tuple[str, dict[str, Any]]:
        try:
            data = parse_json(line)
        except GatewayError as exc:
            raise InvalidArgument(f"files/{file_id}, line {number}: {exc.message}") from None
        request = field(data, "request")
        if not isinstance(request, dict):
            raise InvalidArgument(f"files/{file_id}, line {number}: each line needs a request object")
        return str(field(data, "key") or number), request

    async def item(
        self, key: KeyRecord, route: Any, kind: str, idx: int, request: Any, where: str, price: Any
    ) -> Item:
        """One validated request with its worst case at ``price``."""
        if not isinstance(request, dict):
            raise InvalidArgument.field(where, "must be a request object")
        method = "embedContent" if kind == "embed" else "generateContent"
        try:
            req = normalise(REQUEST_MESSAGE[method], request)
            named = req.pop("model", None)
            if named is not None and str(named).removeprefix("models/") not in (route.model_id, ""):
                raise InvalidArgument.field("model", f"must be models/{route.model_id} like the batch")
            if kind == "embed":
                if not req.get("content"):
                    raise InvalidArgument.field("content", "content is not specified")
            else:
                check_generate(req)
                check_capabilities(route.info, req)
            plan = await self.binder.plan(key, route, req)
        except GatewayError as exc:
            raise InvalidArgument(f"{where}: {exc.message}", details=exc.details) from None
        refs = self.binder.references(plan, req) if plan is not None else {}
        limit = route.info.input_token_limit
        prompt = embed_prompt(req) if kind == "embed" else req
        bound = with_references(self.admission.prompt_bound(prompt, 0), reference_bound(req, limit, refs), limit)
        cfg = req.get("generationConfig") or {}
        output = 0 if kind == "embed" else (cfg.get("maxOutputTokens") or route.info.output_token_limit) * (
            cfg.get("candidateCount") or 1
        )
        return Item(idx, None, req, None, worst_case_nanos(bound, output, price))
