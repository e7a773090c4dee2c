"""The command line: ``gemgate serve``, ``gemgate keys ...``, ``gemgate usage``, ``gemgate models``."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gemgate.billing import NANOS_PER_USD, format_usd
from gemgate.settings import CONFIG_ENV, ConfigError, Settings
from gemgate.store import keys as key_store
from gemgate.store import make_engine, migrate
from gemgate.store import usage as usage_store

app = typer.Typer(help="gemgate: a self-hosted LLM API gateway speaking Gemini's REST protocol.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list, revoke and top up API keys.", no_args_is_help=True)
models_app = typer.Typer(help="The models this gateway serves.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")

err = Console(stderr=True)


def _out() -> Console:
    """Standard output; wide when it is not a terminal, so tables are never cut."""
    console = Console()
    return console if console.is_terminal else Console(width=240)
ConfigOpt = Annotated[str | None, typer.Option("--config", "-c", help=f"Config file (TOML); default ${CONFIG_ENV}, else the embedded default.")]


def _settings(config: str | None) -> Settings:
    try:
        return Settings.load(config)
    except ConfigError as exc:
        err.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None


def _engine(config: str | None) -> Any:
    engine = make_engine(_settings(config).database.url)
    migrate(engine)
    return engine


def _usd_to_nanos(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"not a decimal amount: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise typer.BadParameter("the amount must be a non-negative number")
    return int((value * NANOS_PER_USD).to_integral_value())


def _parse_when(text: str, name: str) -> datetime:
    try:
        return usage_store.parse_when(text)
    except ValueError:
        raise typer.BadParameter(f"{name} must be an ISO date or date-time, got {text!r}") from None


# --- serve ----------------------------------------------------------------------------------


def _program() -> str:
    """This gemgate as a command to type again: ``gemgate`` when that is on the PATH, else
    the path it was started by (``.venv/bin/gemgate``), or ``python -m gemgate``."""
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or os.path.basename(argv0) == "__main__.py":
        return f"{shlex.quote(sys.executable)} -m gemgate"
    found = shutil.which(os.path.basename(argv0))
    if found and os.path.realpath(found) == os.path.realpath(argv0):
        return os.path.basename(argv0)
    return shlex.quote(argv0)


def _try_curl(settings: Settings, models: list[str] | None) -> str | None:
    """A curl that calls the first deployed model (of ``models``, when given) on the configured
    address, with the key in ``$KEY``; None when no such model is deployed."""
    wanted = set(models or ())
    chosen = [m.id for m in settings.models if not wanted or wanted & {m.id, *m.aliases}]
    if not chosen:
        return None
    host = settings.server.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    prefixes = settings.server.path_prefixes
    prefix = "" if "" in prefixes or not prefixes else prefixes[0]
    url = f"http://{host}:{settings.server.port}{prefix}/v1beta/models/{chosen[0]}:generateContent"
    body = '{"contents":[{"parts":[{"text":"Hello!"}]}]}'
    return (
        f'curl "{url}" -H "x-goog-api-key: $KEY" -H "content-type: application/json" '
        f"-d '{body}'"
    )


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8080).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes sharing the port.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Start the gateway."""
    import uvicorn

    from gemgate import serving

    settings = _settings(config)
    n = workers or settings.server.workers
    if n > 1 and not settings.redis.url:
        err.print(
            f"[red]error:[/red] {n} workers need {escape('[redis]')} in the config: without it "
            "each worker keeps its own budgets and rate limits, so a key could spend its budget "
            f"{n} times over. Set {escape('[redis] url')}, or run one worker."
        )
        raise typer.Exit(2)
    if config:
        # Worker processes build their own app from the same file.
        os.environ[CONFIG_ENV] = os.path.abspath(config)
    engine = make_engine(settings.database.url)
    migrate(engine)
    no_keys = not key_store.list_keys(engine)
    database = engine.url.render_as_string()
    engine.dispose()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bind_host = host or settings.server.host
    bind_port = port or settings.server.port
    err.print(f"gemgate: {settings.source}; database {database}")
    err.print(f"gemgate: models {', '.join(m.id for m in settings.models) or '(none)'}")
    if no_keys:
        create = f"{_program()} keys create NAME" + (f" --config {shlex.quote(config)}" if config else "")
        err.print(f"gemgate: no API keys yet. Create one with:  [bold]{escape(create)}[/bold]", soft_wrap=True)
    tls = settings.server.tls_cert is not None
    if tls:
        for what, path in (("tls_cert", settings.server.tls_cert), ("tls_key", settings.server.tls_key)):
            if not os.path.isfile(path or ""):
                err.print(f"[red]error:[/red] server.{what} {escape(repr(path))} is not a readable file")
                raise typer.Exit(2)
    err.print(f"gemgate: listening on {'https' if tls else 'http'}://{bind_host}:{bind_port}")
    common: dict[str, Any] = {
        "host": bind_host,
        "port": bind_port,
        "log_level": log_level,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
        "proxy_headers": bool(settings.server.forwarded_allow_ips),
        "forwarded_allow_ips": list(settings.server.forwarded_allow_ips) or None,
        "server_header": False,
        # Bounds on connections, headers, idle time and bodies in flight: see gemgate.serving.
        **serving.uvicorn_options(serving.raise_open_files_limit()),
    }
    if tls:
        common["ssl_certfile"] = settings.server.tls_cert
        common["ssl_keyfile"] = settings.server.tls_key
    if n > 1:
        uvicorn.run("gemgate.serving:create_app", factory=True, workers=n, **common)
    else:
        from gemgate.app import create_app

        app = serving.BodyLimits(create_app(settings), settings.server.max_body_mb * 1024 * 1024)
        uvicorn.run(app, **common)


