"""Keeps credentials that clients put in URLs out of the server's log lines.

uvicorn logs each WebSocket handshake with its path and query string, and the Live API's
JavaScript SDK sends its key as ``?key=`` (ephemeral tokens as ``?access_token=``): the
values of those parameters are replaced before the line is written.
"""

from __future__ import annotations

import logging
import re

_SECRET_PARAM = re.compile(r"([?&](?:key|access_token)=)[^&\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    return _SECRET_PARAM.sub(r"\1[redacted]", text)


class SecretQueryFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """On the server's loggers (call once uvicorn has configured logging)."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretQueryFilter) for f in logger.filters):
            logger.addFilter(SecretQueryFilter())
