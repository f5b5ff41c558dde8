"""Client errors answered precisely: status, stable type, message and field.

| status | type | when |
| --- | --- | --- |
| 400 | ``invalid_json`` | the body is not JSON: malformed, not UTF-8, ``NaN``/``Infinity``, |
|  |  | a lone surrogate escape, or nested deeper than the parser's recursion limit |
| 400 | ``duplicate_key`` | an object repeats a key (``field`` names it) |
| 400 | ``client_disconnected`` | the client closed the connection before sending its body |
| 401 | ``unauthorized`` | missing, malformed, expired or unknown-key token |
| 403 | ``forbidden`` | the token's role may not use the route |
| 404 | ``unknown_vertical`` / ``not_found`` | no such vertical / route / version |
| 404 | ``unknown_lead`` | feedback for a lead_id never scored, or beyond the retention |
| 405 | ``method_not_allowed`` | wrong method for the route |
| 408 | ``request_timeout`` | the body took longer than ``BODY_TIMEOUT_SECONDS`` to arrive |
| 409 | ``reload_failed`` | a requested version did not verify or load; nothing changed |
| 409 | ``duplicate_outcome`` | feedback for a lead that already has an outcome |
| 413 | ``payload_too_large`` | body over the route's limit (or batch over ``MAX_BATCH``) |
| 415 | ``unsupported_media_type`` | ``Content-Type`` is not JSON |
| 422 | ``validation_error`` | schema, type or range violation; ``field`` names it |
| 503 | ``model_unavailable`` | the vertical has no verified model loaded |
| 503 | ``feedback_unavailable`` | the monitoring store could not be opened |
| 500 | ``internal_error`` | a bug: logged with a request id, never a lead's data |

Strings a client sent (an unknown field's name, a ``Content-Type``) are echoed in an
error only through ``echo``: cut to ``ECHO_LIMIT`` characters, with anything not
printable (NUL, control characters, lone surrogates) escaped. ``error_body`` itself
never fails: an over-long or unencodable message or field is cut and escaped there too,
so an error about a hostile input cannot itself become a 500.
"""

from __future__ import annotations

import asyncio
import re

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive

from api.deadlines import BODY_DEADLINES, BodyDeadlines
from api.schemas import ENCODER, ErrorDetail, ErrorResponse

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED = re.compile(r"(?:missing required field|unknown field) `(?P<name>[^`]+)`")
_UNKNOWN_FIELD = re.compile(r"unknown field `(?P<name>.*)`$", re.DOTALL)
JSON_TYPES = ("application/json",)
# Most characters of a client's string echoed in an error (field names are <= 64).
ECHO_LIMIT = 64
# Most characters of an error's message and field; ours are far shorter.
MESSAGE_LIMIT = 1024
# An answer to a body that was not read to its end closes the connection, so the server
# neither reads nor keeps the rest (a 10 MB upload refused by its Content-Length).
CLOSE_STATUSES = frozenset({408, 413})


