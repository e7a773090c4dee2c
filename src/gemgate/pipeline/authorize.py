"""Authorization: may this key be used now, from here, for this model?"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from gemgate.errors import PermissionDenied
from gemgate.store.keys import KeyRecord


def check_key(key: KeyRecord, client_ip: str, now: datetime | None = None) -> None:
    if key.revoked_at is not None:
        raise PermissionDenied("API key has been revoked.", reason="API_KEY_REVOKED")
    now = now or datetime.now(UTC)
    if key.expires_at is not None and key.expires_at <= now:
        raise PermissionDenied(
            f"API key expired at {key.expires_at.isoformat()}.", reason="API_KEY_EXPIRED"
        )
    if key.allowed_ips is not None and not _ip_allowed(client_ip, key.allowed_ips):
        raise PermissionDenied(
            f"API key may not be used from {client_ip or 'this address'}.",
            reason="API_KEY_IP_ADDRESS_BLOCKED",
        )


def may_use(key: KeyRecord, model_id: str) -> bool:
    return key.models is None or model_id in key.models


def check_model(key: KeyRecord, model_id: str) -> None:
    if not may_use(key, model_id):
        raise PermissionDenied(
            f"API key may not use model {model_id}.",
            reason="MODEL_NOT_ALLOWED",
            metadata={"model": model_id},
        )


def _ip_allowed(client_ip: str, allowed: tuple[str, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if addr in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
