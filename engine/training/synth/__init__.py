"""Synthetic insurance leads with a known conversion rule, for demos and tests.

``generate(vertical, rows, seed)`` simulates ``rows`` leads of one vertical (``auto``,
``home``, ``health`` or ``life``) and ``write_csv`` writes them as a training CSV. The
same ``(vertical, rows, seed)`` always gives byte-identical output; everything is drawn
from one ``numpy.random.Generator`` seeded with ``[seed, <vertical salt>]``, so two
verticals with the same seed are independent of each other.

CSV layout (UTF-8, comma delimited, LF line ends, quoted only where needed):

- Header first. The columns are the vertical's configured features in model order
  (numerical, then categorical, then text, as in ``config/models.yaml``) followed by the
  target ``converted``.
- Numerical cells are plain decimals: integers without a decimal point (``45``,
  ``385000``) and floats with at most two decimals (``27.4``, ``31.25``). Every value
  lies inside the feature's configured ``[min, max]``.
- Categorical cells are short labels (``toyota``-style words or ``snake_case``) with a
  long tail of rare values and messy casing on a few percent of rows.
- Text cells are free text as a web form would collect it: random casing, stray and
  doubled spaces, abbreviations and typos (``" software  engineer"``, ``"SW engineer"``).
  Locations and addresses always carry the two-letter state code as its own token.
- ``""`` is a missing value. Required features (auto/health/life ``age``, home
  ``square_footage``) are never missing; the others are missing on 2-15% of rows.
- ``converted`` is ``"1"`` or ``"0"``: a Bernoulli draw from ``sigmoid(logit)`` of a
  documented latent score (see ``docs/synthetic-data.md``), so about 25-40% of leads
  convert and a model can learn a real, non-linear signal.

Columns by vertical:

- auto: ``age, driving_years, vehicle_age, annual_mileage, vehicle_make, vehicle_model,
  usage_type, occupation, location, converted``
- home: ``property_age, square_footage, property_value, construction_type, roof_type,
  property_type, address, security_features, converted``
- health: ``age, bmi, household_size, annual_income, coverage_type, tobacco_use,
  current_insurer, employment_status, pre_existing_conditions, location, converted``
- life: ``age, coverage_amount, term_years, annual_income, policy_type, smoker,
  health_class, marital_status, occupation, location, converted``
"""

from __future__ import annotations

import csv
import operator
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.training.synth.auto import generate_auto
from engine.training.synth.common import FloatArray, Rule, Synth, sigmoid
from engine.training.synth.health import generate_health
from engine.training.synth.home import generate_home
from engine.training.synth.life import generate_life

SYNTH_VERTICALS: tuple[str, ...] = ("auto", "home", "health", "life")
TARGET_COLUMN = "converted"

# Salts keep the streams of the verticals apart for the same seed; never renumber them.
_SALT: dict[str, int] = {"auto": 1, "home": 2, "health": 3, "life": 4}

# Column order of each vertical: exactly its features in config/models.yaml (numerical,
# categorical, text), then the target. tests/unit/training/test_synth.py checks this.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "auto": ("age", "driving_years", "vehicle_age", "annual_mileage", "vehicle_make",
             "vehicle_model", "usage_type", "occupation", "location"),
    "home": ("property_age", "square_footage", "property_value", "construction_type",
             "roof_type", "property_type", "address", "security_features"),
    "health": ("age", "bmi", "household_size", "annual_income", "coverage_type", "tobacco_use",
               "current_insurer", "employment_status", "pre_existing_conditions", "location"),
    "life": ("age", "coverage_amount", "term_years", "annual_income", "policy_type", "smoker",
             "health_class", "marital_status", "occupation", "location"),
}  # fmt: skip
_RULES: dict[str, Rule] = {
    "auto": Rule(-0.95, 1.6, 0.4),
    "home": Rule(-0.15, 1.9, 0.4),
    "health": Rule(-1.4, 1.8, 0.4),
    "life": Rule(-1.45, 1.6, 0.4),
}
_SIMULATORS: dict[str, Callable[[np.random.Generator, int], Synth]] = {
    "auto": generate_auto,
    "home": generate_home,
    "health": generate_health,
    "life": generate_life,
}


def _whole(value: int, message: str, minimum: int) -> int:
    """Return ``value`` as an ``int`` (numpy integers too) or raise ``ValueError``."""
    try:
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if number is None or number < minimum:
        raise ValueError(f"{message}, got {value!r}")
    return number


def _simulate(vertical: str, rows: int, seed: int) -> tuple[list[str], list[list[str]], FloatArray]:
    """Simulate leads and return the header, the rows and each lead's true probability."""
    if vertical not in _SIMULATORS:
        raise ValueError(
            f"unknown vertical {vertical!r} for synthetic data; known: {', '.join(SYNTH_VERTICALS)}"
        )
    rows = _whole(rows, "rows must be a positive integer", 1)
    seed = _whole(seed, "seed must be a non-negative integer", 0)
    rng = np.random.default_rng([seed, _SALT[vertical]])
    synth = _SIMULATORS[vertical](rng, rows)
    rule = _RULES[vertical]
    logit = rule.intercept + rule.scale * synth.score + rng.normal(0.0, rule.noise, rows)
    probability = sigmoid(logit)
    converted = rng.random(rows) < probability
    names = _COLUMNS[vertical]
    cells = [synth.columns[name] for name in names]
    cells.append(["1" if c else "0" for c in converted.tolist()])
    header = [*names, TARGET_COLUMN]
    return header, [list(row) for row in zip(*cells, strict=True)], probability


def generate(vertical: str, rows: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Return (header, rows) where every cell is a CSV string; "" means missing.

    Args:
        vertical: One of ``SYNTH_VERTICALS``.
        rows: How many leads to simulate (at least 1).
        seed: Seed of the random generator (a non-negative integer); the same
            ``(vertical, rows, seed)`` always gives the same output.

    Returns:
        The header (the vertical's features in config order, then ``converted``) and one
        list of cells per lead, aligned with the header.

    Raises:
        ValueError: ``vertical`` is unknown, ``rows`` is below 1, or ``seed`` is negative.
    """
    header, cells, _ = _simulate(vertical, rows, seed)
    return header, cells


def write_csv(vertical: str, rows: int, seed: int, out: Path) -> None:
    """Write generate(...) with csv.writer (comma delimiter, header first), atomically.

    The file is written to a temporary file in the same directory, flushed to disk and
    then moved over ``out`` (``os.replace`` semantics), so readers never see a partial
    file. Missing parent directories are created.

    Args:
        vertical: One of ``SYNTH_VERTICALS``.
        rows: How many leads to simulate (at least 1).
        seed: Seed of the random generator.
        out: Destination CSV path.

    Raises:
        ValueError: Bad ``vertical``, ``rows`` or ``seed`` (nothing is written).
        OSError: The file cannot be written.
    """
    header, cells = generate(vertical, rows, seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter=",", lineterminator="\n")
            writer.writerow(header)
            writer.writerows(cells)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o644)  # mkstemp makes the file private; a data file is not a secret
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
