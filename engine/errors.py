"""Error types of the engine; each carries what a caller needs to answer precisely.

The HTTP layer maps these to status codes: ``LeadError`` is the caller's mistake (422),
``UnknownVertical`` is 404, ``ModelUnavailable`` is 503, and ``ArtifactRejected`` is an
operator's problem reported with the check that failed.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(EngineError):
    """The model configuration file is missing or breaks a rule."""


class LeadError(EngineError):
    """A lead failed validation: ``field`` names the input, ``reason`` says why.

    Attributes:
        field: Dotted path of the offending input, e.g. ``lead_data.age``.
        reason: A short human sentence, e.g. ``must be at most 100``.
        code: A stable machine code: ``missing``, ``type``, ``range`` or ``unknown``.
    """

    def __init__(self, field: str, reason: str, code: str = "invalid") -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.code = code


class UnknownVertical(EngineError):
    """The request names a vertical that is not configured."""

    def __init__(self, vertical: str, known: list[str]) -> None:
        super().__init__(f"unknown vertical {vertical!r}; configured: {', '.join(known)}")
        self.vertical = vertical
        self.known = known


class ModelUnavailable(EngineError):
    """A configured vertical has no verified model loaded."""

    def __init__(self, vertical: str, reason: str) -> None:
        super().__init__(f"no model loaded for {vertical!r}: {reason}")
        self.vertical = vertical
        self.reason = reason


class ArtifactRejected(EngineError):
    """A model version failed a check and must not be served.

    Attributes:
        check: Which check failed: ``layout``, ``manifest``, ``hash``, ``signature``,
            ``unknown_key``, ``mismatch`` or ``model``.
        detail: What exactly was wrong.
    """

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"{check} check failed: {detail}")
        self.check = check
        self.detail = detail


class StoreError(EngineError):
    """A model-store operation cannot be done (no such version, nothing to roll back)."""


class TrainingError(EngineError):
    """Training input is unusable; nothing was published."""
