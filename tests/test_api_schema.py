"""OpenAPI: the schema generates without a warning or error, documents every endpoint with
request/response schemas and the error body, and the docs pages use no CDN."""

from __future__ import annotations

import io
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.test_api_support import url

pytestmark = pytest.mark.django_db

OUR_PATHS = (
    "payment-methods/",
    "payments/",
    "refunds/",
    "config/",
    "webhooks/providers/",
    "webhooks/health/",
    "webhooks/stats/",
)


def test_spectacular_validate_has_no_warnings_or_errors(tmp_path: Any) -> None:
    from drf_spectacular.drainage import GENERATOR_STATS

    target = tmp_path / "schema.yaml"
    GENERATOR_STATS.reset()
    # --fail-on-warn turns any warning into a CommandError; --validate checks the document
    # against the OpenAPI 3 JSON schema.
    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--file",
        str(target),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert not GENERATOR_STATS._warn_cache
    assert not GENERATOR_STATS._error_cache
    schema = yaml.safe_load(target.read_text())
    assert any(path.startswith("/paydesk/api/v1/payments/") for path in schema["paths"])


@pytest.fixture
def schema() -> dict[str, Any]:
    response = APIClient().get(url("schema/"), {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "patch", "put", "delete")
    ]


def test_the_served_schema_covers_paydesks_api_only(schema: dict[str, Any]) -> None:
    paths = set(schema["paths"])
    for ours in OUR_PATHS:
        assert "/paydesk/api/v1/" + ours in paths
    assert all(path.startswith("/paydesk/api/v1/") for path in paths)
    assert schema["info"]["title"] == "paydesk API"


def test_every_operation_has_schemas_and_the_error_body(schema: dict[str, Any]) -> None:
    ours = [op for op in _operations(schema) if "/currencies" not in op[0]]
    assert len(ours) >= 20
    for path, method, operation in ours:
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert success, (path, method)
        for code in success:
            if code != "204":
                assert "application/json" in responses[code]["content"], (path, method, code)
        errors = [code for code in responses if code[0] in "45"]
        if path.endswith("/webhooks/health/"):
            errors.remove("503")  # an unhealthy report, not an error
        assert "401" in errors, (path, method)
        for code in errors:
            content = responses[code]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (path, code)
            assert content["examples"], (path, code)
        if method in ("post", "patch") and not path.endswith(("/process/", "/set-default/")):
            assert "requestBody" in operation, (path, method)
        if method == "post":
            headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
            assert "Idempotency-Key" in headers, path
            assert "422" in responses
            assert "409" in responses
        if "{id}" in path:
            assert "404" in responses, path
    error = schema["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"type", "code", "message", "param"}


def test_amounts_are_documented_as_decimal_strings(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    assert components["Payment"]["properties"]["amount"]["type"] == "string"
    request = components.get("PaymentCreateRequest") or components["PaymentCreate"]
    assert request["properties"]["amount"]["type"] == "string"
    assert request["properties"]["amount"]["format"] == "decimal"
    assert "payments" in {tag for _p, _m, op in _operations(schema) for tag in op.get("tags", [])}


def test_list_endpoints_document_filters_and_pagination(schema: dict[str, Any]) -> None:
    params = {p["name"] for p in schema["paths"]["/paydesk/api/v1/payments/"]["get"]["parameters"]}
    assert {
        "status",
        "provider",
        "currency",
        "created_after",
        "created_before",
        "ordering",
    } <= params
    assert {"page", "page_size"} <= params


@pytest.mark.parametrize(
    ("page", "asset"), [("docs/", "swagger-ui-bundle.js"), ("redoc/", "redoc.standalone.js")]
)
def test_docs_pages_load_their_assets_from_static_files(page: str, asset: str) -> None:
    response = APIClient().get(url(page))
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert asset in html
    at = html.lower().find("cdn")
    assert at == -1, html[max(at - 300, 0) : at + 300]
    assert "https://" not in html
    assert "http://" not in html
    assert "/paydesk/api/v1/schema/" in html


def test_sidecar_assets_exist() -> None:
    from pathlib import Path

    import drf_spectacular_sidecar
    from django.contrib.staticfiles import finders  # noqa: F401 - app finders need no app

    root = Path(drf_spectacular_sidecar.__file__).parent / "static" / "drf_spectacular_sidecar"
    assert (root / "swagger-ui-dist" / "swagger-ui-bundle.js").exists()
    assert (root / "redoc" / "bundles" / "redoc.standalone.js").exists()
