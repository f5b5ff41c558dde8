"""Replay every fuzzing corpus file through the in-process harness (tests/fuzz/harness.py).

Each input must end as a 2xx body that decodes or a counted 4xx error (the harness's
invariant); a hand-written seed named ``<what>.<status>.json`` must also get that
status. Inputs the fuzzer found (``make fuzz``) and findings moved into the corpus after
their fix are replayed here on every run, so each stays a regression test.
"""

from __future__ import annotations

import pytest

from tests.fuzz.harness import Harness, corpus_files, expected_status

FILES = corpus_files()


@pytest.fixture(scope="module")
def harness(fuzz_store):
    harness = Harness(fuzz_store)
    yield harness
    harness.close()


def test_corpus_has_seeds_for_both_routes():
    routes = {route for route, _ in FILES}
    assert routes == {"score", "batch"}
    assert sum(expected_status(path) is not None for _, path in FILES) >= 40


@pytest.mark.parametrize(("route", "path"), FILES, ids=[f"{r}/{p.name}" for r, p in FILES])
def test_corpus_input_is_answered(harness, route, path):
    whole, chunked = harness.check(route, path.read_bytes())
    expected = expected_status(path)
    if expected is not None:
        assert whole.status == expected, whole
        assert chunked.status == expected, chunked
