"""What every route of a worker needs, built once after fork."""

from __future__ import annotations

import logging

import msgspec
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from api import metrics
from api.auth import Authenticator, AuthError
from api.deadlines import BODY_DEADLINES, HEAD_DEADLINES
from api.decoding import NOT_UTF8, TOO_DEEP
from api.errors import ApiError, decode_error, error_response
from api.logging import loggable_field
from api.redis_link import RedisLink
from api.runtime import ModelRuntime, ReloadFailed
from api.settings import ServiceSettings
from engine.archive.writer import LeadArchive
from engine.errors import (
    ArtifactRejected,
    LeadError,
    ModelUnavailable,
    StoreError,
    UnknownVertical,
)
from engine.monitoring.store import StoreUnavailable

log = logging.getLogger("ml_service.api")


class Service:
    """The worker's settings, models and authenticator, and the error mapping."""

    def __init__(
        self, settings: ServiceSettings, runtime: ModelRuntime, auth: Authenticator
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.auth = auth
        self.verticals = frozenset(runtime.config.verticals)
        # Body reads that may wait and heads still arriving are watched; each watcher
        # tick ends the overdue ones (408).
        BODY_DEADLINES.timeout = settings.body_timeout_seconds
        HEAD_DEADLINES.timeout = settings.header_timeout_seconds
        runtime.tick_hooks.extend((BODY_DEADLINES.expire, HEAD_DEADLINES.expire))
        # The opt-in lead archive (api.archive); None, and no work at all, when off.
        self.archive: LeadArchive | None = None
        # The worker's Redis link (api.redis_link) when REDIS_URL is set: the fleet tier.
        self.redis: RedisLink | None = None

    def reject(self, exc: Exception, vertical: str = "unknown") -> ApiError:
        """Map ``exc`` to its error, count it by type, and log one line.

        Client errors log at ``info`` (so production at ``warning`` stays quiet); the line
        names the type, status and field, never a value the client sent.
        """
        error = self.to_api_error(exc)
        if isinstance(exc, ReloadFailed):  # the admin routes know no vertical; the error does
            vertical = metrics.vertical_label(exc.vertical, self.verticals)
        metrics.SCORING_ERRORS.labels(error.type, vertical, self.settings.environment).inc()
        if error.status < 500 and log.isEnabledFor(logging.INFO):
            log.info(
                "request rejected",
                extra={
                    "status": error.status,
                    "error_type": error.type,
                    "field": loggable_field(error.field, error.message),  # never PII
                    "vertical": vertical,
                },
            )
        return error

    def fail(self, exc: Exception, vertical: str = "unknown") -> Response:
        """Answer ``exc`` with its JSON error (counted and logged by ``reject``)."""
        error = self.reject(exc, vertical)
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return error.response(headers)

    @staticmethod
    def to_api_error(exc: Exception) -> ApiError:
        """Map an exception to its status, type, message and field."""
        match exc:
            case ApiError():
                return exc
            case ClientDisconnect():
                return ApiError(400, "client_disconnected", "the client closed the request")
            case AuthError(status=401):
                return ApiError(401, "unauthorized", exc.message)
            case AuthError():
                return ApiError(403, "forbidden", exc.message)
            case msgspec.DecodeError():
                return decode_error(exc)
            # msgspec raises these two, not DecodeError, for a string that is not UTF-8 and
            # for nesting past the recursion limit; the scoring routes map them at decode
            # (api.decoding), every other route's body lands here.
            case UnicodeDecodeError():
                return ApiError(400, "invalid_json", NOT_UTF8)
            case RecursionError():
                return ApiError(400, "invalid_json", TOO_DEEP)
            case LeadError():
                return ApiError(422, "validation_error", exc.reason, exc.field)
            case UnknownVertical():
                return ApiError(404, "unknown_vertical", str(exc), "vertical")
            case ModelUnavailable():
                return ApiError(503, "model_unavailable", str(exc))
            case ReloadFailed():
                return ApiError(409, "reload_failed", exc.reason, f"versions.{exc.vertical}")
            case ArtifactRejected():
                return ApiError(409, "reload_failed", str(exc))
            case StoreError():
                return ApiError(409, "reload_failed", str(exc))
            case StoreUnavailable():  # the Redis monitoring store, during an outage
                return ApiError(
                    503,
                    "feedback_unavailable",
                    "the monitoring store cannot be reached now; nothing was recorded, retry",
                )
        log.exception("unexpected error", exc_info=exc)
        return ApiError(500, "internal_error", "internal error; the service logged it")


def internal_error_response() -> Response:
    """The body of a 500 that escaped every route (counted by the caller)."""
    return error_response(500, "internal_error", "internal error; the service logged it")
