"""Loader of the Prometheus rules in ``deploy/prometheus/alerts.yml``, for tests.

Used by ``tests/deploy/test_alert_rules.py`` (the rules' own checks) and by the
integration test that runs every rule's expression against a real Prometheus. Parsing is
strict on the shape Prometheus itself requires (a rule is either an ``alert`` or a
``record`` and has an ``expr``), so a malformed file fails here with its location rather
than as a puzzling missing rule later; PromQL itself is left to ``promtool``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"


@dataclass(frozen=True)
class Rule:
    """One recording or alerting rule, as written in the rules file.

    Attributes:
        group: Name of the rule group the rule belongs to.
        kind: ``"alert"`` for an alerting rule, ``"record"`` for a recording rule.
        name: The alert name or the recorded series' name.
        expr: The PromQL expression, as written (block scalars keep their newlines).
        for_: The alert's ``for`` duration (``"5m"``), or None when it has none.
        labels: Labels the rule adds (``severity`` for alerts).
        annotations: The alert's annotations (empty for recording rules).
    """

    group: str
    kind: Literal["alert", "record"]
    name: str
    expr: str
    for_: str | None
    # Dicts cannot be hashed; leaving them out of the hash keeps Rule usable in sets.
    labels: dict[str, str] = field(hash=False)
    annotations: dict[str, str] = field(hash=False)


def _string_map(value: object, where: str) -> dict[str, str]:
    """Return a YAML mapping as str -> str (Prometheus reads label values as strings)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    return {str(key): str(item) for key, item in value.items()}


def _rule(group: str, index: int, raw: object, path: Path) -> Rule:
    where = f"{path}: group {group!r}, rule {index}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    kind: Literal["alert", "record"]
    if "alert" in raw and "record" not in raw:
        kind = "alert"
    elif "record" in raw and "alert" not in raw:
        kind = "record"
    else:
        raise ValueError(f"{where}: a rule has exactly one of 'alert' and 'record'")
    expr = raw.get("expr")
    if expr is None or not str(expr).strip():
        raise ValueError(f"{where}: no expr")
    duration = raw.get("for")
    return Rule(
        group=group,
        kind=kind,
        name=str(raw[kind]),
        expr=str(expr),
        for_=None if duration is None else str(duration),
        labels=_string_map(raw.get("labels"), f"{where}: labels"),
        annotations=_string_map(raw.get("annotations"), f"{where}: annotations"),
    )


def load_rules(path: Path = RULES_FILE) -> list[Rule]:
    """Read every rule of a Prometheus rules file, in file order.

    Args:
        path: The rules file (default: the service's ``deploy/prometheus/alerts.yml``).

    Returns:
        The rules of all groups, in the order they are written.

    Raises:
        ValueError: The file is not a rules file (no ``groups`` list, a group without a
            name or rules, a rule that is not exactly one of alert/record or has no expr).
    """
    document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list):
        raise ValueError(f"{path}: expected a top-level 'groups' list")
    rules: list[Rule] = []
    for position, group in enumerate(groups):
        if not isinstance(group, dict) or not group.get("name"):
            raise ValueError(f"{path}: group {position} has no name")
        name = str(group["name"])
        raw_rules = group.get("rules")
        if not isinstance(raw_rules, list):
            raise ValueError(f"{path}: group {name!r} has no 'rules' list")
        rules.extend(_rule(name, index, raw, path) for index, raw in enumerate(raw_rules))
    return rules
