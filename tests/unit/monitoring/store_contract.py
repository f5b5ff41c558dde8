"""What every monitoring store does, whatever it stores in: the ``MonitoringStore`` contract.

A test module runs these against its store by subclassing ``StoreContract`` (a class
pytest collects by its ``Test...`` name) and providing the ``make_store`` fixture: a
factory ``make_store(retention_seconds=..., counts_retention_seconds=...)`` of handles on
one fresh store, each call another connection to the same data (as another worker or
replica would open it), every handle closed at teardown. Handles run on a clock at
``NOW`` where the store has one.
"""

from __future__ import annotations

import pytest

from engine.monitoring.store import CountRow, Outcome, ScoredLead, epoch_minute

DAY = 86400.0
NOW = 1_700_000_000.0


def lead(
    lead_id: str,
    score: float = 0.5,
    at: float = NOW - 60,
    vertical: str = "auto",
    version: str = "1.0.0",
    shadow_version: str | None = None,
    shadow_score: float | None = None,
) -> ScoredLead:
    return ScoredLead(
        lead_id, vertical, version, score, score >= 0.5, at, shadow_version, shadow_score
    )


def row(
    name: str,
    minute: int,
    counts: list[int],
    vertical: str = "auto",
    version: str = "1.0.0",
    role: str = "champion",
) -> CountRow:
    return CountRow(vertical, version, role, name, minute, counts)


