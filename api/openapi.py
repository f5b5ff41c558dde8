"""The OpenAPI 3.1 document, generated from the msgspec schemas (served at /docs/api)."""

from __future__ import annotations

from typing import Any

import msgspec

from api.routes.health import Health, Readiness
from api.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    ModelsResponse,
    ReloadRequest,
    ReloadResponse,
    RollbackRequest,
    ScoreRequest,
    ScoreResponse,
)

_ERRORS = {
    "400": "Body is not JSON (invalid_json)",
    "401": "Missing, invalid or expired token (unauthorized)",
    "403": "The token's role may not do this (forbidden)",
    "404": "Unknown vertical or version",
    "413": "Body or batch too large (payload_too_large)",
    "415": "Content-Type is not application/json",
    "422": "Schema, type or range violation; error.field names it",
    "503": "No verified model loaded for the vertical (model_unavailable)",
}


def _ref(cls: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


def _operation(
    summary: str,
    response: type,
    request: type | None = None,
    role: str | None = "scorer",
    errors: tuple[str, ...] = ("400", "401", "403", "413", "415", "422"),
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": _ref(response)}}}
    }
    for code in errors:
        responses[code] = {
            "description": _ERRORS.get(code, "Error"),
            "content": {"application/json": {"schema": _ref(ErrorResponse)}},
        }
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(request)}},
        }
    if role is not None:
        operation["security"] = [{"bearer": []}]
        operation["description"] = f"Requires a token with role `{role}` (or higher)."
    return operation


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
        ErrorResponse,
        Readiness,
    )
    _, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    score_errors = ("400", "401", "403", "404", "413", "415", "422", "503")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ML Service",
            "version": version,
            "description": "Real-time lead scoring and dynamic pricing.",
        },
        "paths": {
            "/api/v1/score": {
                "post": _operation(
                    "Score one lead", ScoreResponse, ScoreRequest, errors=score_errors
                )
            },
            "/api/v1/score/batch": {
                "post": _operation(
                    "Score many leads of one vertical",
                    BatchResponse,
                    BatchRequest,
                    errors=score_errors,
                )
            },
            "/api/v1/models": {
                "get": _operation(
                    "Model versions, metrics and load state per vertical",
                    ModelsResponse,
                    errors=("401", "403"),
                )
            },
            "/api/v1/models/reload": {
                "post": _operation(
                    "Activate versions (or re-read pointers) and switch every worker",
                    ReloadResponse,
                    ReloadRequest,
                    role="admin",
                    errors=("400", "401", "403", "404", "409", "415", "422"),
                )
            },
            "/api/v1/models/rollback": {
                "post": _operation(
                    "Re-activate a vertical's previous version",
                    ReloadResponse,
                    RollbackRequest,
                    role="admin",
                    errors=("400", "401", "403", "404", "409", "415", "422"),
                )
            },
            "/health": {"get": _operation("The process is alive", Health, role=None, errors=())},
            "/ready": {
                "get": _operation(
                    "Every vertical has a verified model loaded",
                    Readiness,
                    role=None,
                    errors=("503",),
                )
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (EdDSA)"}
            },
        },
    }
