"""Lead ids at rest are keyed hashes: stable per key, unmatchable without it."""

from __future__ import annotations

import stat

import pytest

from api.lead_keys import KEY_BYTES, LeadIdHasher, ensure_key


def test_the_key_is_created_once_privately(tmp_path):
    path = tmp_path / "monitoring" / "lead-id.key"
    ensure_key(path)
    first = path.read_bytes()
    assert len(first) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ensure_key(path)  # exists: kept, so stored leads stay matchable across restarts
    assert path.read_bytes() == first


def test_hashes_are_stable_per_key_and_reveal_nothing(tmp_path):
    path = tmp_path / "key"
    ensure_key(path)
    hasher = LeadIdHasher.load(path)
    other = LeadIdHasher(b"x" * KEY_BYTES)
    email = "jane.doe@example.com"
    assert hasher(email) == LeadIdHasher.load(path)(email)
    assert hasher(email) != hasher("jane.doe@example.org")
    assert hasher(email) != other(email)  # without the key, guesses do not match
    assert email not in hasher(email) and len(hasher(email)) == 22


def test_a_readable_key_is_made_private_and_a_short_one_refused(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b"y" * KEY_BYTES)
    path.chmod(0o644)
    LeadIdHasher.load(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="32 bytes"):
        LeadIdHasher(b"short")
