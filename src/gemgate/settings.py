"""Configuration: the only module that reads files and the environment.

The config file is TOML and strict: an unknown key or a value of the wrong type stops the
gateway at start with a message naming it. Secrets are written as ``env:VAR`` references and
resolved here; they never appear in ``repr`` or logs.

With no config file at all, :func:`Settings.embedded` describes the zero-setup default:
SQLite in the working directory and the built-in local model.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

CONFIG_ENV = "GEMGATE_CONFIG"
DEFAULT_DB_URL = "sqlite:///gemgate.db"
LOCAL_MODEL_ID = "gemma-3-270m"
PROVIDER_TYPES = ("gemini", "openai", "anthropic", "vertex", "local")
_LOCATION = re.compile(r"[a-z][a-z0-9-]{0,62}")
# What a service-account JSON must hold for the gateway to mint access tokens with it.
_SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "token_uri")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


class Secret:
    """A credential. Prints as ``Secret(env:VAR)``, never as its value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    path_prefixes: tuple[str, ...] = ("", "/gemini")
    max_body_mb: int = 20
    workers: int = 1
    upstream_timeout_s: float = 600.0
    allow_remote_media: bool = False
    # Addresses of reverse proxies whose X-Forwarded-For is trusted for the client address
    # (IP allowlists, logs); empty: the peer address is the client.
    forwarded_allow_ips: tuple[str, ...] = ()
    # The gateway's own address as clients reach it (e.g. "https://llm.example.com"), for
    # the URLs it hands out (upload URLs, file URIs); None: the request's scheme and host.
    public_url: str | None = None
    # TLS terminated by the gateway itself: PEM certificate (chain) and private key files,
    # both or neither; relative paths are read from the working directory.
    tls_cert: str | None = None
    tls_key: str | None = None


@dataclass(frozen=True, slots=True)
class FilesSettings:
    """Uploaded files (the Gemini Files API) and where their bytes are kept."""

    dir: str = "gemgate-files"  # the local content store, relative to the working directory
    store: str = "local"  # local | database (every replica reaches it)
    max_file_mb: int = 2048
    quota_mb: int = 20480  # per key, files not yet expired
    ttl_hours: int = 48
    prune_s: float = 60.0  # how often expired files, uploads and caches are looked for


@dataclass(frozen=True, slots=True)
class BatchSettings:
    concurrency: int = 1  # items this process runs at once for batches it works itself
    lease_s: float = 30.0  # a replica that stops renewing its claim on a batch loses it after this


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """Live API sessions (WebSocket)."""

    max_sessions_per_key: int = 10  # open sessions one key may hold per worker; 0: no limit
    idle_timeout_s: float = 600.0  # a session with no frame either way for this long is closed
    setup_timeout_s: float = 10.0  # the client's setup frame must arrive by then


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = DEFAULT_DB_URL


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str | None = None
    # Names this deployment's data in Redis: gateways on different databases sharing one
    # Redis must use different prefixes (key ids are per database).
    prefix: str = "gemgate"


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    enabled: bool = True
    batch_max: int = 256


@dataclass(frozen=True, slots=True)
class AdminSettings:
    key: Secret | None = None
    # Usage records (the request log) and stored bodies older than this are deleted; 0: kept.
    log_retention_days: int = 0  # 0: usage records (the ledger) are kept for ever


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """How the attempt loop treats channels (see :mod:`gemgate.routing`)."""

    first_token_timeout_s: float = 60.0  # a stream's first event must come by then
    connect_timeout_s: float = 10.0
    circuit_failures: int = 3  # consecutive failures that open a channel's circuit; 0: never
    circuit_cooldown_s: float = 30.0  # open this long, then one probe request is let through
    max_attempts: int = 6  # attempts per request, across channels and upstream keys


@dataclass(frozen=True, slots=True)
class CatalogSettings:
    # A price file (the catalog's price keys, with scheduled changes) that replaces the
    # bundled prices of the models it names; None: the bundled prices.
    prices_file: str | None = None


