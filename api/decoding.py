r"""Scoring request bodies decoded, with the checks msgspec does not make.

msgspec decodes and type-checks a body in one C call (``api.schemas``). Some hostile
bodies pass it, or fail it with an exception that is not a ``msgspec.DecodeError``;
``decode_score`` and ``decode_batch`` answer each with a precise ``ApiError``:

| input | msgspec alone | here |
| --- | --- | --- |
| an object repeating a key | keeps the last value | 400 ``duplicate_key``, ``field`` names it |
| a string that is not UTF-8 | ``UnicodeDecodeError`` | 400 ``invalid_json`` |
| nesting deeper than the interpreter's recursion limit (about 1,000 levels) | | |
|  | ``RecursionError`` | 400 ``invalid_json`` |
| a number out of float range inside ``lead_data`` | 422 at ``lead_data[...]`` | |
|  |  | 422 naming the key, ``lead_data.age`` |
| a ``lead_id`` holding NUL or another non-printable character | accepted, echoed | 422 |
| a ``\ud800`` escape not followed by its pair | 400 "Input data was truncated" | |
|  |  | 400 saying so |

A ``lead_id`` is echoed in the response and ends up in the client's systems; control
characters there (NUL truncating a C string, a newline forging a log line) have no
legitimate use, so they are refused (``str.isprintable``, about 60 ns; a msgspec
``pattern`` would cost 1.1 µs per request). Strings inside ``lead_data`` are data: NUL
in a category or a text is just an unseen value or a token separator.

Duplicate keys are an ambiguity attack: a proxy, a firewall rule or an audit log that
reads the first ``"vertical"`` or ``"age"`` sees another request than the scorer, which
reads the last. They are refused. Checking costs (measured with timeit, a 272-byte lead):
an exact check with ``json`` and an ``object_pairs_hook`` costs 7 µs on every request,
against 1.9 µs for the whole msgspec decode. So the exact check runs only when a cheap
count cannot rule duplicates out: every key of a JSON text is followed by a colon, so a
body holding no more colons than the decoded request has distinct keys holds no
duplicate (0.5 µs: one ``bytes.count``). Colons inside string values, keys explicitly
set to their default (``"explain": false``) and nested objects in ``lead_data`` make the
count differ; those bodies take the exact check, which decides.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import msgspec

from api.errors import ApiError, decode_error, echo
from api.schemas import BATCH_DECODER, SCORE_DECODER, BatchRequest, ScoreRequest

_Body = TypeVar("_Body")

TOO_DEEP = "request body nests arrays or objects too deeply"
NOT_UTF8 = "request body is not valid JSON: a string is not valid UTF-8"
_LONE = "request body is not valid JSON: a \\u escape is half of a UTF-16 surrogate pair"
_NOT_PRINTABLE = "must not contain control or other non-printable characters"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_PATH_STEP = re.compile(r"\.(?P<key>[^.\[]+)|\[(?P<index>\d+)\]|(?P<any>\[\.\.\.\])")
_RAW_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


def decode_score(raw: bytes) -> ScoreRequest:
    """Decode and check the body of ``POST /api/v1/score``.

    Raises:
        ApiError: 400 or 422 (see the module table).
    """
    try:
        request = SCORE_DECODER.decode(raw)
    except Exception as exc:
        raise _decode_failure(exc, raw) from None
    lead_id = request.lead_id
    if lead_id is not None and not lead_id.isprintable():
        raise ApiError(422, "validation_error", _NOT_PRINTABLE, "lead_id")
    keys = 2 + (lead_id is not None) + request.explain + len(request.lead_data)
    if raw.count(b":") != keys:
        check_unique_keys(raw)
    return request


def decode_batch(raw: bytes) -> BatchRequest:
    """Decode and check the body of ``POST /api/v1/score/batch``.

    Raises:
        ApiError: 400 or 422 (see the module table).
    """
    try:
        request = BATCH_DECODER.decode(raw)
    except Exception as exc:
        raise _decode_failure(exc, raw) from None
    keys = 2 + request.explain
    for index, lead in enumerate(request.leads):
        keys += 1 + len(lead.lead_data)
        if lead.lead_id is not None:
            keys += 1
            if not lead.lead_id.isprintable():
                raise ApiError(422, "validation_error", _NOT_PRINTABLE, f"leads[{index}].lead_id")
    if raw.count(b":") != keys:
        check_unique_keys(raw)
    return request


def _decode_failure(exc: Exception, raw: bytes) -> Exception:
    """Map what a msgspec decode raised to its ``ApiError`` (other errors unchanged)."""
    if isinstance(exc, msgspec.ValidationError):
        error = decode_error(exc)
        if error.field is not None and "[...]" in error.field:
            error.field = _locate(raw, error.field) or error.field
        return error
    if isinstance(exc, msgspec.DecodeError):
        if not raw.strip():
            return ApiError(400, "invalid_json", "request body is empty")
        if "surrogate" in str(exc) or (
            "truncated" in str(exc) and _SURROGATE_ESCAPE.search(raw) is not None
        ):
            return ApiError(400, "invalid_json", _LONE)
        return decode_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        return ApiError(400, "invalid_json", NOT_UTF8)
    if isinstance(exc, RecursionError):
        return ApiError(400, "invalid_json", TOO_DEEP)
    return exc


class _DuplicateKey(Exception):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


_EXACT = json.JSONDecoder(object_pairs_hook=_unique_pairs, strict=False)
_PAIRS = json.JSONDecoder(object_pairs_hook=list, strict=False)


def check_unique_keys(raw: bytes) -> None:
    """Refuse a JSON body (already accepted by msgspec) in which an object repeats a key.

    Python's ``json`` accepts every text msgspec accepts (``strict=False`` admits the
    control characters msgspec refuses anyway), so nothing msgspec decoded escapes this
    check; a body ``json`` cannot follow is refused, never waved through.

    Raises:
        ApiError: 400 ``duplicate_key`` naming the first repeated key's path, or 400
            ``invalid_json`` when the body nests too deeply to check.
    """
    try:
        _EXACT.decode(raw.decode())
        return
    except _DuplicateKey:
        pass
    except RecursionError:
        raise ApiError(400, "invalid_json", TOO_DEEP) from None
    except ValueError:
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    try:
        field, key = _duplicate_path(_PAIRS.decode(raw.decode()))
    except RecursionError:  # the repeat came before a part nested too deeply
        raise ApiError(400, "invalid_json", TOO_DEEP) from None
    raise ApiError(400, "duplicate_key", f"an object repeats the key {key!r}", field)


def _duplicate_path(tree: Any) -> tuple[str, str]:
    """Return (JSON path, key) of the first repeated key in a tree of pair lists.

    ``json`` with ``object_pairs_hook=list`` makes every object a list of (key, value)
    tuples; arrays stay lists of values (never tuples). Objects are searched before
    their children, in document order.
    """
    stack: list[tuple[str, Any]] = [("", tree)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, list):
            continue
        children: list[tuple[str, Any]] = []
        if node and isinstance(node[0], tuple):
            seen: set[str] = set()
            for key, value in node:
                name = echo(key)
                named = f"{path}.{name}" if path else name
                if key in seen:
                    return named, name
                seen.add(key)
                children.append((named, value))
        else:
            children = [(f"{path}[{i}]", item) for i, item in enumerate(node)]
        stack.extend(reversed(children))
    raise AssertionError("no repeated key")  # pragma: no cover - only called with one


def _locate(raw: bytes, field: str) -> str | None:
    """Name the key msgspec reported as ``[...]`` (a value of an open object).

    msgspec reports an invalid value of a ``dict`` (``lead_data``) at ``lead_data[...]``.
    Walk the body along the path with lazily decoded ``msgspec.Raw`` values, decode each
    value of that object alone, and return the path with the first failing key in
    place of ``[...]``; None when it cannot be found. Runs only on this error path.
    """
    node = raw
    located = ""
    try:
        for step in _PATH_STEP.finditer("." + field):
            if step["key"] is not None:
                node = _RAW_OBJECT.decode(node)[step["key"]]
                located += f".{step['key']}"
            elif step["index"] is not None:
                node = _RAW_ARRAY.decode(node)[int(step["index"])]
                located += f"[{step['index']}]"
            else:
                for key, value in _RAW_OBJECT.decode(node).items():
                    try:
                        msgspec.json.decode(value)
                    except msgspec.DecodeError:
                        node, located = value, f"{located}.{echo(key)}"
                        break
                else:
                    return None
    except (msgspec.DecodeError, KeyError, IndexError):
        return None
    return located.lstrip(".")


def decode_unique(decoder: msgspec.json.Decoder[_Body], raw: bytes) -> _Body:
    """Decode a body (not on the scoring path), refusing one whose objects repeat a key.

    Which of two repeated keys wins is a parser's guess, so ``{"versions": {"auto":
    "1.0.0", "auto": "9.9.9"}}`` must activate neither. These routes are rare, so the
    exact check runs every time.
    """
    body = decoder.decode(raw)
    check_unique_keys(raw)
    return body