class ApiError(Exception):
    """An error to answer with a JSON body (see the module table)."""

    def __init__(self, status: int, type_: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.field = field

    @property
    def closes_connection(self) -> bool:
        """Whether the answer ends the connection (the body may be partly unread)."""
        return self.status in CLOSE_STATUSES

    def response(self, headers: dict[str, str] | None = None) -> Response:
        """Return the JSON error response."""
        if self.closes_connection:
            headers = {**(headers or {}), "Connection": "close"}
        return error_response(self.status, self.type, self.message, self.field, headers)


def echo(text: str, limit: int = ECHO_LIMIT) -> str:
    r"""Return client-sourced ``text`` fit to quote in an error message or field.

    At most ``limit`` characters are kept (then ``…``); characters that are not printable
    (NUL, control characters, lone surrogates, unusual spaces) become ``\uXXXX`` escapes,
    so the result always encodes as UTF-8 and reads unambiguously in a log line.
    """
    if len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def error_body(type_: str, message: str, field: str | None = None) -> bytes:
    """Return the standard JSON error body; never raises for any message or field."""
    if len(message) > MESSAGE_LIMIT or (field is not None and len(field) > MESSAGE_LIMIT):
        message = echo(message, MESSAGE_LIMIT)
        field = None if field is None else echo(field, MESSAGE_LIMIT)
    try:
        return ENCODER.encode(ErrorResponse(ErrorDetail(type_, message, field)))
    except UnicodeEncodeError:  # a lone surrogate: escape it rather than fail the answer
        detail = ErrorDetail(
            echo(type_, MESSAGE_LIMIT),
            echo(message, MESSAGE_LIMIT),
            None if field is None else echo(field, MESSAGE_LIMIT),
        )
        return ENCODER.encode(ErrorResponse(detail))


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
    appended to the path, so the field always points at the offending key. An unknown
    field's name is the client's string: it is quoted through ``echo``.
    """
    path = ""
    core = text
    at = _AT.search(text)
    if at:
        path = at["path"].lstrip(".")
        core = text[: at.start()]
    unknown = _UNKNOWN_FIELD.search(core)
    if unknown:
        name = echo(unknown["name"])
        core = f"{core[: unknown.start()]}unknown field `{name}`"
        return (f"{path}.{name}" if path else name), core
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
    receive: Receive,
    content_type: str | None,
    content_length: str | None,
    limit: int,
    deadlines: BodyDeadlines = BODY_DEADLINES,
) -> bytes:
    """Return a JSON request body straight from ASGI ``receive``.

    Args:
        receive: The ASGI receive callable.
        content_type: The ``Content-Type`` header, if sent.
        content_length: The ``Content-Length`` header, if sent.
        limit: Most bytes accepted.
        deadlines: Where a read that may wait is watched (``api.deadlines``).

    Raises:
        ApiError: 415 for a non-JSON ``Content-Type``; 413 when the body is over
            ``limit`` bytes (checked on ``Content-Length`` first, then while reading);
            408 when the body takes longer than the deadline to arrive.
        ClientDisconnect: The client went away before sending the body.
    """
    if not content_type or content_type.split(";", 1)[0].strip().lower() not in JSON_TYPES:
        shown = repr(echo(content_type)) if content_type else "missing"
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type must be application/json, not {shown}"
        )
    if (
        content_length is not None
        and content_length.isascii()
        and content_length.isdigit()
        and int(content_length) > limit
    ):
        raise ApiError(
            413, "payload_too_large", f"body of {content_length} bytes is over {limit} bytes"
        )
    # body_arrived(receive), inlined: this runs on every request.
    if getattr(getattr(receive, "__self__", None), "more_body", True) is not False:
        return await _read_with_deadline(receive, limit, deadlines)
    # The whole body is already here (uvicorn parsed it with the headers): no waiting.
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnect
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise ApiError(413, "payload_too_large", f"body is over {limit} bytes")
    if message.get("more_body", False):  # not from uvicorn after all: read on, watched
        return await _read_with_deadline(receive, limit, deadlines, body)
    return body


async def _read_with_deadline(
    receive: Receive, limit: int, deadlines: BodyDeadlines, first: bytes = b""
) -> bytes:
    """Read the (rest of the) body under ``deadlines``; 408 once it is overdue."""
    task = asyncio.current_task()
    assert task is not None  # an ASGI app always runs in a task
    deadlines.start(task)
    try:
        return await _read_chunks(receive, limit, first)
    except asyncio.CancelledError:
        if deadlines.finish(task):  # our deadline, not a shutdown: answer it
            task.uncancel()
            raise ApiError(
                408,
                "request_timeout",
                f"the request body did not arrive within {deadlines.timeout:g} s",
            ) from None
        raise
    finally:
        deadlines.finish(task)


async def _read_chunks(receive: Receive, limit: int, first: bytes) -> bytes:
    chunks = [first] if first else []
    size = len(first)
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"body is over {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)
