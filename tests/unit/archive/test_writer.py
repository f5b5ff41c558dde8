"""The worker's archive on real files: buffer, writer thread, segments, rotation, errors."""

import logging
import os
import stat
import time
from pathlib import Path

import pytest

from engine.archive.keys import ArchiveKeys, rotate
from engine.archive.policy import PolicyBook
from engine.archive.reader import Problem, read_vertical
from engine.archive.segments import CLOSED_SUFFIX, OPEN_SUFFIX, segment_files
from engine.archive.writer import LeadArchive
from tests.unit.archive.conftest import NOW

PII = "Zoë Quartermaine-7f3a"


def make(directory, keys, demo_config, scorer, counts=None, **options) -> LeadArchive:
    return LeadArchive(
        directory,
        keys,
        PolicyBook(demo_config),
        lambda: scorer.models,
        on_count=(lambda o, n: counts.append((o, n))) if counts is not None else None,
        clock=lambda: NOW,
        **options,
    )


def scored(scorer, lead):
    return scorer.score("auto", lead)


def wait_written(archive: LeadArchive, count: int) -> None:
    deadline = time.monotonic() + 30
    while archive.written + archive.failed < count:
        assert time.monotonic() < deadline, "the writer thread did not write"
        time.sleep(0.01)


def records(directory: Path, keys: ArchiveKeys) -> list:
    items = list(read_vertical(directory, "auto", keys))
    assert not [i for i in items if isinstance(i, Problem)]
    return items


def test_kept_leads_are_written_sealed_on_close(tmp_path, keys, demo_config, scorer, auto_lead):
    counts: list = []
    archive = make(tmp_path / "archive", keys, demo_config, scorer, counts)
    lead = {**auto_lead, "location": PII, "email": "jane@example.com"}
    result = scored(scorer, lead)
    archive.keep("auto", lead, "lead-1", result)
    archive.keep("auto", auto_lead, None, scored(scorer, auto_lead))
    archive.close()
    (segment,) = segment_files(tmp_path / "archive" / "auto")
    assert segment.name.endswith(CLOSED_SUFFIX) and f"-{os.getpid()}-" in segment.name
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "archive" / "auto").stat().st_mode) == 0o700
    data = segment.read_bytes()
    assert PII.encode() not in data and b"jane@example.com" not in data
    first, second = records(tmp_path / "archive", keys)
    assert first.lead_id == "lead-1" and first.values["location"] == PII
    assert "email" not in first.values and first.score == result.score
    assert first.accepted == result.accepted and first.model_version == "1.0.0"
    assert first.scored_at == "2025-11-24T16:00:00.000000Z" and second.lead_id is None
    assert counts == [("written", 2)]
    assert archive.written == 2 and archive.dropped == 0 and archive.failed == 0


def test_nothing_is_written_for_nothing(tmp_path, keys, demo_config, scorer):
    counts: list = []
    archive = make(tmp_path / "archive", keys, demo_config, scorer, counts)
    archive.flush()
    archive.close()
    assert not (tmp_path / "archive").exists() and counts == []


def test_full_buffer_drops_and_counts_instead_of_waiting(
    tmp_path, keys, demo_config, scorer, auto_lead
):
    counts: list = []
    archive = make(tmp_path / "archive", keys, demo_config, scorer, counts, capacity=3)
    result = scored(scorer, auto_lead)
    for _ in range(5):
        archive.keep("auto", auto_lead, None, result)
    assert archive.dropped == 2
    archive.close()
    assert sorted(counts) == [("dropped", 2), ("written", 3)]
    assert len(records(tmp_path / "archive", keys)) == 3


def test_segments_rotate_by_size(tmp_path, keys, demo_config, scorer, auto_lead):
    archive = make(tmp_path / "archive", keys, demo_config, scorer, segment_bytes=1)
    result = scored(scorer, auto_lead)
    for batch in range(3):
        archive.keep("auto", auto_lead, f"lead-{batch}", result)
        archive.flush()
        wait_written(archive, batch + 1)
    archive.close()
    segments = segment_files(tmp_path / "archive" / "auto")
    assert len(segments) == 3 and all(s.name.endswith(CLOSED_SUFFIX) for s in segments)
    assert [r.lead_id for r in records(tmp_path / "archive", keys)] == [
        "lead-0",
        "lead-1",
        "lead-2",
    ]


def test_writer_follows_a_key_rotation(
    tmp_path, archive_key_dir, keys, demo_config, scorer, auto_lead
):
    archive = make(tmp_path / "archive", keys, demo_config, scorer, key_check_seconds=0)
    result = scored(scorer, auto_lead)
    archive.keep("auto", auto_lead, "before", result)
    archive.flush()
    wait_written(archive, 1)
    old = keys.current_id
    _, new = rotate(archive_key_dir)
    archive.keep("auto", auto_lead, "after", result)
    archive.flush()
    archive.close()
    assert len(segment_files(tmp_path / "archive" / "auto")) == 2
    reader_keys = ArchiveKeys.load(archive_key_dir)
    got = {r.lead_id: r.kid for r in records(tmp_path / "archive", reader_keys)}
    assert got == {"before": old, "after": new}


