"""The fuzz harness's model store, trained once per test session."""

from __future__ import annotations

import pytest

from tests.fuzz.harness import build_store


@pytest.fixture(scope="session")
def fuzz_store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("fuzz-store"))
