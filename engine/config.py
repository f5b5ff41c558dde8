"""Model configuration: verticals, their features, training and pricing settings.

The configuration is one YAML file (``CONFIG_PATH``, default ``config/models.yaml``)
decoded once at start into frozen, typed structs. Everything about a vertical lives
here, so adding a vertical needs a config block and a CSV, never code.

Feature lists may be written as plain name lists (``categorical: [make, model]``) or as
mappings of name to options (``age: {min: 16, max: 100, required: true}``); both are
normalised to mappings on load. The column order the model sees is numerical, then
categorical, then text features, each in file order.

Every feature kind takes ``pii: true`` (default false) for a value that identifies a
person (an address, a location, free text people write about themselves). The marking is
data-handling policy, not part of a model: it is read from today's config, never from a
model's manifest, so marking a feature takes effect at the next start without retraining.
The opt-in lead archive (``engine.archive``) encrypts marked values.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec
import yaml

from engine.errors import ConfigError

_T = TypeVar("_T")
FeatureKind = Literal["numerical", "categorical", "text"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CLOCK_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class NumericalFeature(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A numeric input: JSON number, finite, optionally bounded (inclusive)."""

    min: float | None = None
    max: float | None = None
    required: bool = False
    pii: bool = False

    def __post_init__(self) -> None:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")


