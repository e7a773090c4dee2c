"""The admin API's route table, under ``/admin/api``: what is dispatched and what the
OpenAPI description says come from these same records."""

from __future__ import annotations

from typing import Any

from gemgate.admin.web import ApiRoute, Param

_TIME = "An ISO date (midnight UTC) or date-time (UTC unless it has an offset)."


def _p(name: str, description: str, **schema: Any) -> Param:
    return Param(name, description, schema or {"type": "string"})


USAGE_QUERY = (
    _p("key", "Only this key (by name)."),
    _p("model", "Only this model (its public id)."),
    _p("channel", "Only this channel (provider/upstream model)."),
    _p("since", f"From this time, inclusive. {_TIME}"),
    _p("until", f"Until this time, exclusive. {_TIME}"),
    _p("group_by", "One row per UTC day, UTC hour, model, key or channel.",
       type="string", enum=["day", "hour", "model", "key", "channel"]),
    _p("format", "json (default) or csv.", type="string", enum=["json", "csv"]),
)
LOG_QUERY = (
    _p("key", "Only this key (by name or prefix)."),
    _p("model", "Only this model."),
    _p("channel", "Only this channel."),
    _p("door", "Only this client protocol (gemini, openai, ...)."),
    _p("method", "Only this method (generateContent, chat.completions, ...)."),
    _p("status", "ok, error, interrupted, or failed (anything but ok).",
       type="string", enum=["ok", "error", "interrupted", "failed"]),
    _p("code", "Only this HTTP status.", type="integer", minimum=100, maximum=599),
    _p("error", "A piece of the error text (any case)."),
    _p("since", f"Started at or after. {_TIME}"),
    _p("until", f"Started before. {_TIME}"),
    _p("before", "Keyset cursor: the previous page's next.", type="integer", minimum=1),
    _p("limit", "Rows per page (default 50).", type="integer", minimum=1, maximum=500),
)


def api_routes(
    *, session: Any, keys: Any, channels: Any, usage: Any, log: Any, openapi: Any
) -> tuple[ApiRoute, ...]:
    r = ApiRoute
    return (
        r("POST", "/session", session.sign_in, "Sign in: trade the admin key (in a header) "
          "for a session cookie and its CSRF token", "session", response="Session", signin=True),
        r("GET", "/session", session.session, "The current session's CSRF token and expiry",
          "session", response="Session"),
        r("POST", "/session/end", session.sign_out, "Sign out", "session", response="SignedOut"),
        r("GET", "/openapi.json", openapi.openapi, "This description", "meta"),
        r("GET", "/keys", keys.list, "List keys (never the keys themselves)", "keys",
          response="KeyList"),
        r("POST", "/keys", keys.create, "Create a key; the key is in this answer only",
          "keys", body="KeyCreate", response="KeyCreated", status=201),
        r("GET", "/keys/{id}", keys.get, "One key", "keys", response="Key"),
        r("POST", "/keys/{id}", keys.update, "Change a key's name, models, IP allowlist, "
          "expiry, rate limit, budget or body logging (null clears)", "keys",
          body="KeyUpdate", response="Key"),
        r("POST", "/keys/{id}/revoke", keys.revoke, "Revoke a key", "keys", response="Key"),
        r("POST", "/keys/{id}/top-up", keys.top_up, "Add USD to a key's budget", "keys",
          body="TopUp", response="Key"),
        r("GET", "/channels", channels.list, "Channels and providers with live health",
          "channels", response="ChannelList"),
        r("POST", "/channels/state", channels.set_channel, "Turn a channel off or on "
          "(every replica follows within a second)", "channels", body="ChannelState",
          response="ChannelState"),
        r("POST", "/upstream-keys/state", channels.set_key, "Turn a provider's upstream key "
          "off or on", "channels", body="UpstreamKeyState", response="UpstreamKeyState"),
        r("GET", "/usage", usage.report, "Usage and cost from the ledger, as gemgate usage "
          "gives it", "usage", query=USAGE_QUERY, response="UsageReport",
          produces="application/json, text/csv"),
        r("GET", "/log", log.search, "The request log, newest first, in keyset pages", "log",
          query=LOG_QUERY, response="LogPage"),
        r("GET", "/log/{id}", log.get, "One request in full", "log", response="LogRecord"),
    )
