"""The Live API (BidiGenerateContent over WebSocket) through a real gateway process over TLS,
driven by the google-genai SDK's ``client.aio.live.connect``: with the built-in local model
(sessions the gateway runs turn by turn) and with the fake Google Live upstream (frames
relayed both ways); records, budgets, limits, refusals and faults."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from typing import Any

import httpx
import pytest
import websockets
from google.genai import errors, types
from tests.billing.gateways import records
from tests.doors.live_gateway import LIVE_UPSTREAM_KEY, TlsGateway, live_fake, live_gw, sdk
from tests.fakes.gemini_live_upstream import FakeGeminiLive

__all__ = ["live_fake", "live_gw"]  # fixtures

GOOGLE = "gemini-live-2.5-flash"
LOCAL = "gemma-3-270m"
NANOS_PER_TOKEN_IN, NANOS_PER_TOKEN_OUT = 100_000, 400_000  # the config's price (USD per 1M)
TEXT_ONLY: dict[str, Any] = {"response_modalities": ["TEXT"]}
SETUP_FRAME = json.dumps({"setup": {"model": f"models/{GOOGLE}"}})


def db(gw: TlsGateway) -> str:
    return f"sqlite:///{gw.workdir}/gemgate.db"


def live_records(gw: TlsGateway, key_name: str) -> list[dict[str, Any]]:
    return records(db(gw), key_name=key_name, door="gemini_live")


def wait_records(gw: TlsGateway, key_name: str, n: int, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = live_records(gw, key_name)
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


async def say(session: Any, text: str) -> tuple[str, types.UsageMetadata | None, list[Any]]:
    """One client turn; the model's text, the turn's usage and every message received."""
    await session.send_client_content(turns={"role": "user", "parts": [{"text": text}]}, turn_complete=True)
    texts, usage, messages = [], None, []
    async for message in session.receive():
        messages.append(message)
        if message.text:
            texts.append(message.text)
        if message.usage_metadata:
            usage = message.usage_metadata
    return "".join(texts), usage, messages


@pytest.fixture
def key(live_gw: TlsGateway, request: pytest.FixtureRequest) -> tuple[str, str]:
    name = f"live-{request.node.name}"[:60].replace("[", "-").replace("]", "")
    return name, live_gw.create_key(name)


# --- sessions ------------------------------------------------------------------------------


def test_local_model_multi_turn(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    name, plain = key
    client = sdk(live_gw, plain)

    async def talk() -> list[tuple[str, Any, list[Any]]]:
        async with client.aio.live.connect(model=LOCAL, config=TEXT_ONLY) as session:
            return [await say(session, "What is the capital of France?"),
                    await say(session, "What is the capital of Italy?")]

    turns = asyncio.run(talk())
    for text, usage, messages in turns:
        assert text.strip()
        assert usage is not None and usage.response_token_count and usage.prompt_token_count
        assert messages[-1].server_content.turn_complete
    # The second turn re-reads the first: its prompt is larger.
    assert turns[1][1].prompt_token_count > turns[0][1].prompt_token_count
    found = live_records(live_gw, name)
    assert len(found) == 2
    for record, (_text, usage, _m) in zip(found, turns, strict=True):
        assert record["method"] == "BidiGenerateContent" and record["status"] == "ok"
        assert record["model"] == LOCAL and record["provider"] == "local"
        assert record["prompt_tokens"] == usage.prompt_token_count
        assert record["output_text"] == usage.response_token_count
        assert record["total_tokens"] == usage.total_token_count
        assert not record["estimated"] and not record["interrupted"]


def test_google_multi_turn_relayed(live_gw: TlsGateway, live_fake: FakeGeminiLive, key: tuple[str, str]) -> None:
    name, plain = key
    client = sdk(live_gw, plain)

    async def talk() -> list[tuple[str, Any, list[Any]]]:
        config = {**TEXT_ONLY, "system_instruction": "be brief", "temperature": 0.4}
        async with client.aio.live.connect(model=GOOGLE, config=config) as session:
            return [await say(session, "hello there"), await say(session, "second turn now")]

    (t1, u1, _), (t2, u2, _) = asyncio.run(talk())
    assert (t1, t2) == ("echo: hello there", "echo: second turn now")
    # Per turn, as Google reports it: each turn's own output; its prompt is all it read.
    assert (u1.prompt_token_count, u1.response_token_count) == (2 + 2, 3)
    assert (u2.prompt_token_count, u2.response_token_count) == (2 + 2 + 3 + 3, 4)
    upstream = live_fake.sessions[-1]
    assert upstream.headers["x-goog-api-key"] == LIVE_UPSTREAM_KEY
    setup = upstream.setup
    assert setup is not None and setup["model"] == "models/gemini-live-upstream-001"
    assert setup["generationConfig"]["temperature"] == 0.4
    # Client frames after the setup arrive exactly as the SDK sent them.
    sent = [json.loads(f) for f in upstream.frames[1:]]
    assert sent[0] == {"client_content": {"turns": [{"role": "user", "parts": [{"text": "hello there"}]}], "turnComplete": True}}
    found = live_records(live_gw, name)
    assert len(found) == 2
    for record, usage in zip(found, (u1, u2), strict=True):
        assert record["provider"] == "google-live" and record["channel"] == "google-live/gemini-live-upstream-001"
        assert record["prompt_tokens"] == usage.prompt_token_count
        assert record["output_text"] == usage.response_token_count
        assert record["cost_nanos"] == (
            usage.prompt_token_count * NANOS_PER_TOKEN_IN + usage.response_token_count * NANOS_PER_TOKEN_OUT
        )


@pytest.mark.parametrize(
    ("prefix", "version", "slash"),
    [("", "v1beta", True), ("/gemini", "v1alpha", False), ("", "v1", False)],
    ids=["no-prefix-double-slash", "v1alpha", "v1"],
)
def test_paths(live_gw: TlsGateway, key: tuple[str, str], prefix: str, version: str, slash: bool) -> None:
    client = sdk(live_gw, key[1], prefix=prefix, api_version=version, trailing_slash=slash)

    async def talk() -> str:
        async with client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY) as session:
            return (await say(session, "ping"))[0]

    assert asyncio.run(talk()) == "echo: ping"


# --- refusals ------------------------------------------------------------------------------


def refusal(client: Any, model: str, config: dict[str, Any] | None = None,
            first: dict[str, Any] | None = None) -> errors.APIError:
    async def talk() -> None:
        async with client.aio.live.connect(model=model, config=config or TEXT_ONLY) as session:
            if first is not None:
                await session.send_realtime_input(**first)
            async for _ in session.receive():
                pass

    with pytest.raises(errors.APIError) as info:
        asyncio.run(talk())
    return info.value


def test_audio_output_refused_on_local_model(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    err = refusal(sdk(live_gw, key[1]), LOCAL, {"response_modalities": ["AUDIO"]})
    assert err.code == 1007
    assert "cannot answer in AUDIO" in str(err.details)


def test_audio_input_refused_on_local_model(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    audio = types.Blob(data=b"\x00\x01" * 800, mime_type="audio/pcm;rate=16000")
    err = refusal(sdk(live_gw, key[1]), LOCAL, first={"audio": audio})
    assert err.code == 1007
    assert "CONTENT_TYPE_AUDIO" in str(err.details)


def test_bad_key_and_unknown_model(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    err = refusal(sdk(live_gw, "gg-not-a-key"), GOOGLE)
    assert err.code == 1008 and "API key not valid" in str(err.details)
    err = refusal(sdk(live_gw, key[1]), "no-such-model")
    assert err.code == 1008 and "not found" in str(err.details)


def test_model_not_allowed(live_gw: TlsGateway) -> None:
    plain = live_gw.create_key("live-only-local", "--models", LOCAL)
    err = refusal(sdk(live_gw, plain), GOOGLE)
    assert err.code == 1008 and "may not use model" in str(err.details)


def test_upstream_refusing_handshake(live_gw: TlsGateway, live_fake: FakeGeminiLive, key: tuple[str, str]) -> None:
    live_fake.refuse_handshake(503)
    err = refusal(sdk(live_gw, key[1]), GOOGLE)
    assert err.code == 1011
    assert LIVE_UPSTREAM_KEY not in str(err.details)
    assert live_records(live_gw, key[0]) == []


def test_upstream_setup_refusal_relayed(live_gw: TlsGateway, live_fake: FakeGeminiLive, key: tuple[str, str]) -> None:
    live_fake.close_setup(1007, "Request contains an invalid argument.")
    err = refusal(sdk(live_gw, key[1]), GOOGLE)
    assert (err.code, str(err.details)) == (1007, "Request contains an invalid argument.")


def test_bad_frame_is_invalid_argument(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    async def talk() -> tuple[int, str]:
        url = live_gw.base_url.replace("https", "wss") + (
            "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent")
        async with websockets.connect(url, additional_headers={"x-goog-api-key": key[1]},
                                      ssl=live_gw.ssl_context()) as ws:
            await ws.send(SETUP_FRAME)
            await ws.recv()
            await ws.send("{not json")
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            return info.value.rcvd.code, info.value.rcvd.reason

    code, reason = asyncio.run(talk())
    assert code == 1007 and reason.startswith("Invalid JSON payload received.")


# --- faults --------------------------------------------------------------------------------


def test_upstream_drop_mid_turn_bills_what_was_relayed(
    live_gw: TlsGateway, live_fake: FakeGeminiLive, key: tuple[str, str]
) -> None:
    live_fake.drop_mid_turn(after_chunks=2)
    client = sdk(live_gw, key[1])
    got: list[str] = []

    async def talk() -> None:
        async with client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY) as session:
            await session.send_client_content(turns={"parts": [{"text": "one two three four"}]})
            async for message in session.receive():
                got.append(message.text or "")

    with pytest.raises(errors.APIError) as info:
        asyncio.run(talk())
    assert info.value.code == 1011
    assert "".join(got) == "echo: one"
    [record] = wait_records(live_gw, key[0], 1)
    assert record["interrupted"] and record["estimated"] and record["status"] == "interrupted"
    assert record["output_text"] > 0 and record["cost_nanos"] > 0


def test_client_drop_mid_turn(live_gw: TlsGateway, live_fake: FakeGeminiLive, key: tuple[str, str]) -> None:
    live_fake.chunk_delay = 0.3
    client = sdk(live_gw, key[1])

    async def talk() -> None:
        async with client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY) as session:
            await session.send_client_content(turns={"parts": [{"text": "a b c d e f g h"}]})
            async for message in session.receive():
                if message.text:
                    break  # leave with the turn half done

    asyncio.run(talk())
    [record] = wait_records(live_gw, key[0], 1)
    assert record["interrupted"] and record["output_text"] >= 1


def test_client_drop_mid_turn_on_local_model(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    client = sdk(live_gw, key[1])

    async def talk() -> None:
        config = {**TEXT_ONLY, "max_output_tokens": 200}
        async with client.aio.live.connect(model=LOCAL, config=config) as session:
            await session.send_client_content(turns={"parts": [{"text": "Count from one to fifty."}]})
            async for message in session.receive():
                if message.text:
                    break

    asyncio.run(talk())
    [record] = wait_records(live_gw, key[0], 1)
    assert record["interrupted"] and record["status"] == "interrupted" and record["output_text"] >= 1


def test_upstream_go_away_relayed(live_gw: TlsGateway, live_fake: FakeGeminiLive, key: tuple[str, str]) -> None:
    live_fake.go_away_after(1)
    client = sdk(live_gw, key[1])
    seen: list[Any] = []

    async def talk() -> None:
        async with client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY) as session:
            await say(session, "last one")
            with pytest.raises(errors.APIError) as info:
                async for message in session.receive():
                    seen.append(message)
            assert info.value.code == 1000

    asyncio.run(talk())
    assert any(m.go_away is not None for m in seen)
    assert len(live_records(live_gw, key[0])) == 1


def test_failover_to_the_next_live_channel(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    client = sdk(live_gw, key[1])

    async def talk() -> str:
        async with client.aio.live.connect(model="live-failover", config=TEXT_ONLY) as session:
            return (await say(session, "over here"))[0]

    assert asyncio.run(talk()) == "echo: over here"
    [record] = live_records(live_gw, key[0])
    assert record["channel"] == "google-live/gemini-live-upstream-001"
    assert record["attempts"] == 2
    failed = json.loads(record["failed_attempts"])
    assert failed[0]["channel"] == "dead-live/gemini-live-upstream-001"


# --- budgets, limits, idleness -------------------------------------------------------------


def test_budget_stops_the_session(live_gw: TlsGateway, live_fake: FakeGeminiLive) -> None:
    # Turn one reserves about 0.04 USD (the setup's size as context, 50 output tokens) and
    # costs 0.0014; a long second turn needs more than what is left.
    plain = live_gw.create_key("live-budget", "--budget-usd", "0.05")
    client = sdk(live_gw, plain)
    seen: list[Any] = []

    async def talk() -> tuple[str, int]:
        config = {**TEXT_ONLY, "max_output_tokens": 50}
        async with client.aio.live.connect(model=GOOGLE, config=config) as session:
            first = (await say(session, "hello there"))[0]
            await session.send_client_content(turns={"parts": [{"text": "word " * 400}]})
            with pytest.raises(errors.APIError) as info:
                async for message in session.receive():
                    seen.append(message)
            return first, info.value.code

    first, code = asyncio.run(talk())
    assert first == "echo: hello there"
    assert code == 1000  # a clean close, after goAway
    assert [m.go_away is not None for m in seen] == [True]
    upstream = live_fake.sessions[-1]
    assert len(upstream.frames) == 2  # the setup and the first turn; the refused one never went
    [record] = live_records(live_gw, "live-budget")
    assert record["cost_nanos"] == 2 * NANOS_PER_TOKEN_IN + 3 * NANOS_PER_TOKEN_OUT


def test_budget_stops_a_gateway_run_session(live_gw: TlsGateway) -> None:
    plain = live_gw.create_key("live-budget-local", "--budget-usd", "0.5")
    client = sdk(live_gw, plain)
    seen: list[Any] = []

    async def talk() -> tuple[str, int]:
        config = {**TEXT_ONLY, "max_output_tokens": 20}
        async with client.aio.live.connect(model="gemma-priced", config=config) as session:
            first = (await say(session, "What is the capital of France?"))[0]
            await session.send_client_content(turns={"parts": [{"text": "word " * 1000}]})
            with pytest.raises(errors.APIError) as info:
                async for message in session.receive():
                    seen.append(message)
            return first, info.value.code

    first, code = asyncio.run(talk())
    assert first.strip() and code == 1000
    assert [m.go_away is not None for m in seen] == [True]
    [record] = live_records(live_gw, "live-budget-local")
    assert record["status"] == "ok" and record["cost_nanos"] == 1000 * record["total_tokens"] * 1000


def test_session_limit_per_key(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    client = sdk(live_gw, key[1])

    async def talk() -> errors.APIError:
        async with (
            client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY),
            client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY),
            client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY),
        ):
            with pytest.raises(errors.APIError) as info:
                async with client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY) as fourth:
                    async for _ in fourth.receive():
                        pass
            return info.value

    err = asyncio.run(talk())
    assert err.code == 1011 and "open Live sessions" in str(err.details)

    async def again() -> str:  # closed sessions give their slots back
        async with client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY) as session:
            return (await say(session, "back"))[0]

    assert asyncio.run(again()) == "echo: back"


def test_idle_session_is_closed(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    client = sdk(live_gw, key[1])

    async def talk() -> tuple[list[Any], int, float]:
        seen: list[Any] = []
        async with client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY) as session:
            started = time.monotonic()
            with pytest.raises(errors.APIError) as info:
                async for message in session.receive():
                    seen.append(message)
            return seen, info.value.code, time.monotonic() - started

    seen, code, waited = asyncio.run(talk())
    assert [m.go_away is not None for m in seen] == [True]
    assert code == 1000 and 3.5 < waited < 8


def test_key_in_query_never_logged(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    async def talk() -> bytes | str:
        url = live_gw.base_url.replace("https", "wss") + (
            "//ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
            f"?key={key[1]}")
        async with websockets.connect(url, ssl=live_gw.ssl_context()) as ws:
            await ws.send(SETUP_FRAME)
            return await ws.recv()

    assert b"setupComplete" in (lambda r: r if isinstance(r, bytes) else r.encode())(asyncio.run(talk()))
    assert key[1] not in live_gw.log.read_text()


# --- ephemeral tokens ----------------------------------------------------------------------


def test_ephemeral_token(live_gw: TlsGateway, live_fake: FakeGeminiLive, key: tuple[str, str]) -> None:
    name, plain = key
    minting = sdk(live_gw, plain, api_version="v1alpha")
    token = minting.auth_tokens.create(config={
        "uses": 1,
        "live_connect_constraints": {
            "model": GOOGLE, "config": {"system_instruction": "locked instruction", **TEXT_ONLY},
        },
    })
    assert token.name and token.name.startswith("auth_tokens/")
    client = sdk(live_gw, token.name, api_version="v1alpha")

    async def talk() -> str:
        config = {**TEXT_ONLY, "system_instruction": "the client's own"}
        async with client.aio.live.connect(model="anything", config=config) as session:
            return (await say(session, "hi token"))[0]

    assert asyncio.run(talk()) == "echo: hi token"
    setup = live_fake.sessions[-1].setup
    assert setup is not None and setup["model"] == "models/gemini-live-upstream-001"
    assert setup["systemInstruction"]["parts"][0]["text"] == "locked instruction"
    assert len(live_records(live_gw, name)) == 1  # billed to the key that minted it
    # One use only.
    err = refusal(client, GOOGLE)
    assert err.code == 1008 and "ephemeral token" in str(err.details)
    # It works for nothing else: not as an API key, not on an HTTP endpoint.
    resp = httpx.post(
        f"{live_gw.base_url}/v1beta/models/{LOCAL}:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": token.name}, verify=live_gw.ssl_context(),
    )
    assert resp.status_code == 400 and "API key not valid" in resp.json()["error"]["message"]
    for headers in ({"x-goog-api-key": token.name}, {"authorization": f"Token {token.name}"}):
        code, reason = asyncio.run(raw_close(live_gw, headers))
        assert code == 1008, reason


async def raw_close(gw: TlsGateway, headers: dict[str, str], path: str = "BidiGenerateContent") -> tuple[int, str]:
    """The close frame a raw WebSocket client gets for its setup."""
    url = gw.base_url.replace("https", "wss") + f"/ws/google.ai.generativelanguage.v1beta.GenerativeService.{path}"
    async with websockets.connect(url, additional_headers=headers, ssl=gw.ssl_context()) as ws:
        await ws.send(SETUP_FRAME)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


def test_ephemeral_token_expiry(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    minting = sdk(live_gw, key[1], api_version="v1alpha")
    now = datetime.datetime.now(datetime.UTC)
    token = minting.auth_tokens.create(config={
        "uses": 0,  # no limit on sessions
        "expire_time": now + datetime.timedelta(seconds=3),
        "new_session_expire_time": now + datetime.timedelta(seconds=1.5),
    })
    assert token.name is not None
    client = sdk(live_gw, token.name, api_version="v1alpha")

    async def held() -> tuple[list[Any], int]:
        seen: list[Any] = []
        async with client.aio.live.connect(model=GOOGLE, config=TEXT_ONLY) as session:
            with pytest.raises(errors.APIError) as info:
                async for message in session.receive():
                    seen.append(message)
        return seen, info.value.code

    seen, code = asyncio.run(held())  # the session ends when the token expires
    assert [m.go_away is not None for m in seen] == [True] and code == 1000
    err = refusal(client, GOOGLE)  # and no new session starts after its window
    assert err.code == 1008


def test_auth_token_bad_request(live_gw: TlsGateway, key: tuple[str, str]) -> None:
    url = f"{live_gw.base_url}/v1alpha/auth_tokens"
    resp = httpx.post(url, json={"uses": -1}, headers={"x-goog-api-key": key[1]}, verify=live_gw.ssl_context())
    assert resp.status_code == 400 and resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    resp = httpx.post(url, json={"bidiGenerateContentSetup": {"model": "models/nope"}},
                      headers={"x-goog-api-key": key[1]}, verify=live_gw.ssl_context())
    assert resp.status_code == 404
    resp = httpx.post(url, json={}, verify=live_gw.ssl_context())
    assert resp.status_code == 403


def test_serve_refuses_a_missing_certificate(tmp_path: Any) -> None:
    from tests.gateway_process import run_cli

    config = tmp_path / "gemgate.toml"
    config.write_text(f'[server]\ntls_cert = "{tmp_path}/none.pem"\ntls_key = "{tmp_path}/none.key"\n'
                      f'[database]\nurl = "sqlite:///{tmp_path}/g.db"\n')
    result = run_cli("serve", config=config, check=False)
    assert result.returncode == 2
    said = " ".join(result.stderr.split())
    assert "server.tls_cert" in said and "is not a readable file" in said
    assert "listening" not in said
