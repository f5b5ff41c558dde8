"""Read the Grafana dashboard and turn its PromQL into queries a real Prometheus runs.

Shared by the dashboard's structural test (``tests/deploy/test_dashboard.py``) and the
integration test that executes every expression against a real Prometheus after
traffic, so the dashboard cannot silently rot: both read the same JSON the same way.

Grafana expands template variables before a query reaches Prometheus; ``substitute``
does the same for the forms the dashboard uses, and refuses to leave a variable
behind, because Prometheus would reject (or, worse, silently mismatch) a literal ``$``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# tests/deploy/dashboard.py -> repo root is two levels above this directory.
DASHBOARD_FILE = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ml-service.json"

# Grafana's variable syntaxes: ``$name``, ``${name}``, ``${name:format}`` and the
# deprecated ``[[name]]`` / ``[[name:format]]``. Names are word characters, so the
# built-ins (``$__rate_interval``) match the first form too.
_VARIABLE = re.compile(
    r"\$\{(?P<braced>\w+)(?::(?P<braced_format>\w+))?\}"
    r"|\$(?P<plain>\w+)"
    r"|\[\[(?P<bracketed>\w+)(?::(?P<bracketed_format>\w+))?\]\]"
)
# What is left of a variable that ``_VARIABLE`` could not read (``${name``,
# ``${name.field}``, ``${}``): a ``$`` followed by a word character or a brace. A ``$``
# before anything else (a regex anchor inside a label matcher) is PromQL, not Grafana.
_LEFTOVER = re.compile(r"\$[\w{]|\[\[")
# Formats whose output for a value the caller already formatted is the value itself:
# the mapping holds what Grafana would produce (``auto|home`` for a multi-value
# ``vertical``), so these formats insert it unchanged. Others (csv, json, glob, ...)
# would need the individual values, so they are refused rather than guessed.
_PASS_THROUGH_FORMATS = frozenset({"regex", "pipe", "raw", "text"})


@dataclass(frozen=True)
class PanelQuery:
    """One PromQL target of one panel.

    Attributes:
        panel: The panel's title.
        ref_id: The target's ``refId`` (``A``, ``B``, ...).
        expr: The PromQL expression as written in the dashboard (variables unexpanded).
    """

    panel: str
    ref_id: str
    expr: str


def load_dashboard(path: Path = DASHBOARD_FILE) -> dict[str, Any]:
    """Load a dashboard JSON file.

    Args:
        path: The dashboard file; the service's dashboard by default.

    Returns:
        The dashboard model as a dict.

    Raises:
        ValueError: The file is not JSON or its top level is not an object.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a dashboard is a JSON object, got {type(data).__name__}")
    return data


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield every panel, rows included, descending into rows' nested panels.

    A collapsed row keeps its panels in its own ``panels`` list instead of the
    dashboard's, so walking only the top level would miss them.

    Args:
        dashboard: The dashboard model.

    Yields:
        Each panel dict, a row before the panels nested in it.
    """
    stack: list[Any] = list(reversed(dashboard.get("panels", [])))
    while stack:
        panel = stack.pop()
        if not isinstance(panel, dict):
            continue
        yield panel
        stack.extend(reversed(panel.get("panels", [])))


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    """List the PromQL targets of every panel, nested ones included.

    Args:
        dashboard: The dashboard model.

    Returns:
        One entry per target that has an ``expr`` key, in dashboard order. An empty
        ``expr`` is kept, so a check can report it rather than miss it.
    """
    queries: list[PanelQuery] = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            if isinstance(target, dict) and "expr" in target:
                queries.append(
                    PanelQuery(
                        panel=str(panel.get("title", "")),
                        ref_id=str(target.get("refId", "")),
                        expr=str(target["expr"]),
                    )
                )
    return queries


def variable_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Map each query-type templating variable to its query.

    Only ``type: query`` variables have a PromQL-side query; the ``datasource``
    variable's "query" is a plugin type (``prometheus``), not something to run, so it is
    left out. Grafana stores the query either as a string or, since the Prometheus
    variable editor of Grafana 10, as an object whose ``query`` key holds the string.

    Args:
        dashboard: The dashboard model.

    Returns:
        Variable name -> query, e.g. ``{"environment": "label_values(ml_..., environment)"}``.
    """
    result: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if not isinstance(variable, dict) or variable.get("type") != "query":
            continue
        query = variable.get("query", "")
        if isinstance(query, dict):
            query = query.get("query", "")
        result[str(variable["name"])] = str(query)
    return result


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Expand Grafana template variables in a PromQL expression.

    Handles ``$name``, ``${name}``, ``${name:regex}``, ``${name:pipe}`` (also ``raw``
    and ``text``) and ``[[name]]`` for the variables given, Grafana's built-ins
    included (pass ``__rate_interval``, ``__interval``, ``__range`` in ``variables``).
    Values go in as given: the caller passes what Grafana would produce, e.g.
    ``{"vertical": "auto|home"}`` for a multi-value variable. The expansion is a
    single pass, so a value containing ``$`` is not expanded again.

    Args:
        expr: The expression as written in the dashboard.
        variables: Variable name (without ``$``) -> value.

    Returns:
        The expression with every variable replaced.

    Raises:
        ValueError: A variable is not in ``variables``, uses an unsupported format, or
            is malformed, so a ``$`` variable would remain in the query.
    """
    unresolved: list[str] = []
    pieces: list[str] = []
    position = 0
    for match in _VARIABLE.finditer(expr):
        gap = expr[position : match.start()]
        unresolved.extend(_leftovers(gap))
        pieces.append(gap)
        position = match.end()
        name = match.group("braced") or match.group("plain") or match.group("bracketed")
        fmt = match.group("braced_format") or match.group("bracketed_format")
        if name not in variables:
            unresolved.append(match.group(0))
            continue
        if fmt is not None and fmt not in _PASS_THROUGH_FORMATS:
            raise ValueError(
                f"{match.group(0)!r}: format {fmt!r} is not supported "
                f"(supported: {', '.join(sorted(_PASS_THROUGH_FORMATS))}) in {expr!r}"
            )
        pieces.append(variables[name])
    tail = expr[position:]
    unresolved.extend(_leftovers(tail))
    pieces.append(tail)
    if unresolved:
        raise ValueError(f"unresolved template variable(s) {unresolved} in {expr!r}")
    return "".join(pieces)


def _leftovers(text: str) -> list[str]:
    """Return the malformed variable references in text between well-formed ones."""
    return [text[found.start() : found.start() + 20] for found in _LEFTOVER.finditer(text)]
