"""The benchmark's pass/fail goals, as ratios against baselines measured in the same run.

Goals: ours / ceiling throughput >= ``GOAL_CEILING_RATIO``, ours / seed throughput >=
``GOAL_SEED_RATIO``, our p99 <= ``GOAL_P99_MS`` and no failed request, in the main run,
in the reload window or over TLS. TLS has no throughput goal: its cost is reported
(``httpbench.report.tls_cost_lines``), not judged.
"""

from __future__ import annotations

from dataclasses import dataclass

from httpbench.parsing import LoadResult

GOAL_CEILING_RATIO = 0.6
GOAL_SEED_RATIO = 8.0
GOAL_P99_MS = 5.0


@dataclass(frozen=True)
class Goal:
    """One pass/fail goal: ``value`` compared with ``target``.

    Attributes:
        label: What is measured.
        value: The measured figure.
        target: The bound it must meet.
        at_least: True when ``value >= target`` passes, False when ``value <= target``.
        unit: Printed after the figures (``"x"`` for ratios).
    """

    label: str
    value: float
    target: float
    at_least: bool
    unit: str = "x"

    @property
    def met(self) -> bool:
        """Whether the goal is met (a NaN value never meets it)."""
        if self.value != self.value:
            return False
        return self.value >= self.target if self.at_least else self.value <= self.target

    def line(self) -> str:
        """One printable line: figure, goal, verdict."""
        op = ">=" if self.at_least else "<="
        # Ratios get three decimals so that 0.598 does not print as a passing 0.60.
        digits = {"": 0, "x": 3}.get(self.unit, 2)
        value = f"{self.value:.{digits}f}{self.unit}" if self.value == self.value else "n/a"
        target = f"{self.target:g}{self.unit}"
        verdict = "ok" if self.met else "MISSED"
        return f"{self.label:<40}{value:>10}   goal {op} {target:<8}{verdict}"


def ratio(numerator: float, denominator: float) -> float:
    """Return ``numerator / denominator``, NaN when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else float("nan")


def evaluate_goals(
    ceiling: LoadResult | None,
    seed: LoadResult | None,
    ours: LoadResult | None,
    reload_window: LoadResult | None = None,
    tls: LoadResult | None = None,
) -> list[Goal]:
    """Return the benchmark's goals for the measured results.

    A goal whose measurements are missing gets a NaN value, so it is reported as
    missed: ``--check`` must not pass on a run that did not measure our service.
    """
    nan = float("nan")
    ours_rps = ours.rps if ours else nan
    goals = [
        Goal(
            "ours / ceiling throughput",
            ratio(ours_rps, ceiling.rps) if ceiling else nan,
            GOAL_CEILING_RATIO,
            at_least=True,
        ),
        Goal(
            "ours / seed throughput",
            ratio(ours_rps, seed.rps) if seed else nan,
            GOAL_SEED_RATIO,
            at_least=True,
        ),
        Goal("our p99", ours.p99_ms if ours else nan, GOAL_P99_MS, at_least=False, unit=" ms"),
        Goal(
            "our failed requests",
            float(ours.errors) if ours else nan,
            0,
            at_least=False,
            unit="",
        ),
    ]
    if reload_window is not None:
        goals.append(
            Goal(
                "our failed requests, reload window",
                float(reload_window.errors),
                0,
                at_least=False,
                unit="",
            )
        )
    if tls is not None:
        goals.append(Goal("our failed requests over TLS", float(tls.errors), 0, False, ""))
    return goals
