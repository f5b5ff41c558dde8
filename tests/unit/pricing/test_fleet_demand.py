"""FleetDemand's logic, without Redis: local until a fleet view is applied, the fleet's
rate while that view is fresh, local again once it is stale; pending counts by Redis
bucket, given back on failure and bounded to the window."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.pricing.demand import FleetDemand, SlidingWindowDemand, bucket_layout

T0 = 1_700_000_000.0  # a multiple of 5 and of 60: bucket boundaries are easy to read


def test_bucket_layout_keeps_a_window_within_60_keys():
    assert bucket_layout(300) == (5, 60)
    assert bucket_layout(60) == (1, 60)
    assert bucket_layout(10) == (1, 10)
    assert bucket_layout(61) == (2, 31)
    assert bucket_layout(3600) == (60, 60)
    for window in range(1, 5000):
        width, span = bucket_layout(window)
        assert span <= 60
        # The buckets cover the window, give or take one bucket.
        assert window <= width * span < window + width


@given(st.lists(st.floats(0, 2000), max_size=200), st.integers(1, 400))
def test_with_no_fleet_view_it_is_the_sliding_window(times, window):
    fleet, local = FleetDemand(window), SlidingWindowDemand(window)
    for t in sorted(times):
        assert fleet.record("v", t) == local.record("v", t)
    end = max(times, default=0.0) + 7.0
    assert fleet.rate("v", end) == local.rate("v", end)


def test_a_fresh_fleet_view_gives_the_fleet_rate_then_it_goes_stale():
    demand = FleetDemand(300, stale_after=3.0)
    for _ in range(10):
        demand.record("auto", T0)
    demand.take_pending()  # what a sync pushes: the 10 leads are in the total it reads
    demand.apply_fleet({"auto": 600}, at=T0 + 0.5)  # 600 over the fleet in 300 s
    assert demand.is_fresh("auto", T0 + 1)
    assert demand.rate("auto", T0 + 1) == 600 * 60 / 300
    # Leads after the sync count on top of the fleet's total.
    assert demand.record("auto", T0 + 1) == 120.0
    assert demand.record("auto", T0 + 1) == pytest.approx(601 * 0.2)
    # Three seconds after the sync the view is stale: the local window's 12 leads.
    assert not demand.is_fresh("auto", T0 + 3.5)
    assert demand.record("auto", T0 + 3.5) == pytest.approx(12 * 0.2)


def test_mark_stale_falls_back_at_once_and_the_next_sync_recovers():
    demand = FleetDemand(60)
    demand.record("auto", T0)
    demand.take_pending()
    demand.apply_fleet({"auto": 90}, at=T0)
    assert demand.rate("auto", T0) == 90.0
    demand.mark_stale()
    assert demand.rate("auto", T0) == 1.0  # local: one lead in 60 s
    demand.take_pending()
    demand.apply_fleet({"auto": 120}, at=T0 + 1)
    assert demand.rate("auto", T0 + 1) == 120.0


def test_the_fleet_rate_is_never_below_the_local_one():
    # A Redis restarted empty says "0 leads"; this process alone saw 30.
    demand = FleetDemand(60)
    for _ in range(30):
        demand.record("auto", T0)
    demand.take_pending()
    demand.apply_fleet({"auto": 0}, at=T0)
    assert demand.rate("auto", T0) == 30.0


def test_leads_taken_by_a_sync_in_flight_still_count_as_ours():
    demand = FleetDemand(60)
    demand.take_pending()
    demand.apply_fleet({"auto": 100}, at=T0)
    for _ in range(5):
        demand.record("auto", T0)
    assert demand.take_pending() == {"auto": {int(T0): 5}}
    demand.record("auto", T0)  # while the exchange is under way
    assert demand.rate("auto", T0) == 106.0  # old total + our 5 taken + 1
    demand.apply_fleet({"auto": 150}, at=T0 + 0.01)  # the new total holds the 5
    assert demand.rate("auto", T0) == 151.0
    # A failed exchange: the taken leads are given back and stay ours.
    demand.record("auto", T0)
    taken = demand.take_pending()
    assert taken == {"auto": {int(T0): 2}}
    demand.restore_pending(taken, T0)
    demand.apply_fleet({"auto": 150}, at=T0 + 0.02)  # e.g. only the read came back
    assert demand.rate("auto", T0) == 152.0
    assert demand.take_pending() == {"auto": {int(T0): 2}}  # pushed again next time


def test_pending_counts_by_redis_bucket_and_restores_add_up():
    demand = FleetDemand(300)  # 5 s buckets
    for second in range(13):
        demand.record("auto", T0 + second + 0.5)
    demand.record("home", T0)
    first = T0 // 5
    taken = demand.take_pending()
    assert taken == {"auto": {first: 5, first + 1: 5, first + 2: 3}, "home": {first: 1}}
    assert demand.take_pending() == {}
    demand.record("auto", T0 + 12.9)  # same bucket as the last ones, after the take
    demand.restore_pending(taken, T0 + 13)
    assert demand.take_pending() == {
        "auto": {first: 5, first + 1: 5, first + 2: 4},
        "home": {first: 1},
    }


def test_restore_drops_buckets_the_window_left():
    demand = FleetDemand(60)  # 1 s buckets, 60 of them
    demand.record("auto", T0)
    demand.record("auto", T0 + 30)
    taken = demand.take_pending()
    demand.restore_pending(taken, T0 + 60)  # the bucket of T0 just left the window
    assert demand.take_pending() == {"auto": {int(T0) + 30: 1}}


def test_pending_is_bounded_by_the_window_when_never_synced():
    demand = FleetDemand(300)
    for second in range(0, 3000, 2):  # ten windows with no sync (Redis down)
        demand.record("auto", T0 + second)
    pending = demand.take_pending()["auto"]
    width, span = bucket_layout(300)
    assert len(pending) <= span
    last = int(T0 + 2998) // width
    assert min(pending) > last - span
    assert sum(pending.values()) == pytest.approx(300 / 2, abs=width)


def test_a_clock_step_back_counts_in_the_current_bucket():
    demand = FleetDemand(300)
    demand.record("auto", T0 + 10)
    demand.record("auto", T0 - 100)
    assert demand.take_pending() == {"auto": {int(T0 + 10) // 5: 2}}


def test_validation():
    with pytest.raises(ValueError):
        FleetDemand(0)
    with pytest.raises(ValueError):
        FleetDemand(300, {"life": 0})
    with pytest.raises(ValueError):
        FleetDemand(300, stale_after=0)
    demand = FleetDemand(300, {"life": 60})
    assert demand.window_of("life") == 60 and demand.window_of("auto") == 300
    assert demand.layout("auto") == (5, 60)