@dataclass(frozen=True, slots=True)
class VertexSettings:
    """A ``vertex`` provider: Google Cloud's Vertex AI, with service-account credentials."""

    project: str
    location: str  # "global", or a region such as "us-central1"
    # Service-account JSONs, used in turn like a key pool; each is a Secret.
    credentials: tuple[Secret, ...]


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str
    type: str
    base_url: str | None = None
    api_key: Secret | None = None
    api_keys: tuple[Secret, ...] = ()  # a pool, used in turn; api_key alone is a pool of one
    headers: Mapping[str, str] = field(default_factory=dict)
    model_path: str | None = None
    n_ctx: int = 8192
    threads: int | None = None
    max_output_tokens: int | None = None  # None: the provider's own default
    vertex: VertexSettings | None = None  # type "vertex" only

    def key_pool(self) -> tuple[Secret, ...]:
        """The upstream keys to use in turn (none for a provider that needs no key)."""
        return self.api_keys or ((self.api_key,) if self.api_key is not None else ())


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """One way to serve a model: a provider and its name for the model, tried by ``priority``
    (lowest first), and by ``weight`` among channels of the same priority."""

    provider: str
    upstream_model: str
    priority: int = 0
    weight: int = 1


@dataclass(frozen=True, slots=True)
class ModelSettings:
    id: str
    provider: str  # the first channel's provider
    upstream_model: str  # the first channel's upstream model
    aliases: tuple[str, ...] = ()
    catalog: str | None = None  # the bundled catalog entry to take limits and prices from
    price: Mapping[str, Decimal] = field(default_factory=dict)
    display_name: str | None = None
    input_token_limit: int | None = None
    output_token_limit: int | None = None
    channels: tuple[ChannelSettings, ...] = ()  # empty: one channel, provider + upstream_model
    sticky: bool = False  # same key + same conversation start -> same channel while healthy

    def all_channels(self) -> tuple[ChannelSettings, ...]:
        return self.channels or (ChannelSettings(self.provider, self.upstream_model),)


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    ledger: LedgerSettings = LedgerSettings()
    admin: AdminSettings = AdminSettings()
    routing: RoutingSettings = RoutingSettings()
    catalog: CatalogSettings = CatalogSettings()
    files: FilesSettings = FilesSettings()
    batches: BatchSettings = BatchSettings()
    live: LiveSettings = LiveSettings()
    providers: tuple[ProviderSettings, ...] = ()
    models: tuple[ModelSettings, ...] = ()
    source: str = "embedded default"

    @classmethod
    def embedded(cls, database_url: str | None = None) -> Settings:
        """The zero-setup default: SQLite in the working directory, the local Gemma model."""
        return cls(
            database=DatabaseSettings(url=database_url or DEFAULT_DB_URL),
            providers=(ProviderSettings(name="local", type="local"),),
            models=(ModelSettings(id=LOCAL_MODEL_ID, provider="local", upstream_model=LOCAL_MODEL_ID),),
        )

    @classmethod
    def load(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Read the config named by ``path`` or ``$GEMGATE_CONFIG``; else the embedded default."""
        env = os.environ if env is None else env
        chosen = str(path) if path else env.get(CONFIG_ENV, "")
        if not chosen:
            return cls.embedded()
        file = Path(chosen)
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {chosen} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {chosen} is not valid TOML: {exc}") from None
        return parse(raw, env, source=chosen)


# --- parsing -------------------------------------------------------------------------------


class _Table:
    """Typed access to one TOML table that remembers which keys were read."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a table")
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def _get(self, key: str, kinds: tuple[type, ...], kind_name: str, default: Any) -> Any:
        self.seen.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(f"{self.where}.{key} must be {kind_name}, got {value!r}")
        if not isinstance(value, kinds):
            raise ConfigError(f"{self.where}.{key} must be {kind_name}, got {value!r}")
        return value

    def text(self, key: str, default: Any = None) -> Any:
        return self._get(key, (str,), "a string", default)

    def integer(self, key: str, default: Any = None) -> Any:
        return self._get(key, (int,), "an integer", default)

    def number(self, key: str, default: Any = None) -> Any:
        value = self._get(key, (int, float), "a number", default)
        return float(value) if value is not None else None

    def flag(self, key: str, default: Any = None) -> Any:
        return self._get(key, (bool,), "true or false", default)

    def str_list(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key, (list,), "a list of strings", None)
        if value is None:
            return default
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.where}.{key} must be a list of strings")
        return tuple(value)

    def table(self, key: str) -> _Table:
        return _Table(self._get(key, (dict,), "a table", {}), f"{self.where}.{key}" if self.where else key)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(f"unknown key {self.where}.{unknown[0]}" if self.where else f"unknown key {unknown[0]}")


