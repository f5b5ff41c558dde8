from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.store.layout import (
    atomic_write,
    list_versions,
    list_verticals,
    parse_version,
    version_dir,
)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_parse_version_round_trips(major: int, minor: int, patch: int) -> None:
    assert parse_version(f"{major}.{minor}.{patch}") == (major, minor, patch)


@given(st.text(alphabet="0123456789.v-+ \n٣", max_size=12))
def test_parse_version_accepts_only_canonical_text(text: str) -> None:
    try:
        parsed = parse_version(text)
    except ValueError:
        return
    assert ".".join(str(n) for n in parsed) == text


@pytest.mark.parametrize(
    "text",
    [
        "1.0",
        "01.0.0",
        "1.00.0",
        "1.0.01",
        "v1.0.0",
        "1.0.0-rc1",
        "1.0.0+build",
        "1.0.0\n",
        " 1.0.0",
        "",
        "1..0",
        "1.0.0.0",
        "a.b.c",
        "١.٠.٠",
        "-1.0.0",
    ],
)
def test_parse_version_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid version"):
        parse_version(text)


def test_parse_version_accepts_zeros() -> None:
    assert parse_version("0.0.0") == (0, 0, 0)
    assert parse_version("10.20.30") == (10, 20, 30)


def test_version_dir(tmp_path: Path) -> None:
    assert version_dir(tmp_path, "auto", "1.2.0") == tmp_path / "auto" / "v1.2.0"


@pytest.mark.parametrize(
    ("vertical", "version"),
    [("..", "1.0.0"), ("a/b", "1.0.0"), ("", "1.0.0"), ("auto", "../1.0.0")],
)
def test_version_dir_refuses_path_tricks(tmp_path: Path, vertical: str, version: str) -> None:
    with pytest.raises(ValueError):
        version_dir(tmp_path, vertical, version)


def test_list_versions_orders_by_semver_and_ignores_junk(tmp_path: Path) -> None:
    base = tmp_path / "auto"
    for name in ["v1.9.0", "v1.10.0", "v0.1.0", "v1.9.10", "v1.9.2", "v2.0.0"]:
        (base / name).mkdir(parents=True)
    for junk in [".tmp-v3.0.0-abcd", "v1.0", "v01.0.0", "1.5.0", "v1.0.0-rc1", "old", "vX.Y.Z"]:
        (base / junk).mkdir()
    (base / "v9.9.9").write_text("a file, not a directory")
    (base / "CURRENT").write_text("1.9.0\n")
    assert list_versions(tmp_path, "auto") == [
        "0.1.0",
        "1.9.0",
        "1.9.2",
        "1.9.10",
        "1.10.0",
        "2.0.0",
    ]


def test_list_versions_of_missing_vertical_is_empty(tmp_path: Path) -> None:
    assert list_versions(tmp_path, "auto") == []
    assert list_versions(tmp_path / "nowhere", "auto") == []


def test_list_verticals(tmp_path: Path) -> None:
    (tmp_path / "auto" / "v1.0.0").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "CURRENT").write_text("1.0.0\n")
    (tmp_path / "life").mkdir()  # empty: not a vertical with models
    (tmp_path / "keys" / "trusted").mkdir(parents=True)
    (tmp_path / ".tmp-x" / "v1.0.0").mkdir(parents=True)
    (tmp_path / "Bad-Name" / "v1.0.0").mkdir(parents=True)
    (tmp_path / "health").write_text("a file")
    assert list_verticals(tmp_path) == ["auto", "home"]
    assert list_verticals(tmp_path / "missing") == []


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "CURRENT"
    atomic_write(target, b"1.0.0\n")
    atomic_write(target, b"1.1.0\n")
    assert target.read_bytes() == b"1.1.0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT"]
