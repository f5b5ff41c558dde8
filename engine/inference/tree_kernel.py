"""Exact LightGBM scoring from a memory-mapped tree layout, through a small C extension.

Why:
    Every worker that parses ``model.txt`` into a LightGBM booster holds its own copy of
    the trees. A :class:`TreeKernel` instead maps the compiled layout
    (:mod:`engine.inference.tree_layout`) read-only with ``mmap``: all workers of a machine
    share the same page-cache pages, whatever their number. The compiled kernel
    (``engine/inference/_tree_kernel.c``) walks the trees in place and reproduces
    LightGBM's decisions, summation order and sigmoid bit for bit; the C file's header
    lists each rule and where in LightGBM it comes from.

Safety:
    Nothing in the file is trusted. :func:`~engine.inference.tree_layout.read_header`
    checks the header, every section's offset and size against the file length, and the
    CRC-32 of the whole file before the C code sees it; the C ``Kernel`` then re-checks the
    header and sections and checks every tree and node (ranges, one parent per node, all
    nodes reachable, depths) before it scores anything. A truncated or hostile file raises
    :class:`~engine.inference.tree_layout.LayoutError`; it never reaches a walk.

    The C ``Kernel`` holds a buffer export of the mapping for as long as it lives, so the
    mapping cannot be unmapped under it: :meth:`TreeKernel.close` releases the kernel first,
    then the mapping.

Interface:
    The same as :class:`~engine.inference.lgbm_capi.LightGBMPredictor`, so it can replace it:
    ``row`` is a ``ctypes`` array of doubles bound to the kernel when it is created; write
    feature values into it and call :meth:`~TreeKernel.predict_row` (one C call, no
    argument conversion, no allocation but the returned float). Batches go through
    :meth:`~TreeKernel.predict_matrix`, reason codes through :meth:`~TreeKernel.contributions`
    (TreeSHAP in the kernel, matching LightGBM's ``pred_contrib``).

Threading:
    One :class:`TreeKernel` must be used by one thread at a time for ``predict_row`` (the
    ``row`` buffer and the kernel's scratch space are shared state), exactly as
    ``LightGBMPredictor``. ``predict_matrix`` and ``contributions`` use per-call buffers and
    release the GIL on large batches.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from engine.errors import EngineError
from engine.inference._tree_kernel import Kernel
from engine.inference.native import NativeResource
from engine.inference.tree_layout import (
    OBJECTIVE_BINARY,
    LayoutError,
    LayoutHeader,
    compile_model,
    read_header,
)

__all__ = ["KernelClosed", "TreeKernel"]

_FIXED_ATTRIBUTES: Final = frozenset({"num_features", "row"})


class KernelClosed(EngineError):
    """A closed :class:`TreeKernel` was used."""


def _closed() -> float:
    """Stand-in for the kernel's scoring methods once it is closed."""
    raise KernelClosed("the tree kernel is closed")


