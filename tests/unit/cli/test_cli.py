"""The whole operator workflow through ``ml-service``, on real files and keys."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import main


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "models"))
    monkeypatch.setenv("MODEL_SIGNING_KEY", str(tmp_path / "keys" / "model-signing.key"))
    monkeypatch.setenv("MODEL_TRUSTED_KEYS", str(tmp_path / "keys" / "trusted"))
    monkeypatch.delenv("CONFIG_PATH", raising=False)
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


LEAD = {
    "age": 35,
    "driving_years": 15,
    "vehicle_age": 3,
    "annual_mileage": 12000,
    "vehicle_make": "Toyota",
    "vehicle_model": "Camry",
    "usage_type": "commute",
    "occupation": "Software Engineer",
    "location": "Austin, TX 78701",
}


def test_operator_workflow(env, capsys):
    assert run(capsys, "keys", "generate", "--dir", str(env / "keys"))[0] == 0
    code, _, err = run(capsys, "keys", "generate", "--dir", str(env / "keys"))
    assert code == 1 and "exists" in err
    data = env / "data" / "auto.csv"
    code, out, _ = run(
        capsys, "synth", "--vertical", "auto", "--rows", "2500", "--seed", "3", "--out", str(data)
    )
    assert code == 0 and data.exists() and "2500 auto leads" in out
    for version in ("1.0.0", "1.1.0"):
        code, out, _ = run(
            capsys,
            "train",
            "--vertical",
            "auto",
            "--data",
            str(data),
            "--version",
            version,
            "--activate",
        )
        assert code == 0 and json.loads(out)["auc"] > 0.65

    code, out, _ = run(capsys, "models", "list", "--json")
    listing = json.loads(out)
    assert [(v["version"], v["active"], v["verified"]) for v in listing["auto"]] == [
        ("1.0.0", False, True),
        ("1.1.0", True, True),
    ]
    assert listing["home"] == []
    code, out, _ = run(capsys, "models", "list", "--vertical", "auto")
    assert "* v1.1.0" in out and "verified" in out

    code, out, _ = run(
        capsys,
        "score",
        "--vertical",
        "auto",
        "--json",
        json.dumps(LEAD),
        "--explain",
        "--at",
        "2026-11-23T15:00:00+00:00",
    )
    result = json.loads(out)
    assert code == 0 and result["model_version"] == "1.1.0" and len(result["reasons"]) == 3
    assert result["market_factors"]["peak_hours"] == 1.2  # 10:00 in New York on a Monday

    code, out, _ = run(capsys, "models", "rollback", "--vertical", "auto")
    assert code == 0 and "from v1.1.0 to v1.0.0" in out
    lead_file = env / "lead.json"
    lead_file.write_text(json.dumps({"vertical": "auto", "lead_data": LEAD}))
    code, out, _ = run(capsys, "score", "--vertical", "auto", "--json", f"@{lead_file}")
    assert code == 0 and json.loads(out)["model_version"] == "1.0.0"
    code, _, err = run(capsys, "models", "rollback", "--vertical", "auto")
    assert code == 1 and "nothing to roll back" in err
    assert run(capsys, "models", "activate", "--vertical", "auto", "--version", "1.1.0")[0] == 0

    assert run(capsys, "models", "verify")[0] == 0
    code, out, _ = run(capsys, "models", "report", "--vertical", "auto")  # the active one
    report = Path(out.strip())
    assert code == 0 and report == env / "models" / "auto" / "v1.1.0" / "report.html"
    assert b'<figure id="roc"' in report.read_bytes()
    code, out, _ = run(capsys, "models", "report", "--vertical", "auto", "--version", "1.0.0")
    assert code == 0 and out.strip().endswith("v1.0.0/report.html")
    code, _, err = run(capsys, "models", "report", "--vertical", "home")
    assert code == 1 and "no active version" in err
    model = env / "models" / "auto" / "v1.0.0" / "model.txt"
    model.chmod(0o644)
    model.write_text(model.read_text().replace("tree", "Tree", 1))
    code, out, _ = run(capsys, "models", "verify", "--vertical", "auto")
    assert code == 1 and "FAIL auto v1.0.0: hash check failed" in out and "ok   auto v1.1.0" in out
    code, out, _ = run(capsys, "models", "list", "--vertical", "auto")
    assert "REJECTED" in out and "hash check failed" in out
    code, _, err = run(capsys, "models", "activate", "--vertical", "auto", "--version", "1.0.0")
    assert code == 1 and "hash check failed" in err


def test_score_errors_are_clear(env, capsys):
    code, _, err = run(capsys, "score", "--vertical", "auto", "--json", "{}")
    assert code == 1 and "no active version" in err
    code, _, err = run(capsys, "score", "--vertical", "boat", "--json", "{}")
    assert code == 1 and "unknown vertical 'boat'" in err
    code, _, err = run(capsys, "score", "--vertical", "auto", "--json", "{nope")
    assert code == 1 and "not valid JSON" in err
    code, _, err = run(capsys, "score", "--vertical", "auto", "--json", "[1]")
    assert code == 1 and "JSON object" in err
    code, _, err = run(capsys, "score", "--vertical", "auto", "--json", "@/nonexistent.json")
    assert code == 1 and "cannot read" in err
    code, _, err = run(capsys, "score", "--vertical", "auto", "--json", "{}", "--at", "noon")
    assert code == 1 and "ISO 8601" in err
    code, _, err = run(
        capsys, "score", "--vertical", "auto", "--json", "{}", "--at", "2026-01-01T10:00:00"
    )
    assert code == 1 and "UTC offset" in err
    code, _, err = run(
        capsys, "synth", "--vertical", "boat", "--rows", "5", "--out", str(env / "x.csv")
    )
    assert code == 1 and "boat" in err
    code, _, err = run(
        capsys, "train", "--vertical", "auto", "--data", "x.csv", "--version", "1.0.0"
    )
    assert code == 1 and "model-signing.key" in err
    code, _, err = run(capsys, "models", "verify", "--version", "1.0.0")
    assert code == 1


def test_invalid_lead_reports_field(env, capsys, trained, model_root, key_dir, monkeypatch):
    trained("auto")
    monkeypatch.setenv("MODEL_PATH", str(model_root))
    monkeypatch.setenv("MODEL_TRUSTED_KEYS", str(key_dir / "trusted"))
    code, _, err = run(capsys, "score", "--vertical", "auto", "--json", '{"age": 7}')
    assert code == 1 and "lead_data.age: must be at least 16" in err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "ml-service"
    assert script.exists() or shutil.which("ml-service")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stderr == ""
    for command in ("synth", "train", "keys", "models", "score", "serve", "auth"):
        assert command in done.stdout
    done = subprocess.run([str(script), "models"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
