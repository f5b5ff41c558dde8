"""The queue of leads waiting for their outcome."""

from __future__ import annotations

from loadtests.outcomes import OutcomeQueue


def test_a_lead_is_due_only_after_the_delay_oldest_first_and_once():
    queue = OutcomeQueue(delay=1.0)
    queue.scored("a", True, now=10.0)
    queue.scored("b", False, now=10.5)
    assert queue.take(5, now=10.9) == []
    assert [p.lead_id for p in queue.take(5, now=11.0)] == ["a"]
    assert [(p.lead_id, p.converted) for p in queue.take(5, now=20.0)] == [("b", False)]
    assert queue.take(5, now=30.0) == [] and len(queue) == 0


def test_take_stops_at_count():
    queue = OutcomeQueue(delay=0.0)
    for i in range(5):
        queue.scored(str(i), False, now=float(i))
    assert [p.lead_id for p in queue.take(2, now=9.0)] == ["0", "1"]
    assert len(queue) == 3


def test_the_oldest_drop_off_beyond_capacity():
    queue = OutcomeQueue(delay=0.0, capacity=3)
    for i in range(5):
        queue.scored(str(i), False, now=0.0)
    assert [p.lead_id for p in queue.take(10, now=1.0)] == ["2", "3", "4"]
