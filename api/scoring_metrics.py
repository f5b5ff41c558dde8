"""One vertical's scoring metrics, buffered in the worker: what the scoring handlers count.

Per successful request: its latency (``ml_scoring_latency_seconds``, and the same
observation in the route's 2xx ``ml_http_request_duration_seconds``: one bisect for
both, the buckets being the same); per scored lead:
``ml_leads_scored_total``, ``ml_leads_accepted_total`` and its price
(``ml_lead_price``); per batch: its size (``ml_batch_size``). All of it stays in process
memory on the request path (one method call, a bisect or two and a few additions:
this is the hot path) and reaches the shared files at each watcher tick (``flush``).
"""

from __future__ import annotations

from api import metrics
from engine.scoring.result import ScoreResult


class VerticalMetrics:
    """The buffered scoring metrics of one vertical (see the module docstring)."""

    __slots__ = (
        "_accepted",
        "_batch_ok",
        "_scored",
        "_single_ok",
        "accepted",
        "batch_size",
        "latency",
        "price",
        "scored",
    )

    def __init__(
        self,
        vertical: str,
        environment: str,
        single_ok: metrics.BufferedHistogram,
        batch_ok: metrics.BufferedHistogram,
    ) -> None:
        """Buffer ``vertical``'s metrics.

        Args:
            vertical: The vertical.
            environment: The ``environment`` label.
            single_ok: The 2xx request-duration histogram of the single-lead route.
            batch_ok: The same of the batch route.
        """
        self.latency = metrics.BufferedHistogram(
            metrics.SCORING_LATENCY.labels(vertical, environment)
        )
        self.price = metrics.BufferedHistogram(metrics.LEAD_PRICE.labels(vertical, environment))
        self.batch_size = metrics.BufferedHistogram(
            metrics.BATCH_SIZE.labels(vertical, environment)
        )
        self._scored = metrics.LEADS_SCORED.labels(vertical, environment)
        self._accepted = metrics.LEADS_ACCEPTED.labels(vertical, environment)
        self.scored = 0  # leads scored since the last flush
        self.accepted = 0
        if single_ok.bounds != self.latency.bounds or batch_ok.bounds != self.latency.bounds:
            raise ValueError("the request-duration and latency buckets must be the same")
        self._single_ok = single_ok
        self._batch_ok = batch_ok

    def single(self, seconds: float, result: ScoreResult) -> None:
        """Count a successful single-lead request that took ``seconds``."""
        self.latency.observe_with(self._single_ok, seconds)
        self.price.observe(result.price)
        self.scored += 1
        if result.accepted:
            self.accepted += 1

    def lead(self, result: ScoreResult) -> None:
        """Count one lead a batch scored."""
        self.price.observe(result.price)
        self.scored += 1
        if result.accepted:
            self.accepted += 1

    def batch(self, seconds: float, size: int) -> None:
        """Count a successful batch request of ``size`` leads that took ``seconds``."""
        self.latency.observe_with(self._batch_ok, seconds)
        self.batch_size.observe(size)

    def flush(self) -> None:
        """Write what is buffered to the shared files (every watcher tick)."""
        self.latency.flush()
        self.price.flush()
        self.batch_size.flush()
        if self.scored:
            scored, self.scored = self.scored, 0
            self._scored.inc(scored)
        if self.accepted:
            accepted, self.accepted = self.accepted, 0
            self._accepted.inc(accepted)
