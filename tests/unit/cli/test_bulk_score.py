"""``ml-service score --input``: real CSV files, real signed models, real worker processes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import select
import shutil
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from engine.cli.bulk_score import CHUNK_ROWS, NeutralDemand
from engine.cli.main import main
from engine.scoring.model import load_model
from engine.scoring.result import ScoreResult
from engine.scoring.scorer import Scorer
from engine.store import layout, pointer
from engine.training.synth import generate

ROOT = Path(__file__).resolve().parents[3]
AT = "2026-11-23T15:00:00+00:00"  # a Monday, 10:00 in New York: peak hours
AT_EPOCH = dt.datetime.fromisoformat(AT).timestamp()
FACTORS = ("peak_hours", "day_of_week", "demand", "location")


@pytest.fixture
def store(tmp_path, trained, model_root, key_dir, monkeypatch):
    """A model store of its own with active auto and home models (life has none)."""
    trained("auto")
    trained("home")
    root = tmp_path / "models"
    for vertical in ("auto", "home"):
        shutil.copytree(model_root / vertical, root / vertical)
    monkeypatch.setenv("MODEL_PATH", str(root))
    monkeypatch.setenv("MODEL_TRUSTED_KEYS", str(key_dir / "trusted"))
    monkeypatch.delenv("CONFIG_PATH", raising=False)
    return root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    err: str = capsys.readouterr().err
    return err


def synthetic(vertical: str, rows: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Synthetic leads as CSV cells, without the target column."""
    header, cells = generate(vertical, rows, seed)
    return list(header[:-1]), [list(row[:-1]) for row in cells]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        return list(reader.fieldnames or []), list(reader)


def as_lead(config, vertical: str, record: dict[str, str]) -> dict[str, Any]:
    """The lead a client would send: numbers as numbers, empty cells left out."""
    numerical = set(config.verticals[vertical].feature_config.numerical)
    features = numerical | set(config.verticals[vertical].feature_config.categorical)
    features |= set(config.verticals[vertical].feature_config.text)
    return {
        name: float(cell) if name in numerical else cell
        for name, cell in record.items()
        if name in features and cell != ""
    }


def service(config, root: Path, keyring) -> Scorer:
    """The service's scorer with the store's active models and the bulk mode's demand."""
    scorer = Scorer(config, demand=NeutralDemand(config))
    for vertical in layout.list_verticals(root):
        version = pointer.read_current(root, vertical)
        assert version is not None
        scorer.install(load_model(layout.version_dir(root, vertical, version), keyring))
    return scorer


def assert_same(row: dict[str, str], expected: ScoreResult, explain: bool) -> None:
    assert float(row["score"]) == expected.score  # bit-identical: repr round-trips
    assert float(row["confidence"]) == expected.confidence
    assert float(row["price"]) == expected.price
    assert row["currency"] == expected.currency
    assert row["accepted"] == ("true" if expected.accepted else "false")
    assert row["model_version"] == expected.model_version
    for name in FACTORS:
        assert float(row[f"factor_{name}"]) == expected.market_factors[name]
    if explain:
        assert json.loads(row["reasons"]) == msgspec.to_builtins(expected.reasons)
    assert row["error"] == ""


def test_rows_equal_the_services_results(store, tmp_path, demo_config, keyring, capsys):
    header, rows = synthetic("auto", 300, 5)
    source = write_csv(tmp_path / "leads.csv", header, rows)
    target = tmp_path / "scored.csv"
    code, out, err = run(
        capsys,
        "score",
        "--input",
        str(source),
        "--output",
        str(target),
        "--vertical",
        "auto",
        "--at",
        AT,
        "--explain",
        "--workers",
        "1",
    )
    assert code == 0 and out == ""
    assert err.count("\n") == 1 and "\r" not in err  # not a terminal: the summary only
    assert "300 rows, 300 scored, 0 errors" in err
    columns, scored = read_csv(target)
    assert columns == [
        *header,
        "score",
        "confidence",
        "price",
        "currency",
        "accepted",
        "model_version",
        *(f"factor_{name}" for name in FACTORS),
        "reasons",
        "error",
    ]
    scorer = service(demo_config, store, keyring)
    for cells, row in zip(rows, scored, strict=True):
        assert [row[name] for name in header] == cells  # the input, in order
        lead = as_lead(demo_config, "auto", row)
        assert_same(row, scorer.score("auto", lead, explain=True, now=AT_EPOCH), explain=True)
        assert row["factor_demand"] == "1.0"  # neutral demand, not the floor of rate 0
        assert row["factor_peak_hours"] == "1.2"  # priced at --at