class TreeKernel(NativeResource):
    """Scores rows with the trees of one compiled layout; built for one row at a time.

    Not thread-safe for :meth:`predict_row`: one instance per thread (see the module
    docstring).

    Attributes:
        num_features: Number of input columns the model expects.
        num_trees: Number of trees summed per row.
        binary: True for a binary model (outputs are probabilities), False for regression.
        header: The layout's checked header (its ``source_sha256`` names the model text).
        row: Input buffer of ``num_features`` doubles for :meth:`predict_row`. Write values
            in place (``kernel.row[i] = value`` or ``kernel.row[:] = values``; NaN means
            missing) and then call :meth:`predict_row`. ``row`` and ``num_features`` are fixed
            when the layout is opened and cannot be rebound.
    """

    __slots__ = (
        "_kernel",
        "_mapping",
        "_predict",
        "_predict_raw",
        "binary",
        "header",
        "num_features",
        "num_trees",
        "row",
    )

    num_features: int
    row: ctypes.Array[ctypes.c_double]

    def __init__(
        self,
        layout: bytes | mmap.mmap,
        *,
        verify_checksum: bool = True,
        _mapping: mmap.mmap | None = None,
    ) -> None:
        """Check ``layout`` and bind a kernel to it; prefer :meth:`open` or :meth:`from_bytes`.

        Args:
            layout: The layout's bytes, or a read-only mapping of its file.
            verify_checksum: Check the CRC-32 of the whole layout.
            _mapping: The mapping to close with the kernel (set by :meth:`open`).

        Raises:
            LayoutError: The layout is truncated, corrupted or of another version.
        """
        self._kernel: Kernel | None = None
        self._mapping = _mapping
        self._predict: Callable[[], float] = _closed
        self._predict_raw: Callable[[], float] = _closed
        try:
            self.header: LayoutHeader = read_header(layout, verify_checksum=verify_checksum)
            width = self.header.num_features
            row = (ctypes.c_double * width)()
            try:
                kernel = Kernel(layout, row)
            except ValueError as exc:
                raise LayoutError(str(exc)) from exc
        except BaseException:
            self.close()
            raise
        self._kernel = kernel
        self._predict = kernel.predict_row
        self._predict_raw = kernel.predict_row_raw
        self.num_trees = kernel.num_trees
        self.binary = kernel.objective == OBJECTIVE_BINARY
        self.num_features = width
        self.row = row

    def __setattr__(self, name: str, value: object) -> None:
        # The kernel holds the buffer of ``row`` and its width: rebinding either would
        # silently predict on stale input. Write into ``row`` instead.
        if name in _FIXED_ATTRIBUTES and hasattr(self, name):
            raise AttributeError(
                f"{name} is fixed when the layout is opened; write values into row "
                "(row[i] = x or row[:] = values) instead of rebinding it"
            )
        object.__setattr__(self, name, value)

    @classmethod
    def open(cls, path: Path, *, verify_checksum: bool = True) -> TreeKernel:
        """Map the layout file at ``path`` read-only and bind a kernel to the mapping.

        Every process that opens the same file shares its pages in the page cache.

        Args:
            path: A layout written by :func:`~engine.inference.tree_layout.write_layout`.
            verify_checksum: Check the CRC-32 of the whole file (reads every page once).

        Returns:
            A ready kernel; :meth:`close` it (or use it as a context manager) to unmap.

        Raises:
            LayoutError: The file is empty, truncated, corrupted or of another version.
            OSError: The file cannot be opened.
        """
        with path.open("rb") as handle:
            try:
                mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as exc:  # an empty file cannot be mapped
                raise LayoutError(f"layout {path} is empty or cannot be mapped: {exc}") from exc
        return cls.from_mapping(mapping, verify_checksum=verify_checksum)

    @classmethod
    def from_mapping(cls, mapping: mmap.mmap, *, verify_checksum: bool = True) -> TreeKernel:
        """Bind a kernel to a read-only mapping of a layout; the kernel then owns it.

        The mapping is closed by :meth:`close`, or at once if the layout is refused.

        Args:
            mapping: A mapping of a layout file (for example one ``verify_version`` hashed).
            verify_checksum: Check the CRC-32 of the whole layout; pointless when the
                caller has just checked the mapping's SHA-256.

        Raises:
            LayoutError: As :meth:`open`.
        """
        return cls(mapping, verify_checksum=verify_checksum, _mapping=mapping)

    @classmethod
    def from_bytes(cls, data: bytes) -> TreeKernel:
        """Bind a kernel to a layout held in memory (tests, tools).

        Raises:
            LayoutError: As :meth:`open`.
        """
        return cls(bytes(data))

    @classmethod
    def from_model_string(cls, model_text: str | bytes) -> TreeKernel:
        """Compile a LightGBM text model in memory and bind a kernel to the layout.

        Raises:
            UnsupportedModel: The kernel must not score this model.
        """
        return cls(compile_model(model_text))

    def predict_row(self) -> float:
        """Predict for the values currently in :attr:`row`.

        Returns:
            The model's transformed output: the probability for a binary model, the raw
            score for regression; bit-identical to ``LightGBMPredictor.predict_row``.

        Raises:
            KernelClosed: The kernel is closed.
        """
        return self._predict()

    def predict_row_raw(self) -> float:
        """The raw score (sum of the trees' leaf values) for the values in :attr:`row`.

        Raises:
            KernelClosed: The kernel is closed.
        """
        return self._predict_raw()

    def predict_matrix(self, matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Predict many rows at once (tree-major over blocks of rows).

        Args:
            matrix: Shape ``(n, num_features)``; converted to C-contiguous float64 if it is
                not already (no copy when it is).

        Returns:
            Shape ``(n,)`` float64: the transformed output per row, each bit-identical to
            :meth:`predict_row` on that row.

        Raises:
            ValueError: ``matrix`` is not 2-D or has the wrong width.
            KernelClosed: The kernel is closed.
        """
        return self._matrix(matrix, raw=False)

    def predict_matrix_raw(self, matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Raw scores of many rows; as :meth:`predict_matrix` otherwise."""
        return self._matrix(matrix, raw=True)

    def contributions(self, matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Per-feature contributions (TreeSHAP), as LightGBM's ``pred_contrib``.

        Path-dependent TreeSHAP (Lundberg et al.) with LightGBM's arithmetic, tree by tree
        in model order, straight from the mapped layout: no booster is needed for reason
        codes.

        Args:
            matrix: Shape ``(n, num_features)``, as for :meth:`predict_matrix`.

        Returns:
            Shape ``(n, num_features + 1)`` float64 in raw-score units; the last column is
            the expected value (bias). Each row sums to the raw score.

        Raises:
            ValueError: ``matrix`` is not 2-D or has the wrong width.
            KernelClosed: The kernel is closed.
        """
        kernel, data = self._checked(matrix)
        out = np.empty((data.shape[0], self.num_features + 1), dtype=np.float64)
        kernel.contributions_matrix(data, out)
        return out

    def _matrix(self, matrix: npt.NDArray[Any], *, raw: bool) -> npt.NDArray[np.float64]:
        kernel, data = self._checked(matrix)
        out = np.empty(data.shape[0], dtype=np.float64)
        kernel.predict_matrix(data, out, raw)
        return out

    def _checked(self, matrix: npt.NDArray[Any]) -> tuple[Kernel, npt.NDArray[np.float64]]:
        """The open kernel and ``matrix`` as C-contiguous float64 rows of the right width."""
        kernel = self._kernel
        if kernel is None:
            raise KernelClosed("the tree kernel is closed")
        data: npt.NDArray[np.float64] = np.ascontiguousarray(matrix, dtype=np.float64)
        if data.ndim != 2:
            raise ValueError(f"expected a 2-D matrix, got {data.ndim} dimension(s)")
        if data.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} columns, got {data.shape[1]}")
        return kernel, data

    def close(self) -> None:
        """Release the kernel, then unmap the layout. Safe to call more than once."""
        self._predict = _closed
        self._predict_raw = _closed
        kernel, mapping = self._kernel, self._mapping
        self._kernel = None
        self._mapping = None
        if kernel is not None:
            kernel.release()
        if mapping is not None:
            mapping.close()
