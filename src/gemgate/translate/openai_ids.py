"""Tool-call ids that carry a Gemini thought signature through any OpenAI client.

Gemini 3 signs the first functionCall of each step with a ``thoughtSignature`` and refuses
the next step when it does not come back. OpenAI's chat protocol has no field for it:
``extra_content.google.thought_signature`` (Google's own extension) is dropped by clients
that keep only the fields they know (the Vercel AI SDK's OpenAI provider among them). What
every client does return unchanged is the tool call's ``id``: it comes back in the
assistant message's ``tool_calls`` and in the ``tool_call_id`` of the answering tool
message. So a signed call's id is::

    gts1_<base64url(2-byte length of the call id, the call id, the signature's bytes)>

Only ``[A-Za-z0-9_-]`` appears in it (Anthropic's tool-id alphabet, so a client that moves a
conversation between protocols keeps it working). Clients put no limit on an id's length;
OpenAI's own API refuses ids over 40 characters, so a request carrying such ids is never
forwarded as the client's bytes: the ids are decoded first and upstreams see the call's own
id. A signature that is not base64 (never from Google) leaves the id as it was.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

PREFIX = "gts1_"
_MAX_ID = 0xFFFF


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _signature_bytes(signature: str) -> bytes | None:
    data = signature.replace("-", "+").replace("_", "/")
    data += "=" * (-len(data) % 4)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def signed_call_id(call_id: str, signature: str | None) -> str:
    """The id an OpenAI client sees for a call with this id and signature."""
    if not signature:
        return call_id
    raw_sig = _signature_bytes(signature)
    base = call_id.encode("utf-8")
    if raw_sig is None or not raw_sig or len(base) > _MAX_ID:
        return call_id
    return PREFIX + _b64url(len(base).to_bytes(2, "big") + base + raw_sig)


def split_call_id(client_id: str) -> tuple[str, str | None]:
    """(the call's own id, its signature as standard base64 or None) of an id a client sent."""
    if not client_id.startswith(PREFIX):
        return client_id, None
    blob = client_id[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    except (binascii.Error, ValueError):
        return client_id, None
    if len(raw) < 3 or _b64url(raw) != blob:
        return client_id, None
    size = int.from_bytes(raw[:2], "big")
    if len(raw) <= 2 + size:
        return client_id, None
    try:
        call_id = raw[2 : 2 + size].decode("utf-8")
    except UnicodeDecodeError:
        return client_id, None
    return call_id, base64.b64encode(raw[2 + size :]).decode("ascii")


def carries_signed_ids(body: dict[str, Any]) -> bool:
    """Whether a chat request names any call by a signed id (see the module docstring)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        ref = msg.get("tool_call_id")
        if isinstance(ref, str) and ref.startswith(PREFIX):
            return True
        calls = msg.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict) and str(call.get("id") or "").startswith(PREFIX):
                return True
    return False
