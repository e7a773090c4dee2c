"""Reading query parameters and JSON fields strictly: a bad value is a 400 naming it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gemgate.billing import NANOS_PER_USD
from gemgate.errors import InvalidArgument
from gemgate.store import usage as usage_store

MAX_USD = Decimal(10) ** 9  # a billion dollars: past that, a typo


def only(given: Iterable[str], allowed: Iterable[str], where: str = "parameter") -> None:
    allowed = sorted(set(allowed))
    for name in given:
        if name not in allowed:
            raise InvalidArgument.field(
                name, f"unknown {where}; expected one of {', '.join(allowed)}"
            )


def when(text: Any, name: str) -> datetime | None:
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise InvalidArgument.field(name, "must be an ISO date or date-time string")
    try:
        return usage_store.parse_when(text)
    except ValueError:
        raise InvalidArgument.field(
            name, f"must be an ISO date or date-time, got {text!r}"
        ) from None


def integer(text: Any, name: str, *, low: int = 0, high: int = 2**62) -> int | None:
    if text is None or text == "":
        return None
    if isinstance(text, bool):
        raise InvalidArgument.field(name, "must be an integer")
    if isinstance(text, str):
        if not text.strip().lstrip("-").isdigit():
            raise InvalidArgument.field(name, f"must be an integer, got {text!r}")
        text = int(text)
    if not isinstance(text, int):
        raise InvalidArgument.field(name, "must be an integer")
    if not low <= text <= high:
        raise InvalidArgument.field(name, f"must be between {low} and {high}, got {text}")
    return text


def choice(text: str | None, name: str, options: Iterable[str]) -> str | None:
    if text is None or text == "":
        return None
    options = tuple(options)
    if text not in options:
        raise InvalidArgument.field(name, f"must be one of {', '.join(options)}, got {text!r}")
    return text


def text(body: Mapping[str, Any], name: str, *, max_len: int = 200) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument.field(name, "must be a non-empty string")
    if len(value) > max_len:
        raise InvalidArgument.field(name, f"must be at most {max_len} characters")
    return value.strip()


def flag(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidArgument.field(name, "must be true or false")
    return value


def strings(body: Mapping[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidArgument.field(name, "must be a list of non-empty strings (or null)")
    return list(dict.fromkeys(value))


def networks(body: Mapping[str, Any], name: str) -> list[str] | None:
    """Addresses or CIDR ranges, each checked."""
    value = strings(body, name)
    for i, entry in enumerate(value or ()):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise InvalidArgument.field(
                f"{name}[{i}]", f"not an IP address or CIDR range: {entry!r}"
            ) from None
    return value


def usd_nanos(value: Any, name: str, *, positive: bool = False) -> int | None:
    """A USD amount given as a decimal string ("2.50") or an integer, as nano-USD. A JSON
    fraction (2.5) is refused: binary floats do not hold money."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidArgument.field(
            name, 'must be a decimal string such as "2.50" (or an integer number of USD)'
        )
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InvalidArgument.field(name, f"not a decimal amount: {value!r}") from None
    if not amount.is_finite() or amount < 0 or (positive and amount == 0):
        raise InvalidArgument.field(
            name, "must be a positive amount" if positive else "must not be negative"
        )
    if amount > MAX_USD:
        raise InvalidArgument.field(name, f"must be at most {MAX_USD} USD")
    nanos = amount * NANOS_PER_USD
    if nanos != nanos.to_integral_value():
        raise InvalidArgument.field(name, "has more than nine decimals (nano-USD)")
    return int(nanos)
