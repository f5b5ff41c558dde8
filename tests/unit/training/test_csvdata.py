from pathlib import Path

import pytest

from engine.config import FeatureSpec, TrainingConfig
from engine.errors import TrainingError
from engine.training.csvdata import read_training_csv

SPECS = (
    FeatureSpec("age", "numerical", 0, True),
    FeatureSpec("make", "categorical", 1, False),
    FeatureSpec("job", "text", 2, False),
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leads.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_cells_become_json_typed_values(tmp_path):
    path = write(
        tmp_path,
        "age,make,job,converted,unused\n30,Ford, Nurse ,1,x\nNA,,,0,y\n 41.5 ,  ,chef,yes,z\n\n",
    )
    data = read_training_csv(path, SPECS, TrainingConfig())
    assert data.leads == [
        {"age": 30.0, "make": "Ford", "job": " Nurse "},
        {"age": None, "make": None, "job": None},
        {"age": 41.5, "make": None, "job": "chef"},
    ]
    assert data.labels.tolist() == [1, 0, 1] and data.lines == [2, 3, 4]
    assert data.source == "leads.csv" and data.size == path.stat().st_size
    assert len(data.sha256) == 64


def test_delimiter_and_label_values(tmp_path):
    path = write(tmp_path, '"age";"make";"job";"y"\n30;"a";"b";"yes"\n31;"a";"b";"no"\n')
    config = TrainingConfig(
        target="y", delimiter=";", positive_values=["YES"], negative_values=["no"]
    )
    assert read_training_csv(path, SPECS, config).labels.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty: no header"),
        ("age,make,job,converted\n", "no data rows"),
        ("age,make,converted\n1,a,1\n", "column\\(s\\) job not found"),
        ("age,make,job\n1,a,b\n", "converted \\(the target\\)"),
        ("age,make,job,converted\nthirty,a,b,1\n", "line 2: column 'age' has 'thirty'"),
        ("age,make,job,converted\n1,a,b,maybe\n", "line 2: target 'converted' is 'maybe'"),
        ("age,make,job,converted\n1,a,b,1\n2,a,1\n", "line 3: 3 fields"),
        ("age,make,job,converted\n1,a,b,1\n2,a,b,1\n", "every row .* is positive"),
    ],
)
def test_bad_training_input_stops_with_clear_message(tmp_path, text, message):
    with pytest.raises(TrainingError, match=message):
        read_training_csv(write(tmp_path, text), SPECS, TrainingConfig())


def test_unreadable_and_non_utf8(tmp_path):
    with pytest.raises(TrainingError, match="cannot read"):
        read_training_csv(tmp_path / "missing.csv", SPECS, TrainingConfig())
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"age,make,job,converted\n1,\xe9,b,1\n")
    with pytest.raises(TrainingError, match="not UTF-8"):
        read_training_csv(path, SPECS, TrainingConfig())