def test_a_broken_key_directory_keeps_the_current_key(
    tmp_path, archive_key_dir, keys, demo_config, scorer, auto_lead, caplog
):
    archive = make(tmp_path / "archive", keys, demo_config, scorer, key_check_seconds=0)
    (archive_key_dir / "CURRENT").write_text("20990101T000000.000000Z-00000000\n")
    with caplog.at_level(logging.ERROR, logger="ml_service.archive"):
        archive.keep("auto", auto_lead, "x", scored(scorer, auto_lead))
        archive.close()
    assert archive.written == 1 and "archive keys not re-read" in caplog.text


def test_write_errors_are_counted_and_logged_without_values(
    tmp_path, keys, demo_config, scorer, auto_lead, caplog
):
    blocker = tmp_path / "archive"
    blocker.write_text("a file where the archive directory should be")
    counts: list = []
    archive = make(blocker, keys, demo_config, scorer, counts)
    lead = {**auto_lead, "location": PII}
    with caplog.at_level(logging.ERROR, logger="ml_service.archive"):
        archive.keep("auto", lead, "lead-1", scored(scorer, lead))
        archive.close()
    assert counts == [("failed", 1)] and archive.written == 0
    assert "lead archive write failed" in caplog.text and PII not in caplog.text


def test_leads_of_a_swapped_out_version_are_sealed_whole(
    tmp_path, keys, demo_config, scorer, auto_lead
):
    archive = LeadArchive(tmp_path / "archive", keys, PolicyBook(demo_config), dict)
    archive.keep("auto", auto_lead, "lead-1", scored(scorer, auto_lead))
    archive.close()
    data = next(iter(segment_files(tmp_path / "archive" / "auto"))).read_bytes()
    assert b'"clear":{}' in data
    (record,) = records(tmp_path / "archive", keys)
    assert record.values == {k: v for k, v in auto_lead.items() if v is not None}


def test_a_lead_that_cannot_be_archived_is_counted(
    tmp_path, keys, demo_config, scorer, auto_lead, caplog
):
    archive = make(tmp_path / "archive", keys, demo_config, scorer)
    result = scored(scorer, auto_lead)
    with caplog.at_level(logging.ERROR, logger="ml_service.archive"):
        archive.keep("../../etc", auto_lead, None, result)  # never a path from a string
        archive.keep("auto", {**auto_lead, "occupation": object()}, None, result)
        archive.keep("auto", auto_lead, "fine", result)
        archive.close()
    assert archive.failed == 2 and archive.written == 1
    assert not (tmp_path / "etc").exists() and "lead not archived" in caplog.text


def test_a_crash_leaves_an_open_segment_that_still_reads(
    tmp_path, keys, demo_config, scorer, auto_lead
):
    archive = make(tmp_path / "archive", keys, demo_config, scorer)
    archive.keep("auto", auto_lead, "lead-1", scored(scorer, auto_lead))
    archive.flush()
    wait_written(archive, 1)
    (segment,) = segment_files(tmp_path / "archive" / "auto")
    assert segment.name.endswith(OPEN_SUFFIX)
    # Simulate a crash mid-write: half a record after the whole one.
    with segment.open("ab") as handle:
        handle.write(b'{"v":1,"rid":"ab')
    items = list(read_vertical(tmp_path / "archive", "auto", keys))
    assert [i.lead_id for i in items if not isinstance(i, Problem)] == ["lead-1"]
    (problem,) = [i for i in items if isinstance(i, Problem)]
    assert problem.incomplete and not problem.tampered and problem.line == 2
    archive.close()


def test_after_a_write_error_the_vertical_pauses(tmp_path, keys, demo_config, scorer, auto_lead):
    blocker = tmp_path / "archive"
    blocker.write_text("")
    archive = make(blocker, keys, demo_config, scorer)
    result = scored(scorer, auto_lead)
    archive.keep("auto", auto_lead, "one", result)
    archive.flush()
    wait_written(archive, 1)
    blocker.unlink()  # the disk is fine again, but the pause is still on
    archive.keep("auto", auto_lead, "two", result)
    archive.close()
    assert archive.failed == 2 and not blocker.exists()


def test_prepare_directory(tmp_path):
    from engine.archive.errors import ArchiveError
    from engine.archive.segments import prepare_directory

    prepare_directory(tmp_path / "a" / "b")
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    (tmp_path / "file").write_text("")
    with pytest.raises(ArchiveError, match=r"LEAD_ARCHIVE_DIR=.*file/x: cannot create it"):
        prepare_directory(tmp_path / "file" / "x")
