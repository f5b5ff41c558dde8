"""Plots of the model report and the monitor page, drawn by matplotlib as inline SVG.

Each public ``*_svg`` function returns one ``<svg>`` element as a string, ready to be
placed in an HTML page, or ``None`` when the data cannot make a meaningful plot (for
example a ROC curve of a holdout with a single class), so the page shows a message
instead of an empty frame.

Rendering choices and why:

- Object-oriented matplotlib (``matplotlib.figure.Figure``) and no ``pyplot``: nothing
  global (no current figure, no GUI backend); the SVG writer is matplotlib's own, as the
  Agg backend would use. The settings the SVG writer reads at save time (hash salt,
  font type) are process-wide ``rcParams``, so figures are built and saved under a lock
  inside ``rc_context``: the monitor page may render on several threads at once.
- ``svg.hashsalt`` is fixed and the date metadata dropped, so the same inputs give the
  same bytes: the model report is stored in a signed, hashed artifact.
- ``svg.fonttype = "path"``: text is drawn as glyph outlines, so a page needs no font
  and looks the same in every browser. Comments (where matplotlib repeats each text)
  and the metadata block are removed, and every ``id`` gets a per-plot prefix, since
  several SVGs share one HTML document and ids must be unique in it.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

FloatArray = npt.NDArray[np.float64]

# Colour-blind-safe palette (Okabe-Ito based) with a neutral grey for references.
BLUE = "#0072b2"
ORANGE = "#e69f00"
GREEN = "#009e73"
RED = "#d55e00"
GREY = "#7f8795"
LIGHT_GREY = "#c4c9d2"
KIND_COLOURS = {"holdout": GREY, "estimated": ORANGE, "realized": BLUE}

# Longest label drawn on an axis; longer feature names are cut with an ellipsis.
MAX_LABEL = 36
# At most this many bars in one horizontal bar chart (importance, drift).
MAX_BARS = 30
CALIBRATION_BINS = 10
HISTOGRAM_BINS = 20

# Typed loosely: matplotlib's stubs want a dict keyed by a Literal of every rc name.
_RC: dict[Any, Any] = {
    "svg.hashsalt": "ml-service-reports",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.edgecolor": "#5b6270",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,  # grid lines behind bars, not striped across them
    "grid.color": "#dfe3ea",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.dpi": 72,
}
_LOCK = threading.Lock()

_ID = re.compile(r'\bid="([^"]+)"')
_HREF = re.compile(r'(xlink:href|href)="#([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")
_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\n?", re.DOTALL)
_INDENT = re.compile(r"\n[ \t]+")


class BarSeries(NamedTuple):
    """One series of the performance bar chart.

    Attributes:
        label: Legend text, for example ``"realized 7d (1,204 outcomes)"``.
        kind: ``holdout``, ``realized`` or ``estimated`` (picks the colour).
        shade: 0 for the first window of this kind, 1 for the next...; lightens colour.
        values: One value per metric group; ``None`` where there is no figure.
    """

    label: str
    kind: str
    shade: int
    values: tuple[float | None, ...]


def render_svg(draw: Callable[[Figure], None], size: tuple[float, float], prefix: str) -> str:
    """Draw a figure and return it as an inline ``<svg>`` element.

    Args:
        draw: Fills the figure (called under the rendering lock).
        size: Figure size in inches (width, height).
        prefix: Prefixed to every id in the SVG; unique per page.
    """
    buffer = io.StringIO()
    with _LOCK, mpl.rc_context(_RC):
        figure = Figure(figsize=size, layout="constrained")
        draw(figure)
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return _clean_svg(buffer.getvalue(), prefix)


def _clean_svg(text: str, prefix: str) -> str:
    """Strip the XML prolog, metadata and comments; make ids unique with ``prefix``."""
    text = text[text.index("<svg") :]
    text = _METADATA.sub("", text)
    text = _COMMENT.sub("", text)
    text = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = _HREF.sub(lambda m: f'{m.group(1)}="#{prefix}-{m.group(2)}"', text)
    text = _URL.sub(lambda m: f"url(#{prefix}-{m.group(1)})", text)
    text = _INDENT.sub("\n", text)
    return text.replace("<svg ", '<svg role="img" ', 1).strip()


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "\u2026"


# --- curves (numpy only: the server renders the monitor page without scikit-learn) ---


class Curve(NamedTuple):
    """Points of a ranking curve, one per distinct score, from the highest score down."""

    thresholds: FloatArray
    true_positives: FloatArray
    false_positives: FloatArray
    positives: int
    negatives: int


def ranking_curve(scores: npt.ArrayLike, labels: npt.ArrayLike) -> Curve:
    """Return cumulative true and false positives at each distinct score threshold.

    Point ``i`` counts the leads with ``score >= thresholds[i]``; tied scores are taken
    together, as scikit-learn's ``roc_curve`` does.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.zeros(0, int)
    tps = np.cumsum(y)[last] if len(s) else np.zeros(0)
    fps = (last + 1) - tps
    positives = int(y.sum())
    return Curve(s[last], tps, fps.astype(np.float64), positives, len(s) - positives)