def test_row_errors_land_in_the_error_column(store, tmp_path, capsys):
    header, rows = synthetic("auto", 3, 8)
    age = header.index("age")
    mileage = header.index("annual_mileage")

    def with_cell(at: int, value: str) -> list[str]:
        row = list(rows[0])
        row[at] = value
        return row

    lines = [
        rows[0],
        with_cell(age, "abc"),
        with_cell(age, "7"),
        with_cell(age, ""),
        with_cell(age, " NA "),
        with_cell(mileage, "n/a"),  # an optional number, missing: still scored
        rows[1][:3],
        [],  # a blank line: skipped, as the training reader does
        rows[2],
    ]
    source = write_csv(tmp_path / "leads.csv", header, lines)
    target = tmp_path / "scored.csv"
    code, _, err = run(
        capsys, "score", "--input", str(source), "--output", str(target), "--vertical", "auto"
    )
    assert code == 0 and "8 rows, 3 scored, 5 errors" in err
    _, scored = read_csv(target)
    assert [row["error"] for row in scored] == [
        "",
        "age: must be a number, not 'abc'",
        "age: must be at least 16",
        "age: is required",
        "age: is required",
        "",
        "row: 3 fields, the header has 9",
        "",
    ]
    for row in scored:
        assert (row["score"] == "") == (row["error"] != "")
        assert (row["price"] == "") == (row["error"] != "")
    assert scored[6]["age"] == rows[1][age] and scored[6]["location"] == ""  # padded


