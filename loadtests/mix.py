"""The traffic mix: its settings, and the names locust reports each kind of request under.

The runner (``loadtests/run.py``, ``loadtests/soak.py``) and the locustfile run in
different processes, so the settings travel as environment variables, parsed here (no
locust import: pytest and the runner import this module too):

- ``LOADTEST_VERTICALS`` (``auto=50,home=25,health=15,life=10``): share of leads per
  vertical.
- ``LOADTEST_TASKS`` (``score=80,batch=5,invalid=2,feedback=12,feedback_batch=1``):
  share of a scoring user's requests by kind, whole numbers; ``invalid`` is a lead the
  service must refuse with a 4xx.
- ``LOADTEST_BATCH_SIZE`` (``10-50``): leads per batch, drawn uniformly.
- ``LOADTEST_WAIT`` (``0.05-0.15``): seconds a scoring user waits between requests,
  drawn uniformly.
- ``LOADTEST_RELOAD_SECONDS`` (``10``): seconds between admin reloads (one admin user).
- ``LOADTEST_RELOAD_VERSIONS`` (empty): JSON list of ``{vertical: version}`` maps the
  reloads cycle through; empty: a reload with no body (re-read every ``CURRENT``).
- ``LOADTEST_FEEDBACK_DELAY`` (``1.0``): seconds after scoring before a lead's outcome
  may be reported (the service knows a lead about 50 ms after its response).
- ``LOADTEST_SEED``, ``LOADTEST_POOL`` (``1001``, ``2000``): seed and size per vertical
  of the synthetic lead pool (``make models`` trains on seed 7).
- ``LOADTEST_EXPECT_LOST_LEADS`` (``0``): ``1`` in the soak, where an outcome for a lead
  scored by a worker killed before it handed the lead to the store is answered 404:
  counted apart as lost, not as failed.

Request names (one row each in locust's reports) carry the vertical or the invalid
case, so the reports show the mix as it ran; ``kind_of`` maps a name back to its kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

SCORE_PATH = "/api/v1/score"
BATCH_PATH = "/api/v1/score/batch"
FEEDBACK_PATH = "/api/v1/feedback"
FEEDBACK_BATCH_PATH = "/api/v1/feedback/batch"
RELOAD_PATH = "/api/v1/models/reload"

# Kinds of request, as LOADTEST_TASKS names them (plus the admin's reload and the
# soak's lost outcomes, which are not tasks of the scoring user).
TASK_KINDS: tuple[str, ...] = ("score", "batch", "invalid", "feedback", "feedback_batch")
RELOAD = "reload"
LOST = "lost"
ALL_KINDS: tuple[str, ...] = (*TASK_KINDS, RELOAD)

LOST_NAME = f"{FEEDBACK_PATH} [lost with a killed worker]"
REPORT_PREFIX_ENV = "LOADTEST_REPORT_PREFIX"
"""Where the locustfile writes its final CSV reports (``<prefix>_stats.csv``, ...)."""

DEFAULT_VERTICALS = "auto=50,home=25,health=15,life=10"
DEFAULT_TASKS = "score=80,batch=5,invalid=2,feedback=12,feedback_batch=1"


def score_name(vertical: str) -> str:
    """The report name of a single scoring request for ``vertical``."""
    return f"{SCORE_PATH} [{vertical}]"


def batch_name(vertical: str) -> str:
    """The report name of a batch scoring request for ``vertical``."""
    return f"{BATCH_PATH} [{vertical}]"


def invalid_name(case: str) -> str:
    """The report name of an invalid lead of the given case."""
    return f"{SCORE_PATH} [invalid: {case}]"


def kind_of(name: str) -> str | None:
    """The kind of request a report row ``name`` holds (None: not one of ours)."""
    if name == LOST_NAME:
        return LOST
    if name.startswith(f"{SCORE_PATH} [invalid: "):
        return "invalid"
    exact = {FEEDBACK_PATH: "feedback", FEEDBACK_BATCH_PATH: "feedback_batch", RELOAD_PATH: RELOAD}
    if name in exact:
        return exact[name]
    if name.startswith(f"{BATCH_PATH} ["):
        return "batch"
    if name.startswith(f"{SCORE_PATH} ["):
        return "score"
    return None


def parse_weights(
    text: str, what: str, allowed: tuple[str, ...] | None = None, whole: bool = False
) -> dict[str, float]:
    """Parse ``name=weight,name=weight`` into weights (non-negative, at least one positive).

    Args:
        text: The list, e.g. ``auto=50,home=25``.
        what: What the weights are of, for error messages (e.g. ``LOADTEST_VERTICALS``).
        allowed: The names allowed, or None for any.
        whole: Weights must be whole numbers (locust repeats a task ``weight`` times).

    Raises:
        ValueError: A malformed item, an unknown or repeated name, a negative,
            non-numeric (or, with ``whole``, fractional) weight, or no positive weight.
    """
    weights: dict[str, float] = {}
    for item in text.split(","):
        name, sep, raw = item.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{what}: {item.strip()!r} is not name=weight")
        if allowed is not None and name not in allowed:
            raise ValueError(f"{what}: unknown name {name!r}; known: {', '.join(allowed)}")
        if name in weights:
            raise ValueError(f"{what}: {name!r} is given twice")
        try:
            weight = float(raw)
        except ValueError:
            raise ValueError(
                f"{what}: weight of {name!r} is not a number: {raw.strip()!r}"
            ) from None
        if not weight >= 0 or weight == float("inf"):  # NaN fails the first test
            raise ValueError(f"{what}: weight of {name!r} must be a finite number >= 0")
        if whole and not weight.is_integer():
            raise ValueError(f"{what}: weight of {name!r} must be a whole number")
        weights[name] = weight
    if not any(weights.values()):
        raise ValueError(f"{what}: at least one weight must be positive")
    return weights


def parse_range(text: str, what: str) -> tuple[float, float]:
    """Parse ``low-high`` (or one number) into a range of non-negative numbers.

    Raises:
        ValueError: Not numbers, negative, or ``low`` above ``high``.
    """
    low_text, sep, high_text = text.strip().partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if sep else low
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number or a range low-high") from None
    if not 0 <= low <= high < float("inf"):
        raise ValueError(f"{what}: {text!r} must be 0 <= low <= high")
    return low, high


def parse_reload_versions(text: str) -> list[dict[str, str]]:
    """Parse ``LOADTEST_RELOAD_VERSIONS``: a JSON list of ``{vertical: version}`` maps.

    Raises:
        ValueError: Not JSON, or not a list of maps of strings to strings.
    """
    if not text.strip():
        return []
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"LOADTEST_RELOAD_VERSIONS is not JSON: {exc}") from None
    if not isinstance(value, list) or not all(
        isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items())
        for m in value
    ):
        raise ValueError('LOADTEST_RELOAD_VERSIONS must be a list like [{"auto": "1.1.0"}, ...]')
    return value


@dataclass(frozen=True)
class MixSettings:
    """Everything the locustfile needs to know about the mix (see the module docstring)."""

    verticals: dict[str, float] = field(
        default_factory=lambda: parse_weights(DEFAULT_VERTICALS, "verticals")
    )
    tasks: dict[str, float] = field(
        default_factory=lambda: parse_weights(DEFAULT_TASKS, "tasks", TASK_KINDS, whole=True)
    )
    batch_size: tuple[int, int] = (10, 50)
    wait: tuple[float, float] = (0.05, 0.15)
    reload_seconds: float = 10.0
    reload_versions: list[dict[str, str]] = field(default_factory=list)
    feedback_delay: float = 1.0
    seed: int = 1001
    pool: int = 2000
    expect_lost_leads: bool = False

    def to_env(self) -> dict[str, str]:
        """The environment variables that ``from_env`` reads back into these settings."""
        return {
            "LOADTEST_VERTICALS": _weights_text(self.verticals),
            "LOADTEST_TASKS": _weights_text(self.tasks),
            "LOADTEST_BATCH_SIZE": f"{self.batch_size[0]}-{self.batch_size[1]}",
            "LOADTEST_WAIT": f"{self.wait[0]!r}-{self.wait[1]!r}",
            "LOADTEST_RELOAD_SECONDS": repr(self.reload_seconds),
            "LOADTEST_RELOAD_VERSIONS": json.dumps(self.reload_versions),
            "LOADTEST_FEEDBACK_DELAY": repr(self.feedback_delay),
            "LOADTEST_SEED": str(self.seed),
            "LOADTEST_POOL": str(self.pool),
            "LOADTEST_EXPECT_LOST_LEADS": "1" if self.expect_lost_leads else "0",
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> MixSettings:
        """Read the settings from ``environ`` (defaults for what is unset).

        Raises:
            ValueError: A variable has an unusable value (the message names it).
        """
        low, high = parse_range(environ.get("LOADTEST_BATCH_SIZE", "10-50"), "LOADTEST_BATCH_SIZE")
        if low < 1 or low != int(low) or high != int(high):
            raise ValueError("LOADTEST_BATCH_SIZE: batch sizes are whole numbers >= 1")
        return cls(
            verticals=parse_weights(
                environ.get("LOADTEST_VERTICALS", DEFAULT_VERTICALS), "LOADTEST_VERTICALS"
            ),
            tasks=parse_weights(
                environ.get("LOADTEST_TASKS", DEFAULT_TASKS), "LOADTEST_TASKS", TASK_KINDS, True
            ),
            batch_size=(int(low), int(high)),
            wait=parse_range(environ.get("LOADTEST_WAIT", "0.05-0.15"), "LOADTEST_WAIT"),
            reload_seconds=_number(environ, "LOADTEST_RELOAD_SECONDS", 10.0),
            reload_versions=parse_reload_versions(environ.get("LOADTEST_RELOAD_VERSIONS", "")),
            feedback_delay=_number(environ, "LOADTEST_FEEDBACK_DELAY", 1.0),
            seed=int(_number(environ, "LOADTEST_SEED", 1001)),
            pool=max(1, int(_number(environ, "LOADTEST_POOL", 2000))),
            expect_lost_leads=environ.get("LOADTEST_EXPECT_LOST_LEADS", "0") == "1",
        )


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"{name}: {raw!r} must be a finite number >= 0")
    return value


def _weights_text(weights: Mapping[str, float]) -> str:
    return ",".join(f"{name}={weight!r}" for name, weight in weights.items())
