"""The live monitor page of a vertical: how its models are doing in production.

Rendered on request from the monitoring figures the service holds (the HTTP layer
gathers them into ``MonitorInputs``); like the model report it is one self-contained
HTML page with inline SVG plots. It shows:

- performance: AUC, precision and recall as grouped bars, one panel for the champion
  and one for the shadow challenger, comparing the holdout figures with the estimated
  (from scores alone) and the realized (from reported outcomes) ones per window, and
  a table with the conversion rate and the number of leads behind each figure;
- drift: the PSI of the score and of every feature against the training reference,
  bars over the alert threshold highlighted;
- the acceptance rate per window against its target.

Missing data is normal here (a new version has no outcomes, no challenger may be set,
no lead may have been scored in the drift window): every part of the page then says
what is missing instead of failing or drawing an empty frame.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from engine.reports.html import Cell, figure, format_number, page, table

if TYPE_CHECKING:
    from engine.reports.plots import BarSeries

Kind = Literal["holdout", "realized", "estimated"]
Role = Literal["champion", "challenger"]

KIND_ORDER: dict[str, int] = {"holdout": 0, "estimated": 1, "realized": 2}
ROLE_ORDER: dict[str, int] = {"champion": 0, "challenger": 1}
SCORE_FEATURE = "__score__"
NO_OUTCOMES = "no outcomes yet"
NO_LEADS = "no leads scored yet"
_WINDOW = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class PerformanceRow:
    """One set of performance figures of one model over one window.

    Attributes:
        kind: ``holdout`` (training holdout), ``realized`` (from reported outcomes) or
            ``estimated`` (from the scores alone).
        role: ``champion`` (serving) or ``challenger`` (shadow).
        window: ``all`` for the holdout, else the window (``1h``, ``1d``, ``7d``...).
        auc: ROC AUC, ``None`` when it cannot be computed yet.
        precision: Precision at the threshold, or ``None``.
        recall: Recall at the threshold, or ``None``.
        conversion_rate: Observed (realized, holdout) or expected (estimated) rate.
        leads: Leads behind the figures: outcomes for realized, scored leads for
            estimated, holdout rows for holdout.
    """

    kind: Kind
    role: Role
    window: str
    auc: float | None
    precision: float | None
    recall: float | None
    conversion_rate: float | None
    leads: int


@dataclass(frozen=True, slots=True)
class DriftRow:
    """The PSI of one feature (or of the score, ``__score__``) over the drift window.

    Attributes:
        name: Feature name, or ``__score__`` for the model's score.
        psi: Population stability index against the training reference; ``None`` when
            the window holds no value of it.
        role: ``champion`` or ``challenger`` (whose reference and score it uses).
    """

    name: str
    psi: float | None
    role: str = "champion"


@dataclass(frozen=True, slots=True)
class MonitorInputs:
    """Everything the monitor page shows.

    Attributes:
        vertical: The vertical's name.
        environment: Deployment environment (``production``, ``staging``...).
        generated_at: When the figures were gathered (ISO 8601).
        champion_version: The serving version.
        challenger_version: The shadow version, ``None`` when none is set.
        performance: Performance rows, any order.
        drift: PSI per feature and role; empty before any lead was binned.
        drift_threshold: The PSI above which a feature counts as shifted (alerting).
        acceptance: (window, acceptance rate) pairs; ``None`` for a window without leads.
        acceptance_target: The expected acceptance rate, ``None`` for no target line.
    """

    vertical: str
    environment: str
    generated_at: str
    champion_version: str
    challenger_version: str | None = None
    performance: Sequence[PerformanceRow] = ()
    drift: Sequence[DriftRow] = ()
    drift_threshold: float = 0.1
    acceptance: Sequence[tuple[str, float | None]] = ()
    acceptance_target: float | None = None


def render_monitor_page(inputs: MonitorInputs) -> bytes:
    """Render the monitor page as a self-contained UTF-8 HTML document.

    Args:
        inputs: The figures to show; any list may be empty.

    Returns:
        The page.
    """
    from engine.reports import plots  # matplotlib loads only when a page is rendered

    rows = sorted(
        inputs.performance,
        key=lambda r: (ROLE_ORDER.get(r.role, 9), KIND_ORDER.get(r.kind, 9), _window_key(r.window)),
    )
    panels = _performance_panels(inputs, rows)
    has_realized = any(r.kind == "realized" and r.auc is not None for r in rows)
    performance = figure(
        "performance",
        "AUC, and precision and recall at the threshold. Holdout: measured on the "
        "training holdout. Estimated: from the scores alone, before outcomes arrive. "
        "Realized: from reported outcomes in the window. n/a: no figure yet."
        + ("" if has_realized else " No outcomes have been reported yet."),
        plots.performance_svg(panels),
        "No performance figures yet.",
    )

    drift_bars = [(_drift_label(d), d.psi) for d in inputs.drift]
    shifted = sum(1 for d in inputs.drift if d.psi is not None and d.psi > inputs.drift_threshold)
    drift = figure(
        "drift",
        "Population stability index (PSI) of each feature and of the score over the "
        "drift window, against the training data. "
        + (
            f"Red: over the threshold {inputs.drift_threshold:g} "
            f"({shifted} of {len(inputs.drift)}). "
            if inputs.drift
            else ""
        )
        + "Below 0.1 is usually read as stable, 0.1 to 0.25 as a moderate shift, above "
        "0.25 as a major one.",
        plots.drift_svg(drift_bars, inputs.drift_threshold),
        "No drift figures yet: no lead has been scored in the drift window.",
    )
    target = (
        f" against the target {inputs.acceptance_target:.1%}"
        if inputs.acceptance_target is not None
        else ""
    )
    acceptance = figure(
        "acceptance",
        f"Share of scored leads accepted (score at or above the threshold) per window{target}.",
        plots.acceptance_svg(inputs.acceptance, inputs.acceptance_target),
        "No acceptance figures yet: no lead has been scored.",
    )

    body = (
        "<h2>Performance</h2>\n"
        + performance
        + '\n<div class="tables"><section>'
        + _performance_table(rows)
        + "</section></div>\n"
        + '<h2>Drift and acceptance</h2>\n<div class="grid">'
        + drift
        + acceptance
        + "</div>\n"
        + ('<div class="tables"><section>' + _drift_table(inputs) + "</section></div>\n")
    )
    challenger = (
        f"challenger v{inputs.challenger_version} (shadow)"
        if inputs.challenger_version
        else "no challenger"
    )
    title = f"Model monitor: {inputs.vertical} ({inputs.environment})"
    subtitle = (
        f"Champion v{inputs.champion_version} \u00b7 {challenger} \u00b7 "
        f"figures as of {inputs.generated_at}"
    )
    footer = (
        f"Monitor page of {inputs.vertical} in {inputs.environment}, generated at "
        f"{inputs.generated_at}. Reload for fresh figures."
    )
    return page(title, subtitle, body, footer)


def _window_key(window: str) -> tuple[float, str]:
    """Order windows by length (``all`` first, ``1h`` before ``1d`` before ``7d``)."""
    if window == "all":
        return (-1.0, window)
    match = _WINDOW.fullmatch(window.strip())
    if match is None:
        return (math.inf, window)
    return (float(match.group(1)) * _UNIT_SECONDS[match.group(2)], window)


def _series_label(row: PerformanceRow) -> str:
    label = row.kind if row.window == "all" else f"{row.kind} {row.window}"
    missing = _missing(row)
    return f"{label}: {missing}" if missing else label


def _missing(row: PerformanceRow) -> str:
    """Return why a row has no figures at all (its leads count is zero), else ``""``."""
    if row.leads > 0 or any(
        v is not None for v in (row.auc, row.precision, row.recall, row.conversion_rate)
    ):
        return ""
    return NO_OUTCOMES if row.kind == "realized" else NO_LEADS


def _performance_panels(
    inputs: MonitorInputs, rows: list[PerformanceRow]
) -> list[tuple[str, list[BarSeries]]]:
    from engine.reports.plots import BarSeries

    # Shades follow each kind's windows in order of first appearance, across both roles,
    # so "realized 7d" has the same colour in the champion's and the challenger's panel.
    windows: dict[str, list[str]] = {}
    for row in rows:
        seen = windows.setdefault(row.kind, [])
        if row.window not in seen:
            seen.append(row.window)
    titles = {
        "champion": f"Champion v{inputs.champion_version}",
        "challenger": f"Challenger v{inputs.challenger_version or '?'} (shadow)",
    }
    panels: list[tuple[str, list[BarSeries]]] = []
    for role in sorted({r.role for r in rows}, key=lambda r: ROLE_ORDER.get(r, 9)):
        series = [
            BarSeries(
                _series_label(r),
                r.kind,
                windows[r.kind].index(r.window),
                (r.auc, r.precision, r.recall),
            )
            for r in rows
            if r.role == role
        ]
        panels.append((titles.get(role, role), series))
    return panels


def _performance_table(rows: list[PerformanceRow]) -> str:
    body: list[list[Cell | str]] = []
    for row in rows:
        cells: list[Cell | str] = [row.role, row.kind, row.window]
        missing = _missing(row)
        if missing:
            cells.append(Cell(missing, "missing", colspan=4))
        else:
            for value in (row.auc, row.precision, row.recall, row.conversion_rate):
                cells.append(Cell(format_number(value), "num" if value is not None else "missing"))
        cells.append(Cell(format_number(row.leads), "num"))
        body.append(cells)
    if not body:
        body.append([Cell("no performance figures yet", "missing", colspan=8)])
    return table(
        ("Role", "Kind", "Window", "AUC", "Precision", "Recall", "Conversion rate", "Leads"),
        body,
        table_id="performance-table",
    )


def _drift_label(row: DriftRow) -> str:
    name = "score" if row.name == SCORE_FEATURE else row.name
    return name if row.role == "champion" else f"{name} ({row.role})"


def _drift_table(inputs: MonitorInputs) -> str:
    body: list[list[Cell | str]] = []
    ranked = sorted(inputs.drift, key=lambda d: (d.psi is None, -(d.psi or 0.0), d.name))
    for row in ranked:
        if row.psi is None:
            status = Cell("no data", "missing")
        elif row.psi > inputs.drift_threshold:
            status = Cell("over threshold", "over")
        else:
            status = Cell("stable")
        body.append(
            [
                "score" if row.name == SCORE_FEATURE else row.name,
                row.role,
                Cell(format_number(row.psi), "num" if row.psi is not None else "missing"),
                status,
            ]
        )
    if not body:
        body.append([Cell("no drift figures yet", "missing", colspan=4)])
    return table(("Feature", "Role", "PSI", "Status"), body, table_id="drift-table")