def mixed_file(path: Path, per_vertical: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Auto and home leads interleaved in one file with a ``vertical`` column."""
    auto_header, auto_rows = synthetic("auto", per_vertical, seed)
    home_header, home_rows = synthetic("home", per_vertical, seed)
    header = ["vertical", *auto_header, *home_header]
    rows = []
    for auto, home in zip(auto_rows, home_rows, strict=True):
        rows.append(["auto", *auto, *[""] * len(home_header)])
        rows.append(["home", *[""] * len(auto_header), *home])
    write_csv(path, header, rows)
    return header, rows


def test_a_file_of_several_verticals(store, tmp_path, demo_config, keyring, capsys):
    header, rows = mixed_file(tmp_path / "mixed.csv", 60, 4)
    extra = [
        ["boat", *rows[0][1:]],
        ["", *rows[0][1:]],
        ["life", *rows[0][1:]],  # configured, no active model in this store
        [" home ", *rows[1][1:]],
    ]
    source = write_csv(tmp_path / "mixed.csv", header, rows + extra)
    target = tmp_path / "scored.csv"
    code, _, err = run(capsys, "score", "--input", str(source), "--output", str(target), "--at", AT)
    assert code == 0 and "124 rows, 121 scored, 3 errors" in err
    columns, scored = read_csv(target)
    assert columns[: len(header)] == header and columns[-1] == "error"
    scorer = service(demo_config, store, keyring)
    for row in scored[:120]:
        vertical = row["vertical"]
        expected = scorer.score(vertical, as_lead(demo_config, vertical, row), now=AT_EPOCH)
        assert_same(row, expected, explain=False)
    assert scored[120]["error"].startswith("vertical: unknown vertical 'boat'")
    assert scored[121]["error"] == "vertical: is required"
    assert scored[122]["error"] == "vertical: life has no active model"
    assert scored[123]["score"] == scored[1]["score"] and scored[123]["error"] == ""


def test_two_workers_write_what_one_writes_in_input_order(store, tmp_path, capsys):
    header, rows = mixed_file(tmp_path / "big.csv", 1250, 9)  # 2,500 rows: three chunks
    assert len(rows) > 2 * CHUNK_ROWS
    outputs = {}
    for workers in ("1", "2"):
        outputs[workers] = target = tmp_path / f"scored-{workers}.csv"
        code, _, err = run(
            capsys,
            "score",
            "--input",
            str(tmp_path / "big.csv"),
            "--output",
            str(target),
            "--workers",
            workers,
            "--at",
            AT,
            "--explain",
        )
        assert code == 0 and "2,500 rows, 2,500 scored, 0 errors" in err
    assert outputs["1"].read_bytes() == outputs["2"].read_bytes()
    _, scored = read_csv(outputs["2"])
    assert [[row[name] for name in header] for row in scored] == rows


def test_stdin_stdout_and_scoring_a_scored_file_again(store, tmp_path, capsys, monkeypatch):
    header, rows = synthetic("home", 50, 2)
    source = write_csv(tmp_path / "leads.csv", header, rows)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(source.read_bytes())))
    argv = ("--vertical", "home", "--at", AT, "--workers", "1")
    code, out, err = run(capsys, "score", "--input", "-", "--output", "-", *argv)
    assert code == 0 and err.startswith("stdout: 50 rows, 50 scored")
    scored = tmp_path / "scored.csv"
    scored.write_text(out, encoding="utf-8")
    again = tmp_path / "again.csv"
    code, _, _ = run(capsys, "score", "--input", str(scored), "--output", str(again), *argv)
    assert code == 0 and again.read_text(encoding="utf-8") == out  # columns replaced, not doubled
    code, _, _ = run(capsys, "score", "--input", str(scored), "--output", str(scored), *argv)
    assert code == 0 and scored.read_text(encoding="utf-8") == out  # in place
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_a_missing_column_is_named_once(store, tmp_path, demo_config, keyring, capsys):
    header, rows = synthetic("auto", 40, 6)
    at = header.index("occupation")
    del header[at]
    for row in rows:
        del row[at]
    source = write_csv(tmp_path / "leads.csv", header, rows)
    target = tmp_path / "scored.csv"
    code, _, err = run(
        capsys,
        "score",
        "--input",
        str(source),
        "--output",
        str(target),
        "--vertical",
        "auto",
        "--at",
        AT,
    )
    assert code == 0 and err.count("warning: no column for occupation (auto v1.0.0)") == 1
    scorer = service(demo_config, store, keyring)
    for record in read_csv(target)[1]:
        lead = as_lead(demo_config, "auto", record)
        assert_same(record, scorer.score("auto", lead, now=AT_EPOCH), explain=False)


def read_all(controller: int) -> bytes:
    """Everything written to a pty whose terminal side is closed (then reads fail: EIO)."""
    shown = b""
    try:
        # The pty hands writes over asynchronously: wait (generously) rather than poll.
        while select.select([controller], [], [], 10.0)[0]:
            data = os.read(controller, 1 << 16)
            if not data:
                break
            shown += data
    except OSError:  # EIO: the terminal side is closed and everything was read
        pass
    finally:
        os.close(controller)
    return shown


def test_progress_is_drawn_on_a_terminal(store, tmp_path, monkeypatch):
    header, rows = synthetic("auto", 2 * CHUNK_ROWS + 10, 3)
    source = write_csv(tmp_path / "leads.csv", header, rows)
    controller, terminal = os.openpty()
    with os.fdopen(terminal, "w", encoding="utf-8") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        code = main(
            [
                "score",
                "--input",
                str(source),
                "--output",
                str(tmp_path / "scored.csv"),
                "--vertical",
                "auto",
                "--workers",
                "1",
            ]
        )
    shown = read_all(controller).decode()
    assert code == 0
    assert "\r1,000 rows, " in shown and " rows/s" in shown  # the first chunk, drawn at once
    assert "\r\x1b[K" in shown  # cleared before the summary
    assert "2,010 rows, 2,010 scored, 0 errors" in shown


def test_bad_invocations_exit_non_zero_with_one_line(store, tmp_path, capsys):
    header, rows = synthetic("auto", 5, 1)
    source = write_csv(tmp_path / "leads.csv", header, rows)
    target = tmp_path / "out" / "scored.csv"
    ok_target = str(tmp_path / "scored.csv")

    def fails(*argv: str) -> str:
        code, _, err = run(capsys, "score", *argv)
        assert code == 1 and err.count("\n") == 1 and err.startswith("error: ")
        return err

    assert "cannot read /nonexistent.csv" in fails(
        "--input", "/nonexistent.csv", "--output", ok_target, "--vertical", "auto"
    )
    assert "has no 'vertical' column; name the vertical with --vertical" in fails(
        "--input", str(source), "--output", ok_target
    )
    assert "unknown vertical 'boat'" in fails(
        "--input", str(source), "--output", ok_target, "--vertical", "boat"
    )
    assert "life has no active version" in fails(
        "--input", str(source), "--output", ok_target, "--vertical", "life"
    )
    assert "cannot write" in fails(
        "--input", str(source), "--output", str(target), "--vertical", "auto"
    )
    (tmp_path / "empty.csv").write_text("")
    assert "is empty: no header row" in fails(
        "--input", str(tmp_path / "empty.csv"), "--output", ok_target, "--vertical", "auto"
    )
    assert "ISO 8601" in fails(
        "--input", str(source), "--output", ok_target, "--vertical", "auto", "--at", "noon"
    )
    assert not Path(ok_target).exists()

    model = store / "auto" / "v1.0.0" / "model.txt"
    model.chmod(0o644)
    model.write_text(model.read_text().replace("tree", "Tree", 1))
    err = fails("--input", str(source), "--output", ok_target, "--vertical", "auto")
    assert "auto v1.0.0: hash check failed" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "leads.csv", "models"]

    assert "not allowed with argument --input" in usage_error(
        capsys, "score", "--input", str(source), "--json", "{}", "--output", ok_target
    )
    assert "--output is required with --input" in usage_error(
        capsys, "score", "--input", str(source), "--vertical", "auto"
    )
    assert "--output goes with --input" in usage_error(
        capsys, "score", "--json", "{}", "--vertical", "auto", "--output", ok_target
    )
    assert "--vertical is required with --json" in usage_error(capsys, "score", "--json", "{}")
    assert "--workers: must be a whole number of at least 1" in usage_error(
        capsys, "score", "--input", str(source), "--output", ok_target, "--workers", "0"
    )
    assert "one of the arguments --json --input is required" in usage_error(capsys, "score")


def test_the_verticals_training_delimiter_reads_its_files(store, tmp_path, capsys):
    config = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())
    config["verticals"]["auto"]["training"] = {"delimiter": ";"}
    config_path = tmp_path / "models.yaml"
    config_path.write_text(yaml.safe_dump(config))
    header, rows = synthetic("auto", 20, 12)
    for name, delimiter in (("comma.csv", ","), ("semicolon.csv", ";")):
        with (tmp_path / name).open("w", newline="") as stream:
            writer = csv.writer(stream, delimiter=delimiter, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    outputs = []
    for name, extra in (("comma.csv", ()), ("semicolon.csv", ("--config", str(config_path)))):
        code, out, _ = run(
            capsys,
            *extra,
            "score",
            "--input",
            str(tmp_path / name),
            "--output",
            "-",
            "--vertical",
            "auto",
            "--at",
            AT,
        )
        assert code == 0
        outputs.append(out)
    comma = list(csv.reader(io.StringIO(outputs[0])))
    semicolon = list(csv.reader(io.StringIO(outputs[1]), delimiter=";"))
    assert outputs[1].startswith("age;driving_years;")  # written as read
    assert semicolon == comma and len(comma) == 21
    assert all(row[-1] == "" and row[len(header)] for row in comma[1:])  # all scored