# --- keys -----------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    name: str,
    models: Annotated[list[str] | None, typer.Option("--models", help="A model id the key may use (repeat); default all.")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry, ISO date or date-time (UTC if no zone).")] = None,
    budget_usd: Annotated[str | None, typer.Option("--budget-usd", help="Budget in USD; default none.")] = None,
    allow_ip: Annotated[list[str] | None, typer.Option("--allow-ip", help="An address or CIDR the key may be used from (repeat).")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", min=1, help="At most this many requests per minute; default no limit.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a key. The key is printed once, as the last line, and never shown again."""
    expires_at = _parse_when(expires, "--expires") if expires else None
    budget = _usd_to_nanos(budget_usd) if budget_usd is not None else None
    engine = _engine(config)
    try:
        plain, record = key_store.create_key(
            engine, name, models=models or None, allowed_ips=allow_ip or None,
            expires_at=expires_at, budget_nanos=budget, rpm=rpm,
        )
    except key_store.KeyError_ as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    err.print(
        f"Created key [bold]{escape(record.name)}[/bold] ({record.prefix}...). The key is the last line "
        "(standard output); store it now, it is not shown again.",
        soft_wrap=True,
    )
    curl = _try_curl(_settings(config), models)
    if curl:
        err.print("Try it, with the key in $KEY:", highlight=False)
        err.print(f"  {curl}", markup=False, highlight=False, soft_wrap=True)
    print(plain)


@keys_app.command("list")
def keys_list(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List keys (never the keys themselves: only their prefix)."""
    records = key_store.list_keys(_engine(config))
    rows: list[dict[str, Any]] = [
        {
            "name": r.name,
            "prefix": r.prefix,
            "models": list(r.models) if r.models is not None else None,
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
            "revoked": r.revoked_at is not None,
            "budget_usd": format_usd(r.budget_nanos) if r.budget_nanos is not None else None,
            "spent_usd": format_usd(r.spent_nanos),
            "rpm": r.rpm,
        }
        for r in records
    ]
    if as_json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("name", "prefix", "models", "expires", "status", "budget USD", "spent USD", "rpm")
    for row in rows:
        table.add_row(
            row["name"], row["prefix"] + "...", ", ".join(row["models"]) if row["models"] else "all",
            row["expires_at"] or "never", "revoked" if row["revoked"] else "active",
            row["budget_usd"] or "-", row["spent_usd"], str(row["rpm"] or "-"),
        )
    _out().print(table)


@keys_app.command("revoke")
def keys_revoke(name_or_prefix: str, config: ConfigOpt = None) -> None:
    """Revoke a key by name or prefix; a running gateway refuses it at once."""
    try:
        record = key_store.revoke_key(_engine(config), name_or_prefix)
    except key_store.KeyError_ as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    print(f"revoked {record.name} ({record.prefix}...)")


@keys_app.command("set-rpm")
def keys_set_rpm(
    name_or_prefix: str,
    rpm: Annotated[int, typer.Argument(min=0, help="Requests per minute; 0 removes the limit.")],
    config: ConfigOpt = None,
) -> None:
    """Limit a key to RPM requests per minute; a running gateway applies it at once."""
    try:
        record = key_store.set_rpm(_engine(config), name_or_prefix, rpm or None)
    except key_store.KeyError_ as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    print(f"{record.name}: {f'{record.rpm} requests per minute' if record.rpm else 'no rate limit'}")


@keys_app.command("top-up")
def keys_top_up(name_or_prefix: str, usd: str, config: ConfigOpt = None) -> None:
    """Add USD to a key's budget."""
    try:
        record = key_store.top_up(_engine(config), name_or_prefix, _usd_to_nanos(usd))
    except key_store.KeyError_ as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    assert record.budget_nanos is not None
    print(f"{record.name}: budget {format_usd(record.budget_nanos)} USD, spent {format_usd(record.spent_nanos)} USD")


# --- usage ----------------------------------------------------------------------------------


@app.command()
def usage(
    key: Annotated[str | None, typer.Option(help="Only this key (by name).")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only this channel (provider/upstream model).")] = None,
    since: Annotated[str | None, typer.Option(help="From this ISO date/time (inclusive).")] = None,
    until: Annotated[str | None, typer.Option(help="Until this ISO date/time (exclusive).")] = None,
    group_by: Annotated[str | None, typer.Option("--group-by", help="day, hour, model, key or channel.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    config: ConfigOpt = None,
) -> None:
    """Usage and cost from the ledger (days and hours are UTC)."""
    from gemgate.admin.usage_report import columns, report_rows, to_csv

    if group_by is not None and group_by not in usage_store.GROUP_BY:
        raise typer.BadParameter(f"--group-by must be one of {', '.join(usage_store.GROUP_BY)}")
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format must be table, csv or json")
    rows = report_rows(
        _engine(config), key=key, model=model, channel=channel,
        since=_parse_when(since, "--since") if since else None,
        until=_parse_when(until, "--until") if until else None,
        group_by=group_by,
    )
    if fmt == "json":
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if fmt == "csv":
        sys.stdout.write(to_csv(rows, group_by))
        return
    table = Table(*columns(group_by))
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns(group_by)))
    _out().print(table)


# --- models, db -----------------------------------------------------------------------------


@models_app.command("list")
def models_list(config: ConfigOpt = None) -> None:
    """The models the config deploys, with their channels."""
    settings = _settings(config)
    table = Table("id", "aliases", "channels (provider/upstream model, priority, weight)")
    for m in settings.models:
        channels = "; ".join(
            f"{c.provider}/{c.upstream_model} p{c.priority} w{c.weight}" for c in m.all_channels()
        )
        table.add_row(m.id, ", ".join(m.aliases), channels)
    _out().print(table)


@models_app.command("prices")
def models_prices(
    config: ConfigOpt = None,
    at: Annotated[str | None, typer.Option("--at", help="Prices in force at this ISO date or date-time (UTC); default now.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The prices in force for every deployed model, per service tier, in USD per 1M tokens:
    the bundled catalog's, or the config's price file and overrides. Each row names its
    price version (what usage records store) and the next scheduled change."""
    from gemgate.admin.prices import price_rows

    settings = _settings(config)
    when = _parse_when(at, "--at") if at else None
    try:
        rows = price_rows(settings, when)
    except (ConfigError, ValueError) as exc:
        err.print(f"[red]config error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if as_json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("model", "tier", "input", "output", "cached input", "long context", "version", "next change")
    for r in rows:
        rates = r["rates"]
        long = rates.get("long_context")
        table.add_row(
            r["model"], r["tier"], rates["input"], rates["output"], rates.get("cached_input", "-"),
            f">{rates['long_context_threshold']}: {long['input']} / {long['output']}" if long else "-",
            r["version"], r["next_change"] or "-",
        )
    _out().print(table)


# --- channels -------------------------------------------------------------------------------


@app.command()
def channels(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every model's channels with their live health, read from the running gateway (the
    admin key from the config is sent when one is set; without it the gateway answers only
    on this machine)."""
    from gemgate.admin.channels import fetch_channels

    settings = _settings(config)
    try:
        rows = fetch_channels(settings)
    except OSError as exc:
        print(f"the gateway at {settings.server.host}:{settings.server.port} did not answer: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    if as_json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("model", "channel", "priority", "weight", "circuit", "error rate", "latency ms", "ok", "failed", "keys")
    for r in rows:
        keys = ", ".join(f"{k['label']}:{k['state']}" for k in r["keys"]) or "-"
        table.add_row(
            r["model"], r["channel"], str(r["priority"]), str(r["weight"]),
            r["circuit"] if r["enabled"] else "off", f"{r['error_rate']:.1%}",
            "" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}",
            str(r["successes"]), str(r["failures"]), keys,
        )
    _out().print(table)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Create or migrate the database schema to the newest revision."""
    _engine(config)
    print("database is up to date")


def main() -> None:
    app()
