"""Errors of the lead archive, all ``EngineError`` so the CLI prints them without a trace."""

from __future__ import annotations

from engine.errors import EngineError


class ArchiveError(EngineError):
    """The lead archive cannot be used as asked; the message says why."""


class ArchiveKeyError(ArchiveError):
    """The archive's keys are missing, unreadable, malformed or too widely readable."""


class RecordError(ArchiveError):
    """One archived record cannot be read back (malformed, unknown key, or tampered).

    Attributes:
        reason: What is wrong with the record, never any of its values.
        tampered: True when authentication failed (altered bytes, moved ciphertexts).
    """

    def __init__(self, reason: str, *, tampered: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tampered = tampered