class StoreContract:
    """The semantics shared by every store (see the module docstring)."""

    @pytest.fixture
    def store(self, make_store):
        return make_store()

    # -- leads and outcomes ------------------------------------------------------------

    def test_remember_upserts_until_an_outcome_fixes_the_scoring(self, store) -> None:
        store.remember([lead("a", 0.2), lead("b", 0.3), lead("a", 0.4)])  # last in a batch wins
        store.remember([lead("b", 0.9, shadow_version="2.0.0", shadow_score=0.7)])  # re-scored
        assert store.record_outcomes([Outcome("a", True, NOW), Outcome("b", False, NOW)], NOW) == [
            "recorded",
            "recorded",
        ]
        # Scored again after the outcome: the outcome keeps the scoring it belongs to.
        store.remember([lead("a", 0.99, version="9.9.9", at=NOW - 5)])
        got = store.labelled("auto", 0)
        assert got.scores == [0.4, 0.9]
        assert got.versions == ["1.0.0", "1.0.0"]
        assert got.converted == [True, False]
        assert got.shadow_versions == [None, "2.0.0"]
        assert got.shadow_scores == [None, 0.7]
        assert store.record_outcomes([Outcome("a", False, NOW)], NOW) == ["duplicate"]

    def test_remember_keeps_ids_as_given(self, store) -> None:
        ids = ["x" * 128, "lead-ä-😀", "  spaced  ", "a'; DROP TABLE leads; --", 'q"u\\o:te']
        store.remember([lead(i) for i in ids])
        assert store.record_outcomes([Outcome(i, True, NOW) for i in ids], NOW) == ["recorded"] * 5
        assert store.record_outcomes([Outcome("X" * 128, True, NOW)], NOW) == ["unknown"]
        assert len(store.labelled("auto", 0).scores) == 5

    def test_outcome_statuses_in_order_with_duplicates_in_one_batch(self, store) -> None:
        store.remember([lead("a"), lead("b"), lead("c")])
        statuses = store.record_outcomes(
            [
                Outcome("a", True, NOW),
                Outcome("nobody", True, NOW),
                Outcome("a", False, NOW),  # duplicate within the batch
                Outcome("b", False, NOW),
            ],
            NOW,
        )
        assert statuses == ["recorded", "unknown", "duplicate", "recorded"]
        assert store.record_outcomes([Outcome("b", True, NOW), Outcome("c", True, NOW)], NOW) == [
            "duplicate",
            "recorded",
        ]
        # The first outcome stands.
        assert store.labelled("auto", 0).converted == [True, False, True]
        assert store.record_outcomes([], NOW) == []

    def test_an_outcome_after_the_retention_is_unknown(self, make_store) -> None:
        store = make_store(retention_seconds=30 * DAY)
        store.remember([lead("old", at=NOW - 30 * DAY - 1), lead("edge", at=NOW - 30 * DAY)])
        assert store.record_outcomes(
            [Outcome("old", True, NOW), Outcome("edge", True, NOW)], NOW
        ) == ["unknown", "recorded"]
        # The same outcome a day earlier would have been in time.
        assert store.record_outcomes([Outcome("old", True, NOW - DAY)], NOW - DAY) == ["recorded"]

    def test_labelled_selects_one_vertical_with_outcomes_in_the_window(self, store) -> None:
        store.remember(
            [
                lead("t300", 0.3, at=300.0),
                lead("t100", 0.1, at=100.0),
                lead("t200", 0.2, at=200.0),
                lead("t250-no-outcome", 0.25, at=250.0),
                lead("home-150", 0.15, at=150.0, vertical="home"),
            ]
        )
        store.record_outcomes(
            [Outcome(i, True, 400.0) for i in ("t100", "t200", "t300", "home-150")], 400.0
        )
        assert store.labelled("auto", 0).scores == [0.1, 0.2, 0.3]  # ordered by scored_at
        assert store.labelled("auto", 0).scored_at == [100.0, 200.0, 300.0]
        assert store.labelled("auto", 100.0, 300.0).scores == [0.1, 0.2]  # [since, until)
        assert store.labelled("auto", 100.5).scores == [0.2, 0.3]
        assert store.labelled("home", 0).scores == [0.15]
        empty = store.labelled("auto", 301.0)
        assert empty.scores == [] and empty.versions == [] and empty.shadow_scores == []
        assert store.labelled("life", 0).converted == []

    def test_labelled_returns_every_lead_of_a_large_window_once(self, store) -> None:
        # Runs of equal scored_at (a batch scored at one instant) among distinct ones.
        times = [NOW - 3000 + i // 40 for i in range(1200)]
        ids = [f"lead-{i:04d}" for i in range(1200)]
        store.remember(
            [lead(i, (n % 97) / 97, at=t) for n, (i, t) in enumerate(zip(ids, times, strict=True))]
        )
        store.record_outcomes([Outcome(i, n % 3 == 0, NOW) for n, i in enumerate(ids)], NOW)
        got = store.labelled("auto", NOW - 3000)
        assert sorted(got.scored_at) == got.scored_at == sorted(times)
        assert sorted(zip(got.scored_at, got.scores, got.converted, strict=True)) == sorted(
            (t, (n % 97) / 97, n % 3 == 0) for n, t in enumerate(times)
        )
        assert len(store.labelled("auto", NOW - 2990, NOW - 2980).scores) == 10 * 40

    # -- counts ------------------------------------------------------------------------

    def test_counts_are_summed_across_flushes_and_minutes(self, store) -> None:
        m = epoch_minute(NOW)
        store.add_counts([row("age", m, [1, 2, 3]), row("age", m + 1, [10, 0, 0])])
        store.add_counts([row("age", m, [1, 1, 1]), row("age", m, [0, 0, 5])])  # twice in a batch
        store.add_counts([row("age", m - 1, [100, 100, 100])])
        store.add_counts([row("age", m, [1, 1, 1], role="challenger", version="2.0.0")])
        store.add_counts([row("__score__", m, [7])])
        assert store.counts("auto", "1.0.0", "champion", "age", since=m * 60.0) == [12, 3, 9]
        # A since inside a minute includes that whole minute.
        assert store.counts("auto", "1.0.0", "champion", "age", since=m * 60.0 - 1) == [
            112,
            103,
            109,
        ]
        assert store.counts("auto", "1.0.0", "champion", "age", since=(m + 1) * 60.0) == [10, 0, 0]
        assert store.counts("auto", "1.0.0", "champion", "age", since=(m + 2) * 60.0) is None
        assert store.counts("auto", "2.0.0", "challenger", "age", since=0) == [1, 1, 1]
        assert store.counts("auto", "1.0.0", "champion", "__score__", since=0) == [7]
        assert store.counts("home", "1.0.0", "champion", "age", since=0) is None

    def test_counts_over_hours_and_days_sum_every_minute_from_since(self, store) -> None:
        m = epoch_minute(NOW)
        minutes = [m - 3 * 1440 - 7, m - 1440, m - 181, m - 125, m - 61, m - 60, m - 59, m]
        store.add_counts([row("age", minute, [1, minute % 10]) for minute in minutes])
        for since in (0, *minutes, m - 62, m - 120, m - 1439, m + 1):
            expected = [row for row in minutes if row >= since]
            want = [len(expected), sum(row % 10 for row in expected)] if expected else None
            assert store.counts("auto", "1.0.0", "champion", "age", since * 60.0) == want, since

    def test_counts_of_unequal_length_sum_over_the_longer(self, store) -> None:
        store.add_counts(
            [row("make", 5, [1, 1]), row("make", 5, [1, 1, 1, 1]), row("make", 6, [2])]
        )
        assert store.counts("auto", "1.0.0", "champion", "make", since=0) == [4, 2, 1, 1]

    def test_large_counts_survive(self, store) -> None:
        store.add_counts([row("x", 1, [2**40, 0]), row("x", 1, [2**40, 3])])
        assert store.counts("auto", "1.0.0", "champion", "x", since=0) == [2**41, 3]

    def test_wide_rows_and_negative_counts_add_up(self, store) -> None:
        wide = list(range(1234))
        store.add_counts([row("wide", 1, wide), row("wide", 2, wide), row("wide", 2, [-5, 2**33])])
        assert store.counts("auto", "1.0.0", "champion", "wide", since=0) == [
            -5,
            2 + 2**33,
            *(2 * n for n in wide[2:]),
        ]
        assert store.counts("auto", "1.0.0", "champion", "wide", since=120.0) == [
            -5,
            1 + 2**33,
            *wide[2:],
        ]

    def test_versions_with_counts_since(self, store) -> None:
        m = epoch_minute(NOW)
        store.add_counts(
            [
                row("age", m - 10, [1], version="0.9.0"),
                row("age", m, [1]),
                row("age", m, [1], version="2.0.0", role="challenger"),
                row("age", m, [1], vertical="home", version="3.0.0"),
            ]
        )
        assert store.versions_with_counts("auto", since=(m - 10) * 60.0) == [
            ("0.9.0", "champion"),
            ("1.0.0", "champion"),
            ("2.0.0", "challenger"),
        ]
        assert store.versions_with_counts("auto", since=m * 60.0) == [
            ("1.0.0", "champion"),
            ("2.0.0", "challenger"),
        ]
        assert store.versions_with_counts("auto", since=(m + 1) * 60.0) == []
        assert store.versions_with_counts("home", since=0) == [("3.0.0", "champion")]

    # -- upkeep and sharing ------------------------------------------------------------

    def test_prune_drops_what_is_past_each_retention(self, make_store) -> None:
        store = make_store(retention_seconds=10 * DAY, counts_retention_seconds=DAY)
        old = [lead(f"old-{i}", at=NOW - 11 * DAY + i) for i in range(7)]
        young = [lead(f"young-{i}", at=NOW - 9 * DAY) for i in range(2)]
        store.remember([*old, *young, lead("home-old", vertical="home", at=NOW - 20 * DAY)])
        store.record_outcomes([Outcome("old-0", True, NOW - 11 * DAY)], NOW - 11 * DAY)
        store.record_outcomes([Outcome("young-0", True, NOW)], NOW)
        m = epoch_minute(NOW)
        store.add_counts(
            [row("age", m - 60 * 24 - 1, [1]), row("age", m - 60 * 24, [2]), row("age", m, [4])]
        )
        store.add_counts([row("age", m - 60 * 24 - 1, [8], version="0.9.0")])
        assert store.prune(NOW) > 0
        assert store.labelled("auto", 0).scored_at == [NOW - 9 * DAY]
        assert store.counts("auto", "1.0.0", "champion", "age", since=0) == [6]
        # The minute of since is past the retention: what is left of its hour counts.
        since = (m - 60 * 24 - 1) * 60.0
        assert store.counts("auto", "1.0.0", "champion", "age", since=since) == [6]
        assert store.counts("auto", "0.9.0", "champion", "age", since=0) is None
        assert store.versions_with_counts("auto", since=0) == [("1.0.0", "champion")]
        assert store.record_outcomes([Outcome("old-1", True, NOW)], NOW) == ["unknown"]
        assert store.record_outcomes([Outcome("young-1", True, NOW)], NOW) == ["recorded"]
        assert store.prune(NOW) == 0

    def test_a_closed_store_refuses_calls(self, store) -> None:
        store.close()
        store.close()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            store.remember([lead("a")])
        with pytest.raises(RuntimeError, match="closed"):
            store.labelled("auto", 0)

    def test_an_outcome_reaches_the_lead_through_another_connection(self, make_store) -> None:
        scorer, feedback = make_store(), make_store()
        scorer.remember([lead("a")])
        assert feedback.record_outcomes([Outcome("a", True, NOW)], NOW) == ["recorded"]
        assert scorer.labelled("auto", 0).converted == [True]
        assert scorer.record_outcomes([Outcome("a", True, NOW)], NOW) == ["duplicate"]

    def test_counts_from_several_connections_add_up(self, make_store) -> None:
        workers = [make_store() for _ in range(3)]
        m = epoch_minute(NOW)
        for n, worker in enumerate(workers):
            worker.add_counts([row("age", m, [1, n]), row("age", m - 90, [1, 0])])
        for worker in workers:
            assert worker.counts("auto", "1.0.0", "champion", "age", since=0) == [6, 3]
            assert worker.counts("auto", "1.0.0", "champion", "age", since=m * 60.0) == [3, 3]
