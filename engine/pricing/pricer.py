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
# Like the encoder's text memo: only short texts are kept (repeats are short), so many
# distinct long texts cannot make the memo hold megabytes.
_LOCATION_MEMO_MAX_CHARS = 256


_floor = math.floor


def round_cents(amount: float) -> float:
    """Round a money amount half-up to cents."""
    return _floor(amount * 100.0 + 0.5) / 100.0


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
        self._minute = -1.0
        self._has_weekday = bool(config.day_of_week)
        self._has_time_factors = bool(self._windows) or self._has_weekday
        self._base_price, self._price_floor, self._price_ceiling = (
            config.base_price,
            config.floor,
            config.ceiling,
        )
        demand = config.demand
        self._demand = (
            (demand.sensitivity, demand.baseline_per_minute, demand.min, demand.max)
            if demand is not None
            else None
        )
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
        minute = now // 60.0
        if minute != self._minute:
            local = datetime.fromtimestamp(minute * 60.0, self._tz)
            weekday, minute_of_day = local.weekday(), local.hour * 60 + local.minute
            matches = [
                multiplier
                for days, start, end, multiplier in self._windows
                if weekday in days and start <= minute_of_day < end
            ]
            peak = max(matches) if matches else 1.0
            self._time_factors = (_round4(peak), _round4(self._weekday[weekday]))
            self._minute = minute
        return self._time_factors

    def demand_factor(self, rate_per_minute: float) -> float:
        """Return the demand multiplier for a lead rate (1 when demand is unconfigured)."""
        demand = self.config.demand
        if demand is None:
            return 1.0
        raw = 1.0 + demand.sensitivity * (rate_per_minute / demand.baseline_per_minute - 1.0)
        return _round4(min(demand.max, max(demand.min, raw)))

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
            factor = _round4(factor)
            if len(value) <= _LOCATION_MEMO_MAX_CHARS:
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
        # Hot path: the same arithmetic as time_factors/demand_factor/location_factor,
        # with the per-call lookups hoisted (this runs once per scored lead).
        factors: dict[str, float] = {}
        multiplier = self._low + self._span * score**self._exponent
        if self._has_time_factors:
            if now // 60.0 != self._minute:
                self.time_factors(now)
            peak, weekday = self._time_factors
            if self._windows:
                factors["peak_hours"] = peak
                multiplier *= peak
            if self._has_weekday:
                factors["day_of_week"] = weekday
                multiplier *= weekday
        if self._demand is not None:
            sensitivity, baseline, low, high = self._demand
            raw = 1.0 + sensitivity * (demand_rate / baseline - 1.0)
            demand = _round4(low if raw < low else high if raw > high else raw)
            factors["demand"] = demand
            multiplier *= demand
        if self._location_field is not None:
            value = lead.get(self._location_field)
            location = self._location_memo.get(value) if type(value) is str else None
            if location is None:
                location = self.location_factor(lead)
            factors["location"] = location
            multiplier *= location
        amount = self._base_price * multiplier
        if amount < self._price_floor:
            amount = self._price_floor
        elif amount > self._price_ceiling:
            amount = self._price_ceiling
        return _floor(amount * 100.0 + 0.5) / 100.0, factors


def _round4(value: float) -> float:
    return _floor(value * 10000.0 + 0.5) / 10000.0
