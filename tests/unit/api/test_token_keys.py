import json
import stat

import pytest

from api.token_keys import load_token_keys, read_metadata, read_revocations, revoke, rotate
from engine.errors import StoreError
from engine.store.signing import SigningKey, generate_keypair

DAY = 86400.0
T0 = 1_800_000_000.0


def test_first_rotation_creates_an_active_key_with_a_private_file_only_we_read(tmp_path):
    done = rotate(tmp_path, now=T0)
    private = tmp_path / "jwt-signing.key"
    assert SigningKey.load(private).key_id == done.new_key
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (tmp_path / "trusted" / f"{done.new_key}.pub").is_file()
    record = read_metadata(tmp_path / "trusted").keys[done.new_key]
    assert record.state == "active" and record.verify_until is None
    assert done.verify_only == {} and done.retired == []


def test_rotation_demotes_the_previous_key_and_retires_old_ones(tmp_path):
    first = rotate(tmp_path, now=T0).new_key
    second = rotate(tmp_path, grace_days=2, now=T0 + 10 * DAY)
    trusted = tmp_path / "trusted"
    metadata = read_metadata(trusted).keys
    assert metadata[first].state == "verify_only"
    assert second.verify_only == {first: metadata[first].verify_until}
    keys = load_token_keys(trusted)
    assert keys.keys[first].valid_until == pytest.approx(T0 + 12 * DAY)
    assert keys.keys[second.new_key].valid_until == float("inf")
    # A third rotation after the grace retires the first key and removes its file.
    third = rotate(tmp_path, now=T0 + 20 * DAY)
    assert third.retired == [first]
    assert not (trusted / f"{first}.pub").exists()
    keys = load_token_keys(trusted)
    assert first in keys.retired and first not in keys.keys
    assert set(keys.keys) == {second.new_key, third.new_key}


def test_the_replaced_key_keeps_its_grace_even_when_over_the_maximum_age(tmp_path):
    first = rotate(tmp_path, now=T0).new_key
    late = rotate(tmp_path, max_age_days=30, now=T0 + 45 * DAY)
    assert late.retired == [] and first in late.verify_only


def test_unmanaged_public_keys_are_active_and_come_under_rotation(tmp_path):
    kid = generate_keypair(tmp_path, private_name="jwt-signing.key")
    keys = load_token_keys(tmp_path / "trusted")
    assert keys.keys[kid].valid_until == float("inf") and not keys.retired
    rotate(tmp_path, now=T0)
    assert read_metadata(tmp_path / "trusted").keys[kid].state == "verify_only"


def test_revocations_accumulate(tmp_path):
    rotate(tmp_path, now=T0)
    trusted = tmp_path / "trusted"
    revoke(trusted, ["a"], [])
    revoke(trusted, ["b", "a"], ["eve"])
    revoked = read_revocations(trusted)
    assert revoked.jti == ["a", "b"] and revoked.sub == ["eve"]
    loaded = load_token_keys(trusted)
    assert loaded.revoked_ids == {"a", "b"} and loaded.revoked_subjects == {"eve"}


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"keys": {"k": {"state": "lost", "created_at": "2026-01-01T00:00:00+00:00"}}}),
        json.dumps({"keys": {"k": {"state": "active", "created_at": "yesterday"}}}),
    ],
)
def test_malformed_metadata_is_refused(tmp_path, content):
    rotate(tmp_path, now=T0)
    (tmp_path / "trusted" / "keyring.json").write_text(content)
    with pytest.raises(StoreError):
        load_token_keys(tmp_path / "trusted")


def test_a_keyring_of_only_retired_keys_is_refused(tmp_path):
    kid = rotate(tmp_path, now=T0).new_key
    metadata = {"keys": {kid: {"state": "retired", "created_at": "2026-01-01T00:00:00+00:00"}}}
    (tmp_path / "trusted" / "keyring.json").write_text(json.dumps(metadata))
    with pytest.raises(StoreError, match="retired"):
        load_token_keys(tmp_path / "trusted")


def test_bad_rotation_arguments(tmp_path):
    with pytest.raises(ValueError):
        rotate(tmp_path, grace_days=0)
