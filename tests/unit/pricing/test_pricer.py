import datetime as dt
import math
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.config import PricingConfig
from engine.pricing.pricer import Pricer, round_cents

NY = ZoneInfo("America/New_York")
CONFIG = msgspec.convert(
    {
        "base_price": 30.0,
        "floor": 5.0,
        "ceiling": 120.0,
        "timezone": "America/New_York",
        "score_curve": {"low": 0.2, "high": 2.5, "exponent": 1.5},
        "peak_hours": [
            {
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "09:00",
                "end": "17:00",
                "multiplier": 1.2,
            },
            {"days": ["mon"], "start": "12:00", "end": "13:00", "multiplier": 1.5},
        ],
        "day_of_week": {"sat": 0.9, "sun": 0.85},
        "demand": {
            "window_seconds": 300,
            "baseline_per_minute": 100,
            "sensitivity": 0.5,
            "min": 0.8,
            "max": 1.5,
        },
        "location": {"field": "location", "multipliers": {"CA": 1.25, "tx": 1.1}},
    },
    PricingConfig,
)


def at(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=NY).timestamp()


MONDAY_10 = at(2026, 11, 23, 10, 0)


def test_formula_and_every_factor_shown():
    pricer = Pricer(CONFIG)
    price, factors = pricer.price(0.64, {"location": "Austin, TX 78701"}, MONDAY_10, 150.0)
    assert factors == {"peak_hours": 1.2, "day_of_week": 1.0, "demand": 1.25, "location": 1.1}
    curve = 0.2 + 2.3 * 0.64**1.5
    assert price == round_cents(30 * curve * 1.2 * 1.0 * 1.25 * 1.1)


@pytest.mark.parametrize(
    ("moment", "peak", "weekday"),
    [
        (at(2026, 11, 23, 8, 59), 1.0, 1.0),  # Monday before the window
        (at(2026, 11, 23, 9, 0), 1.2, 1.0),  # start is inclusive
        (at(2026, 11, 23, 12, 30), 1.5, 1.0),  # overlapping windows: the largest applies
        (at(2026, 11, 23, 17, 0), 1.0, 1.0),  # end is exclusive
        (at(2026, 11, 28, 10, 0), 1.0, 0.9),  # Saturday
        (at(2026, 11, 29, 10, 0), 1.0, 0.85),  # Sunday
    ],
)
def test_time_factors_in_local_time(moment, peak, weekday):
    assert Pricer(CONFIG).time_factors(moment) == (peak, weekday)


def test_local_time_follows_daylight_saving():
    # 13:30 UTC is 09:30 in New York in summer (peak) but 08:30 in winter (not).
    summer = dt.datetime(2026, 7, 6, 13, 30, tzinfo=dt.UTC).timestamp()
    winter = dt.datetime(2026, 1, 5, 13, 30, tzinfo=dt.UTC).timestamp()
    assert Pricer(CONFIG).time_factors(summer)[0] == 1.2
    assert Pricer(CONFIG).time_factors(winter)[0] == 1.0


def test_demand_factor_is_bounded():
    pricer = Pricer(CONFIG)
    assert pricer.demand_factor(100) == 1.0
    assert pricer.demand_factor(0) == 0.8
    assert pricer.demand_factor(10_000) == 1.5
    assert pricer.demand_factor(120) == 1.1


@pytest.mark.parametrize(
    ("location", "factor"),
    [
        ("Los Angeles, CA 90001", 1.25),
        ("austin tx", 1.1),
        ("Boise, ID", 1.0),
        (None, 1.0),
        (42, 1.0),
        ("ca, moved to tx", 1.1),
    ],
)
def test_location_uses_last_matching_token(location, factor):
    assert Pricer(CONFIG).location_factor({"location": location}) == factor


def test_long_locations_are_priced_but_not_memoised():
    pricer = Pricer(CONFIG)
    long_text = "x " * 500 + "austin tx"
    assert pricer.location_factor({"location": long_text}) == 1.1
    assert pricer.location_factor({"location": "austin tx"}) == 1.1
    assert list(pricer._location_memo) == ["austin tx"]


def test_floor_and_ceiling():
    pricer = Pricer(CONFIG)
    sunday = at(2026, 11, 29, 10, 0)
    assert pricer.price(0.0, {}, sunday, 0.0)[0] == 5.0  # 30 * 0.2 * 0.85 * 0.8 < floor
    assert pricer.price(1.0, {"location": "CA"}, at(2026, 11, 23, 12, 0), 1e6)[0] == 120.0


def test_unconfigured_factors_are_absent():
    plain = msgspec.convert({"base_price": 10, "floor": 1, "ceiling": 50}, PricingConfig)
    price, factors = Pricer(plain).price(1.0, {}, MONDAY_10, 999.0)
    assert factors == {} and price == 25.0


def test_round_cents_half_up():
    assert round_cents(1.005000001) == 1.01
    assert round_cents(2.675) in (2.67, 2.68)  # binary float: either neighbour is exact cents
    assert round_cents(10.0) == 10.0


@given(
    score=st.floats(0, 1),
    rate=st.floats(0, 1e5),
    moment=st.floats(0, 4e9),
    location=st.sampled_from(["Austin, TX", "Fresno CA", "nowhere", None]),
)
def test_same_inputs_same_price_within_bounds(score, rate, moment, location):
    lead = {"location": location}
    first = Pricer(CONFIG).price(score, lead, moment, rate)
    second_pricer = Pricer(CONFIG)
    second_pricer.price(0.5, {}, moment - 3600, 0.0)  # warm its per-minute cache elsewhere
    assert second_pricer.price(score, lead, moment, rate) == first
    price, factors = first
    assert 5.0 <= price <= 120.0 and price == round(price, 2)
    unclamped = 30 * (0.2 + 2.3 * score**1.5) * math.prod(factors.values())
    assert price == round_cents(min(120.0, max(5.0, unclamped)))
