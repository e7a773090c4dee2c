"""The OpenAPI 3.1 description at /admin/api/openapi.json: well formed, every schema a
valid JSON Schema (2020-12, as OpenAPI 3.1 uses), every reference resolving, every route
described, and real answers valid against what it says."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from tests.admin.console_gateway import MODEL, admin, generate
from tests.gateway_process import GatewayProcess

from gemgate.admin.openapi import SCHEMAS

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def doc(console_gw: GatewayProcess) -> dict[str, Any]:
    resp = admin(console_gw).get("/openapi.json")
    assert resp.status_code == 200
    data: dict[str, Any] = resp.json()
    return data


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_document_is_well_formed(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["info"]["version"]
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)  # raises, naming the bad keyword
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref
    ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/admin/api/")
        for method, op in item.items():
            assert method in METHODS
            ids.append(op["operationId"])
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), path
            for p in op.get("parameters", []):
                Draft202012Validator.check_schema(p["schema"])
            assert op["responses"] and all(code.isdigit() for code in op["responses"])
            for response in op["responses"].values():
                assert response["description"]
    assert len(ids) == len(set(ids))
    schemes = doc["components"]["securitySchemes"]
    for requirement in doc["security"]:
        assert set(requirement) <= set(schemes)


def test_every_route_is_described(console_gw: GatewayProcess, doc: dict[str, Any]) -> None:
    from tests.admin.test_console_security import ROUTES

    described = {(m.upper(), p.removeprefix("/admin/api")) for p, item in doc["paths"].items() for m in item}
    assert {(m, re.sub(r"/1(?=/|$)", "/{id}", p)) for m, p in ROUTES} == described


def validator(doc: dict[str, Any], name: str) -> Draft202012Validator:
    registry: Registry = Registry().with_resource("urn:admin", Resource.from_contents(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **doc}))
    return Draft202012Validator({"$ref": f"urn:admin#/components/schemas/{name}"}, registry=registry)


def test_answers_match_the_description(console_gw: GatewayProcess, doc: dict[str, Any]) -> None:
    api = admin(console_gw)
    created = api.post("/keys", json={"name": "described", "budget_usd": "1"})
    validator(doc, "KeyCreated").validate(created.json())
    assert generate(console_gw, created.json()["key"]).status_code == 200
    record_id = api.get("/log").json()["rows"][0]["id"]
    for path, params, name in (
        ("/keys", {}, "KeyList"), ("/channels", {}, "ChannelList"),
        ("/usage", {"group_by": "hour"}, "UsageReport"), ("/usage", {"group_by": "channel"}, "UsageReport"),
        ("/log", {"model": MODEL}, "LogPage"), (f"/log/{record_id}", {}, "LogRecord"),
        (f"/keys/{created.json()['record']['id']}", {}, "Key"),
    ):
        validator(doc, name).validate(api.get(path, params=params).json())
    validator(doc, "Error").validate(api.get("/keys/0").json())
    assert set(SCHEMAS) == set(doc["components"]["schemas"])
