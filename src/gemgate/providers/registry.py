"""Build providers from config. A new upstream type is one module plus one line here.

Each provider is built with the pool of upstream keys it may use (``api_key`` or
``api_keys``); the attempt loop picks the key for each attempt.
"""

from __future__ import annotations

from pathlib import Path

from gemgate.providers.base import Provider
from gemgate.routing.keys import KeyPool, UpstreamKey, key_label
from gemgate.settings import ConfigError, ProviderSettings, Settings


def key_pool(p: ProviderSettings) -> KeyPool | None:
    secrets = p.key_pool()
    if not secrets:
        return None
    return KeyPool([UpstreamKey(key_label(s.source, i), s.reveal()) for i, s in enumerate(secrets)])


def build_provider(
    p: ProviderSettings, settings: Settings, model_name: str
) -> tuple[Provider, KeyPool | None]:
    """``model_name``: the public id of the (first) model this provider serves, for local
    providers that report it as their ``modelVersion``."""
    server, routing = settings.server, settings.routing
    pool = key_pool(p)
    secrets = pool.secrets if pool is not None else ()
    if p.type in ("gemini", "openai"):
        if p.type == "gemini":
            from gemgate.providers.gemini import GeminiProvider as cls
        else:
            from gemgate.providers.openai import OpenAIProvider as cls  # type: ignore[assignment]
        assert p.base_url is not None
        http = cls(
            p.name,
            p.base_url,
            secrets,
            headers=dict(p.headers),
            timeout=server.upstream_timeout_s,
            connect_timeout=routing.connect_timeout_s,
        )
        return http, pool
    if p.type == "anthropic":
        from gemgate.providers.anthropic import DEFAULT_BASE_URL, AnthropicProvider

        return AnthropicProvider(
            p.name,
            p.base_url or DEFAULT_BASE_URL,
            secrets,
            headers=dict(p.headers),
            timeout=server.upstream_timeout_s,
            connect_timeout=routing.connect_timeout_s,
            **({"default_max_tokens": p.max_output_tokens} if p.max_output_tokens else {}),
        ), pool
    if p.type == "vertex":
        from gemgate.providers.vertex import build as build_vertex

        return build_vertex(p, server.upstream_timeout_s, routing.connect_timeout_s)
    if p.type == "local":
        from gemgate.providers.local import (
            DEFAULT_MAX_OUTPUT_TOKENS,
            LocalProvider,
            default_model_path,
        )

        path = Path(p.model_path) if p.model_path else default_model_path()
        if not path.is_file():
            raise ConfigError(f"provider {p.name}: model_path {path} is not a file")
        return LocalProvider(
            p.name,
            path,
            n_ctx=p.n_ctx,
            n_threads=p.threads,
            model_name=model_name,
            default_max_output=p.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS,
        ), None
    raise ConfigError(f"provider {p.name}: unknown type {p.type}")
