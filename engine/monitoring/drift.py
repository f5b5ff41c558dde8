"""Population stability index (PSI) of every feature and of the score against training.

A model version's manifest holds a reference histogram per feature and for the score
(``engine.training.evaluation.reference_histograms``). ``DriftBins`` lays the live
leads out in exactly those bins, one count vector per name:

- Numerical and text features, and ``__score__``: the reference's inner quantile
  ``edges`` (bin ``i`` is ``edges[i-1] <= x < edges[i]``, as in training), then one
  ``missing`` bin for NaN. Text is binned on its encoded value (the mean token weight),
  which is what the model sees; a text without a known token is NaN, so ``missing``.
- Categorical features: the reference's top labels in code order, ``__other__`` (every
  other category known at training), ``unseen`` (a value the lead carries but the
  model's table does not hold) and ``missing`` (no value). The encoder writes NaN for
  both of the last two; the raw lead tells them apart.

``count`` bins a batch of scored leads (vectorised per column; off the response path, in
the worker's flush). Counts from several batches, workers and minutes simply add up.
``drift`` turns the counts of a window into PSI per name.

PSI is ``sum((a - r) * ln(a / r))`` over bins, with ``r`` and ``a`` the reference and
live shares of each bin, smoothed (see ``psi``). It is symmetric in ``r`` and ``a``, 0
for identical shares, and by convention under 0.1 means stable, 0.1 to 0.25 a moderate
shift worth a look, above 0.25 a major shift.

Two things the reference cannot tell apart are merged before PSI is computed
(``DriftBins.comparable``): training encoded a category rarer than its ``min_count`` as
NaN, so the reference's ``missing`` count of a categorical feature holds the rare values
as well as the absent ones, and its ``unseen`` count is 0. Comparing live ``unseen``
against that 0 would report the long tail of rare categories as drift on every
unshifted population, so PSI compares ``unseen + missing`` against the reference's
``missing``; the count vectors keep both bins apart for display.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from engine.store.manifest import Histogram, Manifest

SCORE: Final = "__score__"
OTHER: Final = "__other__"
UNSEEN: Final = "unseen"
MISSING: Final = "missing"
# Added to every bin's share before PSI (see ``psi``): small enough that a bin holding
# a share s adds about s * ln(s / 1e-4) when the other side is empty (0.046 at s = 1%).
EPSILON: Final = 1e-4
# Below this many leads in a window PSI is mostly sampling noise: on an unshifted
# population it is about (bins - 1) * (1 / reference leads + 1 / live leads). On the
# demo models, 81-98 % of 200-lead windows had some PSI above 0.1, at most 4 % of
# 1000-lead windows (docs/quality.md).
MIN_LEADS: Final = 1000
# Conventional reading of PSI (the drift alert's default threshold is STABLE_BELOW).
STABLE_BELOW: Final = 0.1
MAJOR_ABOVE: Final = 0.25

_NUMERIC, _CATEGORICAL = 0, 1

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class _Plan:
    """How one name's values are binned."""

    __slots__ = ("column", "edges", "kind", "size", "top")

    def __init__(self, kind: int, column: int, edges: FloatArray, top: int, size: int) -> None:
        self.kind = kind
        self.column = column  # matrix column; -1 for the score
        self.edges = edges  # numeric: the inner edges
        self.top = top  # categorical: index of the __other__ bin (= number of top labels)
        self.size = size