def _secret(value: str | None, where: str, env: Mapping[str, str]) -> Secret | None:
    if value is None:
        return None
    if value.startswith("env:"):
        var = value[4:]
        if not var:
            raise ConfigError(f"{where} names an empty environment variable")
        if var not in env:
            raise ConfigError(f"{where} refers to environment variable {var}, which is not set")
        return Secret(env[var], value)
    return Secret(value, "inline value")


def _required_secret(value: str, where: str, env: Mapping[str, str]) -> Secret:
    secret = _secret(value, where, env)
    assert secret is not None
    return secret


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{where} must be a decimal string such as \"0.30\" or an integer")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"{where} is not a decimal number: {value!r}") from None
    if not result.is_finite() or result < 0:
        raise ConfigError(f"{where} must be a non-negative number")
    return result


def _server(t: _Table) -> ServerSettings:
    d = ServerSettings()
    prefixes = t.str_list("path_prefixes", d.path_prefixes)
    for p in prefixes:
        if p and (not p.startswith("/") or p.endswith("/")):
            raise ConfigError(f"server.path_prefixes entry {p!r} must start with '/' and not end with one")
    s = ServerSettings(
        host=t.text("host", d.host),
        port=t.integer("port", d.port),
        path_prefixes=prefixes,
        max_body_mb=t.integer("max_body_mb", d.max_body_mb),
        workers=t.integer("workers", d.workers),
        upstream_timeout_s=t.number("upstream_timeout_s", d.upstream_timeout_s),
        allow_remote_media=t.flag("allow_remote_media", d.allow_remote_media),
        forwarded_allow_ips=t.str_list("forwarded_allow_ips"),
        public_url=t.text("public_url"),
        tls_cert=t.text("tls_cert"),
        tls_key=t.text("tls_key"),
    )
    t.done()
    if (s.tls_cert is None) != (s.tls_key is None):
        raise ConfigError("server.tls_cert and server.tls_key must be given together")
    if s.public_url is not None and not s.public_url.startswith(("http://", "https://")):
        raise ConfigError("server.public_url must be an http:// or https:// URL")
    if not 0 < s.port < 65536:
        raise ConfigError("server.port must be between 1 and 65535")
    if s.max_body_mb < 1:
        raise ConfigError("server.max_body_mb must be at least 1")
    if s.workers < 1:
        raise ConfigError("server.workers must be at least 1")
    return s


