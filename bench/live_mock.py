"""A mock of Google's Live API for the Live benchmark: ``python -m bench.live_mock PORT``.

Answers the setup with ``setupComplete`` and each complete client turn with
:data:`CHUNKS` one-word ``modelTurn`` frames and one frame carrying ``turnComplete`` and the
turn's ``usageMetadata``, at once (no think time), as binary messages like Google's. It
checks no key. It runs in its own process so that it never shares the gateway's or the
load generator's event loop.
"""

from __future__ import annotations

import json
import sys

from aiohttp import WSMsgType, web

LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
CHUNKS = 4
_WORDS = [json.dumps({"serverContent": {"modelTurn": {"parts": [{"text": f"w{i} "}]}}}).encode()
          for i in range(CHUNKS)]
_SETUP = b'{"setupComplete":{}}'


def _done(prompt: int) -> bytes:
    return json.dumps({
        "serverContent": {"turnComplete": True},
        "usageMetadata": {"promptTokenCount": prompt, "responseTokenCount": CHUNKS,
                          "totalTokenCount": prompt + CHUNKS},
    }).encode()


async def handle(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
    await ws.prepare(request)
    set_up = False
    prompt = 0
    async for msg in ws:
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            break
        if not set_up:
            set_up = True
            await ws.send_bytes(_SETUP)
            continue
        prompt += CHUNKS + len(msg.data) // 4
        if b"turnComplete" in (msg.data if isinstance(msg.data, bytes) else msg.data.encode()):
            for word in _WORDS:
                await ws.send_bytes(word)
            await ws.send_bytes(_done(prompt))
    return ws


def main() -> None:
    app = web.Application()
    app.router.add_get(LIVE_PATH, handle)
    app.router.add_get("/healthz", lambda _r: web.Response(text="ok"))
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                backlog=4096)


if __name__ == "__main__":
    main()
