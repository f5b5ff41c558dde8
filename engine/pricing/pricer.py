"""The price of one lead: a pure function of score, lead, clock time and demand.

``price = clamp(base_price * curve(score) * product(market factors), floor, ceiling)``,
rounded half-up to cents, where ``curve(s) = low + (high - low) * s ** exponent`` and the
market factors (each present only when configured, each rounded to 4 decimals before
use, so the shown factors reproduce the price exactly) are:

- ``peak_hours``: the largest multiplier of the peak windows containing the local time
  (``[start, end)`` on the listed weekdays, in the vertical's timezone), else 1.
- ``day_of_week``: the multiplier of the local weekday, else 1.
- ``demand``: ``clamp(1 + sensitivity * (rate / baseline - 1), min, max)`` where
  ``rate`` is the vertical's leads per minute over the trailing window.
- ``location``: the multiplier of the last token of the lead's location field (see
  ``engine.features.text``) that has one, else ``default``. The last token wins because
  addresses end with the state.

The full formula with examples is in docs/pricing.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.config import WEEKDAYS, PricingConfig, clock_minutes
from engine.features.text import text_tokens

_LOCATION_MEMO_SIZE = 4096


def round_cents(amount: float) -> float:
    """Round a money amount half-up to cents."""
    return math.floor(amount * 100.0 + 0.5) / 100.0


class Pricer:
    """Prices leads of one vertical.

    The time factors depend only on the local minute, so they are computed once per
    minute and reused; the result is the same as computing them every time.
    """

    def __init__(self, config: PricingConfig) -> None:
        self.config = config
        self._tz = ZoneInfo(config.timezone)
        curve = config.score_curve
        self._low, self._span, self._exponent = curve.low, curve.high - curve.low, curve.exponent
        self._windows = [
            (
                frozenset(WEEKDAYS.index(d) for d in w.days),
                clock_minutes(w.start),
                clock_minutes(w.end),
                w.multiplier,
            )
            for w in config.peak_hours
        ]
        self._weekday = [config.day_of_week.get(d, 1.0) for d in WEEKDAYS]
        self._minute = -1
        self._time_factors: tuple[float, float] = (1.0, 1.0)
        location = config.location
        self._location_field = location.field if location else None
        self._location_map = (
            {k.casefold(): v for k, v in location.multipliers.items()} if location else {}
        )
        self._location_default = location.default if location else 1.0
        self._location_memo: dict[str, float] = {}

    def time_factors(self, now: float) -> tuple[float, float]:
        """Return the (peak_hours, day_of_week) multipliers at epoch time ``now``."""
        minute = math.floor(now / 60.0)
        if minute != self._minute:
            local = datetime.fromtimestamp(minute * 60.0, self._tz)
            weekday, minute_of_day = local.weekday(), local.hour * 60 + local.minute
            matches = [
                multiplier
                for days, start, end, multiplier in self._windows
                if weekday in days and start <= minute_of_day < end
            ]
            peak = max(matches) if matches else 1.0
            self._time_factors = (round(peak, 4), round(self._weekday[weekday], 4))
            self._minute = minute
        return self._time_factors

    def demand_factor(self, rate_per_minute: float) -> float:
        """Return the demand multiplier for a lead rate (1 when demand is unconfigured)."""
        demand = self.config.demand
        if demand is None:
            return 1.0
        raw = 1.0 + demand.sensitivity * (rate_per_minute / demand.baseline_per_minute - 1.0)
        return round(min(demand.max, max(demand.min, raw)), 4)

    def location_factor(self, lead: Mapping[str, Any]) -> float:
        """Return the location multiplier of a lead (see the module docstring)."""
        if self._location_field is None:
            return 1.0
        value = lead.get(self._location_field)
        if not isinstance(value, str):
            return self._location_default
        factor = self._location_memo.get(value)
        if factor is None:
            factor = self._location_default
            for token in reversed(text_tokens(value)):
                found = self._location_map.get(token)
                if found is not None:
                    factor = found
                    break
            factor = round(factor, 4)
            if len(self._location_memo) >= _LOCATION_MEMO_SIZE:
                self._location_memo.clear()
            self._location_memo[value] = factor
        return factor

    def price(
        self, score: float, lead: Mapping[str, Any], now: float, demand_rate: float
    ) -> tuple[float, dict[str, float]]:
        """Price a lead.

        Args:
            score: The lead's conversion probability.
            lead: The lead's fields (for the location factor).
            now: Epoch seconds (the injectable clock's reading).
            demand_rate: The vertical's recent leads per minute.

        Returns:
            The price in the vertical's currency, rounded to cents, and every market
            factor that was applied, by name.
        """
        config = self.config
        factors: dict[str, float] = {}
        multiplier = self._low + self._span * score**self._exponent
        if self._windows or config.day_of_week:
            peak, weekday = self.time_factors(now)
            if self._windows:
                factors["peak_hours"] = peak
                multiplier *= peak
            if config.day_of_week:
                factors["day_of_week"] = weekday
                multiplier *= weekday
        if config.demand is not None:
            demand = self.demand_factor(demand_rate)
            factors["demand"] = demand
            multiplier *= demand
        if self._location_field is not None:
            location = self.location_factor(lead)
            factors["location"] = location
            multiplier *= location
        amount = min(config.ceiling, max(config.floor, config.base_price * multiplier))
        return round_cents(amount), factors
