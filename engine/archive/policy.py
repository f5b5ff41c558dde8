"""Which of a scored lead's values the archive may keep in clear, and which it seals.

Only the model's features are archived: every other key of ``lead_data`` (an e-mail, a
phone number, a CRM note) is dropped here and never stored. Of the features, a value is
kept in clear only when it cannot carry text the client chose freely:

- a number of a numerical feature (NaN, which scoring treats as missing, is left out;
  infinities are kept as the strings ``"Infinity"``/``"-Infinity"``, which the training
  CSV reader parses back), or
- a category the model learned in training (seen at least ``min_count`` times, so
  shared by many leads), of a categorical feature,

and the feature is not marked ``pii: true`` in today's config. Everything else is
sealed: marked features, free text, and unseen categories (a name typed into the wrong
field is an unseen category). A model feature that today's config no longer lists is
sealed too: nothing says it is harmless.

Whether a category is known is asked of the model's own encoder (``encode_into`` on a
scratch row: a categorical column that encodes to NaN is unseen), so the archive and
scoring can never disagree about it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.config import ModelConfig, feature_specs
from engine.errors import LeadError
from engine.features.encoder import LeadEncoder

_INFINITIES = {math.inf: "Infinity", -math.inf: "-Infinity"}
# Known categories repeat (makes, usage types): remembering them skips most encodes.
# Only known ones are remembered, so no unseen value (possibly PII) lingers in memory.
KNOWN_MEMO_SIZE = 4096


class FieldPolicy:
    """Splits the leads of one model version into clear and sealed features."""

    def __init__(self, encoder: LeadEncoder | None, names: tuple[str, ...], pii: frozenset[str]):
        """Build the policy.

        Args:
            encoder: The model's encoder; None when the model is not at hand, in which
                case every feature in ``names`` is sealed.
            names: The features to archive (the model's, in column order).
            pii: Features always sealed.
        """
        self.names = names
        self._encoder = encoder
        self._numerical: set[str] = set()
        self._categorical: dict[str, int] = {}
        self._known: set[tuple[str, str | int | float]] = set()
        if encoder is not None:
            for spec in encoder.specs:
                if spec.name in pii:
                    continue
                if spec.kind == "numerical":
                    self._numerical.add(spec.name)
                elif spec.kind == "categorical":
                    self._categorical[spec.name] = spec.index
            self._row = np.empty(encoder.num_features, dtype=np.float64)

    def split(self, lead: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return the lead's archived features as (clear, sealed).

        Absent and null features are left out of both (the CSV export writes them as
        empty cells, which training reads as missing).
        """
        clear: dict[str, Any] = {}
        secret: dict[str, Any] = {}
        known_row = None
        for name in self.names:
            value = lead.get(name)
            if value is None:
                continue
            if name in self._numerical and type(value) in (int, float):
                if value != value:  # NaN: missing to the model, so missing here
                    continue
                clear[name] = _INFINITIES.get(value, value)
            elif name in self._categorical and type(value) in (str, int, float):
                if (name, value) in self._known:
                    clear[name] = value
                    continue
                if known_row is None:
                    known_row = self._encode(lead)
                if known_row is not None and not math.isnan(known_row[self._categorical[name]]):
                    if len(self._known) >= KNOWN_MEMO_SIZE:
                        self._known.clear()
                    self._known.add((name, value))
                    clear[name] = value
                else:
                    secret[name] = value
            else:
                secret[name] = value
        return clear, secret

    def _encode(self, lead: Mapping[str, Any]) -> np.ndarray | None:
        assert self._encoder is not None  # only categorical features of a model get here
        try:
            self._encoder.encode_into(lead, self._row)
        except LeadError:  # scored leads validate; if not, seal rather than guess
            return None
        return self._row


class PolicyBook:
    """The policy of each (vertical, model version), built once and cached.

    Args:
        config: Today's configuration (the ``pii`` markings).
        limit: Most policies kept (the oldest is dropped beyond it).
    """

    def __init__(self, config: ModelConfig, limit: int = 32) -> None:
        self._limit = limit
        self._pii: dict[str, frozenset[str]] = {}
        self._configured: dict[str, tuple[str, ...]] = {}
        for vertical, settings in config.verticals.items():
            specs = feature_specs(settings)
            self._configured[vertical] = tuple(s.name for s in specs)
            self._pii[vertical] = frozenset(s.name for s in specs if s.pii)
        self._policies: dict[tuple[str, str], FieldPolicy] = {}

    def configured(self, vertical: str) -> bool:
        """Whether ``vertical`` is in the configuration."""
        return vertical in self._configured

    def policy(self, vertical: str, version: str, encoder: LeadEncoder | None) -> FieldPolicy:
        """Return the policy of ``vertical`` at ``version``.

        Args:
            vertical: The lead's vertical.
            version: The model version that scored it.
            encoder: That version's encoder, if at hand. When neither it nor a cached
                policy is available (the version was swapped out before its leads were
                archived), every configured feature of the vertical is sealed.
        """
        key = (vertical, version)
        policy = self._policies.get(key)
        if policy is not None:
            return policy
        configured = self._configured.get(vertical, ())
        if encoder is None:
            return FieldPolicy(None, configured, frozenset(configured))
        names = tuple(s.name for s in encoder.specs)
        # A model feature today's config does not list is sealed: nothing says it is safe.
        pii = self._pii.get(vertical, frozenset()) | (set(names) - set(configured))
        policy = FieldPolicy(encoder, names, frozenset(pii))
        if len(self._policies) >= self._limit:
            del self._policies[next(iter(self._policies))]
        self._policies[key] = policy
        return policy
