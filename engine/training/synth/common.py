"""Shared numpy and text helpers of the synthetic lead generator.

Drawing (``draw``, ``mask``), logit terms (``effects``, ``hump``, ``state_effect``) and
formatting of cells as a web form would collect them (``ints``, ``labels``,
``occupations``, ``locations``, ``addresses``, ``phrase_lists``). Helpers that take ``rng``
draw from it in a fixed order, so the same calls in the same order give the same output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from engine.training.synth.catalog import (
    CITIES,
    LOCATION_FORMATS,
    NONE_WORDS,
    OCC_RETIRED,
    OCC_STUDENT,
    OCCUPATIONS,
    STREETS,
    SUFFIXES,
    Cat,
    Phrase,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

CASE_MESS_RATE = 0.03  # share of categorical cells with odd casing


class Synth(NamedTuple):
    """A simulated vertical: its formatted columns and each lead's observable score."""

    columns: dict[str, list[str]]
    score: FloatArray


class Rule(NamedTuple):
    """``logit = intercept + scale * score + Normal(0, noise)`` of one vertical."""

    intercept: float
    scale: float
    noise: float


def draw(rng: np.random.Generator, weights: Sequence[float], size: int) -> IntArray:
    """Draw ``size`` indices with probabilities proportional to ``weights``."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    picks = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    return np.asarray(np.minimum(picks, len(cdf) - 1), dtype=np.intp)


def effects(cats: Sequence[Cat], idx: IntArray) -> FloatArray:
    """Return the logit effect of each drawn category."""
    return np.array([c.effect for c in cats], dtype=np.float64)[idx]


def mask(rng: np.random.Generator, rate: float | FloatArray, size: int) -> BoolArray:
    """Return a missingness mask: each cell is missing with probability ``rate``."""
    return np.asarray(rng.random(size) < rate, dtype=np.bool_)


def sigmoid(x: FloatArray) -> FloatArray:
    """Return the logistic function of ``x``."""
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def hump(x: FloatArray, centre: float, width: float, floor: float) -> FloatArray:
    """Return ``-((x - centre) / width) ** 2`` bounded below by ``floor``."""
    return np.asarray(np.maximum(-(((x - centre) / width) ** 2), floor), dtype=np.float64)


def state_effect(state: Sequence[str], effects: Mapping[str, float]) -> FloatArray:
    """Return each lead's state effect (0 for states not in ``effects``)."""
    return np.array([effects.get(s, 0.0) for s in state], dtype=np.float64)


def ints(values: FloatArray, missing: BoolArray) -> list[str]:
    """Format whole numbers as integers; missing cells become ``""``."""
    return [
        "" if gone else str(v)
        for v, gone in zip(np.rint(values).astype(np.int64).tolist(), missing.tolist(), strict=True)
    ]


def decimals(values: FloatArray, places: IntArray, missing: BoolArray) -> list[str]:
    """Format floats with ``places`` (at most 2) decimals and no trailing zeros."""
    out: list[str] = []
    for v, p, gone in zip(values.tolist(), places.tolist(), missing.tolist(), strict=True):
        if gone:
            out.append("")
            continue
        text = f"{v:.{p}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        out.append(text)
    return out


def labels(
    rng: np.random.Generator, cats: Sequence[str], idx: IntArray, missing: BoolArray
) -> list[str]:
    """Return category labels with messy casing on a few cells and ``""`` where missing."""
    canon = list(cats)
    table = np.array(
        [canon, [c.lower() for c in canon], [c.upper() for c in canon], [c.title() for c in canon]],
        dtype=object,
    )
    case = draw(rng, (1.0 - CASE_MESS_RATE, 0.45 * CASE_MESS_RATE, 0.2 * CASE_MESS_RATE,
                       0.35 * CASE_MESS_RATE), len(idx))  # fmt: skip
    cells = table[case, idx]
    cells[missing] = ""
    out: list[str] = cells.tolist()
    return out


