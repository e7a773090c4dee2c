"""A provider's pool of upstream keys.

Keys are used in turn (round robin), skipping three kinds of key:

- *disabled*: an operator turned it off (from the console); it stays out until turned on.
- *rejected*: the upstream refused it (401, 403, Google's API_KEY_INVALID). It stays out
  until the configuration is loaded again, since no amount of waiting mends a bad key.
- *resting*: the upstream answered 429. It rests for the upstream's ``RetryInfo`` /
  ``Retry-After`` when it gave one, else for a backoff that doubles on each 429 in a row.

A key is known by its label (the environment variable it came from, or ``key{N}``), never
by its value: labels go into usage records, metrics and logs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0


@dataclass(slots=True, eq=False)
class UpstreamKey:
    label: str
    secret: str = field(repr=False)
    rejected: bool = False
    resting_until: float = 0.0
    strikes: int = 0  # 429s in a row, for the backoff
    disabled: bool = False  # turned off by an operator

    def usable(self, now: float) -> bool:
        return not self.rejected and not self.disabled and self.resting_until <= now


class KeyPool:
    def __init__(self, keys: list[UpstreamKey]) -> None:
        self.keys = keys
        self._next = 0

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(k.secret for k in self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def in_turn(self, now: float | None = None) -> list[UpstreamKey]:
        """The usable keys, starting with the next one in turn (and advancing the turn)."""
        now = time.monotonic() if now is None else now
        keys = self.keys
        n = len(keys)
        if n == 1:
            return keys if keys[0].usable(now) else []
        start = self._next
        self._next = (start + 1) % n
        return [k for k in (keys[(start + i) % n] for i in range(n)) if k.usable(now)]

    def rest_remaining(self, now: float | None = None) -> float | None:
        """Seconds until a resting key is usable again; None when no key rests (all usable,
        rejected or disabled)."""
        now = time.monotonic() if now is None else now
        waits = [
            k.resting_until - now
            for k in self.keys
            if not k.rejected and not k.disabled and k.resting_until > now
        ]
        return min(waits) if waits else None

    @staticmethod
    def reject(key: UpstreamKey) -> None:
        key.rejected = True

    @staticmethod
    def rest(key: UpstreamKey, seconds: float | None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if seconds is None:
            seconds = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**key.strikes)
        key.strikes += 1
        key.resting_until = now + max(0.0, seconds)

    @staticmethod
    def succeeded(key: UpstreamKey) -> None:
        key.strikes = 0


def key_label(source: str, index: int) -> str:
    """``env:GEMINI_KEY_A`` -> ``GEMINI_KEY_A``; an inline key -> ``key{index+1}``."""
    if source.startswith("env:") and len(source) > 4:
        return source[4:]
    return f"key{index + 1}"