def roc_points(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return (false positive rate, true positive rate) from (0, 0) to (1, 1).

    Raises:
        ValueError: The labels hold a single class (the curve is undefined).
    """
    curve = ranking_curve(scores, labels)
    if curve.positives == 0 or curve.negatives == 0:
        raise ValueError("a ROC curve needs both converted and non-converted leads")
    fpr = np.r_[0.0, curve.false_positives / curve.negatives]
    tpr = np.r_[0.0, curve.true_positives / curve.positives]
    return fpr, tpr


def area(x: FloatArray, y: FloatArray) -> float:
    """Return the trapezoidal area under ``y(x)``."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def precision_recall_points(
    scores: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, float]:
    """Return (recall, precision, average precision), from the highest score down.

    Raises:
        ValueError: No converted lead (recall is undefined).
    """
    curve = ranking_curve(scores, labels)
    if curve.positives == 0:
        raise ValueError("a precision-recall curve needs converted leads")
    recall = curve.true_positives / curve.positives
    precision = curve.true_positives / (curve.true_positives + curve.false_positives)
    average = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return recall, precision, average


def reliability_bins(
    scores: npt.ArrayLike, labels: npt.ArrayLike, bins: int = CALIBRATION_BINS
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return (mean score, observed rate, count) of the non-empty equal-width score bins.

    The bins are those of the manifest's expected calibration error (``ece``).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    which = np.minimum((s * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins).astype(np.float64)
    sums = np.bincount(which, weights=s, minlength=bins)
    hits = np.bincount(which, weights=y, minlength=bins)
    used = counts > 0
    return sums[used] / counts[used], hits[used] / counts[used], counts[used]


# --- model report ---


def roc_svg(scores: npt.ArrayLike, labels: npt.ArrayLike, prefix: str = "roc") -> str | None:
    """ROC curve with its AUC in the legend and the chance diagonal; ``None`` if undefined."""
    try:
        fpr, tpr = roc_points(scores, labels)
    except ValueError:
        return None
    auc = area(fpr, tpr)

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        ax.plot([0, 1], [0, 1], linestyle="--", color=LIGHT_GREY, label="chance (AUC 0.5)")
        ax.plot(fpr, tpr, color=BLUE, linewidth=1.8, label=f"model (AUC {auc:.3f})")
        ax.fill_between(fpr, tpr, step=None, color=BLUE, alpha=0.08)
        _unit_axes(ax)
        ax.set_xlabel("False positive rate (non-converted leads accepted)")
        ax.set_ylabel("True positive rate (recall)")
        ax.set_title("ROC curve (holdout)")
        ax.legend(loc="lower right")

    return render_svg(draw, (5.2, 4.2), prefix)


def precision_recall_svg(
    scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float, prefix: str = "pr"
) -> str | None:
    """Precision-recall curve with the threshold's operating point marked."""
    try:
        recall, precision, average = precision_recall_points(scores, labels)
    except ValueError:
        return None
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    accepted = s >= threshold
    base_rate = float(y.mean())
    point: tuple[float, float] | None = None
    if accepted.any():
        hits = float(y[accepted].sum())
        point = (hits / float(y.sum()), hits / float(accepted.sum()))

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        ax.axhline(
            base_rate,
            linestyle="--",
            color=LIGHT_GREY,
            label=f"conversion rate {base_rate:.3f}",
        )
        ax.plot(
            np.r_[0.0, recall],
            np.r_[precision[0], precision],
            color=BLUE,
            linewidth=1.8,
            label=f"model (average precision {average:.3f})",
        )
        if point is not None:
            ax.plot(
                *point,
                marker="o",
                markersize=8,
                color=RED,
                linestyle="none",
                label=f"threshold {threshold:g}: P {point[1]:.3f}, R {point[0]:.3f}",
            )
        _unit_axes(ax)
        ax.set_xlabel("Recall (share of converted leads accepted)")
        ax.set_ylabel("Precision (share of accepted leads that convert)")
        ax.set_title("Precision-recall (holdout)")
        # Below the axes: inside, any corner can hide the curve or the base-rate line.
        figure.legend(loc="outside lower center", ncols=1)

    return render_svg(draw, (5.2, 4.2), prefix)


def calibration_svg(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    calibration_x: Sequence[float] | None = None,
    calibration_y: Sequence[float] | None = None,
    prefix: str = "calibration",
) -> str | None:
    """Reliability curve (observed rate vs mean score per bin), diagonal, calibration map."""
    mean_score, observed, count = reliability_bins(scores, labels)
    if len(count) == 0:
        return None
    has_map = bool(calibration_x) and bool(calibration_y)
    # Marker area grows with the bin's lead count, so thin bins read as less certain.
    sizes = 12 + 140 * count / count.max()

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        ax.plot([0, 1], [0, 1], linestyle="--", color=LIGHT_GREY, label="perfectly calibrated")
        if has_map:
            ax.plot(
                np.asarray(calibration_x, dtype=np.float64),
                np.asarray(calibration_y, dtype=np.float64),
                color=GREEN,
                linewidth=1.4,
                label="stored calibration map",
            )
        ax.plot(mean_score, observed, color=BLUE, linewidth=1.2)
        ax.scatter(
            mean_score,
            observed,
            s=sizes,
            color=BLUE,
            edgecolors="white",
            linewidths=0.6,
            zorder=3,
            label="holdout bins (area: leads)",
        )
        _unit_axes(ax)
        ax.set_xlabel("Mean score in bin")
        ax.set_ylabel("Observed conversion rate")
        ax.set_title("Calibration (holdout)")
        ax.legend(loc="upper left")

    return render_svg(draw, (5.2, 4.2), prefix)


def score_histogram_svg(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    threshold: float,
    prefix: str = "score-histogram",
) -> str | None:
    """Score histogram per class, each normalised to its class total, with the threshold."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.int64).ravel()
    if len(s) == 0:
        return None
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        for value, colour, name in ((0, GREY, "not converted"), (1, ORANGE, "converted")):
            part = s[y == value]
            if len(part) == 0:
                continue
            weights = np.full(len(part), 1.0 / len(part))
            ax.hist(
                part,
                bins=edges.tolist(),
                weights=weights,
                color=colour,
                alpha=0.45,
                edgecolor=colour,
                linewidth=1.0,
                histtype="stepfilled",
                label=f"{name} ({len(part):,})",
            )
        ax.axvline(threshold, color=RED, linestyle="--", linewidth=1.4)
        ax.annotate(
            f" threshold {threshold:g}",
            xy=(threshold, 1.0),
            xycoords=("data", "axes fraction"),
            va="top",
            ha="left" if threshold < 0.75 else "right",
            color=RED,
            fontsize=8,
        )
        ax.set_xlim(0, 1)
        ax.set_xlabel("Score")
        ax.set_ylabel("Share of the class's leads")
        ax.set_title("Scores by outcome (holdout)")
        figure.legend(loc="outside lower center", ncols=2)

    return render_svg(draw, (5.2, 4.2), prefix)


def importance_svg(importance: Mapping[str, float], prefix: str = "importance") -> str | None:
    """Horizontal bars of feature importance, largest on top (at most ``MAX_BARS``)."""
    items = sorted(importance.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_BARS]
    if not items:
        return None
    names = [_short(name) for name, _ in items][::-1]
    values = np.asarray([value for _, value in items][::-1], dtype=np.float64)
    as_share = bool(np.all(values >= 0)) and float(values.sum()) <= 1.0 + 1e-9

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        positions = np.arange(len(values))
        ax.barh(positions, values, color=BLUE, height=0.65)
        ax.set_yticks(positions, names)
        ax.grid(axis="y", visible=False)
        top = float(values.max()) if len(values) else 1.0
        ax.set_xlim(0, top * 1.18 if top > 0 else 1)
        for y, value in zip(positions, values, strict=True):
            text = f"{value:.1%}" if as_share else f"{value:.3g}"
            ax.annotate(f" {text}", xy=(value, y), va="center", ha="left", fontsize=8, color="#333")
        ax.set_xlabel("Share of total gain" if as_share else "Importance")
        ax.set_title("Feature importance")
        if as_share:
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))

    return render_svg(draw, (10.4, 0.9 + 0.32 * len(items)), prefix)


# --- monitor page ---


def performance_svg(
    panels: Sequence[tuple[str, Sequence[BarSeries]]],
    metrics: Sequence[str] = ("AUC", "Precision", "Recall"),
    prefix: str = "performance",
) -> str | None:
    """Grouped bars: one panel per role, metric groups, one bar per series.

    A ``None`` value draws no bar but a small "n/a" at the bar's place, so a missing
    figure is visibly missing rather than looking like zero.
    """
    panels = [(title, list(series)) for title, series in panels if series]
    if not panels:
        return None
    handles: dict[str, Patch] = {}

    def draw(figure: Figure) -> None:
        axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, (title, series) in zip(axes, panels, strict=True):
            width = 0.8 / len(series)
            groups = np.arange(len(metrics))
            for i, bar in enumerate(series):
                colour = _shade(KIND_COLOURS.get(bar.kind, GREY), bar.shade)
                offset = (i - (len(series) - 1) / 2) * width
                for g, value in zip(groups, bar.values, strict=True):
                    x = g + offset
                    if value is None:
                        ax.annotate(
                            "n/a",
                            xy=(x, 0.01),
                            ha="center",
                            va="bottom",
                            rotation=90,
                            fontsize=7,
                            color=GREY,
                        )
                        continue
                    ax.bar(x, value, width=width * 0.92, color=colour)
                    ax.annotate(
                        f"{value:.2f}",
                        xy=(x, value),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=6.5,
                        rotation=90 if len(series) > 3 else 0,
                    )
                handles.setdefault(bar.label, Patch(color=colour, label=bar.label))
            ax.set_xticks(groups, list(metrics))
            # Fixed limits: a group whose bars are all missing must still get its slot.
            ax.set_xlim(-0.5, len(metrics) - 0.5)
            ax.grid(axis="x", visible=False)
            ax.set_ylim(0, 1.12)
            ax.set_title(title)
        axes[0].set_ylabel("Value")
        figure.legend(
            handles=list(handles.values()),
            loc="outside lower center",
            ncols=min(3, len(handles)),
        )

    rows = -(-len({s.label for _, series in panels for s in series}) // 3)
    return render_svg(draw, (10.4, 3.6 + 0.2 * rows), prefix)


def drift_svg(
    bars: Sequence[tuple[str, float | None]], threshold: float, prefix: str = "drift"
) -> str | None:
    """Horizontal PSI bars, highest on top, bars over ``threshold`` highlighted.

    Args:
        bars: (label, PSI) pairs; a ``None`` PSI (no data in the window) is listed
            with the text "no data" instead of a bar.
        threshold: Drawn as a vertical line; bars above it are red.
        prefix: Id prefix of the SVG.
    """
    if not bars:
        return None
    ranked = sorted(bars, key=lambda b: (b[1] is None, -(b[1] or 0.0), b[0]))[:MAX_BARS]
    ranked.reverse()
    values = [psi for _, psi in ranked]
    present = [v for v in values if v is not None]
    top = max([*present, threshold])

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        positions = np.arange(len(ranked))
        for y, value in zip(positions, values, strict=True):
            if value is None:
                ax.annotate(
                    "no data",
                    xy=(0, y),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    ha="left",
                    fontsize=8,
                    color=GREY,
                )
                continue
            over = value > threshold
            ax.barh(y, value, height=0.65, color=RED if over else BLUE)
            ax.annotate(
                f" {value:.3f}",
                xy=(value, y),
                va="center",
                ha="left",
                fontsize=8,
                color=RED if over else "#333",
            )
        line = ax.axvline(
            threshold, color=RED, linestyle="--", linewidth=1.2, label=f"threshold {threshold:g}"
        )
        figure.legend(
            handles=[line, Patch(color=BLUE, label="stable"), Patch(color=RED, label="shifted")],
            loc="outside lower center",
            ncols=3,
        )
        ax.set_yticks(positions, [_short(label) for label, _ in ranked])
        ax.grid(axis="y", visible=False)
        ax.set_xlim(0, top * 1.25)
        ax.set_ylim(-0.6, len(ranked) - 0.4)
        ax.set_xlabel("Population stability index (PSI)")
        ax.set_title("Drift per feature")

    return render_svg(draw, (5.2, max(2.8, 1.4 + 0.3 * len(ranked))), prefix)


def acceptance_svg(
    windows: Sequence[tuple[str, float | None]],
    target: float | None,
    prefix: str = "acceptance",
) -> str | None:
    """Acceptance rate per window as bars, with the target (if any) as a horizontal line."""
    if not windows:
        return None
    labels = [_short(window) for window, _ in windows]
    present = [rate for _, rate in windows if rate is not None]
    top = max([*present, target if target is not None else 0.0])

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        positions = np.arange(len(windows))
        for x, (_, rate) in zip(positions, windows, strict=True):
            if rate is None:
                ax.annotate("no leads", xy=(x, 0), ha="center", va="bottom", fontsize=8, color=GREY)
                continue
            ax.bar(x, rate, width=0.55, color=BLUE)
            ax.annotate(
                f"{rate:.1%}",
                xy=(x, rate),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if target is not None:
            ax.axhline(
                target, color=RED, linestyle="--", linewidth=1.2, label=f"target {target:.1%}"
            )
            ax.legend(loc="upper right")
        ax.set_xticks(positions, labels)
        ax.set_xlim(-0.6, len(windows) - 0.4)
        ax.grid(axis="x", visible=False)
        ax.set_ylim(0, top * 1.3 if top > 0 else 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
        ax.set_xlabel("Window")
        ax.set_ylabel("Leads accepted (score \u2265 threshold)")
        ax.set_title("Acceptance rate")

    return render_svg(draw, (5.2, 3.4), prefix)


def _unit_axes(ax: Axes) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_aspect("equal", adjustable="box")


def _shade(colour: str, step: int) -> str:
    """Return ``colour`` mixed ``step`` fifths of the way (at most three) toward white."""
    rgb = np.asarray(to_rgb(colour))
    mixed = rgb + (1.0 - rgb) * min(step, 3) * 0.2
    return str(to_hex((float(mixed[0]), float(mixed[1]), float(mixed[2]))))
