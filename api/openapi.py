"""The OpenAPI 3.1 document, generated from the msgspec schemas (served at /docs/api).

Every status an operation can really answer is listed with the schema of its body, so
a client (and schemathesis, ``tests/integration/test_schemathesis.py``) can rely on the
document: every error is an ``ErrorResponse`` (``api.errors`` has the table of types),
``/ready``'s 503 is a ``Readiness``, and a reload that has not reached every worker
within its wait is a 202 with a ``ReloadResponse``. 500 is not listed: it is a bug.
The role each operation needs comes from the access table (``api.access``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from api.access import ROUTE_ROLES
from api.routes.health import Health, Readiness
from api.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    FeedbackBatchRequest,
    FeedbackBatchResponse,
    FeedbackRequest,
    FeedbackResponse,
    ModelsResponse,
    ReloadRequest,
    ReloadResponse,
    RollbackRequest,
    ScoreRequest,
    ScoreResponse,
    ShadowRequest,
    ShadowResponse,
)
from engine.monitoring.compare import Comparison

_ERRORS = {
    "400": "Body is not JSON (invalid_json: malformed, not UTF-8, NaN/Infinity, nested too "
    "deeply), an object repeats a key (duplicate_key), or the client closed the request "
    "before its body arrived (client_disconnected)",
    "401": "Missing, invalid or expired token (unauthorized)",
    "403": "The token's role may not do this (forbidden)",
    "404": "Unknown vertical (unknown_vertical); error.field names it. Feedback: no lead "
    "was scored with this lead_id within the retention period (unknown_lead)",
    "408": "The body did not arrive within BODY_TIMEOUT_SECONDS (request_timeout)",
    "409": "A version to activate or roll back to is missing or fails verification "
    "(reload_failed); nothing changed. Feedback: the lead already has an outcome "
    "(duplicate_outcome)",
    "413": "Body over the route's limit, or batch over MAX_BATCH (payload_too_large)",
    "415": "Content-Type is not application/json (unsupported_media_type)",
    "422": "Schema, type or range violation (validation_error); error.field names it",
    "503": "No verified model loaded for the vertical (model_unavailable); the monitoring "
    "store could not be opened (feedback_unavailable)",
}
# Answered before any route code runs: by the access gate (401/403) and by the body
# reader (408, 413, 415) on every route that takes a body.
# Request examples (the demo's auto vertical, examples/leads/auto.json): documentation,
# and the first requests schemathesis sends, so success bodies get checked too.
_LEAD = {
    "age": 35,
    "driving_years": 15,
    "vehicle_age": 3,
    "annual_mileage": 12000,
    "vehicle_make": "Toyota",
    "vehicle_model": "Camry",
    "usage_type": "commute",
    "occupation": "Software Engineer",
    "location": "Austin, TX 78701",
}
_EXAMPLES: dict[type, dict[str, Any]] = {
    ScoreRequest: {"vertical": "auto", "lead_id": "L-123", "lead_data": _LEAD},
    BatchRequest: {
        "vertical": "auto",
        "leads": [{"lead_id": "a", "lead_data": _LEAD}, {"lead_data": {**_LEAD, "age": 52}}],
    },
    ReloadRequest: {"versions": {"auto": "1.0.0"}},
    RollbackRequest: {"vertical": "auto"},
    ShadowRequest: {"vertical": "auto", "version": "1.1.0"},
    FeedbackRequest: {"lead_id": "L-123", "converted": True, "outcome_at": "2026-11-20T15:04:05Z"},
    FeedbackBatchRequest: {
        "outcomes": [{"lead_id": "L-123", "converted": True}, {"lead_id": "a", "converted": False}]
    },
}
_AUTH = ("401", "403")
_BODY = ("400", "408", "413", "415", "422")
_SCORING = (*_BODY, *_AUTH, "404", "503")
_ADMIN = (*_BODY, *_AUTH, "404", "409")
_FEEDBACK = (*_BODY, *_AUTH, "503")


def _ref(cls: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


def _json(cls: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(cls)}}}


def _operation(
    method: str,
    path: str,
    summary: str,
    response: type,
    request: type | None = None,
    errors: tuple[str, ...] = (),
    *,
    body_required: bool = True,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _json(response, "OK"), **(extra or {})}
    for code in sorted(errors):
        responses[code] = _json(ErrorResponse, _ERRORS[code])
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if request is not None:
        media = {"schema": _ref(request), "example": _EXAMPLES[request]}
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": media},
        }
    role = ROUTE_ROLES[(method.upper(), path)]
    if role is not None:
        operation["security"] = [{"bearer": []}]
        operation["description"] = (
            f"Requires a token granted role `{role}` (role `admin` is granted every role)."
        )
    return {method: operation}


def _html_operation(
    path: str, summary: str, parameters: tuple[str, ...], errors: tuple[str, ...]
) -> dict[str, Any]:
    """A GET answered with a self-contained HTML page (role from the access table)."""
    operation = _operation("get", path, summary, ErrorResponse, errors=(*_AUTH, *errors))
    page = operation["get"]
    page["responses"]["200"] = {
        "description": "A self-contained HTML page (inline SVG plots)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    page["parameters"] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in parameters
    ]
    return operation


def _compare_operation() -> dict[str, Any]:
    """GET .../compare: champion against challenger, JSON, with a window parameter."""
    path = "/api/v1/models/{vertical}/compare"
    operation = _operation(
        "get",
        path,
        "Champion against its shadow challenger on the same leads",
        Comparison,
        errors=(*_AUTH, "404", "422", "503"),
    )
    operation["get"]["parameters"] = [
        {"name": "vertical", "in": "path", "required": True, "schema": {"type": "string"}},
        {
            "name": "window_hours",
            "in": "query",
            "required": False,
            "schema": {"type": "number", "exclusiveMinimum": 0},
        },
    ]
    return operation


def _docs_operations() -> dict[str, Any]:
    """This document, the browsable page over it, and the page's files (all public)."""
    binary = {"schema": {"type": "string"}}
    return {
        "/docs/api": {
            "get": {
                "summary": "This OpenAPI 3.1 document",
                "responses": {
                    "200": {
                        "description": "The document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/docs": {
            "get": {
                "summary": "The browsable API page (Swagger UI) over this document",
                "responses": {
                    "200": {
                        "description": "An HTML page; its scripts and styles come from "
                        "/docs/assets/ (nothing from elsewhere)",
                        "content": {"text/html": binary},
                    }
                },
            }
        },
        "/docs/assets/{name}": {
            "get": {
                "summary": "A file of the API page; names carry a hash of the content, "
                "so each is cacheable for a year (Cache-Control: immutable)",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "The file",
                        "content": {
                            "text/javascript": binary,
                            "text/css": binary,
                            "image/png": binary,
                        },
                    },
                    "404": _json(ErrorResponse, "No such file (not_found)"),
                },
            }
        },
    }


def build_openapi(version: str) -> dict[str, Any]:
    """Return the OpenAPI document of the service."""
    types = (
        ScoreRequest,
        ScoreResponse,
        BatchRequest,
        BatchResponse,
        ReloadRequest,
        RollbackRequest,
        ReloadResponse,
        ModelsResponse,
        FeedbackRequest,
        FeedbackResponse,
        FeedbackBatchRequest,
        FeedbackBatchResponse,
        ShadowRequest,
        ShadowResponse,
        Comparison,
        ErrorResponse,
        Health,
        Readiness,
    )
    _, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    pending = {"202": _json(ReloadResponse, "Not every worker switched within 10 s (pending)")}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "ML Service",
            "version": version,
            "description": "Real-time lead scoring and dynamic pricing.",
        },
        "paths": {
            "/api/v1/score": _operation(
                "post", "/api/v1/score", "Score one lead", ScoreResponse, ScoreRequest, _SCORING
            ),
            "/api/v1/score/batch": _operation(
                "post",
                "/api/v1/score/batch",
                "Score many leads of one vertical",
                BatchResponse,
                BatchRequest,
                _SCORING,
            ),
            "/api/v1/models": _operation(
                "get",
                "/api/v1/models",
                "Model versions, metrics and load state per vertical",
                ModelsResponse,
                errors=_AUTH,
            ),
            "/api/v1/models/reload": _operation(
                "post",
                "/api/v1/models/reload",
                "Activate versions (or, with no body, re-read pointers) and switch every worker",
                ReloadResponse,
                ReloadRequest,
                _ADMIN,
                body_required=False,
                extra=pending,
            ),
            "/api/v1/models/rollback": _operation(
                "post",
                "/api/v1/models/rollback",
                "Re-activate a vertical's previous version",
                ReloadResponse,
                RollbackRequest,
                _ADMIN,
                extra=pending,
            ),
            "/api/v1/models/shadow": _operation(
                "post",
                "/api/v1/models/shadow",
                "Set (or clear, with version null) a vertical's shadow challenger",
                ShadowResponse,
                ShadowRequest,
                _ADMIN,
            ),
            "/api/v1/models/{vertical}/compare": _compare_operation(),
            "/api/v1/models/{vertical}/monitor": _html_operation(
                "/api/v1/models/{vertical}/monitor",
                "Production quality of the vertical's model: performance, drift, acceptance",
                ("vertical",),
                ("404", "503"),
            ),
            "/api/v1/models/{vertical}/{version}/report": _html_operation(
                "/api/v1/models/{vertical}/{version}/report",
                "The version's model report, written at training",
                ("vertical", "version"),
                ("404", "409"),
            ),
            "/api/v1/feedback": _operation(
                "post",
                "/api/v1/feedback",
                "Record whether a lead scored with a lead_id converted",
                FeedbackResponse,
                FeedbackRequest,
                (*_FEEDBACK, "404", "409"),
            ),
            "/api/v1/feedback/batch": _operation(
                "post",
                "/api/v1/feedback/batch",
                "Record many outcomes; each one's status (recorded, unknown, duplicate)",
                FeedbackBatchResponse,
                FeedbackBatchRequest,
                _FEEDBACK,
            ),
            "/health": _operation("get", "/health", "The process is alive", Health),
            "/ready": _operation(
                "get",
                "/ready",
                "Every vertical can be scored (ready or degraded); 503 when one cannot",
                Readiness,
                extra={"503": _json(Readiness, "Some vertical has no model (not_ready)")},
            ),
            **_docs_operations(),
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (EdDSA)"}
            },
        },
        "tags": [{"name": name, "description": text} for name, text in _TAGS.items()],
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            operation["tags"] = [_tag(path)]
            operation["operationId"] = _OPERATION_IDS[(method.upper(), path)]
    return document


