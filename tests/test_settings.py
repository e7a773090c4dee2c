"""The config file is strict: every mistake stops the start with a message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemgate.settings import ConfigError, Settings, parse

BASE = {
    "providers": [{"name": "google", "type": "gemini", "base_url": "https://g", "api_key": "env:K"}],
    "models": [{"id": "google/gemini-2.5-flash", "provider": "google", "upstream_model": "gemini-2.5-flash"}],
}


def test_valid_config_and_secret_never_printed() -> None:
    s = parse(BASE, {"K": "sekrit"})
    assert s.providers[0].api_key is not None and s.providers[0].api_key.reveal() == "sekrit"
    assert "sekrit" not in repr(s)
    assert s.server.port == 8080 and s.server.path_prefixes == ("", "/gemini")


@pytest.mark.parametrize(
    "raw,message",
    [
        ({**BASE, "servre": {}}, "unknown key servre"),
        ({**BASE, "server": {"port": "80"}}, "server.port must be an integer"),
        ({**BASE, "server": {"prot": 1}}, "unknown key server.prot"),
        ({**BASE, "server": {"path_prefixes": ["gemini"]}}, "must start with '/'"),
        ({**BASE, "database": {"url": 5}}, "database.url must be a string"),
        ({**BASE, "ledger": {"enabled": "yes"}}, "ledger.enabled must be true or false"),
        ({"providers": [{"name": "x", "type": "nope", "base_url": "u"}]}, "providers[0].type must be one of"),
        ({"providers": [{"name": "x", "type": "gemini"}]}, "providers[0].base_url is required"),
        ({"providers": [{"name": "x", "type": "local", "colour": 1}]}, "unknown key providers[0].colour"),
        ({**BASE, "models": [{"id": "m", "provider": "nope"}]}, "'nope' is not a declared provider"),
        ({**BASE, "models": [{"id": "m", "provider": "google", "price": {"input": 0.3}}]}, "models[0].price.input must be a decimal string"),
        ({**BASE, "models": [BASE["models"][0], {"id": "google/gemini-2.5-flash", "provider": "google"}]}, "declared twice"),
    ],
)
def test_invalid_configs(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(raw, {"K": "v"})
    assert message in str(info.value)


def test_missing_env_var_named() -> None:
    with pytest.raises(ConfigError, match="environment variable K, which is not set"):
        parse(BASE, {})


def test_embedded_default_when_no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings.load(None, env={})
    assert [m.id for m in s.models] == ["gemma-3-270m"]
    assert s.providers[0].type == "local" and s.database.url == "sqlite:///gemgate.db"


def test_load_from_file_and_env(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text('[server]\nport = 9000\n[[providers]]\nname = "local"\ntype = "local"\n')
    assert Settings.load(cfg, env={}).server.port == 9000
    assert Settings.load(None, env={"GEMGATE_CONFIG": str(cfg)}).server.port == 9000
    cfg.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(cfg, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "missing.toml", env={})


def test_tls_and_live_settings() -> None:
    s = parse({"server": {"tls_cert": "cert.pem", "tls_key": "key.pem"},
               "live": {"max_sessions_per_key": 0, "idle_timeout_s": 30}}, {})
    assert (s.server.tls_cert, s.server.tls_key) == ("cert.pem", "key.pem")
    assert s.live.max_sessions_per_key == 0 and s.live.idle_timeout_s == 30.0
    assert parse({}, {}).live.max_sessions_per_key == 10
    for raw, message in (
        ({"server": {"tls_cert": "cert.pem"}}, "given together"),
        ({"live": {"sessions": 3}}, "unknown key live.sessions"),
        ({"live": {"max_sessions_per_key": -1}}, "must not be negative"),
        ({"live": {"idle_timeout_s": 0}}, "must be positive"),
        ({"live": {"idle_timeout_s": "ten"}}, "must be a number"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse(raw, {})