def _scruff(rng: np.random.Generator, texts: list[str], case_weights: Sequence[float]) -> None:
    """Mess up typed text in place: casing, stray and doubled spaces (missing stays "")."""
    n = len(texts)
    case = draw(rng, case_weights, n).tolist()
    space = draw(rng, (0.86, 0.04, 0.04, 0.04, 0.02), n).tolist()
    for i in range(n):
        text = texts[i]
        if not text:
            continue
        c, s = case[i], space[i]
        if c == 1:
            text = text.lower()
        elif c == 2:
            text = text.upper()
        elif c == 3:
            text = text.title()
        if s == 1:
            text = " " + text
        elif s == 2:
            text += " "
        elif s == 3:
            text = text.replace(" ", "  ", 1) if " " in text else text + "  "
        elif s == 4:
            text = "  " + text + " "
        texts[i] = text


def _variant(variants: Sequence[str], u: float) -> str:
    """Pick the canonical spelling for ``u < 0.6``, else one of the others uniformly."""
    if u < 0.6 or len(variants) == 1:
        return variants[0]
    return variants[1 + min(int((u - 0.6) / 0.4 * (len(variants) - 1)), len(variants) - 2)]


def occupations(rng: np.random.Generator, occupation: IntArray, missing: BoolArray) -> list[str]:
    """Return occupations as typed: a spelling variant, then casing and spacing noise."""
    u = rng.random(len(occupation)).tolist()
    texts = [
        "" if gone else _variant(OCCUPATIONS[o].variants, v)
        for o, v, gone in zip(occupation.tolist(), u, missing.tolist(), strict=True)
    ]
    _scruff(rng, texts, (0.62, 0.25, 0.05, 0.08))
    return texts


def draw_occupation(rng: np.random.Generator, age: FloatArray) -> IntArray:
    """Draw occupations, making most of the young students and most of the old retired."""
    weights = [o.weight for o in OCCUPATIONS]
    occupation = draw(rng, weights, len(age))
    working = [0.0 if i in (OCC_STUDENT, OCC_RETIRED) else w for i, w in enumerate(weights)]
    other = draw(rng, working, len(age))
    u = rng.random(len(age))
    occupation[(age <= 22) & (u < 0.55)] = OCC_STUDENT
    occupation[(age >= 67) & (u < 0.75)] = OCC_RETIRED
    odd = ((occupation == OCC_STUDENT) & (age >= 30) & (u < 0.9)) | (
        (occupation == OCC_RETIRED) & (age < 55)
    )
    occupation[odd] = other[odd]
    return occupation


def _zips(rng: np.random.Generator, city: IntArray) -> list[str]:
    """Return a five-digit ZIP code inside each city's range."""
    base = np.array([c.zip_base for c in CITIES], dtype=np.int64)[city]
    span = np.array([c.zip_span for c in CITIES], dtype=np.int64)[city]
    codes = base + np.floor(rng.random(len(city)) * span).astype(np.int64)
    return [f"{z:05d}" for z in codes.tolist()]


def _city_names(rng: np.random.Generator, city: IntArray) -> list[str]:
    """Return city names, misspelled on 8% of rows where the city has known typos."""
    u = rng.random(len(city)).tolist()
    names: list[str] = []
    for c, v in zip(city.tolist(), u, strict=True):
        info = CITIES[c]
        if v < 0.08 and info.typos:
            names.append(info.typos[min(int(v / 0.08 * len(info.typos)), len(info.typos) - 1)])
        else:
            names.append(info.name)
    return names


def locations(rng: np.random.Generator, city: IntArray, missing: BoolArray) -> list[str]:
    """Return typed locations such as ``"Austin, TX 78701"`` or ``"austin tx"``."""
    names = _city_names(rng, city)
    zips = _zips(rng, city)
    fmt = draw(rng, [w for _, w in LOCATION_FORMATS], len(city)).tolist()
    texts: list[str] = []
    for c, name, z, f, gone in zip(city.tolist(), names, zips, fmt, missing.tolist(), strict=True):
        if gone:
            texts.append("")
            continue
        state = CITIES[c].state
        texts.append(
            LOCATION_FORMATS[f][0].format(
                c=name, cl=name.lower(), cu=name.upper(), s=state, sl=state.lower(), z=z
            )
        )
    _scruff(rng, texts, (0.9, 0.05, 0.02, 0.03))
    return texts


