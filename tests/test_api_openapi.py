"""The OpenAPI schema is the API (issue 11, defect 9): the status codes each route really
answers, one error body, strict constraints, and both audio uploads usable from the schema.
(The fuzz suite, tests/test_fuzz_api.py, checks real answers against it.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.api_server import make_chain, make_settings
from tuneforge.api.app import create_app


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict[str, Any]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    chain_path, _ = make_chain(tmp)
    return create_app(make_settings(tmp, chain_path)).openapi()


def operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }


def codes(operation: dict[str, Any]) -> set[str]:
    return set(operation["responses"])


def test_every_error_code_has_the_detail_body_and_there_is_no_phantom_422(schema) -> None:
    assert schema["components"]["schemas"]["ErrorBody"]["required"] == ["detail"]
    for name, operation in operations(schema).items():
        assert "422" not in codes(operation), name
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")):
                body = response["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/ErrorBody"}, (name, code)
        if name.split()[1].startswith("/api/v1/") and "health" not in name:
            assert {"400", "413", "429", "431"} <= codes(operation), name
            assert "401" in codes(operation) and operation.get("security"), name


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("POST /api/v1/music/generate", {"201", "401", "402"}),
        ("GET /api/v1/music/status/{request_id}", {"200", "404"}),
        ("POST /api/v1/scores", {"200", "201", "403", "409"}),
        ("PUT /api/v1/scores/audio/{track_id}", {"200", "201", "403", "404", "409"}),
        ("PUT /api/v1/validator/audio/{sha256}", {"200", "201", "403", "409"}),
        ("POST /api/v1/validator/jobs/{request_id}/result", {"200", "403", "404", "409"}),
        ("GET /api/v1/scores/miners/{hotkey}", {"200", "404"}),
    ],
)
def test_routes_document_the_codes_they_answer(schema, operation, expected) -> None:
    assert expected <= codes(operations(schema)[operation])


@pytest.mark.parametrize(
    "operation", ["PUT /api/v1/scores/audio/{track_id}", "PUT /api/v1/validator/audio/{sha256}"]
)
def test_audio_uploads_carry_a_binary_body_in_the_schema(schema, operation) -> None:
    body = operations(schema)[operation]["requestBody"]
    assert body["required"] is True
    for media in ("audio/wav", "application/octet-stream"):
        assert body["content"][media]["schema"] == {"type": "string", "format": "binary"}


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_constraints_are_in_the_schema(schema) -> None:
    models = schema["components"]["schemas"]
    publish = models["PublishRound"]["properties"]
    assert publish["block"]["minimum"] == 0 and publish["block"]["maximum"] == 2**53 - 1
    assert "unique" in publish["results"]["description"]
    result = models["PublishedResult"]["properties"]
    assert result["track_id"]["pattern"] and result["audio_sha256"]["pattern"] == "^[0-9a-f]{64}$"
    assert (result["final_score"]["minimum"], result["final_score"]["maximum"]) == (0.0, 1.0)
    assert result["excluded"]["maxProperties"] == 32
    assert result["excluded"]["additionalProperties"]["maxLength"] == 300
    assert result["score_breakdown"]["maxProperties"] == 64
    generate = models["GenerateRequest"]["properties"]
    assert generate["prompt"]["maxLength"] == 500 and generate["key"]["anyOf"][0]["pattern"]
    params = {
        p["name"]: p["schema"]
        for p in operations(schema)["GET /api/v1/scores/export"]["parameters"]
    }
    since = params["since"]["anyOf"][0]
    assert since["format"] == "date-time" and since["type"] == "string"
    assert params["cursor"]["anyOf"][0]["pattern"]
    status = operations(schema)["GET /api/v1/music/status/{request_id}"]["parameters"]
    assert status[0]["schema"]["pattern"].startswith("^req_")
    assert set(schema["components"]["securitySchemes"]) == {
        "ApiKey",
        "Hotkey",
        "HotkeyNonce",
        "HotkeySignature",
    }
