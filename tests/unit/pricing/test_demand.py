import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.pricing.demand import SlidingWindowDemand


def test_rate_counts_leads_in_trailing_window():
    demand = SlidingWindowDemand(60)
    for second in range(30):
        assert demand.record("auto", 1000 + second + 0.5) == pytest.approx(second)
    assert demand.rate("auto", 1029.9) == 30
    assert demand.rate("auto", 1059.0) == 30  # still inside 60 s
    assert demand.rate("auto", 1060.0) == 29  # the lead at second 1000 expired
    assert demand.rate("auto", 1200.0) == 0
    assert demand.rate("home", 1200.0) == 0


def test_per_vertical_windows_and_validation():
    demand = SlidingWindowDemand(300, {"life": 60})
    demand.record("life", 10)
    assert demand.rate("life", 10) == 1.0
    demand.record("auto", 10)
    assert demand.rate("auto", 10) == 0.2
    with pytest.raises(ValueError):
        SlidingWindowDemand(0)


def test_earlier_time_counts_in_latest_bucket():
    demand = SlidingWindowDemand(10)
    demand.record("auto", 100)
    demand.record("auto", 50)  # a clock step back must not corrupt the counter
    assert demand.rate("auto", 100) == 2 * 6.0


@given(st.lists(st.floats(0, 500), max_size=200), st.integers(1, 120))
def test_matches_brute_force(times, window):
    times = sorted(times)
    demand = SlidingWindowDemand(window)
    for t in times:
        demand.record("v", t)
    end = int(times[-1]) if times else 0
    expected = sum(1 for t in times if int(t) > end - window)
    assert demand.rate("v", end) == pytest.approx(expected * 60.0 / window)
