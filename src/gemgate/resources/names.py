"""Resource ids, upload credentials, and the time formats of Google's JSON.

Ids are 96 random bits as 24 lowercase hex digits: unguessable, and inside the
``[a-z0-9]+`` the SDKs accept when they cut a file's id out of its URI. An upload id is
the credential for the chunks of one upload (the Python SDK sends no API key with
them): 256 random bits, stored only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from gemgate.errors import InvalidArgument

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
GATEWAY_ID = re.compile(r"[0-9a-f]{24}")  # what new_id makes
_DURATION = re.compile(r"^\s*(\d+(?:\.\d{1,9})?)s\s*$")


def new_id() -> str:
    return secrets.token_hex(12)


def new_upload_id() -> str:
    return secrets.token_urlsafe(32)


def upload_hash(upload_id: str) -> str:
    return hashlib.sha256(upload_id.encode()).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """A datetime read back from the database (SQLite drops the zone) in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as Google writes its timestamps."""
    return aware(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidArgument.field(field, "must be an RFC 3339 timestamp string")
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python before 3.11 takes at most 6 fractional digits; Google writes up to 9.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument.field(field, f"{value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidArgument.field(field, "must carry a time zone (e.g. Z)")
    return parsed.astimezone(UTC)


def parse_duration(value: object, field: str) -> timedelta:
    """A protobuf Duration in JSON: ``"600s"``, ``"1.5s"``."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            try:
                return timedelta(seconds=float(Decimal(match.group(1))))
            except (InvalidOperation, OverflowError):
                pass
    raise InvalidArgument.field(field, f"must be a duration in seconds such as \"600s\", got {value!r}")


def resource_id(name: str, collection: str) -> str | None:
    """The id in ``{collection}/{id}`` (or a bare id); None when it is not one of ours."""
    prefix = collection + "/"
    ident = name[len(prefix):] if name.startswith(prefix) else name
    return ident if ID_PATTERN.fullmatch(ident) else None
