"""Bad resource requests get a clear answer in Google's error envelope, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.gateway_process import GatewayProcess

CASES: list[tuple[str, str, Any, int]] = [
    ("POST", "/v1beta/cachedContents", {}, 400),
    ("POST", "/v1beta/cachedContents", {"model": "models/no-such-model", "contents": [{"parts": [{"text": "x"}]}]}, 404),
    ("POST", "/v1beta/cachedContents", {"model": "models/gemma-3-270m"}, 400),
    ("POST", "/v1beta/cachedContents", {"model": "models/gemma-3-270m", "contents": "nope"}, 400),
    ("POST", "/v1beta/cachedContents", {"model": "models/gemma-3-270m", "contents": [{"parts": [{"text": "x"}]}],
                                        "ttl": "1s", "expireTime": "2030-01-01T00:00:00Z"}, 400),
    ("POST", "/v1beta/cachedContents", {"model": "models/gemma-3-270m", "contents": [{"parts": [{"text": "x"}]}],
                                        "colour": "blue"}, 400),
    ("PATCH", "/v1beta/cachedContents/0123456789abcdef01234567", {"ttl": "60s"}, 404),
    ("GET", "/v1beta/cachedContents/BAD_NAME", None, 400),
    ("POST", "/v1beta/models/gemma-3-270m:batchGenerateContent", {}, 400),
    ("POST", "/v1beta/models/gemma-3-270m:batchGenerateContent", {"batch": {"inputConfig": {}}}, 400),
    ("POST", "/v1beta/models/gemma-3-270m:batchGenerateContent",
     {"batch": {"inputConfig": {"requests": {"requests": []}}}}, 400),
    ("POST", "/v1beta/models/gemma-3-270m:batchGenerateContent",
     {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": 5}}]}}}}, 400),
    ("POST", "/v1beta/models/gemma-3-270m:batchGenerateContent",
     {"batch": {"inputConfig": {"fileName": "files/0123456789abcdef01234567"}}}, 404),
    ("POST", "/v1beta/models/no-such-model:batchGenerateContent",
     {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]}}}},
     404),
    ("GET", "/v1beta/batches/NOT-A-BATCH!", None, 400),
    ("GET", "/v1beta/batches/0123456789abcdef01234567", None, 404),
    ("POST", "/v1beta/batches/0123456789abcdef01234567:cancel", {}, 404),
    ("GET", "/v1beta/models/gemini-2.5-flash/operations/xyz", None, 404),
    ("GET", "/v1beta/batches?pageSize=-1", None, 400),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), CASES)
def test_bad_input(
    resource_gw: GatewayProcess, make_key: Callable[..., str], method: str, path: str, body: Any, status: int
) -> None:
    resp = httpx.request(method, resource_gw.base_url + path, json=body, headers={"x-goog-api-key": make_key()})
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == status and error["message"] and error["status"]


def test_a_key_limited_to_other_models_cannot_make_resources_for_this_one(
    resource_gw: GatewayProcess, make_key: Callable[..., str]
) -> None:
    key = make_key("--models", "gemma-3-270m")
    request = {"contents": [{"parts": [{"text": " ".join(["w"] * 1100)}]}]}
    for path, body in (
        ("/v1beta/cachedContents", {"model": "models/gemini-2.5-flash", **request}),
        ("/v1beta/models/gemini-2.5-flash:batchGenerateContent",
         {"batch": {"inputConfig": {"requests": {"requests": [{"request": request}]}}}}),
    ):
        resp = httpx.post(resource_gw.base_url + path, json=body, headers={"x-goog-api-key": key})
        assert resp.status_code == 403, resp.text