def _provider(t: _Table, env: Mapping[str, str]) -> ProviderSettings:
    name = t.text("name")
    ptype = t.text("type")
    if not name:
        raise ConfigError(f"{t.where}.name is required")
    if ptype not in PROVIDER_TYPES:
        raise ConfigError(f"{t.where}.type must be one of {', '.join(PROVIDER_TYPES)}, got {ptype!r}")
    headers_t = t.table("headers")
    headers = {k: v for k, v in headers_t.data.items()}
    if not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError(f"{t.where}.headers values must be strings")
    api_keys = tuple(
        _required_secret(v, f"{t.where}.api_keys[{i}]", env)
        for i, v in enumerate(t.str_list("api_keys"))
    )
    api_key = _secret(t.text("api_key"), f"{t.where}.api_key", env)
    if api_key is not None and api_keys:
        raise ConfigError(f"{t.where}: give either api_key or api_keys, not both")
    p = ProviderSettings(
        name=name,
        type=ptype,
        base_url=t.text("base_url"),
        api_key=api_key,
        api_keys=api_keys,
        headers=headers,
        model_path=t.text("model_path"),
        n_ctx=t.integer("n_ctx", 8192),
        threads=t.integer("threads"),
        max_output_tokens=t.integer("max_output_tokens"),
        vertex=_vertex(t, env) if ptype == "vertex" else None,
    )
    t.done()
    if ptype == "vertex" and p.key_pool():
        raise ConfigError(
            f"{t.where}: a vertex provider signs in with a service account "
            "(credentials_file or credentials), not api_key"
        )
    if ptype in ("gemini", "openai") and not p.base_url:
        raise ConfigError(f"{t.where}.base_url is required for a {ptype} provider")
    return p


def _one_or_many(t: _Table, key: str) -> tuple[str, ...]:
    """A string, or a non-empty list of strings."""
    t.seen.add(key)
    value = t.data.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{t.where}.{key} must be a string or a non-empty list of strings")


def _service_account(secret: Secret, where: str) -> Secret:
    """Check that ``secret`` holds a service-account JSON; the message never shows it."""
    try:
        info = json.loads(secret.reveal())
    except ValueError:
        raise ConfigError(f"{where} is not a service-account JSON (it is not JSON)") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(f'{where} is not a service-account JSON (its "type" is not "service_account")')
    for name in _SERVICE_ACCOUNT_FIELDS:
        if not isinstance(info.get(name), str) or not info[name]:
            raise ConfigError(f"{where} is not a usable service-account JSON: it has no {name}")
    return secret


def _vertex(t: _Table, env: Mapping[str, str]) -> VertexSettings:
    project = t.text("project")
    location = t.text("location")
    if not project:
        raise ConfigError(f"{t.where}.project (the Google Cloud project id) is required for a vertex provider")
    if not location:
        raise ConfigError(
            f'{t.where}.location is required for a vertex provider ("global", or a region such as "us-central1")'
        )
    if not _LOCATION.fullmatch(location):
        raise ConfigError(f'{t.where}.location {location!r} is not a location ("global", "us-central1", ...)')
    files = _one_or_many(t, "credentials_file")
    refs = _one_or_many(t, "credentials")
    if files and refs:
        raise ConfigError(f"{t.where}: give either credentials_file or credentials, not both")
    secrets: list[Secret] = []
    for i, path in enumerate(files):
        where = f"{t.where}.credentials_file" + (f"[{i}]" if len(files) > 1 else "")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: {path} cannot be read ({exc.strerror or exc})") from None
        secrets.append(_service_account(Secret(text, f"file:{Path(path).name}"), where))
    for i, ref in enumerate(refs):
        where = f"{t.where}.credentials" + (f"[{i}]" if len(refs) > 1 else "")
        if not ref.startswith("env:"):
            raise ConfigError(f'{where} must name an environment variable holding the JSON ("env:VAR")')
        secrets.append(_service_account(_required_secret(ref, where, env), where))
    if not secrets:
        raise ConfigError(
            f"{t.where}: a vertex provider needs service-account credentials: credentials_file "
            '(a path to the JSON key) or credentials = "env:VAR" (the JSON itself)'
        )
    return VertexSettings(project=project, location=location, credentials=tuple(secrets))


def _catalog(t: _Table) -> CatalogSettings:
    c = CatalogSettings(prices_file=t.text("prices_file"))
    t.done()
    if c.prices_file is not None and not Path(c.prices_file).is_file():
        raise ConfigError(f"catalog.prices_file {c.prices_file} is not a file")
    return c


