"""Request and response bodies of the HTTP API, as msgspec types.

One decoder per request type is built at import, so decoding and type checking of a
body is one C call. Unknown top-level fields are rejected (a typo such as ``explian``
would otherwise be silently ignored); ``lead_data`` is an open object whose fields the
engine validates against the model's features. The OpenAPI document at ``/docs/api`` is
generated from these types (``api.openapi``). ``api.decoding`` adds the checks msgspec
does not make (duplicate keys, ...) to the scoring decoders.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import msgspec

from engine.scoring.result import Reason

# Most fields of one lead's ``lead_data``. A lead needs a few dozen; extra keys are
# ignored, and this bounds what a request can make the scorer walk past.
MAX_LEAD_FIELDS = 256

LeadId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Vertical = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
LeadData = Annotated[
    dict[str, Any],
    msgspec.Meta(
        max_length=MAX_LEAD_FIELDS,
        description="feature name to value (number, string or null); other keys are ignored",
    ),
]
# Checked by the route (so the error can name ``versions.<vertical>``), documented here.
Version = Annotated[str, msgspec.Meta(description="a semantic version X.Y.Z")]


class ScoreRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Score one lead."""

    vertical: Vertical
    lead_data: LeadData
    lead_id: LeadId | None = None
    explain: bool = False


class BatchLead(msgspec.Struct, forbid_unknown_fields=True):
    """One lead of a batch."""

    lead_data: LeadData
    lead_id: LeadId | None = None


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Score many leads of one vertical."""

    vertical: Vertical
    leads: list[BatchLead]
    explain: bool = False


class ReloadRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Reload models: activate ``versions`` (vertical -> X.Y.Z) or re-read the pointers."""

    versions: dict[Vertical, Version] | None = None


class RollbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Roll one vertical back to the version active before the current one."""

    vertical: Vertical


class FeedbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The outcome of a lead scored with a ``lead_id``: did it convert?"""

    lead_id: LeadId
    converted: bool
    outcome_at: Annotated[
        datetime.datetime | None,
        msgspec.Meta(description="when the outcome happened (RFC 3339 with a timezone); now"),
    ] = None


class FeedbackBatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Outcomes of many leads."""

    outcomes: list[FeedbackRequest]


class FeedbackResponse(msgspec.Struct):
    """An outcome recorded."""

    lead_id: str
    status: str


class FeedbackResult(msgspec.Struct):
    """One outcome of a batch and its status.

    ``recorded``; ``unknown``: never scored with this lead_id, or longer ago than the
    retention; ``duplicate``: the lead already has an outcome.
    """

    index: int
    lead_id: str
    status: str


class FeedbackBatchResponse(msgspec.Struct):
    """What became of each outcome of a batch, in order, and the totals."""

    results: list[FeedbackResult]
    recorded: int
    unknown: int
    duplicate: int


class ShadowRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Set a vertical's shadow challenger (a published version), or clear it (null)."""

    vertical: Vertical
    version: Version | None


class ShadowResponse(msgspec.Struct):
    """The shadow challenger now loaded for the vertical (null: none)."""

    vertical: str
    shadow_version: str | None
    previous: str | None
    generation: int


class ScoreResponse(msgspec.Struct, omit_defaults=True):
    """The score, confidence and price of one lead."""

    score: float
    confidence: float
    price: float
    market_factors: dict[str, float]
    model_version: str
    accepted: bool
    currency: str
    vertical: str
    lead_id: str | None = None
    reasons: list[Reason] | None = None


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    """What went wrong: a stable ``type``, a sentence, and the offending field if any."""

    type: str
    message: str
    field: str | None = None


class ErrorResponse(msgspec.Struct):
    """The body of every error response."""

    error: ErrorDetail


class BatchItem(msgspec.Struct, omit_defaults=True):
    """The outcome for one lead of a batch: exactly one of ``result`` and ``error``."""

    index: int
    lead_id: str | None = None
    result: ScoreResponse | None = None
    error: ErrorDetail | None = None


class BatchResponse(msgspec.Struct):
    """Outcomes in request order, all scored by ``model_version``."""

    vertical: str
    model_version: str
    results: list[BatchItem]
    scored: int
    failed: int


class WorkerState(msgspec.Struct):
    """What one worker serves."""

    slot: int
    pid: int
    generation: int


class ReloadResponse(msgspec.Struct):
    """Outcome of a reload or rollback."""

    status: str
    versions: dict[str, str | None]
    generation: int
    workers: list[WorkerState]


class PerformanceFigure(msgspec.Struct):
    """One kind of performance of a served version over a window.

    ``kind``: ``holdout`` (training), ``realized`` (from outcomes) or ``estimated``
    (from the scores alone); ``leads``: the outcomes or scored leads behind it.
    """

    version: str
    role: str
    kind: str
    window: str
    auc: float | None
    precision: float | None
    recall: float | None
    conversion_rate: float | None
    acceptance_rate: float | None
    leads: int


class ModelState(msgspec.Struct, omit_defaults=True):
    """A vertical's active and loaded versions in this worker, and their metrics."""

    vertical: str
    loaded_version: str | None
    active_version: str | None
    available_versions: list[str]
    metrics: dict[str, float] | None = None
    trained_at: str | None = None
    problem: str | None = None
    # From the latest quality snapshot (api.quality); absent before the first one.
    performance: list[PerformanceFigure] | None = None
    shadow_version: str | None = None  # the challenger scored beside it (api.shadow)


class ModelsResponse(msgspec.Struct, omit_defaults=True):
    """Every configured vertical's model state."""

    models: list[ModelState]
    generation: int
    workers: list[WorkerState]
    quality_as_of: str | None = None  # when the performance figures were computed


SCORE_DECODER = msgspec.json.Decoder(ScoreRequest)
BATCH_DECODER = msgspec.json.Decoder(BatchRequest)
RELOAD_DECODER = msgspec.json.Decoder(ReloadRequest)
ROLLBACK_DECODER = msgspec.json.Decoder(RollbackRequest)
FEEDBACK_DECODER = msgspec.json.Decoder(FeedbackRequest)
FEEDBACK_BATCH_DECODER = msgspec.json.Decoder(FeedbackBatchRequest)
SHADOW_DECODER = msgspec.json.Decoder(ShadowRequest)
ENCODER = msgspec.json.Encoder()