class CategoricalFeature(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A string with a small set of values; rarer values than ``min_count`` are unseen."""

    required: bool = False
    min_count: int = 5
    pii: bool = False

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ValueError("min_count must be at least 1")


class TextFeature(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Free text, encoded by its normalised tokens (see ``engine.features.text``)."""

    required: bool = False
    min_count: int = 10
    smoothing: float = 20.0
    pii: bool = False

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ValueError("min_count must be at least 1")
        if self.smoothing <= 0:
            raise ValueError("smoothing must be positive")


class FeatureConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The features of one vertical, by kind."""

    numerical: dict[str, NumericalFeature] | list[str] = {}
    categorical: dict[str, CategoricalFeature] | list[str] = {}
    text: dict[str, TextFeature] | list[str] = {}


class TrainingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How to read a vertical's CSV and fit its model."""

    target: str = "converted"
    positive_values: list[str] = msgspec.field(default_factory=lambda: ["1", "yes", "true"])
    negative_values: list[str] = msgspec.field(default_factory=lambda: ["0", "no", "false"])
    delimiter: str = ","
    validation_fraction: float = 0.15
    holdout_fraction: float = 0.15
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    seed: int = 42
    params: dict[str, Any] = {}

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1:
            raise ValueError("delimiter must be one character")
        if not (0 < self.validation_fraction < 0.5 and 0 < self.holdout_fraction < 0.5):
            raise ValueError("validation_fraction and holdout_fraction must be in (0, 0.5)")
        if self.num_boost_round < 1 or self.early_stopping_rounds < 1:
            raise ValueError("num_boost_round and early_stopping_rounds must be positive")


class ScoreCurve(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Score multiplier: ``low + (high - low) * score ** exponent``."""

    low: float = 0.2
    high: float = 2.5
    exponent: float = 1.5

    def __post_init__(self) -> None:
        if self.low < 0 or self.high < self.low or self.exponent <= 0:
            raise ValueError("score_curve needs 0 <= low <= high and exponent > 0")


class PeakWindow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A weekly time window ``[start, end)`` in local time with a price multiplier."""

    start: str
    end: str
    multiplier: float
    days: list[str] = msgspec.field(default_factory=lambda: list(WEEKDAYS))

    def __post_init__(self) -> None:
        for label, clock in (("start", self.start), ("end", self.end)):
            if not _CLOCK_RE.match(clock):
                raise ValueError(f"peak window {label} {clock!r} is not HH:MM")
        if clock_minutes(self.start) >= clock_minutes(self.end):
            raise ValueError(f"peak window {self.start}-{self.end} is empty")
        bad = [d for d in self.days if d not in WEEKDAYS]
        if bad:
            raise ValueError(f"unknown weekday(s) {bad}; use {list(WEEKDAYS)}")
        if self.multiplier <= 0:
            raise ValueError("multiplier must be positive")


class DemandConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Demand multiplier from recent lead volume against a baseline (bounded)."""

    baseline_per_minute: float
    window_seconds: int = 300
    sensitivity: float = 0.5
    min: float = 0.8
    max: float = 1.5

    def __post_init__(self) -> None:
        if self.baseline_per_minute <= 0 or self.window_seconds < 1:
            raise ValueError("baseline_per_minute and window_seconds must be positive")
        if not 0 < self.min <= 1 <= self.max:
            raise ValueError("demand bounds must satisfy 0 < min <= 1 <= max")


class LocationConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Location multiplier: the first token of ``field`` found in ``multipliers``."""

    field: str
    multipliers: dict[str, float]
    default: float = 1.0

    def __post_init__(self) -> None:
        if any(m <= 0 for m in self.multipliers.values()) or self.default <= 0:
            raise ValueError("location multipliers must be positive")


class PricingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Dynamic pricing of a vertical; the formula is in docs/pricing.md."""

    base_price: float
    floor: float
    ceiling: float
    currency: str = "USD"
    timezone: str = "UTC"
    score_curve: ScoreCurve = ScoreCurve()
    peak_hours: list[PeakWindow] = []
    day_of_week: dict[str, float] = {}
    demand: DemandConfig | None = None
    location: LocationConfig | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.floor <= self.ceiling:
            raise ValueError("pricing needs 0 <= floor <= ceiling")
        if self.base_price <= 0:
            raise ValueError("base_price must be positive")
        bad = [d for d in self.day_of_week if d not in WEEKDAYS]
        if bad:
            raise ValueError(f"unknown weekday(s) {bad}; use {list(WEEKDAYS)}")
        if any(m <= 0 for m in self.day_of_week.values()):
            raise ValueError("day_of_week multipliers must be positive")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc


class VerticalConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything about one vertical."""

    feature_config: FeatureConfig
    pricing: PricingConfig
    scoring_threshold: float | None = None
    training: TrainingConfig = TrainingConfig()
    explain_top_k: int = 3


class ModelConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole model configuration file."""

    verticals: dict[str, VerticalConfig]
    model_base_path: str = "var/models"
    default_scoring_threshold: float = 0.65

    def threshold(self, vertical: str) -> float:
        """Return the scoring threshold of ``vertical`` (its own or the default)."""
        own = self.verticals[vertical].scoring_threshold
        return self.default_scoring_threshold if own is None else own


class FeatureSpec(msgspec.Struct, frozen=True):
    """One model input column: its name, kind, column index and options.

    ``pii`` marks a value that identifies a person (see the module docstring); it never
    changes how a lead is validated, encoded or scored.
    """

    name: str
    kind: FeatureKind
    index: int
    required: bool
    min: float | None = None
    max: float | None = None
    min_count: int = 1
    smoothing: float = 20.0
    pii: bool = False


def clock_minutes(clock: str) -> int:
    """Return minutes after midnight of an ``HH:MM`` string (``24:00`` is 1440)."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def feature_specs(vertical: VerticalConfig) -> tuple[FeatureSpec, ...]:
    """Return the vertical's features in model column order.

    Args:
        vertical: The vertical's configuration.

    Returns:
        Numerical, then categorical, then text features, each in file order.
    """
    fc = vertical.feature_config
    specs: list[FeatureSpec] = []
    for name, num in _as_mapping(fc.numerical, NumericalFeature).items():
        specs.append(
            FeatureSpec(name, "numerical", len(specs), num.required, num.min, num.max, pii=num.pii)
        )
    for name, cat in _as_mapping(fc.categorical, CategoricalFeature).items():
        specs.append(
            FeatureSpec(
                name,
                "categorical",
                len(specs),
                cat.required,
                min_count=cat.min_count,
                pii=cat.pii,
            )
        )
    for name, txt in _as_mapping(fc.text, TextFeature).items():
        specs.append(
            FeatureSpec(
                name,
                "text",
                len(specs),
                txt.required,
                min_count=txt.min_count,
                smoothing=txt.smoothing,
                pii=txt.pii,
            )
        )
    return tuple(specs)


def _as_mapping(value: dict[str, _T] | list[str], default: type[_T]) -> dict[str, _T]:
    if isinstance(value, dict):
        return value
    return {name: default() for name in value}


def _check(config: ModelConfig) -> None:
    if not config.verticals:
        raise ValueError("no verticals configured")
    for vname, vertical in config.verticals.items():
        if not _NAME_RE.fullmatch(vname):
            raise ValueError(f"vertical name {vname!r} must match {_NAME_RE.pattern}")
        specs = feature_specs(vertical)
        if not specs:
            raise ValueError(f"vertical {vname!r} has no features")
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"vertical {vname!r}: feature(s) {dupes} listed twice")
        if vertical.training.target in names:
            raise ValueError(f"vertical {vname!r}: the target is also a feature")
        loc = vertical.pricing.location
        if loc is not None and loc.field not in names:
            raise ValueError(f"vertical {vname!r}: pricing location field {loc.field!r} unknown")
        threshold = config.threshold(vname)
        if not 0 < threshold < 1:
            raise ValueError(f"vertical {vname!r}: scoring threshold must be in (0, 1)")


def load_config(path: str | Path) -> ModelConfig:
    """Read and validate a model configuration file.

    Args:
        path: The YAML file.

    Returns:
        The decoded, checked configuration.

    Raises:
        ConfigError: The file is missing, not YAML, or breaks a rule; the message says
            where.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    try:
        config = msgspec.convert(raw, ModelConfig, strict=False)
        _check(config)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"config {path}: {exc}") from exc
    return config