def _channels(t: _Table, upstream_model: str) -> tuple[ChannelSettings, ...]:
    raw = t.data.get("channels")
    t.seen.add("channels")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{t.where}.channels must be a non-empty array of tables")
    out = []
    for i, entry in enumerate(raw):
        c = _Table(entry, f"{t.where}.channels[{i}]")
        provider = c.text("provider")
        if not provider:
            raise ConfigError(f"{c.where}.provider is required")
        channel = ChannelSettings(
            provider=provider,
            upstream_model=c.text("upstream_model", upstream_model),
            priority=c.integer("priority", 0),
            weight=c.integer("weight", 1),
        )
        c.done()
        if channel.weight < 1:
            raise ConfigError(f"{c.where}.weight must be at least 1")
        out.append(channel)
    return tuple(out)


def _model(t: _Table) -> ModelSettings:
    mid = t.text("id")
    if not mid:
        raise ConfigError(f"{t.where}.id is required")
    upstream_model = t.text("upstream_model", mid)
    channels = _channels(t, upstream_model)
    provider = t.text("provider")
    if provider and channels:
        raise ConfigError(f"{t.where}: give either provider or channels, not both")
    if channels:
        provider, upstream_model = channels[0].provider, channels[0].upstream_model
    if not provider:
        raise ConfigError(f"{t.where}.provider (or channels) is required")
    price_t = t.table("price")
    price = {k: _decimal(v, f"{price_t.where}.{k}") for k, v in price_t.data.items()}
    m = ModelSettings(
        id=mid,
        provider=provider,
        upstream_model=upstream_model,
        aliases=t.str_list("aliases"),
        catalog=t.text("catalog"),
        price=price,
        display_name=t.text("display_name"),
        input_token_limit=t.integer("input_token_limit"),
        output_token_limit=t.integer("output_token_limit"),
        channels=channels,
        sticky=t.flag("sticky", False),
    )
    t.done()
    if ".." in mid or mid.startswith("/") or mid.endswith("/"):
        raise ConfigError(f"{t.where}.id {mid!r} is not a valid model id")
    return m


def parse(raw: dict[str, Any], env: Mapping[str, str], source: str = "config") -> Settings:
    root = _Table(raw, "")
    server = _server(root.table("server"))
    db_t = root.table("database")
    database = DatabaseSettings(url=db_t.text("url", DEFAULT_DB_URL))
    db_t.done()
    redis_t = root.table("redis")
    redis = RedisSettings(url=redis_t.text("url"), prefix=redis_t.text("prefix", "gemgate"))
    redis_t.done()
    ledger_t = root.table("ledger")
    ledger = LedgerSettings(
        enabled=ledger_t.flag("enabled", True), batch_max=ledger_t.integer("batch_max", 256)
    )
    ledger_t.done()
    admin_t = root.table("admin")
    admin = AdminSettings(
        key=_secret(admin_t.text("key"), "admin.key", env),
        log_retention_days=admin_t.integer("log_retention_days", 0),
    )
    admin_t.done()
    if admin.log_retention_days < 0:
        raise ConfigError("admin.log_retention_days must not be negative (0 keeps records)")
    routing = _routing(root.table("routing"))
    catalog = _catalog(root.table("catalog"))
    files, batches = _files(root.table("files")), _batches(root.table("batches"))
    live = _live(root.table("live"))

    root.seen.update({"providers", "models"})
    raw_providers = raw.get("providers", [])
    raw_models = raw.get("models", [])
    if not isinstance(raw_providers, list):
        raise ConfigError("providers must be an array of tables ([[providers]])")
    if not isinstance(raw_models, list):
        raise ConfigError("models must be an array of tables ([[models]])")
    providers = tuple(_provider(_Table(p, f"providers[{i}]"), env) for i, p in enumerate(raw_providers))
    models = tuple(_model(_Table(m, f"models[{i}]")) for i, m in enumerate(raw_models))
    root.done()

    names = [p.name for p in providers]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"provider name {sorted(dupes)[0]!r} is declared twice")
    public: dict[str, str] = {}
    for i, m in enumerate(models):
        for j, channel in enumerate(m.channels):
            if channel.provider not in names:
                raise ConfigError(
                    f"models[{i}].channels[{j}].provider {channel.provider!r} is not a declared provider"
                )
        if m.provider not in names:
            raise ConfigError(f"models[{i}].provider {m.provider!r} is not a declared provider")
        for public_id in (m.id, *m.aliases):
            if public_id in public:
                raise ConfigError(f"model id or alias {public_id!r} is declared twice")
            public[public_id] = m.id
    return Settings(
        server=server,
        database=database,
        redis=redis,
        ledger=ledger,
        admin=admin,
        routing=routing,
        catalog=catalog,
        files=files,
        batches=batches,
        live=live,
        providers=providers,
        models=models,
        source=source,
    )


