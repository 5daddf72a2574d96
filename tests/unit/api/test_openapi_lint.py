"""The OpenAPI document fits client generators: validators and ``@redocly/cli lint`` agree.

redocly is installed repo-locally by ``make redocly`` (``make test`` depends on it). Without
it the lint test skips, except under ``CI=true``, where a missing tool is a failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from vaultside.api.openapi import all_operations, build_document
from vaultside.api.openapi_fit import operation_id, response_name, tag_of

ROOT = Path(__file__).resolve().parents[3]
REDOCLY = ROOT / ".tools" / "redocly" / "node_modules" / ".bin" / "redocly"


def _document() -> dict[str, Any]:
    return json.loads(json.dumps(build_document(all_operations())))


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def test_openapi_spec_validator_accepts_the_document() -> None:
    validate(_document())


def test_every_operation_has_a_url_safe_unique_id_a_declared_tag_and_a_4xx() -> None:
    doc = _document()
    declared = {t["name"] for t in doc["tags"]}
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    for method, path, op in _operations(doc):
        assert re.fullmatch(r"[A-Za-z0-9]+", op["operationId"]), (method, path)
        assert set(op["tags"]) <= declared, (method, path)
        assert any(code.startswith("4") for code in op["responses"]), (method, path)
        for code, resp in op["responses"].items():
            if not code.startswith("2"):
                assert resp == {"$ref": f"#/components/responses/{response_name(int(code))}"}
    assert doc["servers"][0]["variables"]["host"]["default"] == "127.0.0.1:8200"


def test_shared_schemas_are_refs() -> None:
    doc = _document()
    put = doc["paths"]["/v1/secrets/{path}"]["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SecretWrite"}
    meta = doc["paths"]["/v1/secrets/{path}:metadata"]["get"]["responses"]["200"]
    assert meta["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SecretMeta"
    }
    # SecretMeta shares VersionMeta inside its definition too.
    versions = doc["components"]["schemas"]["SecretMeta"]["properties"]["versions"]
    assert versions["additionalProperties"] == {"$ref": "#/components/schemas/VersionMeta"}


def test_ids_and_tags_are_derived_from_method_and_path() -> None:
    assert operation_id("GET", "/v1/secrets/{path}:versions") == "getSecretsByPathVersions"
    assert operation_id("POST", "/v1/auth/token/lookup-self") == "postAuthTokenLookupSelf"
    assert operation_id("GET", "/v1/openapi.json") == "getOpenapiJson"
    assert operation_id("GET", "/metrics") == "getMetrics"
    assert tag_of("/v1/openapi.json") == "openapi"
    assert tag_of("/v1/sys/leaders") == "sys"
    assert response_name(413) == "RequestEntityTooLarge"


def test_a_new_operation_gets_the_same_treatment() -> None:
    from vaultside.api.openapi import Operation

    extra = Operation("GET", "/v1/sys/example-new", "A route another change adds.", None, errors=())
    doc = json.loads(json.dumps(build_document((*all_operations(), extra))))
    op = doc["paths"]["/v1/sys/example-new"]["get"]
    assert op["operationId"] == "getSysExampleNew"
    assert op["tags"] == ["sys"]
    assert op["responses"]["400"] == {"$ref": "#/components/responses/BadRequest"}


def test_pydantic_bounds_become_json_schema_keywords() -> None:
    from vaultside.api.openapi_fit import json_schema_bounds

    leaked = {"type": "object", "properties": {"ttl": {"type": "number", "gt": 0, "le": 60}}}
    assert json_schema_bounds(leaked)["properties"]["ttl"] == {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 60,
    }
    # a property that happens to be named "gt" is left alone
    named = {"type": "object", "properties": {"gt": {"type": "integer"}}}
    assert json_schema_bounds(named) == named


def test_two_operations_with_one_id_fail_the_build() -> None:
    from vaultside.api.openapi import Operation

    a = Operation("GET", "/v1/x/y-z", "a", None)
    b = Operation("GET", "/v1/x/yZ", "b", None)
    with pytest.raises(ValueError, match="getXYZ"):
        build_document((a, b))


def test_redocly_lint_recommended_is_clean(tmp_path: Path) -> None:
    if not REDOCLY.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{REDOCLY} missing: run `make redocly`")
        pytest.skip("redocly not installed (make redocly)")
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(_document()))
    env = {
        **os.environ,
        "REDOCLY_TELEMETRY": "off",
        "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
        "NO_COLOR": "1",
    }
    proc = subprocess.run(
        [str(REDOCLY), "lint", "--extends", "recommended", "--format", "json", str(spec)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    problems = [
        f"{p['severity']} {p['ruleId']}: {p['message']} at "
        f"{[loc.get('pointer') for loc in p.get('location', [])]}"
        for p in report.get("problems", [])
    ]
    assert problems == [], "\n".join(problems)
    assert report["totals"]["errors"] == 0 and report["totals"]["warnings"] == 0
    assert proc.returncode == 0, proc.stderr[-2000:]
