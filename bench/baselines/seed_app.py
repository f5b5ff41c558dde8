# mypy: disable-error-code="misc,untyped-decorator"
# (FastAPI and pydantic come with the `bench` extra; where they are not installed, as in
# CI, their types are Any and their decorators untyped. The service never imports this.)
"""The seed-style scoring service: what a typical first version looks like, for ``bench_http.py``.

FastAPI with a pydantic request model, a one-row pandas DataFrame built from the lead,
pandas ``map`` calls for the encoders, then ``lightgbm.Booster.predict`` on the frame.
It scores the same model files as the service (the version directory named by the
environment variable ``SEED_MODEL_DIR``) and encodes the way the trainer does:

- categorical feature: its code is the index of the value in
  ``encoders.<feature>.values.npy`` (values are case-folded), unseen values are missing;
- text feature: the mean weight (``encoders.<feature>.weights.npy``) of the text's known
  lowercase alphanumeric tokens (``encoders.<feature>.tokens.npy``), missing when none
  is known;
- numerical feature: the number as given, missing when absent.

It does not verify signatures, check bounds or price the lead, so it does less work per
request than the service. The model is loaded when a worker imports this module, that
is after gunicorn forks (no ``--preload``). ``GET /ready`` answers 200 once loaded.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

MODEL_DIR = Path(os.environ["SEED_MODEL_DIR"])
MANIFEST = json.loads((MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))
FEATURES: list[dict[str, Any]] = sorted(MANIFEST["features"], key=lambda f: f["index"])
COLUMNS = [f["name"] for f in FEATURES]
BOOSTER = lightgbm.Booster(model_file=str(MODEL_DIR / "model.txt"))
CATEGORIES: dict[str, dict[str, int]] = {}
TOKENS: dict[str, dict[str, float]] = {}
for _feature in FEATURES:
    _name = _feature["name"]
    if _feature["kind"] == "categorical":
        _values = np.load(MODEL_DIR / f"encoders.{_name}.values.npy")
        CATEGORIES[_name] = {str(v): i for i, v in enumerate(_values.tolist())}
    elif _feature["kind"] == "text":
        _tokens = np.load(MODEL_DIR / f"encoders.{_name}.tokens.npy")
        _weights = np.load(MODEL_DIR / f"encoders.{_name}.weights.npy")
        TOKENS[_name] = dict(zip(_tokens.tolist(), _weights.tolist(), strict=True))
_SPLIT = re.compile(r"[\W_]+")

app = FastAPI()


class ScoreRequest(BaseModel):
    """The request body: the vertical and the raw lead."""

    vertical: str
    lead_data: dict[str, Any]


def _text_value(weights: dict[str, float], text: object) -> float:
    if not isinstance(text, str):
        return float("nan")
    tokens = dict.fromkeys(_SPLIT.sub(" ", text.lower()).split())
    known = [weights[t] for t in tokens if t in weights]
    return sum(known) / len(known) if known else float("nan")


def _category_code(codes: dict[str, int], value: object) -> float:
    if not isinstance(value, str):
        return float("nan")
    code = codes.get(" ".join(value.split()).casefold())
    return float("nan") if code is None else float(code)


@app.post("/api/v1/score")
async def score(request: ScoreRequest) -> dict[str, Any]:
    """Encode the lead with pandas and score it with ``Booster.predict``."""
    frame = pd.DataFrame([request.lead_data]).reindex(columns=COLUMNS)
    for name, codes in CATEGORIES.items():
        frame[name] = frame[name].map(lambda v, c=codes: _category_code(c, v))
    for name, weights in TOKENS.items():
        frame[name] = frame[name].map(lambda v, w=weights: _text_value(w, v))
    frame = frame.astype("float64")
    probability = float(BOOSTER.predict(frame)[0])
    return {
        "score": probability,
        "vertical": request.vertical,
        "model_version": MANIFEST["version"],
    }


@app.get("/ready")
async def ready() -> dict[str, str]:
    """Return 200 once the model is loaded."""
    return {"status": "ready"}