def _live(t: _Table) -> LiveSettings:
    d = LiveSettings()
    live = LiveSettings(
        max_sessions_per_key=t.integer("max_sessions_per_key", d.max_sessions_per_key),
        idle_timeout_s=t.number("idle_timeout_s", d.idle_timeout_s),
        setup_timeout_s=t.number("setup_timeout_s", d.setup_timeout_s),
    )
    t.done()
    if live.max_sessions_per_key < 0:
        raise ConfigError("live.max_sessions_per_key must not be negative (0: no limit)")
    if live.idle_timeout_s <= 0 or live.setup_timeout_s <= 0:
        raise ConfigError("live.idle_timeout_s and live.setup_timeout_s must be positive")
    return live


def _routing(t: _Table) -> RoutingSettings:
    d = RoutingSettings()
    r = RoutingSettings(
        first_token_timeout_s=t.number("first_token_timeout_s", d.first_token_timeout_s),
        connect_timeout_s=t.number("connect_timeout_s", d.connect_timeout_s),
        circuit_failures=t.integer("circuit_failures", d.circuit_failures),
        circuit_cooldown_s=t.number("circuit_cooldown_s", d.circuit_cooldown_s),
        max_attempts=t.integer("max_attempts", d.max_attempts),
    )
    t.done()
    if r.first_token_timeout_s <= 0 or r.connect_timeout_s <= 0:
        raise ConfigError("routing timeouts must be positive")
    if r.circuit_failures < 0 or r.circuit_cooldown_s < 0:
        raise ConfigError("routing.circuit_failures and circuit_cooldown_s must not be negative")
    if r.max_attempts < 1:
        raise ConfigError("routing.max_attempts must be at least 1")
    return r


def _files(t: _Table) -> FilesSettings:
    d = FilesSettings()
    f = FilesSettings(
        dir=t.text("dir", d.dir),
        store=t.text("store", d.store),
        max_file_mb=t.integer("max_file_mb", d.max_file_mb),
        quota_mb=t.integer("quota_mb", d.quota_mb),
        ttl_hours=t.integer("ttl_hours", d.ttl_hours),
        prune_s=t.number("prune_s", d.prune_s),
    )
    t.done()
    if f.store not in ("local", "database"):
        raise ConfigError(f"files.store must be local or database, got {f.store!r}")
    if f.max_file_mb < 1 or f.quota_mb < 1 or f.ttl_hours < 1 or f.prune_s <= 0:
        raise ConfigError("files.max_file_mb, quota_mb and ttl_hours must be at least 1, prune_s positive")
    return f


def _batches(t: _Table) -> BatchSettings:
    d = BatchSettings()
    b = BatchSettings(
        concurrency=t.integer("concurrency", d.concurrency), lease_s=t.number("lease_s", d.lease_s)
    )
    t.done()
    if b.concurrency < 1 or b.lease_s <= 0:
        raise ConfigError("batches.concurrency must be at least 1 and lease_s positive")
    return b
