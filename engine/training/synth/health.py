"""Synthetic health leads: household, income, coverage, insurer and pre-existing conditions.

The conversion rule is documented in docs/synthetic-data.md.
"""

from __future__ import annotations

import numpy as np

from engine.training.synth.catalog import (
    CITIES,
    COND_PREGNANT,
    CONDITIONS,
    COV_FAMILY,
    COV_INDIVIDUAL,
    COV_MEDICARE,
    COV_SHARED,
    COVERAGE_TYPES,
    EMP_RETIRED,
    EMP_SELF,
    EMP_STUDENT,
    EMP_UNEMPLOYED,
    EMPLOYMENT,
    EMPLOYMENT_INCOME,
    HEALTH_STATE,
    INSURERS,
    TOBACCO,
)
from engine.training.synth.common import (
    Synth,
    decimals,
    draw,
    effects,
    hump,
    ints,
    labels,
    locations,
    mask,
    phrase_lists,
    state_effect,
)


def generate_health(rng: np.random.Generator, n: int) -> Synth:
    """Simulate health leads (the rule is in docs/synthetic-data.md)."""
    age = np.clip(np.rint(18.0 + rng.gamma(2.0, 12.0, n)), 18, 95)
    employment = draw(rng, [c.weight for c in EMPLOYMENT], n)
    u = rng.random(n)
    employment[(age >= 65) & (u < 0.7)] = EMP_RETIRED
    employment[(age <= 24) & (u < 0.4)] = EMP_STUDENT
    employment[(age < 50) & (employment == EMP_RETIRED)] = 0

    household = np.clip(1 + rng.poisson(np.where(age < 25, 0.4, 1.3), n), 1, 12).astype(np.float64)
    income = (
        np.array(EMPLOYMENT_INCOME)[employment]
        * rng.lognormal(0.0, 0.6, n)
        * (1.0 + 0.12 * (household >= 2))
    )
    income = np.where((employment == EMP_UNEMPLOYED) & (rng.random(n) < 0.3), 0.0, income)
    income = np.clip(np.rint(income / 100.0) * 100.0, 0, 10_000_000)

    bmi = np.clip(27.8 * rng.lognormal(0.0, 0.19, n) + 0.03 * (age - 40.0), 14.0, 70.0)
    bmi_places = np.where(rng.random(n) < 0.3, 2, 1).astype(np.intp)
    bmi = np.round(bmi, 2)

    coverage = draw(rng, [c.weight for c in COVERAGE_TYPES], n)
    coverage[(household == 1) & np.isin(coverage, COV_SHARED)] = COV_INDIVIDUAL
    coverage[(household >= 3) & (coverage == COV_INDIVIDUAL) & (rng.random(n) < 0.6)] = COV_FAMILY
    coverage[(age >= 65) & (rng.random(n) < 0.6)] = COV_MEDICARE
    coverage[(age < 62) & (coverage == COV_MEDICARE)] = COV_INDIVIDUAL
    tobacco = draw(rng, [c.weight for c in TOBACCO], n)
    insurer = draw(rng, [c.weight for c in INSURERS], n)

    lam = np.clip(0.25 + 0.025 * (age - 18.0) + 0.05 * np.maximum(bmi - 30.0, 0.0), 0.1, 3.0)
    n_cond = np.clip(rng.poisson(lam), 0, 4).astype(np.intp)
    miss_cond = mask(rng, 0.07, n)
    conditions, cond_effect = phrase_lists(
        rng,
        CONDITIONS,
        n_cond,
        miss_cond,
        (("; ", 0.5), (", ", 0.3), (" and ", 0.1), (" / ", 0.05), (";", 0.05)),
        blocked=(COND_PREGNANT, age > 48),
    )

    city = draw(rng, [c.weight for c in CITIES], n)
    states = [CITIES[c].state for c in city.tolist()]

    miss_bmi = mask(rng, 0.07, n)
    miss_hh = mask(rng, 0.03, n)
    miss_inc = mask(rng, np.where(np.isin(employment, EMP_SELF), 0.18, 0.10), n)
    miss_cov = mask(rng, 0.03, n)
    miss_tob = mask(rng, 0.05, n)
    miss_ins = mask(rng, 0.06, n)
    miss_emp = mask(rng, 0.04, n)
    miss_loc = mask(rng, 0.04, n)
    n_missing = sum(
        m.astype(np.float64) for m in (miss_bmi, miss_hh, miss_inc, miss_tob, miss_ins, miss_emp)
    )

    fpl = 15060.0 + 5380.0 * (household - 1.0)
    ratio = np.maximum(income, 1.0) / fpl
    senior = age >= 65
    score = (
        1.2 * np.exp(-(((np.log(ratio) - np.log(2.5)) / 0.6) ** 2))
        - 0.6 * (ratio < 1.38)
        - 1.2 * senior
        + 1.1 * (senior & (coverage == COV_MEDICARE))
        + 0.25 * hump(age, 40.0, 20.0, -2.0)
        + effects(EMPLOYMENT, employment)
        + 0.4 * (np.isin(employment, EMP_SELF) & (household >= 3))
        + effects(INSURERS, insurer)
        + effects(COVERAGE_TYPES, coverage)
        + effects(TOBACCO, tobacco)
        - 0.35 * np.clip((bmi - 32.0) / 5.0, 0.0, 3.0)
        + np.clip(cond_effect, -1.0, 1.2)
        + state_effect(states, HEALTH_STATE)
        - 0.25 * n_missing
    )
    columns = {
        "age": ints(age, np.zeros(n, dtype=np.bool_)),
        "bmi": decimals(bmi, bmi_places, miss_bmi),
        "household_size": ints(household, miss_hh),
        "annual_income": ints(income, miss_inc),
        "coverage_type": labels(rng, [c.label for c in COVERAGE_TYPES], coverage, miss_cov),
        "tobacco_use": labels(rng, [c.label for c in TOBACCO], tobacco, miss_tob),
        "current_insurer": labels(rng, [c.label for c in INSURERS], insurer, miss_ins),
        "employment_status": labels(rng, [c.label for c in EMPLOYMENT], employment, miss_emp),
        "pre_existing_conditions": conditions,
        "location": locations(rng, city, miss_loc),
    }
    return Synth(columns, np.asarray(score, dtype=np.float64))
