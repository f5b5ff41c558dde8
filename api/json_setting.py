"""Settings whose value is a JSON object (``MONITORING_CONFIG``, ``CACHE_CONFIG``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec


def json_object(
    variable: str, raw: str, known: Iterable[str], error: type[ValueError]
) -> dict[str, Any]:
    """Decode ``raw`` as a JSON object whose keys are all ``known``.

    Raises:
        error: Not JSON, not an object, or an unknown key; the message names
            ``variable`` (and the key).
    """
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise error(f"{variable} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise error(f"{variable} must be a JSON object")
    names = tuple(known)
    unknown = sorted(set(document) - set(names))
    if unknown:
        raise error(f"{variable}: unknown key {unknown[0]!r} (known: {', '.join(names)})")
    return document
