"""OAuth access tokens for Vertex AI, minted from service-account JSONs with google-auth.

Each service account is one upstream key of its provider's pool (:class:`ServiceAccount`).
The pool's key holds the account's current access token, so the attempt loop hands the
provider the token it chose, exactly as it hands other providers an API key; the key's
label is the account's ``client_email``. Tokens are minted by signing a JWT assertion with
the account's private key and exchanging it at the account's own ``token_uri`` (google-auth
does both; its HTTP call runs on a worker thread, never on the event loop).

A token is refreshed BEFORE a request whenever it would expire within the refresh margin
(five minutes, or half the token's lifetime when Google grants shorter ones), so no request
or stream is ever sent with a token about to lapse. Refreshes of one account are single
flight: concurrent requests wait for the one refresh in progress.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.oauth2 import service_account

from gemgate.errors import CredentialRejected, GatewayError, UpstreamUnreachable
from gemgate.routing.keys import UpstreamKey

log = logging.getLogger("gemgate.vertex")

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN_S = 300.0
# The pool key's secret until the first token is minted: never sent, never a credential.
UNMINTED = "vertex-token-not-minted-yet:"


class _Transport:
    """google-auth's requests transport with the gateway's own timeout."""

    def __init__(self, timeout: float) -> None:
        self._session = requests.Session()
        self._request = google.auth.transport.requests.Request(self._session)
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return self._request(*args, **kwargs)

    def close(self) -> None:
        self._session.close()


class ServiceAccount:
    """One service account: its google-auth credentials, its pool key and its tokens."""

    def __init__(self, info_json: str, key: UpstreamKey, clock: Callable[[], float] = time.time) -> None:
        info = json.loads(info_json)
        self.email: str = info["client_email"]
        self.private_key: str = info["private_key"]
        self._credentials = service_account.Credentials.from_service_account_info(
            info, scopes=[CLOUD_PLATFORM]
        )
        self.key = key
        self._clock = clock
        self._lock = asyncio.Lock()
        self._expires_at = 0.0  # epoch seconds
        self._lifetime = 0.0
        self.minted: list[str] = []  # every token minted, for scrubbing (newest last)
        self.refreshes = 0

    @property
    def token(self) -> str | None:
        secret = self.key.secret
        return None if secret.startswith(UNMINTED) else secret

    def knows(self, credential: str) -> bool:
        return credential == self.key.secret or credential in self.minted

    def _fresh(self) -> bool:
        if self.token is None:
            return False
        margin = min(REFRESH_MARGIN_S, self._lifetime / 2)
        return self._expires_at - self._clock() > margin

    def forget(self, token: str) -> None:
        """The upstream refused ``token`` as expired: mint a new one on the next request."""
        if token == self.key.secret:
            self._expires_at = 0.0

    async def access_token(self, transport: _Transport, provider: str) -> str:
        """A token valid for well beyond the refresh margin, minting one when needed."""
        if self._fresh():
            return self.key.secret
        async with self._lock:
            if not self._fresh():
                await self._refresh(transport, provider)
        return self.key.secret

    async def _refresh(self, transport: _Transport, provider: str) -> None:
        try:
            await asyncio.to_thread(self._credentials.refresh, transport)
        except google.auth.exceptions.RefreshError:
            # The token endpoint refused the account (revoked, disabled, wrong key): its
            # answer may quote the assertion, so none of it is kept.
            raise CredentialRejected(
                f"Upstream '{provider}': the token endpoint refused service account {self.email}."
            ) from None
        except google.auth.exceptions.TransportError:
            raise UpstreamUnreachable(
                f"Upstream '{provider}': the token endpoint of service account {self.email} "
                "could not be reached."
            ) from None
        except GatewayError:
            raise
        except Exception as exc:  # a malformed answer from the token endpoint
            raise UpstreamUnreachable(
                f"Upstream '{provider}': minting a token for {self.email} failed "
                f"({type(exc).__name__})."
            ) from None
        token = self._credentials.token
        if not isinstance(token, str) or not token:
            raise UpstreamUnreachable(f"Upstream '{provider}': the token endpoint sent no token.")
        now = self._clock()
        expiry = self._credentials.expiry
        expires_at = (
            expiry.replace(tzinfo=UTC).timestamp() if isinstance(expiry, datetime) else now + 3600
        )
        self._lifetime = max(expires_at - now, 0.0)
        self._expires_at = expires_at
        self.minted.append(token)
        del self.minted[:-8]  # the few most recent tokens are enough to recognise
        self.key.secret = token
        self.refreshes += 1
        log.info("minted an access token for %s (valid %.0f s)", self.email, self._lifetime)


class TokenMinter:
    """The service accounts of one provider, and the HTTP session that mints their tokens."""

    def __init__(self, accounts: list[ServiceAccount], timeout: float) -> None:
        self.accounts = accounts
        self._transport = _Transport(timeout)

    def account_for(self, credential: str | None) -> ServiceAccount | None:
        """The account whose token ``credential`` is (None: the first account); None when
        the credential is not one of ours (it is then sent as it is)."""
        if credential is None:
            return self.accounts[0] if self.accounts else None
        return next((a for a in self.accounts if a.knows(credential)), None)

    async def token(self, account: ServiceAccount, provider: str) -> str:
        return await account.access_token(self._transport, provider)

    async def mint_all(self, provider: str) -> None:
        """Mint every account's first token (at start; a failure waits for the first request)."""
        for account in self.accounts:
            try:
                await self.token(account, provider)
            except GatewayError as exc:
                log.warning("%s: no token yet for %s: %s", provider, account.email, exc.message)

    def secrets(self) -> tuple[str, ...]:
        """Everything that must never show: private keys and every token minted."""
        out: list[str] = []
        for account in self.accounts:
            out.append(account.private_key)
            out.extend(account.minted)
        return tuple(out)

    def close(self) -> None:
        self._transport.close()
