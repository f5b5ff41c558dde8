"""Export for retraining: decrypt, join outcomes, and a CSV the training reader accepts."""

import json
import stat

import msgspec
import pytest

from engine.archive.errors import ArchiveError
from engine.archive.export import ExportSummary, export_csv, read_outcomes
from engine.archive.keys import ArchiveKeys, rotate
from engine.archive.policy import PolicyBook
from engine.archive.segments import segment_files
from engine.archive.writer import LeadArchive
from engine.cli.main import main
from engine.config import feature_specs
from engine.errors import TrainingError, UnknownVertical
from engine.training.csvdata import read_training_csv

PII = "Zoë Quartermaine-7f3a"


@pytest.fixture
def archive_dir(tmp_path, archive_key_dir, keys, demo_config, scorer, auto_lead):
    """An archive of five auto records: lead-1 scored twice, one without a lead id."""
    directory = tmp_path / "archive"
    clock = iter(range(1_764_000_000, 1_764_000_100))
    archive = LeadArchive(
        directory,
        keys,
        PolicyBook(demo_config),
        lambda: scorer.models,
        clock=lambda: float(next(clock)),
    )
    for lead_id, location in (
        ("lead-1", "old place"),
        ("lead-2", PII),
        ("lead-3", "Austin, TX"),
        ("lead-1", "new place"),
        (None, "nowhere"),
    ):
        lead = {**auto_lead, "location": location, "email": "jane@example.com"}
        archive.keep("auto", lead, lead_id, scorer.score("auto", lead))
    archive.close()
    return directory


def write_outcomes(tmp_path, text: str):
    path = tmp_path / "outcomes.csv"
    path.write_text(text)
    return path


def test_export_with_outcomes_trains(tmp_path, archive_dir, keys, demo_config):
    outcomes = write_outcomes(tmp_path, "lead_id,converted\nlead-1,1\nlead-2,no\nlead-9,1\n")
    out = tmp_path / "train" / "auto.csv"
    summary = export_csv(archive_dir, "auto", demo_config, keys, out, outcomes=outcomes)
    assert summary == ExportSummary(rows=2, records=5, without_outcome=2, superseded=1)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    header = text.splitlines()[0].split(",")
    specs = feature_specs(demo_config.verticals["auto"])
    assert header == [
        "lead_id",
        "scored_at",
        "model_version",
        "score",
        "accepted",
        *(s.name for s in specs),
        "converted",
    ]
    assert "email" not in text and PII in text and "new place" in text and "old place" not in text
    data = read_training_csv(out, specs, demo_config.verticals["auto"].training)
    # In order of scoring: lead-2, then lead-1's later score.
    assert data.labels.tolist() == [0, 1]
    assert data.leads[0]["location"] == PII and data.leads[1]["location"] == "new place"
    assert isinstance(data.leads[0]["age"], float)


def test_export_without_outcomes_leaves_the_target_to_fill(
    tmp_path, archive_dir, keys, demo_config
):
    out = tmp_path / "auto.csv"
    summary = export_csv(archive_dir, "auto", demo_config, keys, out)
    assert summary.rows == 5 and summary.records == 5
    rows = out.read_text().splitlines()
    assert all(row.endswith(",") for row in rows[1:])  # empty target column
    with pytest.raises(TrainingError, match="target"):
        read_training_csv(out, feature_specs(demo_config.verticals["auto"]), _training(demo_config))


def _training(config):
    return config.verticals["auto"].training


def tamper(archive_dir, line_index: int = 1) -> None:
    (segment,) = segment_files(archive_dir / "auto")
    lines = segment.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[line_index])
    record["score"] = 0.999
    lines[line_index] = json.dumps(record).encode() + b"\n"
    segment.write_bytes(b"".join(lines))


def test_tampered_record_fails_the_export_and_writes_nothing(
    tmp_path, archive_dir, keys, demo_config
):
    tamper(archive_dir)
    out = tmp_path / "auto.csv"
    with pytest.raises(
        ArchiveError, match=r"invalid record at .*\.jsonl:2: .*failed authentication"
    ):
        export_csv(archive_dir, "auto", demo_config, keys, out)
    assert not out.exists() and not list(tmp_path.glob(".auto.csv.*"))