class DriftBins:
    """The drift bins of one model version, built from its manifest.

    Attributes:
        names: Every feature in manifest order, then ``"__score__"``.
        sizes: The number of bins of each name, ``missing`` (and ``unseen``) included.
    """

    def __init__(
        self,
        plans: Mapping[str, _Plan],
        labels: Mapping[str, list[str]],
        reference: Mapping[str, IntArray],
    ) -> None:
        """Use ``DriftBins.from_manifest``; this constructor trusts its arguments."""
        self._plans = dict(plans)
        self._labels = {name: list(v) for name, v in labels.items()}
        self._reference = {name: v.copy() for name, v in reference.items()}
        for array in self._reference.values():
            array.flags.writeable = False
        self.names: tuple[str, ...] = tuple(self._plans)
        self.sizes: dict[str, int] = {name: p.size for name, p in self._plans.items()}
        self._columns = max((p.column for p in self._plans.values()), default=-1) + 1

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> DriftBins:
        """Lay out the bins of every feature and of the score from ``manifest``.

        Raises:
            ValueError: A feature or the score has no reference histogram, or one of
                the wrong shape for its kind.
        """
        plans: dict[str, _Plan] = {}
        labels: dict[str, list[str]] = {}
        reference: dict[str, IntArray] = {}
        histograms = manifest.reference_histograms
        entries = [(f.name, f.kind, f.index) for f in manifest.features]
        entries.append((SCORE, "numerical", -1))
        for name, kind, column in entries:
            histogram = histograms.get(name)
            if histogram is None:
                raise ValueError(f"the manifest has no reference histogram of {name!r}")
            if kind == "categorical":
                plan, names, counts = _categorical_bins(name, column, histogram)
            else:
                plan, names, counts = _numeric_bins(name, column, histogram)
            plans[name], labels[name], reference[name] = plan, names, counts
        return cls(plans, labels, reference)

    def labels(self, name: str) -> list[str]:
        """Human-readable labels of the bins of ``name`` (``"< 25"``, ..., ``"missing"``).

        Raises:
            KeyError: ``name`` is not one of ``names``.
        """
        return list(self._labels[name])

    def reference(self, name: str) -> IntArray:
        """The reference counts of ``name`` in its bins (read-only).

        Features: the training split; ``__score__``: the holdout's scores (training
        computes them so in ``engine.training.pipeline``).

        Raises:
            KeyError: ``name`` is not one of ``names``.
        """
        return self._reference[name]

    def zeros(self) -> dict[str, IntArray]:
        """Empty counts of every name: where a worker's flushes can add up."""
        return {name: np.zeros(size, dtype=np.int64) for name, size in self.sizes.items()}

    def count(
        self,
        matrix: FloatArray,
        leads: Sequence[Mapping[str, Any]],
        scores: FloatArray,
    ) -> dict[str, IntArray]:
        """Bin a batch of scored leads.

        Args:
            matrix: The encoded rows, shape ``(n, features)`` in manifest feature order
                (what ``LeadEncoder.encode_into`` wrote).
            leads: The raw leads of those rows, as the client sent them; read only where
                a categorical value encoded to NaN, to tell ``unseen`` from ``missing``.
            scores: The raw score of each row.

        Returns:
            Counts per name, each of length ``sizes[name]``.

        Raises:
            ValueError: The shapes of the three arguments disagree.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        rows = len(leads)
        if matrix.ndim != 2 or matrix.shape[0] != rows or matrix.shape[1] != self._columns:
            raise ValueError(
                f"matrix has shape {matrix.shape}; expected ({rows}, {self._columns}) "
                f"for {rows} leads"
            )
        if scores.shape != (rows,):
            raise ValueError(f"scores have shape {scores.shape}; expected ({rows},)")
        result: dict[str, IntArray] = {}
        for name, plan in self._plans.items():
            values = scores if plan.column < 0 else matrix[:, plan.column]
            absent = np.isnan(values)
            if plan.kind == _NUMERIC:
                # NaN sorts after every edge: move it to the missing bin.
                bins = np.searchsorted(plan.edges, values, side="right")
                bins[absent] = plan.size - 1
            else:
                codes = np.where(absent, 0.0, values).astype(np.int64)
                bins = np.minimum(codes, plan.top)
                for row in np.flatnonzero(absent).tolist():
                    # Only NaN rows are looked at: unseen and missing encode alike.
                    gone = is_missing(leads[row].get(name))
                    bins[row] = plan.size - 1 if gone else plan.size - 2
            result[name] = np.bincount(bins, minlength=plan.size).astype(np.int64)
        return result

    def comparable(self, name: str, actual: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        """Return the reference and ``actual`` counts of ``name`` on the bins PSI compares.

        The same bins as ``sizes`` except for categorical features, whose ``unseen``
        bin is folded into ``missing`` (the module docstring says why).

        Raises:
            KeyError: ``name`` is not one of ``names``.
            ValueError: ``actual`` does not have ``sizes[name]`` counts.
        """
        plan = self._plans[name]
        live = np.asarray(actual, dtype=np.int64)
        if live.shape != (plan.size,):
            raise ValueError(f"{name!r} has {plan.size} bins, the counts {live.shape}")
        reference = self._reference[name]
        if plan.kind == _CATEGORICAL:
            return _fold_unseen(reference), _fold_unseen(live)
        return reference.copy(), live.copy()


def psi(reference: npt.ArrayLike, actual: npt.ArrayLike, epsilon: float = EPSILON) -> float:
    """Return the population stability index of ``actual`` against ``reference``.

    ``sum((a - r) * ln(a / r))`` over bins, where ``r`` and ``a`` are each side's share
    of a bin after smoothing: ``(share + epsilon) / (1 + bins * epsilon)``, so a bin empty
    on one side adds a finite term and the shares still sum to 1. Both sides get the
    same smoothing, so ``psi(r, a) == psi(a, r)``; a bin empty on both sides adds 0.

    Args:
        reference: Counts (or shares) per bin of the reference population.
        actual: Counts (or shares) per bin of the live population, same bins.
        epsilon: Share added to every bin; must be positive.

    Returns:
        The PSI (at least 0), or 0.0 when either side has no counts at all: nothing
        observed is no evidence of a shift (callers wait for ``MIN_LEADS``).

    Raises:
        ValueError: The shapes differ, there are no bins, a count is negative or not
            finite, or ``epsilon`` is not positive.
    """
    r = np.asarray(reference, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if r.ndim != 1 or r.shape != a.shape or r.size == 0:
        raise ValueError(f"PSI needs two equal 1-d count vectors, got {r.shape} and {a.shape}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(a))):
        raise ValueError("PSI counts must be finite")
    if np.any(r < 0) or np.any(a < 0):
        raise ValueError("PSI counts must not be negative")
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon must be positive, got {epsilon!r}")
    r_total, a_total = float(r.sum()), float(a.sum())
    if r_total == 0 or a_total == 0:
        return 0.0
    scale = 1.0 + r.size * epsilon
    r_share = (r / r_total + epsilon) / scale
    a_share = (a / a_total + epsilon) / scale
    # Each term is >= 0 (a - r and ln(a / r) share their sign); the max() only absorbs
    # rounding of a sum of zeros.
    return max(0.0, float(np.sum((a_share - r_share) * np.log(a_share / r_share))))


def drift(
    bins: DriftBins,
    counts: Mapping[str, npt.ArrayLike],
    *,
    min_leads: int = MIN_LEADS,
    epsilon: float = EPSILON,
) -> dict[str, float]:
    """Return the PSI of every name in ``counts`` over a window, or ``{}`` if too few leads.

    Args:
        bins: The bins of the model version the counts were made with.
        counts: Summed counts per name (as ``DriftBins.count`` returns them, added up
            over batches, workers and minutes); names not in ``bins`` are an error,
            names absent from ``counts`` are left out of the result.
        min_leads: Fewer leads than this (counted in ``__score__``, which holds every
            scored lead once) give ``{}``: PSI of a small sample is mostly noise.
        epsilon: Smoothing of ``psi``.

    Returns:
        PSI per name, in ``bins.names`` order.

    Raises:
        KeyError: A name of ``counts`` is not one of ``bins.names``.
        ValueError: A count vector has the wrong length (see ``DriftBins.comparable``).
    """
    unknown = sorted(set(counts) - set(bins.names))
    if unknown:
        raise KeyError(f"no drift bins for {', '.join(map(repr, unknown))}")
    score = counts.get(SCORE)
    leads = int(np.asarray(score, dtype=np.int64).sum()) if score is not None else 0
    if leads < min_leads:
        return {}
    result: dict[str, float] = {}
    for name in bins.names:
        if name in counts:
            reference, actual = bins.comparable(name, counts[name])
            result[name] = psi(reference, actual, epsilon)
    return result


def is_missing(value: object) -> bool:
    """Whether a raw lead value counts as missing for drift.

    ``None`` (an absent key or JSON ``null``), a blank string and a float NaN: what the
    training CSV reader turns into missing (a blank cell) and what the encoder treats as
    missing. Any other value that encodes to NaN is a value the model has not seen.
    """
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and value != value


def _numeric_bins(
    name: str, column: int, histogram: Histogram
) -> tuple[_Plan, list[str], IntArray]:
    edges = histogram.edges
    if edges is None or len(histogram.counts) != len(edges) + 1:
        raise ValueError(f"reference histogram of {name!r} is not a numeric one")
    plan = _Plan(_NUMERIC, column, np.asarray(edges, dtype=np.float64), 0, len(edges) + 2)
    return plan, [*_range_labels(edges), MISSING], _counts([*histogram.counts, histogram.missing])


def _categorical_bins(
    name: str, column: int, histogram: Histogram
) -> tuple[_Plan, list[str], IntArray]:
    labels = histogram.labels
    if not labels or labels[-1] != OTHER or len(histogram.counts) != len(labels):
        raise ValueError(f"reference histogram of {name!r} is not a categorical one")
    top = len(labels) - 1
    plan = _Plan(_CATEGORICAL, column, np.zeros(0), top, top + 3)
    counts = _counts([*histogram.counts, 0, histogram.missing])
    return plan, [*labels, UNSEEN, MISSING], counts


def _counts(values: list[int]) -> IntArray:
    return np.asarray(values, dtype=np.int64)


def _range_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["any value"]
    shown = [_number(e) for e in edges]
    middle = [f"{low}–{high}" for low, high in itertools.pairwise(shown)]
    return [f"< {shown[0]}", *middle, f"≥ {shown[-1]}"]


def _number(value: float) -> str:
    # Edges are quantiles with rounding noise (5130.000000000001): whole numbers from
    # 1000 up, four significant digits below (a score edge 0.0406718 reads 0.04067).
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _fold_unseen(counts: IntArray) -> IntArray:
    # Categorical layout ends [..., unseen, missing]; PSI sees one NaN bin.
    return np.concatenate([counts[:-2], counts[-2:].sum(keepdims=True)])
