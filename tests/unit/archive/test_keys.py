"""Archive keys on real files: creation, modes, rotation, and every refusal."""

import os
import stat

import pytest

from engine.archive.errors import ArchiveKeyError
from engine.archive.keys import (
    CURRENT,
    KEY_BYTES,
    ArchiveKeys,
    create_key,
    rotate,
    service_keys,
    valid_key_id,
)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_created_key_is_private_random_and_current(tmp_path):
    directory = tmp_path / "keys"
    kid = create_key(directory)
    assert valid_key_id(kid)
    assert mode(directory) == 0o700 and mode(directory / f"{kid}.key") == 0o600
    keys = ArchiveKeys.load(directory)
    assert keys.current_id == kid == keys.current and keys.ids() == [kid]
    assert len(keys.key(kid)) == KEY_BYTES
    other = create_key(tmp_path / "other")
    assert ArchiveKeys.load(tmp_path / "other").key(other) != keys.key(kid)


def test_rotation_keeps_old_keys_and_switches_current(archive_key_dir):
    before = ArchiveKeys.load(archive_key_dir)
    previous, new = rotate(archive_key_dir)
    assert previous == before.current_id and new != previous
    after = ArchiveKeys.load(archive_key_dir)
    assert after.current_id == new and set(after.ids()) == {previous, new}
    assert after.key(previous) == before.key(previous)
    # A running process sees the rotation on refresh.
    assert before.refresh() == new and before.key(new) == after.key(new)


def test_rotate_creates_the_first_key(tmp_path):
    previous, new = rotate(tmp_path / "fresh")
    assert previous is None and ArchiveKeys.load(tmp_path / "fresh").current_id == new


def test_missing_directory_names_the_variable(tmp_path):
    with pytest.raises(ArchiveKeyError, match=r"LEAD_ARCHIVE_KEYS=.*does not exist.*keygen"):
        service_keys(tmp_path / "nowhere")


def test_no_current_key_is_refused_for_writing_but_fine_for_reading(archive_key_dir):
    (archive_key_dir / CURRENT).unlink()
    with pytest.raises(ArchiveKeyError, match=r"LEAD_ARCHIVE_DIR is set.*no current key"):
        service_keys(archive_key_dir)
    keys = ArchiveKeys.load(archive_key_dir, require_current=False)
    assert keys.current is None and len(keys.ids()) == 1
    with pytest.raises(ArchiveKeyError, match="no current key"):
        _ = keys.current_id


def test_key_readable_by_others_is_refused(archive_key_dir):
    (key_file,) = archive_key_dir.glob("*.key")
    key_file.chmod(0o644)
    with pytest.raises(ArchiveKeyError, match=r"group or others \(mode 0644\).*chmod 600"):
        ArchiveKeys.load(archive_key_dir)


def test_malformed_key_is_refused(archive_key_dir):
    (key_file,) = archive_key_dir.glob("*.key")
    key_file.write_text("not a key\n")
    with pytest.raises(ArchiveKeyError, match="not an archive key"):
        ArchiveKeys.load(archive_key_dir)


def test_current_naming_a_missing_key_is_refused(archive_key_dir):
    (archive_key_dir / CURRENT).write_text("20260101T000000.000000Z-deadbeef\n")
    with pytest.raises(ArchiveKeyError, match="not in the directory"):
        ArchiveKeys.load(archive_key_dir)
    with pytest.raises(ArchiveKeyError):
        rotate(archive_key_dir)  # a rotation must not paper over a broken key directory


def test_unknown_key_id_is_refused(keys):
    with pytest.raises(ArchiveKeyError, match="no key"):
        keys.key("20260101T000000.000000Z-00000000")


def test_other_files_in_the_directory_are_ignored(archive_key_dir):
    (archive_key_dir / "README").write_text("notes")
    (archive_key_dir / "backup.key").write_text("x")  # not a key id: ignored, not parsed
    assert len(ArchiveKeys.load(archive_key_dir).ids()) == 1


def test_unreadable_directory_is_reported(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(ArchiveKeyError, match="cannot list keys"):
        ArchiveKeys.load(not_a_dir)
