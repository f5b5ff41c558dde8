"""Synthetic auto leads: driver, vehicle, usage, occupation and location.

The conversion rule is documented in docs/synthetic-data.md.
"""

from __future__ import annotations

import numpy as np

from engine.training.synth.catalog import (
    AUTO_STATE,
    CITIES,
    DISCONTINUED,
    KIND_EFFECT,
    KINDS,
    MAKES,
    OCCUPATIONS,
    USAGE,
    USAGE_MILES,
)
from engine.training.synth.common import (
    CASE_MESS_RATE,
    BoolArray,
    Synth,
    draw,
    draw_occupation,
    effects,
    hump,
    ints,
    labels,
    locations,
    mask,
    occupations,
    state_effect,
)


def generate_auto(rng: np.random.Generator, n: int) -> Synth:
    """Simulate auto leads (the rule is in docs/synthetic-data.md)."""
    age = np.clip(np.rint(16.0 + rng.gamma(2.4, 11.5, n)), 16, 99)
    licence_age = 16.0 + rng.gamma(1.1, 2.2, n)
    driving_years = np.clip(np.floor(age - licence_age), 0, 85)

    make = draw(rng, [m.weight for m in MAKES], n)
    model_label: list[str] = [""] * n
    kind = np.zeros(n, dtype=np.intp)
    model_u = rng.random(n)
    for mi, info in enumerate(MAKES):
        rows = np.flatnonzero(make == mi)
        if rows.size == 0:
            continue
        cdf = np.cumsum([m.weight for m in info.models])
        picks = np.minimum(
            np.searchsorted(cdf, model_u[rows] * cdf[-1], side="right"), len(cdf) - 1
        )
        for r, p in zip(rows.tolist(), picks.tolist(), strict=True):
            model_label[r] = info.models[p].label
            kind[r] = KINDS.index(info.models[p].kind)
    discontinued = np.array([m.label in DISCONTINUED for m in MAKES])[make]
    vehicle_age = rng.gamma(1.8, 3.8, n)
    vehicle_age = np.where(kind == KINDS.index("ev"), vehicle_age * 0.4, vehicle_age)
    vehicle_age = np.where(discontinued, vehicle_age + 12.0, vehicle_age)
    classic = rng.random(n) < 0.004
    vehicle_age = np.where(classic, rng.uniform(25, 60, n), vehicle_age)
    vehicle_age = np.clip(np.rint(vehicle_age), 0, 60)

    usage = draw(rng, [c.weight for c in USAGE], n)
    miles_factor = np.array(USAGE_MILES)[usage] * np.where(age >= 70, 0.6, 1.0)
    mileage = 11500.0 * miles_factor * rng.lognormal(0.0, 0.45, n)
    mileage = np.clip(np.rint(mileage / 100.0) * 100.0, 0, 200000)

    occupation = draw_occupation(rng, age)
    city = draw(rng, [c.weight for c in CITIES], n)
    states = [CITIES[c].state for c in city.tolist()]

    miss_dy = mask(rng, 0.06, n)
    miss_va = mask(rng, 0.04, n)
    miss_mi = mask(rng, np.where(usage == 1, 0.15, 0.10), n)
    miss_make = mask(rng, 0.025, n)
    miss_model = miss_make | mask(rng, 0.04, n)
    miss_usage = mask(rng, 0.03, n)
    miss_occ = mask(rng, 0.08, n)
    miss_loc = mask(rng, 0.04, n)
    n_missing = sum(
        m.astype(np.float64) for m in (miss_dy, miss_va, miss_mi, miss_model, miss_usage, miss_occ)
    )

    sports = kind == KINDS.index("sports")
    score = (
        1.1 * hump(age, 38.0, 20.0, -2.3)
        + 0.55 * np.clip(np.log(np.maximum(mileage, 500.0) / 11000.0), -2.0, 1.5)
        + 0.5 * (vehicle_age <= 3)
        - 0.05 * np.clip(vehicle_age - 8.0, 0.0, 20.0)
        + effects(USAGE, usage)
        + np.array(KIND_EFFECT)[kind]
        - 1.0 * ((age < 25) & sports)
        + 0.5 * ((driving_years >= 10) & (usage == 0))
        + np.array([o.auto for o in OCCUPATIONS])[occupation]
        + state_effect(states, AUTO_STATE)
        - 0.3 * n_missing
    )
    columns = {
        "age": ints(age, np.zeros(n, dtype=np.bool_)),
        "driving_years": ints(driving_years, miss_dy),
        "vehicle_age": ints(vehicle_age, miss_va),
        "annual_mileage": ints(mileage, miss_mi),
        "vehicle_make": labels(rng, [m.label for m in MAKES], make, miss_make),
        "vehicle_model": _model_cells(rng, model_label, miss_model),
        "usage_type": labels(rng, [c.label for c in USAGE], usage, miss_usage),
        "occupation": occupations(rng, occupation, miss_occ),
        "location": locations(rng, city, miss_loc),
    }
    return Synth(columns, np.asarray(score, dtype=np.float64))


def _model_cells(rng: np.random.Generator, labels: list[str], missing: BoolArray) -> list[str]:
    """Return vehicle model cells with messy casing on a few and ``""`` where missing."""
    case = draw(rng, (1.0 - CASE_MESS_RATE, CASE_MESS_RATE * 0.6, CASE_MESS_RATE * 0.4),
                 len(labels)).tolist()  # fmt: skip
    out: list[str] = []
    for label, c, gone in zip(labels, case, missing.tolist(), strict=True):
        out.append("" if gone else (label, label.lower(), label.upper())[c])
    return out
