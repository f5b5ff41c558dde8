"""Synthetic home leads: property, construction, roof, address and security features.

The conversion rule is documented in docs/synthetic-data.md.
"""

from __future__ import annotations

import numpy as np

from engine.training.synth.catalog import (
    CITIES,
    COASTAL,
    CONSTRUCTION,
    CONSTRUCTION_FRAME,
    CONSTRUCTION_MANUFACTURED,
    DEFAULT_PRICE_PER_SQFT,
    HOME_STATE,
    PRICE_PER_SQFT,
    PROP_CONDO,
    PROP_MOBILE,
    PROPERTY_SIZE,
    PROPERTY_TYPES,
    ROOF_WOOD_SHAKE,
    ROOFS,
    SECURITY,
)
from engine.training.synth.common import (
    Synth,
    addresses,
    draw,
    effects,
    hump,
    ints,
    labels,
    mask,
    phrase_lists,
    state_effect,
)


def generate_home(rng: np.random.Generator, n: int) -> Synth:
    """Simulate home leads (the rule is in docs/synthetic-data.md)."""
    ptype = draw(rng, [c.weight for c in PROPERTY_TYPES], n)
    size = np.array(PROPERTY_SIZE, dtype=np.float64)[ptype]
    sqft = size[:, 0] * np.exp(rng.normal(0.0, 1.0, n) * size[:, 1])
    sqft = np.clip(np.rint(sqft / 10.0) * 10.0, 100, 50000)

    age = rng.gamma(1.6, 22.0, n)
    age = np.where(ptype == PROP_MOBILE, rng.gamma(1.5, 10.0, n), age)
    historic = rng.random(n) < 0.03
    age = np.where(historic, rng.uniform(100, 250, n), age)
    age = np.clip(np.rint(age), 0, 300)

    city = draw(rng, [c.weight for c in CITIES], n)
    states = [CITIES[c].state for c in city.tolist()]
    ppsf = np.array([PRICE_PER_SQFT.get(s, DEFAULT_PRICE_PER_SQFT) for s in states])
    value = (
        sqft
        * ppsf
        * size[:, 2]
        * rng.lognormal(0.0, 0.28, n)
        * (1.0 - 0.004 * np.minimum(age, 60.0))
    )
    value = np.clip(np.rint(value / 1000.0) * 1000.0, 1000, 50_000_000)

    construction = draw(rng, [c.weight for c in CONSTRUCTION], n)
    construction[ptype == PROP_MOBILE] = CONSTRUCTION_MANUFACTURED
    roof = draw(rng, [c.weight for c in ROOFS], n)

    wealth = np.log(value / 300000.0)
    n_security = np.clip(rng.poisson(np.clip(1.3 + 0.45 * wealth, 0.2, 4.0)), 0, 6)
    miss_sec = mask(rng, 0.09, n)
    security, security_effect = phrase_lists(
        rng,
        SECURITY,
        n_security.astype(np.intp),
        miss_sec,
        ((", ", 0.6), (",", 0.15), ("; ", 0.1), (" and ", 0.08), (" / ", 0.07)),
    )
    miss_age = mask(rng, 0.05, n)
    miss_value = mask(rng, np.where(value > 1_000_000, 0.15, 0.07), n)
    miss_cons = mask(rng, 0.04, n)
    miss_roof = mask(rng, 0.06, n)
    miss_type = mask(rng, 0.025, n)
    miss_addr = mask(rng, 0.03, n)
    n_missing = sum(
        m.astype(np.float64) for m in (miss_age, miss_value, miss_cons, miss_roof, miss_sec)
    )
    coastal_frame = np.array([s in COASTAL for s in states]) & (construction == CONSTRUCTION_FRAME)
    ca_shake = np.array([s == "CA" for s in states]) & (roof == ROOF_WOOD_SHAKE)

    score = (
        0.9 * hump(np.log(value), float(np.log(400000.0)), 0.9, -2.5)
        + 0.4 * (age <= 10)
        - 0.6 * np.clip((age - 50.0) / 50.0, 0.0, 1.5)
        + effects(PROPERTY_TYPES, ptype)
        + effects(CONSTRUCTION, construction)
        + effects(ROOFS, roof)
        + np.minimum(security_effect, 1.2)
        - 0.3 * (n_security == 0)
        + state_effect(states, HOME_STATE)
        - 0.5 * coastal_frame
        - 0.6 * ca_shake
        - 0.25 * n_missing
    )
    columns = {
        "property_age": ints(age, miss_age),
        "square_footage": ints(sqft, np.zeros(n, dtype=np.bool_)),
        "property_value": ints(value, miss_value),
        "construction_type": labels(rng, [c.label for c in CONSTRUCTION], construction, miss_cons),
        "roof_type": labels(rng, [c.label for c in ROOFS], roof, miss_roof),
        "property_type": labels(rng, [c.label for c in PROPERTY_TYPES], ptype, miss_type),
        "address": addresses(rng, city, np.isin(ptype, PROP_CONDO), miss_addr),
        "security_features": security,
    }
    return Synth(columns, np.asarray(score, dtype=np.float64))