def test_skip_invalid_reports_and_leaves_out(tmp_path, archive_dir, keys, demo_config):
    tamper(archive_dir)
    warnings: list[str] = []
    out = tmp_path / "auto.csv"
    summary = export_csv(
        archive_dir, "auto", demo_config, keys, out, skip_invalid=True, warn=warnings.append
    )
    assert summary.rows == 4 and summary.skipped == 1
    (warning,) = warnings
    assert ":2: field" in warning and "failed authentication" in warning and PII not in warning
    assert PII not in out.read_text()  # lead-2 was the tampered record


def test_replayed_record_is_invalid(tmp_path, archive_dir, keys, demo_config):
    (segment,) = segment_files(archive_dir / "auto")
    first = segment.read_bytes().splitlines(keepends=True)[0]
    with segment.open("ab") as handle:
        handle.write(first)
    with pytest.raises(ArchiveError, match="a copy of an earlier record"):
        export_csv(archive_dir, "auto", demo_config, keys, tmp_path / "auto.csv")


def test_record_moved_to_another_vertical_is_invalid(tmp_path, archive_dir, keys, demo_config):
    (segment,) = segment_files(archive_dir / "auto")
    (archive_dir / "home").mkdir()
    segment.rename(archive_dir / "home" / segment.name)
    with pytest.raises(ArchiveError, match="a record of another vertical"):
        export_csv(archive_dir, "home", demo_config, keys, tmp_path / "home.csv")


def test_records_under_rotated_keys_export_together(
    tmp_path, archive_key_dir, archive_dir, keys, demo_config, scorer, auto_lead
):
    rotate(archive_key_dir)
    new_keys = ArchiveKeys.load(archive_key_dir)
    archive = LeadArchive(archive_dir, new_keys, PolicyBook(demo_config), lambda: scorer.models)
    archive.keep("auto", auto_lead, "lead-new", scorer.score("auto", auto_lead))
    archive.close()
    summary = export_csv(archive_dir, "auto", demo_config, new_keys, tmp_path / "auto.csv")
    assert summary.rows == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lead,converted\nx,1\n", "needs columns lead_id and converted"),
        ("lead_id,converted\nx,maybe\n", "line 2: converted must be one of"),
        ("lead_id,converted\n,1\n", "line 2: lead_id is empty"),
        ("lead_id,converted\nx,1\nx,0\n", "line 3: a second, different outcome"),
    ],
)
def test_bad_outcomes_are_refused(tmp_path, demo_config, text, message):
    with pytest.raises(ArchiveError, match=message):
        read_outcomes(write_outcomes(tmp_path, text), demo_config, "auto")


def test_repeated_equal_outcomes_and_missing_file(tmp_path, demo_config):
    path = write_outcomes(tmp_path, "lead_id,converted\nx,1\nx,1\n")
    assert read_outcomes(path, demo_config, "auto") == {"x": "1"}
    with pytest.raises(ArchiveError, match="cannot read outcomes"):
        read_outcomes(tmp_path / "none.csv", demo_config, "auto")


def test_unknown_vertical_and_column_clash(tmp_path, keys, demo_config):
    with pytest.raises(UnknownVertical):
        export_csv(tmp_path, "boat", demo_config, keys, tmp_path / "x.csv")
    raw = msgspec.to_builtins(demo_config)
    raw["verticals"]["auto"]["feature_config"]["numerical"]["score"] = {}
    clashing = msgspec.convert(raw, type(demo_config))
    with pytest.raises(ArchiveError, match="named like an export column: score"):
        export_csv(tmp_path, "auto", clashing, keys, tmp_path / "x.csv")


def test_unwritable_output_is_reported(tmp_path, archive_dir, keys, demo_config):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(ArchiveError, match="cannot write"):
        export_csv(archive_dir, "auto", demo_config, keys, blocker / "sub" / "auto.csv")


