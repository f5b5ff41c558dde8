"""What every predictor over native memory shares: ``with``, a safe finaliser, ``predict_one``.

A predictor holds memory outside Python's heap (a LightGBM booster, a mapped tree
layout); ``close()`` frees it. ``NativeResource`` gives a subclass the context-manager
protocol and a finaliser that calls ``close()``, so a predictor nobody closed does not
leak, and that never raises or runs during interpreter shutdown. Both predictors score
the values written into their ``row`` buffer with ``predict_row()``; ``predict_one`` is
the convenient (slower) form built on those two.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Self


class NativeResource:
    """Mixin: ``with`` and ``__del__`` call the subclass's ``close()`` (idempotent)."""

    __slots__ = ()  # the predictors are slotted: no instance dict through the mixin

    num_features: int
    row: ctypes.Array[ctypes.c_double]

    def predict_row(self) -> float:
        """Predict for the values in ``row`` (subclasses implement it)."""
        raise NotImplementedError

    def predict_one(self, values: Sequence[float]) -> float:
        """Copy ``values`` into ``row`` and predict.

        Raises:
            ValueError: ``len(values) != num_features``.
            KernelClosed | LightGBMError: The predictor is closed.
        """
        if len(values) != self.num_features:
            raise ValueError(f"expected {self.num_features} feature values, got {len(values)}")
        # ctypes accepts any sequence of the right length here; typeshed only declares list.
        self.row[:] = values  # type: ignore[call-overload]
        return self.predict_row()

    def close(self) -> None:
        """Free the native memory (subclasses implement it; safe to call twice)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # At interpreter shutdown the process is about to release everything anyway, and
        # module globals may already be torn down: do nothing rather than risk an error.
        try:
            if sys.is_finalizing():
                return
            self.close()
        except Exception:  # a finaliser must never raise
            return
