"""Build providers from config. A new upstream type is one module plus one line here."""

from __future__ import annotations

from pathlib import Path

from gemgate.providers.base import Provider
from gemgate.settings import ConfigError, ProviderSettings, ServerSettings


def build_provider(p: ProviderSettings, server: ServerSettings, model_name: str) -> Provider:
    """``model_name``: the public id of the (first) model this provider serves, for local
    providers that report it as their ``modelVersion``."""
    key = p.api_key.reveal() if p.api_key is not None else ""
    if p.type == "gemini":
        from gemgate.providers.gemini import GeminiProvider

        assert p.base_url is not None
        return GeminiProvider(
            p.name, p.base_url, key, headers=dict(p.headers), timeout=server.upstream_timeout_s
        )
    if p.type == "openai":
        from gemgate.providers.openai import OpenAIProvider

        assert p.base_url is not None
        return OpenAIProvider(
            p.name, p.base_url, key, headers=dict(p.headers), timeout=server.upstream_timeout_s
        )
    if p.type == "local":
        from gemgate.providers.local import LocalProvider, default_model_path

        path = Path(p.model_path) if p.model_path else default_model_path()
        if not path.is_file():
            raise ConfigError(f"provider {p.name}: model_path {path} is not a file")
        return LocalProvider(
            p.name,
            path,
            n_ctx=p.n_ctx,
            n_threads=p.threads,
            model_name=model_name,
            default_max_output=p.max_output_tokens,
        )
    raise ConfigError(f"provider {p.name}: unknown type {p.type}")
