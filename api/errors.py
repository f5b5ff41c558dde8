"""Client errors answered precisely: status, stable type, message and field.

| status | type | when |
| --- | --- | --- |
| 400 | ``invalid_json`` | the body is not JSON |
| 401 | ``unauthorized`` | missing, malformed, expired or unknown-key token |
| 403 | ``forbidden`` | the token's role may not use the route |
| 404 | ``unknown_vertical`` / ``not_found`` | no such vertical / route / version |
| 405 | ``method_not_allowed`` | wrong method for the route |
| 409 | ``reload_failed`` | a requested version did not verify or load; nothing changed |
| 413 | ``payload_too_large`` | body over ``MAX_BODY_BYTES`` (or batch over ``MAX_BATCH``) |
| 415 | ``unsupported_media_type`` | ``Content-Type`` is not JSON |
| 422 | ``validation_error`` | schema, type or range violation; ``field`` names it |
| 503 | ``model_unavailable`` | the vertical has no verified model loaded |
| 500 | ``internal_error`` | a bug: logged with a request id, never a lead's data |
"""

from __future__ import annotations

import re

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive

from api.schemas import ENCODER, ErrorDetail, ErrorResponse

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED = re.compile(r"(?:missing required field|unknown field) `(?P<name>[^`]+)`")
JSON_TYPES = ("application/json",)


class ApiError(Exception):
    """An error to answer with a JSON body (see the module table)."""

    def __init__(self, status: int, type_: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.field = field

    def response(self, headers: dict[str, str] | None = None) -> Response:
        """Return the JSON error response."""
        return error_response(self.status, self.type, self.message, self.field, headers)


def error_body(type_: str, message: str, field: str | None = None) -> bytes:
    """Return the standard JSON error body."""
    return ENCODER.encode(ErrorResponse(ErrorDetail(type_, message, field)))


def error_response(
    status: int,
    type_: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build an error response with the standard body."""
    body = error_body(type_, message, field)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def decode_error(exc: msgspec.DecodeError) -> ApiError:
    """Turn a msgspec decode failure into 400 (not JSON) or 422 (wrong shape)."""
    if not isinstance(exc, msgspec.ValidationError):
        return ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}")
    field, message = split_validation_message(str(exc))
    return ApiError(422, "validation_error", message, field)


def split_validation_message(text: str) -> tuple[str | None, str]:
    """Split msgspec's ``"<problem> - at `$.a.b`"`` into ``("a.b", "<problem>")``.

    The named field of "missing required field" and "unknown field" messages is
    appended to the path, so the field always points at the offending key.
    """
    path = ""
    core = text
    at = _AT.search(text)
    if at:
        path = at["path"].lstrip(".")
        core = text[: at.start()]
    named = _NAMED.search(core)
    if named:
        path = f"{path}.{named['name']}" if path else named["name"]
    return path or None, core


async def read_json_body(request: Request, limit: int) -> bytes:
    """Return the body of a Starlette request (see ``read_body``)."""
    headers = request.headers
    return await read_body(
        request.receive, headers.get("content-type"), headers.get("content-length"), limit
    )


async def read_body(
    receive: Receive, content_type: str | None, content_length: str | None, limit: int
) -> bytes:
    """Return a JSON request body straight from ASGI ``receive``.

    Args:
        receive: The ASGI receive callable.
        content_type: The ``Content-Type`` header, if sent.
        content_length: The ``Content-Length`` header, if sent.
        limit: Most bytes accepted.

    Raises:
        ApiError: 415 for a non-JSON ``Content-Type``, 413 when the body is over
            ``limit`` bytes (checked on ``Content-Length`` first, then while reading).
        ClientDisconnect: The client went away before sending the body.
    """
    if not content_type or content_type.split(";", 1)[0].strip().lower() not in JSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, not {content_type or 'missing'!r}",
        )
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise ApiError(413, "payload_too_large", f"body of {content_length} bytes is over {limit}")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnect
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"body is over {limit} bytes")
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
