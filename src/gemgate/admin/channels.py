"""Channels and their live health, as ``GET /admin/channels`` and ``gemgate channels``
show them."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import orjson

from gemgate.pipeline.route import Router
from gemgate.settings import Settings


def channel_report(router: Router) -> list[dict[str, Any]]:
    rows = []
    now = time.monotonic()
    for route, channel in router.channels():
        health = channel.health
        keys = channel.keys.keys if channel.keys is not None else []
        rows.append(
            {
                "model": route.model_id,
                "channel": channel.label,
                "provider": channel.provider_name,
                "upstream_model": channel.upstream_model,
                "priority": channel.priority,
                "weight": channel.weight,
                "enabled": channel.enabled,
                "circuit": health.state(),
                "retry_in_s": round(health.retry_in(), 1),
                "successes": health.successes_total,
                "failures": health.failures_total,
                "consecutive_failures": health.consecutive,
                "error_rate": round(health.recent_error_rate, 3),
                "latency_ms": round(health.latency_ms, 1) if health.latency_ms is not None else None,
                "keys": [
                    {
                        "label": k.label,
                        "state": "off" if k.disabled else "rejected" if k.rejected
                        else "resting" if not k.usable(now) else "ok",
                    }
                    for k in keys
                ],
            }
        )
    return rows


def fetch_channels(settings: Settings, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Ask the gateway that ``settings`` describe for its channels (raises OSError when it
    does not answer)."""
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    request = urllib.request.Request(f"http://{host}:{settings.server.port}/admin/channels")
    if settings.admin.key is not None:
        request.add_header("Authorization", f"Bearer {settings.admin.key.reveal()}")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        rows: list[dict[str, Any]] = orjson.loads(resp.read())["channels"]
    return rows
