"""What every HTTP upstream adapter does alike: send a request and read its answer, with
transport failures turned into the gateway errors that tell the attempt loop what they
mean for a retry.

- No connection in time, or none at all (refused, reset before an answer):
  :class:`~gemgate.errors.UpstreamUnreachable` — another channel may be tried.
- The request was sent and the answer did not come in time:
  :class:`~gemgate.errors.DeadlineExceeded` — the upstream may be working on it.
- The answer broke off while it was being read: :class:`~gemgate.errors.BadGateway`.

A failed connect's exception (and what it chained) is stripped of its traceback before it
is dropped: its frames form reference cycles that only the garbage collector would free,
and a channel refusing every connection would otherwise make it run every few requests.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from gemgate.errors import BadGateway, DeadlineExceeded, UpstreamUnreachable


async def send(
    session: aiohttp.ClientSession, url: str, provider: str, method: str = "POST", **kwargs: Any
) -> aiohttp.ClientResponse:
    """Send the request and return the response once its headers arrived."""
    try:
        return await session.request(method, url, **kwargs)
    except aiohttp.ConnectionTimeoutError as exc:
        _drop_frames(exc)
        raise UpstreamUnreachable(f"Upstream '{provider}' did not accept a connection in time.") from None
    except TimeoutError:
        raise DeadlineExceeded(f"Upstream '{provider}' timed out.") from None
    except aiohttp.ClientError as exc:
        kind = type(exc).__name__
        _drop_frames(exc)
        raise UpstreamUnreachable(f"Upstream '{provider}' could not be reached: {kind}") from None


async def read(resp: aiohttp.ClientResponse, provider: str) -> bytes:
    """The whole body of ``resp``, which is released after."""
    try:
        return await resp.read()
    except TimeoutError:
        raise DeadlineExceeded(f"Upstream '{provider}' timed out.") from None
    except aiohttp.ClientError:
        raise BadGateway(f"Upstream '{provider}' broke off its answer.") from None
    finally:
        resp.release()


def retry_after(resp: aiohttp.ClientResponse) -> int | None:
    """The answer's ``Retry-After`` in whole seconds, when it gives one."""
    value = resp.headers.get("retry-after", "")
    return int(value) if value.isdigit() else None


def _drop_frames(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        seen.__traceback__ = None
        seen = seen.__cause__ or seen.__context__
