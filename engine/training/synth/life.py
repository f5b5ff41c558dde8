"""Synthetic life leads: policy, coverage amount, underwriting class, occupation and location.

The conversion rule is documented in docs/synthetic-data.md.
"""

from __future__ import annotations

import numpy as np

from engine.training.synth.catalog import (
    CITIES,
    HEALTH_CLASSES,
    LIFE_STATE,
    MARITAL,
    MARITAL_YOUNG,
    OCC_RETIRED,
    OCC_STUDENT,
    OCCUPATIONS,
    POL_FINAL,
    POL_ROP,
    POL_TERM,
    POLICY_TYPES,
    SMOKER,
    TERM_LENGTHS,
    TERM_WEIGHTS,
)
from engine.training.synth.common import (
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


def generate_life(rng: np.random.Generator, n: int) -> Synth:
    """Simulate life leads (the rule is in docs/synthetic-data.md)."""
    age = np.clip(np.rint(18.0 + rng.gamma(2.6, 9.0, n)), 18, 89)
    occupation = draw_occupation(rng, age)
    career = np.exp(-(((age - 50.0) / 28.0) ** 2))
    income = 70000.0 * (0.45 + 0.55 * career) * rng.lognormal(0.0, 0.65, n)
    occ_income = np.where(occupation == OCC_STUDENT, 0.25, 1.0) * np.where(
        occupation == OCC_RETIRED, 0.6, 1.0
    )
    income = np.clip(np.rint(income * occ_income / 100.0) * 100.0, 0, 10_000_000)

    young = age < 30
    marital = np.where(
        young,
        draw(rng, MARITAL_YOUNG, n),
        draw(rng, [c.weight for c in MARITAL], n),
    ).astype(np.intp)
    smoker = draw(rng, [c.weight for c in SMOKER], n)
    # Underwriting class from a health score: worse with age and smoking.
    health_score = (
        rng.normal(0.0, 1.0, n)
        - 0.03 * (age - 40.0)
        - 1.5 * (smoker == 1)
        - 0.5 * np.isin(smoker, (3, 4, 5, 6, 7))
    )
    health_class = np.select(
        [health_score > 1.3, health_score > 0.5, health_score > -0.2, health_score > -1.4],
        [0, 1, 2, 3],
        4,
    ).astype(np.intp)
    rare = rng.random(n)
    health_class[rare < 0.01] = 5
    health_class[(rare >= 0.01) & (rare < 0.013)] = 6
    health_class[(rare >= 0.013) & (rare < 0.0134)] = 7

    policy = draw(rng, [c.weight for c in POLICY_TYPES], n)
    policy[(age >= 62) & (policy == POL_TERM) & (rng.random(n) < 0.4)] = POL_FINAL
    policy[(age < 50) & (policy == POL_FINAL)] = POL_TERM
    is_term = (policy == POL_TERM) | (policy == POL_ROP)
    term_years = np.where(
        is_term, np.array(TERM_LENGTHS, dtype=np.float64)[draw(rng, TERM_WEIGHTS, n)], 0.0
    )

    multiple = np.where(is_term, 10.0, 4.0) * rng.lognormal(0.0, 0.5, n)
    coverage = np.maximum(income, 15000.0) * multiple
    step = np.where(coverage >= 100000, 25000.0, 5000.0)
    coverage = np.maximum(np.rint(coverage / step) * step, 10000.0)
    final_cover = np.rint(rng.uniform(5, 35, n)) * 1000.0
    coverage = np.where(policy == POL_FINAL, final_cover, coverage)
    coverage = np.clip(coverage, 1000, 50_000_000)

    city = draw(rng, [c.weight for c in CITIES], n)
    states = [CITIES[c].state for c in city.tolist()]

    miss_cov = mask(rng, 0.03, n)
    miss_term = mask(rng, 0.05, n)
    miss_inc = mask(rng, np.where(income > 150000, 0.2, 0.1), n)
    miss_pol = mask(rng, 0.03, n)
    miss_smk = mask(rng, 0.04, n)
    miss_hc = mask(rng, 0.08, n)
    miss_mar = mask(rng, 0.05, n)
    miss_occ = mask(rng, 0.07, n)
    miss_loc = mask(rng, 0.04, n)
    n_missing = sum(
        m.astype(np.float64) for m in (miss_cov, miss_term, miss_inc, miss_smk, miss_hc, miss_mar)
    )

    cover_ratio = coverage / np.maximum(income, 5000.0)
    married = marital == 0
    score = (
        0.6 * ((cover_ratio >= 5.0) & (cover_ratio <= 15.0))
        - 0.8 * np.clip(np.log(cover_ratio / 20.0), 0.0, 2.0)
        + 0.9 * hump(age, 40.0, 18.0, -2.0)
        - 0.9 * (is_term & (age + term_years > 80.0))
        + 0.3 * np.clip(np.log(np.maximum(income, 5000.0) / 60000.0), -2.0, 2.0)
        + effects(HEALTH_CLASSES, health_class)
        + effects(SMOKER, smoker)
        + effects(MARITAL, marital)
        + 0.4 * (married & (age < 45))
        + effects(POLICY_TYPES, policy)
        + np.array([o.life for o in OCCUPATIONS])[occupation]
        + state_effect(states, LIFE_STATE)
        - 0.25 * n_missing
    )
    columns = {
        "age": ints(age, np.zeros(n, dtype=np.bool_)),
        "coverage_amount": ints(coverage, miss_cov),
        "term_years": ints(term_years, miss_term),
        "annual_income": ints(income, miss_inc),
        "policy_type": labels(rng, [c.label for c in POLICY_TYPES], policy, miss_pol),
        "smoker": labels(rng, [c.label for c in SMOKER], smoker, miss_smk),
        "health_class": labels(rng, [c.label for c in HEALTH_CLASSES], health_class, miss_hc),
        "marital_status": labels(rng, [c.label for c in MARITAL], marital, miss_mar),
        "occupation": occupations(rng, occupation, miss_occ),
        "location": locations(rng, city, miss_loc),
    }
    return Synth(columns, np.asarray(score, dtype=np.float64))
