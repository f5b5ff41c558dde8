"""What every predictor over native memory shares: ``with`` support and a safe finaliser.

A predictor holds memory outside Python's heap (a LightGBM booster, a mapped tree
layout); ``close()`` frees it. ``NativeResource`` gives a subclass the context-manager
protocol and a finaliser that calls ``close()``, so a predictor nobody closed does not
leak, and that never raises or runs during interpreter shutdown.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Self


class NativeResource:
    """Mixin: ``with`` and ``__del__`` call the subclass's ``close()`` (idempotent)."""

    __slots__ = ()  # the predictors are slotted: no instance dict through the mixin

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