def addresses(
    rng: np.random.Generator, city: IntArray, with_unit: BoolArray, missing: BoolArray
) -> list[str]:
    """Return street addresses such as ``"123 Main St, Springfield, IL 62701"``."""
    n = len(city)
    names = _city_names(rng, city)
    zips = _zips(rng, city)
    number = np.floor(np.exp(rng.uniform(0.0, 9.2, n))).astype(np.int64).tolist()
    street = draw(rng, [1.0] * len(STREETS), n).tolist()
    suffix = draw(rng, [4, 3, 2, 2, 1.5, 0.8, 0.8, 0.5, 0.5, 0.5, 0.3], n).tolist()
    suffix_u = rng.random(n).tolist()
    unit = (with_unit & (rng.random(n) < 0.7)).tolist()
    unit_no = rng.integers(1, 40, n).tolist()
    unit_style = draw(rng, (0.5, 0.3, 0.2), n).tolist()
    style = draw(rng, (0.7, 0.12, 0.10, 0.08), n).tolist()
    texts: list[str] = []
    for i in range(n):
        if missing[i]:
            texts.append("")
            continue
        forms = SUFFIXES[suffix[i]]
        line = f"{number[i]} {STREETS[street[i]]} {_variant(forms, suffix_u[i])}"
        if unit[i]:
            line += (f" Apt {unit_no[i]}", f" #{unit_no[i]}", f" Unit {unit_no[i]}B")[unit_style[i]]
        state = CITIES[city[i]].state
        s = style[i]
        if s == 0:
            texts.append(f"{line}, {names[i]}, {state} {zips[i]}")
        elif s == 1:
            texts.append(f"{line}, {names[i]}, {state}")
        elif s == 2:
            texts.append(f"{line} {names[i]} {state} {zips[i]}".lower())
        else:
            texts.append(f"{line},{names[i]},{state},{zips[i]}")
    _scruff(rng, texts, (0.88, 0.04, 0.04, 0.04))
    return texts


def phrase_lists(
    rng: np.random.Generator,
    phrases: Sequence[Phrase],
    counts: IntArray,
    missing: BoolArray,
    separators: Sequence[tuple[str, float]],
    blocked: tuple[int, BoolArray] | None = None,
) -> tuple[list[str], FloatArray]:
    """Build list-valued texts (``"alarm, deadbolt"``) of ``counts[i]`` distinct items.

    Args:
        rng: The generator.
        phrases: The possible items.
        counts: How many distinct items each row lists.
        missing: Rows whose cell is missing (their items still count for the effect).
        separators: Joiners and their weights.
        blocked: An item index and the rows that must not list it.

    Returns:
        The texts (``"none"``-style words for zero items) and the summed effect of each
        row's items.
    """
    n = len(counts)
    width = max(int(counts.max()) if n else 0, 1)
    picks = draw(rng, [p.weight for p in phrases], n * width * 2).reshape(n, width * 2)
    u = rng.random((n, width * 2)).tolist()
    sep = draw(rng, [w for _, w in separators], n).tolist()
    none_word = draw(rng, (0.6, 0.12, 0.1, 0.08, 0.05, 0.05), n).tolist()
    block_item, block_rows = blocked if blocked else (-1, np.zeros(n, dtype=np.bool_))
    blocked_rows = block_rows.tolist()
    effect = np.zeros(n, dtype=np.float64)
    texts: list[str] = []
    for i, (row, k) in enumerate(zip(picks.tolist(), counts.tolist(), strict=True)):
        chosen: list[int] = []
        for j in row:
            if len(chosen) >= k:
                break
            if j not in chosen and not (j == block_item and blocked_rows[i]):
                chosen.append(j)
        effect[i] = sum(phrases[j].effect for j in chosen)
        if missing[i]:
            texts.append("")
        elif not chosen:
            texts.append(NONE_WORDS[none_word[i]])
        else:
            words = [_variant(phrases[j].variants, u[i][t]) for t, j in enumerate(chosen)]
            texts.append(separators[sep[i]][0].join(words))
    _scruff(rng, texts, (0.8, 0.1, 0.04, 0.06))
    return texts, effect
