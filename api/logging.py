"""Structured logs: one JSON object per line, never a lead's data.

Every record has ``time``, ``level``, ``logger``, ``message`` and ``pid``; keys passed
with ``extra=`` (such as ``vertical`` or ``reason``) are added as they are. Request
bodies and lead fields are never logged, so no personal data reaches the logs. Nor do
names a client made up: an error's field is logged through ``loggable_field``, which
keeps the schema's and the model's names (``leads[3].lead_data.age``) and hides an
unknown field's name, which is the client's own string (an e-mail sent as a key).
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

import orjson

# Standard record attributes, and uvicorn's ANSI-coloured duplicate of the message.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "color_message",
}


# Field paths as the request schema and the model name them: identifiers, indexes, dots.
_FIELD_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\[\d{1,9}\])*(\.[A-Za-z_][A-Za-z0-9_]{0,63}(\[\d{1,9}\])*)*$"
)
REDACTED_FIELD = "<name chosen by the client>"


def loggable_field(field: str | None, message: str) -> str | None:
    """Return an error's field as it may be logged (see the module docstring).

    Args:
        field: The error's field (a dotted path), if any.
        message: The error's message: an "unknown field" message means the path ends in
            a name the client chose.
    """
    if field is None:
        return None
    if "unknown field" in message or not _FIELD_PATH.fullmatch(field):
        return REDACTED_FIELD
    return field


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as JSON."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": os.getpid(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def logging_config(level: str) -> dict[str, Any]:
    """Return a ``logging.config.dictConfig`` that writes JSON lines to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            # Access logs would cost a line per request on the hot path; metrics count them.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "uvicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }
