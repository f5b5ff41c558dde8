"""The soak's growth bounds and its store of twins (real store, real signatures)."""

from __future__ import annotations

import shutil

import pytest

from engine.store import layout, pointer
from engine.store.verify import verify_version
from loadtests.procs import ProcessSample
from loadtests.soak import Bounds, Snapshot, growth
from loadtests.twins import twin_store

MiB = 2**20


def proc(pid, rss_mib, sockets=5, other=30):
    return ProcessSample(pid, int(rss_mib * MiB), sockets, other)


START = Snapshot(proc(1, 70, other=12), {0: proc(10, 66), 1: proc(11, 66)})


def test_growth_within_the_bounds_passes():
    end = Snapshot(
        proc(1, 77.9, other=16),
        {0: proc(10, 81.9, sockets=5 + 20 + 4, other=34), 1: proc(99, 60, sockets=1)},
    )
    assert growth(START, end, Bounds(), users=20) == []


def test_each_bound_is_checked_per_process():
    end = Snapshot(
        proc(1, 78.5, other=17),
        {0: proc(10, 82.5, other=30), 1: proc(99, 66, sockets=5 + 20 + 5, other=35)},
    )
    assert growth(START, end, Bounds(), users=20) == [
        "worker 1: sockets 5 -> 30, over 5 + 20 users + 4",
        "master: other descriptors 12 -> 17, over +4",
        "master: RSS 70.0 -> 78.5 MiB, +8.5 over +8 MiB",
        "worker 0: RSS 66.0 -> 82.5 MiB, +16.5 over +16 MiB",
        "worker 1: other descriptors 30 -> 35, over +4",
    ]


def test_a_slot_left_empty_fails():
    end = Snapshot(proc(1, 70, other=12), {0: proc(10, 66)})
    assert growth(START, end, Bounds(), users=20) == ["worker slot 1 has no worker at the end"]


@pytest.fixture
def store(trained, model_root, tmp_path):
    trained("auto")
    source = tmp_path / "models"
    shutil.copytree(model_root, source)
    return source


def test_twins_are_signed_copies_and_the_source_is_untouched(store, key_dir, keyring, tmp_path):
    before = {v: pointer.read_current(store, v) for v in layout.list_verticals(store)}
    target = tmp_path / "copy"
    cycle = twin_store(store, target, key_dir / "model-signing.key")
    assert cycle[1] == {v: a for v, a in before.items() if a is not None}
    for vertical, twin in cycle[0].items():
        original = cycle[1][vertical]
        assert layout.parse_version(twin) > layout.parse_version(original)
        copy = verify_version(layout.version_dir(target, vertical, twin), keyring)
        first = verify_version(layout.version_dir(target, vertical, original), keyring)
        assert copy.manifest.version == twin
        assert copy.manifest.files == first.manifest.files  # the same bytes
    assert {v: pointer.read_current(store, v) for v in before} == before
    assert not any(layout.version_dir(store, v, t).exists() for v, t in cycle[0].items())
    again = twin_store(store, target, key_dir / "model-signing.key")  # replaces the copy
    assert again == cycle


def test_twins_need_the_signing_key(store, tmp_path):
    with pytest.raises(FileNotFoundError, match="make models"):
        twin_store(store, tmp_path / "copy", tmp_path / "missing.key")