# -- the CLI -------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch):
    for name in ("CONFIG_PATH", "LEAD_ARCHIVE_DIR", "LEAD_ARCHIVE_KEYS"):
        monkeypatch.delenv(name, raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_keygen_rotate_and_list(tmp_path, capsys, cli_env, monkeypatch):
    keys_dir = tmp_path / "k"
    code, out, _ = run(capsys, "archive", "keygen", "--keys", str(keys_dir))
    assert code == 0 and "is current" in out
    code, _, err = run(capsys, "archive", "keygen", "--keys", str(keys_dir))
    assert code == 1 and "rotate-key" in err
    first = ArchiveKeys.load(keys_dir).current_id
    monkeypatch.setenv("LEAD_ARCHIVE_KEYS", str(keys_dir))
    code, out, _ = run(capsys, "archive", "rotate-key")
    second = ArchiveKeys.load(keys_dir).current_id
    assert code == 0 and f"was {first}" in out and second in out and second != first
    code, out, _ = run(capsys, "archive", "keys")
    assert code == 0 and out.splitlines() == [f"  {first}", f"* {second}"]


def test_cli_keys_counts_segments(tmp_path, capsys, cli_env, archive_key_dir, archive_dir):
    kid = ArchiveKeys.load(archive_key_dir).current_id
    orphan = tmp_path / "archive" / "home"
    orphan.mkdir()
    (orphan / "20200101T000000.000000Z-1-00000000.jsonl").write_text(
        '{"kid": "20200101T000000.000000Z-00000000"}\n'
    )
    (orphan / "20200101T000001.000000Z-1-00000001.jsonl").write_text("garbage\n")
    code, out, _ = run(
        capsys, "archive", "keys", "--keys", str(archive_key_dir), "--dir", str(archive_dir)
    )
    assert code == 0
    assert f"* {kid}  1 segment(s)" in out
    assert (
        "! 20200101T000000.000000Z-00000000  1 segment(s) sealed under a key that is not in" in out
    )
    assert "! (unreadable)  1 segment(s)" in out


def test_cli_export(tmp_path, capsys, cli_env, archive_key_dir, archive_dir, monkeypatch):
    outcomes = write_outcomes(tmp_path, "lead_id,converted\nlead-1,1\nlead-2,0\n")
    out = tmp_path / "auto.csv"
    monkeypatch.setenv("LEAD_ARCHIVE_DIR", str(archive_dir))
    argv = ["archive", "export", "--vertical", "auto", "--out", str(out)]
    code, text, _ = run(capsys, *argv, "--keys", str(archive_key_dir), "--outcomes", str(outcomes))
    assert code == 0 and "wrote 2 auto leads" in text and "2 without an outcome" in text
    monkeypatch.setenv("LEAD_ARCHIVE_KEYS", str(archive_key_dir))
    code, text, _ = run(capsys, *argv)
    assert code == 0 and "wrote 5 auto leads" in text and "--outcomes" in text


def test_cli_export_of_a_tampered_archive_is_a_clear_error(
    tmp_path, capsys, cli_env, archive_key_dir, archive_dir
):
    tamper(archive_dir)
    argv = ["archive", "export", "--vertical", "auto", "--out", str(tmp_path / "auto.csv")]
    argv += ["--keys", str(archive_key_dir), "--dir", str(archive_dir)]
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("error: invalid record at ") and "failed authentication" in err
    assert "Traceback" not in err and PII not in err
    code, out, err = run(capsys, *argv, "--skip-invalid")
    assert code == 0 and "1 invalid skipped" in out and "skipped: " in err


def test_cli_export_needs_an_archive(tmp_path, capsys, cli_env):
    argv = ["archive", "export", "--vertical", "auto", "--out", str(tmp_path / "x.csv")]
    code, _, err = run(capsys, *argv)
    assert code == 1 and "pass --dir or set LEAD_ARCHIVE_DIR" in err
    code, _, err = run(capsys, *argv, "--dir", str(tmp_path / "none"))
    assert code == 1 and "does not exist" in err
