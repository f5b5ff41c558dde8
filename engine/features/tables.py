"""Encoder tables: fitted at training time, stored beside the model, loaded at serving.

Two kinds of table, one per categorical or text feature:

- Categorical ``<name>``: the category values (normalised, see ``engine.features.text``)
  in code order. Code ``i`` is the LightGBM category code of ``values[i]``; codes are
  assigned by descending training frequency (ties by value), and values seen fewer than
  ``min_count`` times are left out, so at serving they are unseen, which means missing.
- Text ``<name>``: tokens and one weight per token. A token's weight is its smoothed
  log-odds of conversion relative to the base rate,
  ``logit((pos + m * p) / (n + m)) - logit(p)``, where ``n`` rows of the training split
  contain the token, ``pos`` of them converted, ``p`` is the base rate and ``m`` the
  feature's ``smoothing``. Tokens in fewer than ``min_count`` rows are left out. A text's
  encoded value is the mean weight of its known tokens, or missing when none is known.

On disk (all memory-mappable ``.npy``, no pickles):

- ``encoders.<name>.values.npy``: ``<U`` array of category values, in code order.
- ``encoders.<name>.tokens.npy`` and ``encoders.<name>.weights.npy``: ``<U`` tokens and
  ``float64`` weights, same length, tokens sorted.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from engine.config import FeatureSpec
from engine.features.text import normalise_category, text_tokens

# Bounds on table sizes keep memory and lookup time predictable whatever the data.
MAX_CATEGORIES = 4096
MAX_TOKENS = 50_000


class EncoderTables:
    """The fitted tables of one model, by feature name."""

    def __init__(
        self,
        categories: Mapping[str, Sequence[str]],
        token_weights: Mapping[str, Mapping[str, float]],
    ) -> None:
        self.categories: dict[str, list[str]] = {k: list(v) for k, v in categories.items()}
        self.token_weights: dict[str, dict[str, float]] = {
            k: dict(v) for k, v in token_weights.items()
        }

    def to_files(self) -> dict[str, bytes]:
        """Serialise every table to ``.npy`` bytes keyed by file name."""
        files: dict[str, bytes] = {}
        for name, values in self.categories.items():
            files[f"encoders.{name}.values.npy"] = _npy(np.array(values, dtype=np.str_))
        for name, weights in self.token_weights.items():
            tokens = sorted(weights)
            files[f"encoders.{name}.tokens.npy"] = _npy(np.array(tokens, dtype=np.str_))
            files[f"encoders.{name}.weights.npy"] = _npy(
                np.array([weights[t] for t in tokens], dtype=np.float64)
            )
        return files

    @classmethod
    def from_files(cls, specs: Sequence[FeatureSpec], files: Mapping[str, bytes]) -> EncoderTables:
        """Rebuild the tables of ``specs`` from verified file bytes.

        Raises:
            ValueError: A table is missing or malformed (the message names it).
        """
        categories: dict[str, list[str]] = {}
        token_weights: dict[str, dict[str, float]] = {}
        for spec in specs:
            if spec.kind == "categorical":
                values = _load(files, f"encoders.{spec.name}.values.npy")
                categories[spec.name] = [str(v) for v in values.tolist()]
            elif spec.kind == "text":
                tokens = _load(files, f"encoders.{spec.name}.tokens.npy")
                weights = _load(files, f"encoders.{spec.name}.weights.npy")
                if tokens.shape != weights.shape or weights.dtype != np.float64:
                    raise ValueError(f"encoder table of {spec.name!r} is malformed")
                token_weights[spec.name] = dict(
                    zip((str(t) for t in tokens.tolist()), weights.tolist(), strict=True)
                )
        return cls(categories, token_weights)


def fit_categories(values: Iterable[str | None], min_count: int) -> list[str]:
    """Return the category values kept for a feature, in code order.

    Args:
        values: The raw training values (``None`` is missing and not counted).
        min_count: Values seen fewer times are left out.
    """
    counts = Counter(normalise_category(v) for v in values if v is not None)
    kept = [(c, v) for v, c in counts.items() if c >= min_count]
    kept.sort(key=lambda cv: (-cv[0], cv[1]))
    return [v for _, v in kept[:MAX_CATEGORIES]]


def fit_token_weights(
    texts: Sequence[str | None],
    labels: npt.NDArray[np.int8],
    min_count: int,
    smoothing: float,
) -> dict[str, float]:
    """Fit the token weight table of a text feature (see the module docstring).

    Args:
        texts: Raw training texts, aligned with ``labels``.
        labels: 0/1 conversion labels.
        min_count: Tokens in fewer rows are left out.
        smoothing: The m-estimate strength ``m``.
    """
    rows = Counter[str]()
    positives = Counter[str]()
    for text, label in zip(texts, labels.tolist(), strict=True):
        if text is None:
            continue
        tokens = text_tokens(text)
        rows.update(tokens)
        if label:
            positives.update(tokens)
    base = float(labels.mean()) if len(labels) else 0.5
    base = min(max(base, 1e-6), 1 - 1e-6)
    base_logit = math.log(base / (1 - base))
    frequent = sorted((t for t, n in rows.items() if n >= min_count), key=lambda t: (-rows[t], t))
    weights: dict[str, float] = {}
    for token in frequent[:MAX_TOKENS]:
        rate = (positives[token] + smoothing * base) / (rows[token] + smoothing)
        weights[token] = math.log(rate / (1 - rate)) - base_logit
    return weights


def _npy(array: npt.NDArray[np.generic]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load(files: Mapping[str, bytes], name: str) -> npt.NDArray[np.generic]:
    data = files.get(name)
    if data is None:
        raise ValueError(f"encoder table {name} is missing")
    array: npt.NDArray[np.generic] = np.load(io.BytesIO(data), allow_pickle=False)
    if array.ndim != 1:
        raise ValueError(f"encoder table {name} is not one-dimensional")
    return array
