"""Key records for limiter tests, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

from gemgate.store.keys import KeyRecord


def key_record(
    key_id: int = 1, *, budget: int | None = None, spent: int = 0, rpm: int | None = None
) -> KeyRecord:
    return KeyRecord(
        id=key_id,
        name=f"key-{key_id}",
        prefix="gg-xxxxxxx",
        key_hash=f"hash-{key_id}",
        models=None,
        allowed_ips=None,
        expires_at=None,
        revoked_at=None,
        created_at=datetime.now(UTC),
        budget_nanos=budget,
        spent_nanos=spent,
        rpm=rpm,
    )