# Stable names of the operations (client generators name their methods after them, and
# the API page's deep links use them: /docs#/Scoring/scoreLead).
_OPERATION_IDS = {
    ("POST", "/api/v1/score"): "scoreLead",
    ("POST", "/api/v1/score/batch"): "scoreBatch",
    ("GET", "/api/v1/models"): "listModels",
    ("POST", "/api/v1/models/reload"): "reloadModels",
    ("POST", "/api/v1/models/rollback"): "rollbackModel",
    ("POST", "/api/v1/models/shadow"): "setShadow",
    ("GET", "/api/v1/models/{vertical}/compare"): "compareShadow",
    ("GET", "/api/v1/models/{vertical}/monitor"): "monitorPage",
    ("GET", "/api/v1/models/{vertical}/{version}/report"): "modelReport",
    ("POST", "/api/v1/feedback"): "recordOutcome",
    ("POST", "/api/v1/feedback/batch"): "recordOutcomes",
    ("GET", "/health"): "health",
    ("GET", "/ready"): "ready",
    ("GET", "/docs/api"): "openapiDocument",
    ("GET", "/docs"): "apiPage",
    ("GET", "/docs/assets/{name}"): "apiPageAsset",
}


# Groups of operations, in the order the API page shows them (docs/api.md's sections).
_TAGS = {
    "Scoring": "Score and price leads (role scorer)",
    "Models": "Model versions: list (viewer), reload and roll back (admin)",
    "Model quality": "Shadow challengers, comparison, model report and monitor page",
    "Feedback": "Report how scored leads turned out (role scorer)",
    "Health": "Liveness and readiness probes (public)",
    "API description": "This document and the browsable page over it (public)",
}


def _tag(path: str) -> str:
    """The group of the operation at ``path`` (a key of ``_TAGS``)."""
    if path.startswith("/api/v1/score"):
        return "Scoring"
    if path.startswith("/api/v1/feedback"):
        return "Feedback"
    if path in ("/api/v1/models", "/api/v1/models/reload", "/api/v1/models/rollback"):
        return "Models"
    if path.startswith("/api/v1/models/"):
        return "Model quality"
    if path.startswith("/docs"):
        return "API description"
    return "Health"
