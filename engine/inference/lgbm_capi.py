"""LightGBM prediction through the library's public C API (``c_api.h``) via ctypes.

Why ctypes and not ``lightgbm.Booster``:
    ``Booster.predict`` on one row spends most of its 45-60 µs in Python: argument
    normalisation, an ``_InnerPredictor`` per call, numpy conversions and result reshaping.
    LightGBM's C API has a path made for this case, ``LGBM_BoosterPredictForMatSingleRowFast``,
    which reuses a "fast config" (parsed parameters plus a cached single-row predictor) across
    calls; through ctypes the Python side of a call is well under a microsecond and the rest
    is the tree walk itself. Importing the ``lightgbm`` Python package would also pull in scipy
    and friends, so this module only *locates* the package (``importlib.util.find_spec`` does
    not import it) and loads the ``lib_lightgbm`` shared library that the wheel ships.

Design of the single-row path:
    Everything is prepared once. ``argtypes``/``restype`` of every function used are declared
    when the library is loaded (:func:`load_library`, cached per process). Loading a model
    creates the fast config, the input buffer (:attr:`LightGBMPredictor.row`, a ``ctypes``
    array of doubles), the output scalars, and the ``byref()`` pointers, kept in one argument
    tuple. :meth:`LightGBMPredictor.predict_row` is one foreign call with that tuple, one
    integer test and one ``.value`` read: no numpy, no allocation. The call goes through an
    unprototyped function object because every argument is already a ctypes object of the
    exact C type; prototype conversion (one ``from_param()`` per argument) measured ~0.5 µs
    per call, as much as the rest of the Python overhead together. Callers write feature
    values into ``row`` in place (``predictor.row[i] = x``) and then call ``predict_row()``;
    :meth:`LightGBMPredictor.predict_one` is the convenient, slightly slower variant that
    copies a sequence first.

    Batch paths (:meth:`~LightGBMPredictor.predict_matrix`,
    :meth:`~LightGBMPredictor.contributions`) use ``LGBM_BoosterPredictForMat`` on a
    row-major float64 matrix, the same call ``Booster.predict`` makes for a numpy array.

Loading model text:
    LightGBM trusts its model text. With the ``tree_sizes`` header it parses trees in an
    OpenMP loop that jumps by those sizes without bounds checks, and a parse error inside
    that loop aborts the process instead of returning -1. This module checks the jumps in
    Python (rejecting truncated text) and drops the header, so LightGBM parses trees one by
    one and reports a corrupted tree as an ordinary :class:`LightGBMError`. The trees are the
    same. Edits that still parse (say, an out-of-range ``split_feature``) are not detected:
    load only verified artifacts.

Which trees are used:
    Predictions use ``start_iteration=0`` and ``num_iteration=-1`` ("no limit": every tree in
    the loaded model). That is exactly what ``lightgbm.Booster(model_str=...).predict`` does
    by default: a Booster loaded from a string has ``best_iteration == -1`` and forwards it.
    After early stopping, ``Booster.model_to_string()`` writes only the first
    ``best_iteration`` iterations, so "all trees of the string" *is* the best iteration.

Results:
    Single-row, matrix and ``Booster.predict`` results go through the same C++ predictor and
    are bit-identical (the unit tests assert exact equality, NaN/inf and category edge cases
    included).

Threading:
    One :class:`LightGBMPredictor` must be used by **one thread at a time**. The fast config,
    the ``row`` buffer and the output scalars are shared mutable state; two threads calling
    ``predict_row`` concurrently would overwrite each other's inputs and outputs. The service
    runs one single-threaded event loop per worker process (one worker per core), so each
    worker owns its predictors. Give each thread its own instance if threads are ever needed.
    LightGBM itself is asked for ``num_threads=1``: one prediction must not fan out across
    cores that belong to other workers. ``LGBM_GetLastError`` is thread-local in LightGBM, so
    error messages never mix between threads. Loading the library is guarded by a lock.
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from engine.errors import EngineError
from engine.inference.native import NativeResource

__all__ = ["LightGBMError", "LightGBMPredictor", "load_library"]

# Constants from LightGBM's c_api.h.
C_API_DTYPE_FLOAT64: Final = 1
C_API_PREDICT_NORMAL: Final = 0
C_API_PREDICT_RAW_SCORE: Final = 1
C_API_PREDICT_CONTRIB: Final = 3

_START_ITERATION: Final = 0
# <= 0 means "no limit": every iteration in the loaded model, as Booster(model_str=...).predict.
_ALL_ITERATIONS: Final = -1
_ROW_MAJOR: Final = 1
_PREDICT_PARAMETERS: Final = b"num_threads=1"
_INT32_MAX: Final = 2**31 - 1
_LIBRARY_NAMES: Final = ("lib_lightgbm.so", "lib_lightgbm.dylib", "lib_lightgbm.dll")

_library_cache: dict[str, ctypes.CDLL] = {}
_library_lock = threading.Lock()

_c_int_p = ctypes.POINTER(ctypes.c_int)
_c_int64_p = ctypes.POINTER(ctypes.c_int64)
_c_double_p = ctypes.POINTER(ctypes.c_double)
_handle_p = ctypes.POINTER(ctypes.c_void_p)

# name -> (argtypes, restype); declared once on the cached CDLL.
_SIGNATURES: Final[dict[str, tuple[list[Any], Any]]] = {
    "LGBM_GetLastError": ([], ctypes.c_char_p),
    "LGBM_BoosterLoadModelFromString": (
        [ctypes.c_char_p, _c_int_p, _handle_p],
        ctypes.c_int,
    ),
    "LGBM_BoosterGetNumFeature": ([ctypes.c_void_p, _c_int_p], ctypes.c_int),
    "LGBM_BoosterGetNumClasses": ([ctypes.c_void_p, _c_int_p], ctypes.c_int),
    "LGBM_BoosterPredictForMatSingleRowFastInit": (
        [
            ctypes.c_void_p,  # BoosterHandle
            ctypes.c_int,  # predict_type
            ctypes.c_int,  # start_iteration
            ctypes.c_int,  # num_iteration
            ctypes.c_int,  # data_type
            ctypes.c_int32,  # ncol
            ctypes.c_char_p,  # parameter
            _handle_p,  # FastConfigHandle* out
        ],
        ctypes.c_int,
    ),
    "LGBM_BoosterPredictForMatSingleRowFast": (
        [ctypes.c_void_p, ctypes.c_void_p, _c_int64_p, _c_double_p],
        ctypes.c_int,
    ),
    "LGBM_BoosterPredictForMat": (
        [
            ctypes.c_void_p,  # BoosterHandle
            ctypes.c_void_p,  # data
            ctypes.c_int,  # data_type
            ctypes.c_int32,  # nrow
            ctypes.c_int32,  # ncol
            ctypes.c_int,  # is_row_major
            ctypes.c_int,  # predict_type
            ctypes.c_int,  # start_iteration
            ctypes.c_int,  # num_iteration
            ctypes.c_char_p,  # parameter
            _c_int64_p,  # out_len
            ctypes.c_void_p,  # out_result (double*)
        ],
        ctypes.c_int,
    ),
    "LGBM_FastConfigFree": ([ctypes.c_void_p], ctypes.c_int),
    "LGBM_BoosterFree": ([ctypes.c_void_p], ctypes.c_int),
}


class LightGBMError(EngineError):
    """A LightGBM C API call failed, or a closed predictor was used.

    The message names the failing call and includes ``LGBM_GetLastError()``.
    """


def _find_library() -> Path:
    """Locate ``lib_lightgbm`` inside the installed ``lightgbm`` package without importing it.

    Returns:
        Path of the shared library.

    Raises:
        LightGBMError: The package or its shared library is not installed.
    """
    spec = importlib.util.find_spec("lightgbm")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise LightGBMError("the lightgbm package is not installed")
    tried: list[str] = []
    for location in locations:
        package_dir = Path(location)
        # Wheels ship lib/lib_lightgbm.*; some older builds put it next to __init__.py.
        for directory in (package_dir / "lib", package_dir):
            for name in _LIBRARY_NAMES:
                candidate = directory / name
                tried.append(str(candidate))
                if candidate.is_file():
                    return candidate
    raise LightGBMError(f"lib_lightgbm not found; tried: {', '.join(tried)}")


def load_library() -> ctypes.CDLL:
    """Load LightGBM's shared library once per process and declare the C signatures.

    Returns:
        The cached ``ctypes.CDLL``; every function this module uses has its ``argtypes`` and
        ``restype`` set.

    Raises:
        LightGBMError: The library cannot be found or loaded.
    """
    library = _library_cache.get("lib")
    if library is not None:
        return library
    with _library_lock:
        library = _library_cache.get("lib")
        if library is None:
            path = _find_library()
            try:
                library = ctypes.CDLL(str(path))
            except OSError as exc:
                raise LightGBMError(f"cannot load {path}: {exc}") from exc
            for name, (argtypes, restype) in _SIGNATURES.items():
                function = getattr(library, name)
                function.argtypes = argtypes
                function.restype = restype
            _library_cache["lib"] = library
        return library


def _last_error(library: ctypes.CDLL) -> str:
    raw = library.LGBM_GetLastError()
    if not raw:
        return "(no message)"
    return bytes(raw).decode("utf-8", errors="replace")


def _call_failed(library: ctypes.CDLL, function: str) -> LightGBMError:
    return LightGBMError(f"{function} failed: {_last_error(library)}")


def _unprototyped(library: ctypes.CDLL, name: str) -> Callable[..., int]:
    """A fresh function object for ``name`` without argtypes (``restype`` is ``c_int``).

    Only for calls whose every argument is already a ctypes object of the exact C type.
    """
    # Indexing creates a new, unprototyped object; the cached attribute keeps its argtypes.
    function = library[name]
    function.restype = ctypes.c_int
    return function


_TREE_LINE: Final = re.compile(rb"^Tree=", re.MULTILINE)
_TREE_SIZES_LINE: Final = re.compile(rb"^tree_sizes=([^\r\n]*)(?:\r\n|\n|\r)?", re.MULTILINE)


def _sequential_model_text(text: bytes) -> tuple[bytes, int | None]:
    """Check the ``tree_sizes`` index of a model text, then drop it.

    ``tree_sizes`` (a header line of byte lengths, one per tree) only lets LightGBM parse
    trees in parallel: it jumps ``tree_sizes[i]`` bytes from the first ``Tree=`` line. Those
    jumps are not checked against the end of the string, and an error raised while parsing
    one tree inside that OpenMP loop is not turned into a return code. So a truncated or
    corrupted model reads past the end of the buffer and then aborts the *whole process*
    ("terminate called without an active exception") instead of returning -1.

    This function replays the jumps in Python, which rejects truncated text, and removes the
    line. Without it LightGBM parses trees one after another (its path for models written
    before ``tree_sizes`` existed), which stays inside the string and reports a corrupted
    tree as an ordinary error. The trees, and so the predictions, are the same.

    Args:
        text: The model text, already known to contain no NUL byte.

    Returns:
        The text without its ``tree_sizes`` line, and how many trees that line announced
        (``None`` when there is no such line).

    Raises:
        LightGBMError: ``tree_sizes`` is malformed, or points outside the text or at
            something that is not a ``Tree=`` line.
    """
    first_tree = _TREE_LINE.search(text)
    if first_tree is None:
        return text, None  # No trees to jump to; LightGBM itself reports what is missing.
    sizes_line = _TREE_SIZES_LINE.search(text, 0, first_tree.start())
    if sizes_line is None:
        return text, None
    try:
        sizes = [int(size) for size in sizes_line.group(1).split()]
    except ValueError:
        sizes = [-1]
    if any(size <= 0 for size in sizes):
        raise LightGBMError("model text is malformed: bad tree_sizes header")
    offset = first_tree.start()
    for index, size in enumerate(sizes):
        if not text.startswith(b"Tree=", offset):
            raise LightGBMError(
                f"model text is malformed or truncated: tree {index} is not where tree_sizes "
                "says it starts"
            )
        offset += size
    if offset > len(text):
        raise LightGBMError("model text is truncated: the last tree ends past the end of the text")
    return text[: sizes_line.start()] + text[sizes_line.end() :], len(sizes)


def _closed(*_args: object) -> int:
    """Stand-in for the single-row C function once the predictor is closed."""
    raise LightGBMError("the LightGBM predictor is closed")


_FIXED_ATTRIBUTES: Final = frozenset({"num_features", "row"})


class LightGBMPredictor(NativeResource):
    """Predicts with one LightGBM model through the C API; built for one row at a time.

    Not thread-safe: one instance must be used by one thread at a time (the fast config,
    :attr:`row` and the output buffers are shared state). See the module docstring.

    Attributes:
        num_features: Number of input columns the model expects.
        row: Input buffer of ``num_features`` doubles for :meth:`predict_row`. Write values
            in place (``predictor.row[i] = value`` or ``predictor.row[:] = values``; NaN
            means missing) and then call :meth:`predict_row`. The buffer keeps its values
            between calls. Both attributes are fixed at load time and cannot be rebound.
    """

    __slots__ = (
        "_booster",
        "_fast",
        "_fast_args",
        "_fast_row",
        "_library",
        "_num_iterations",
        "_out",
        "_out_len",
        "num_features",
        "row",
    )

    num_features: int
    row: ctypes.Array[ctypes.c_double]

    def __init__(self, model_text: str | bytes) -> None:
        """Load a model; prefer :meth:`from_model_string`, which does the same.

        Args:
            model_text: A LightGBM text model, as written by ``Booster.model_to_string()``.

        Raises:
            LightGBMError: The text does not parse as a model, or the model has more than
                one output per row (multiclass), or a C call fails.
        """
        # Safe defaults first: close() and __del__ must work however far this gets.
        self._booster: ctypes.c_void_p | None = None
        self._fast: ctypes.c_void_p | None = None
        self._fast_row: Callable[..., int] = _closed
        self._fast_args: tuple[Any, ...] = ()
        self._library = load_library()
        self._num_iterations = 0
        self._out = ctypes.c_double(0.0)
        self._out_len = ctypes.c_int64(0)

        text = model_text.encode("utf-8") if isinstance(model_text, str) else bytes(model_text)
        if b"\0" in text:
            raise LightGBMError("model text contains a NUL byte; it is not a LightGBM model")
        text, expected_trees = _sequential_model_text(text)
        library = self._library
        try:
            booster = ctypes.c_void_p()
            num_iterations = ctypes.c_int(0)
            if library.LGBM_BoosterLoadModelFromString(
                text, ctypes.byref(num_iterations), ctypes.byref(booster)
            ):
                raise _call_failed(library, "LGBM_BoosterLoadModelFromString")
            if not booster.value:
                raise LightGBMError("LGBM_BoosterLoadModelFromString returned no booster")
            self._booster = booster
            self._num_iterations = num_iterations.value

            num_features = ctypes.c_int(0)
            if library.LGBM_BoosterGetNumFeature(booster, ctypes.byref(num_features)):
                raise _call_failed(library, "LGBM_BoosterGetNumFeature")
            num_classes = ctypes.c_int(0)
            if library.LGBM_BoosterGetNumClasses(booster, ctypes.byref(num_classes)):
                raise _call_failed(library, "LGBM_BoosterGetNumClasses")
            if num_classes.value != 1:
                raise LightGBMError(
                    f"model has {num_classes.value} outputs per row; only single-output "
                    "(binary or regression) models are supported"
                )
            # One tree per iteration for single-output models.
            if expected_trees is not None and self._num_iterations != expected_trees:
                raise LightGBMError(
                    f"model text announces {expected_trees} trees but {self._num_iterations} "
                    "were loaded"
                )
            width = num_features.value

            fast = ctypes.c_void_p()
            if library.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster,
                C_API_PREDICT_NORMAL,
                _START_ITERATION,
                _ALL_ITERATIONS,
                C_API_DTYPE_FLOAT64,
                width,
                _PREDICT_PARAMETERS,
                ctypes.byref(fast),
            ):
                raise _call_failed(library, "LGBM_BoosterPredictForMatSingleRowFastInit")
            self._fast = fast
        except BaseException:
            self.close()
            raise

        self.num_features = width
        self.row = (ctypes.c_double * width)()
        # The hot path: one foreign call with these exact ctypes objects, prepared once. Each
        # already has the C type of its parameter (handle, const void*, int64_t*, double*),
        # so the call goes through an unprototyped function object: argtypes conversion
        # (one from_param() per argument) costs ~0.5 µs per call, which is measurable next
        # to a small model's tree walk. The prototyped function stays declared for any other
        # use; here no Python value is ever converted, so the ABI is the same.
        self._fast_args = (
            fast,
            ctypes.cast(self.row, ctypes.c_void_p),
            ctypes.byref(self._out_len),
            ctypes.byref(self._out),
        )
        self._fast_row = _unprototyped(library, "LGBM_BoosterPredictForMatSingleRowFast")

    def __setattr__(self, name: str, value: object) -> None:
        # The fast path captured the buffer's address and the width at load time: rebinding
        # either would silently predict on stale input. Write into ``row`` instead.
        if name in _FIXED_ATTRIBUTES and hasattr(self, name):
            raise AttributeError(
                f"{name} is fixed when the model is loaded; write values into row "
                "(row[i] = x or row[:] = values) instead of rebinding it"
            )
        object.__setattr__(self, name, value)

    @classmethod
    def from_model_string(cls, model_text: str | bytes) -> LightGBMPredictor:
        """Load a model from LightGBM's text format and prepare the single-row fast path.

        Args:
            model_text: A LightGBM text model, as written by ``Booster.model_to_string()``
                (``str`` or UTF-8 ``bytes``).

        Returns:
            A ready predictor; call :meth:`close` (or use it as a context manager) to free
            the native memory deterministically.

        Raises:
            LightGBMError: The text does not parse as a model, or the model has more than
                one output per row (multiclass), or a C call fails.
        """
        return cls(model_text)

    def predict_row(self) -> float:
        """Predict for the values currently in :attr:`row`.

        Returns:
            The model's transformed output (the probability for a binary model), computed
            with ``LGBM_BoosterPredictForMatSingleRowFast``.

        Raises:
            LightGBMError: The predictor is closed, or LightGBM reports an error.
        """
        if self._fast_row(*self._fast_args):
            raise _call_failed(self._library, "LGBM_BoosterPredictForMatSingleRowFast")
        return self._out.value

    def predict_matrix(self, matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Predict many rows at once with ``LGBM_BoosterPredictForMat``.

        Args:
            matrix: Shape ``(n, num_features)``; converted to C-contiguous float64 if it is
                not already (no copy when it is).

        Returns:
            Shape ``(n,)`` float64: the transformed output per row. ``n == 0`` gives an
            empty array.

        Raises:
            ValueError: ``matrix`` is not 2-D, has the wrong width, or has too many rows.
            LightGBMError: The predictor is closed, or LightGBM reports an error.
        """
        data = self._rows(matrix)
        out = np.empty(data.shape[0], dtype=np.float64)
        self._predict_matrix_into(data, C_API_PREDICT_NORMAL, out)
        return out

    def contributions(self, matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Per-feature contributions (SHAP values) with ``C_API_PREDICT_CONTRIB``.

        Args:
            matrix: Shape ``(n, num_features)``, as for :meth:`predict_matrix`.

        Returns:
            Shape ``(n, num_features + 1)`` float64 in raw-score (log-odds) units; the last
            column is the expected value (bias). Each row sums to the raw score.

        Raises:
            ValueError: ``matrix`` is not 2-D, has the wrong width, or has too many rows.
            LightGBMError: The predictor is closed, or LightGBM reports an error.
        """
        data = self._rows(matrix)
        out = np.empty((data.shape[0], self.num_features + 1), dtype=np.float64)
        self._predict_matrix_into(data, C_API_PREDICT_CONTRIB, out)
        return out

    def _rows(self, matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Check the predictor is open and return ``matrix`` as C-contiguous float64."""
        if self._booster is None:
            raise LightGBMError("the LightGBM predictor is closed")
        data: npt.NDArray[np.float64] = np.ascontiguousarray(matrix, dtype=np.float64)
        if data.ndim != 2:
            raise ValueError(f"expected a 2-D matrix, got {data.ndim} dimension(s)")
        if data.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} columns, got {data.shape[1]}")
        if data.shape[0] > _INT32_MAX:
            raise ValueError(f"at most {_INT32_MAX} rows per call, got {data.shape[0]}")
        return data

    def _predict_matrix_into(
        self, data: npt.NDArray[np.float64], predict_type: int, out: npt.NDArray[np.float64]
    ) -> None:
        """Run ``LGBM_BoosterPredictForMat`` on validated ``data``, writing into ``out``."""
        nrow = data.shape[0]
        if nrow == 0:
            return
        out_len = ctypes.c_int64(0)
        if self._library.LGBM_BoosterPredictForMat(
            self._booster,
            data.ctypes.data,
            C_API_DTYPE_FLOAT64,
            nrow,
            self.num_features,
            _ROW_MAJOR,
            predict_type,
            _START_ITERATION,
            _ALL_ITERATIONS,
            _PREDICT_PARAMETERS,
            ctypes.byref(out_len),
            out.ctypes.data,
        ):
            raise _call_failed(self._library, "LGBM_BoosterPredictForMat")
        if out_len.value != out.size:
            raise LightGBMError(
                f"LGBM_BoosterPredictForMat wrote {out_len.value} values, expected {out.size}"
            )

    def close(self) -> None:
        """Free the fast config, then the booster. Safe to call more than once.

        Raises:
            LightGBMError: LightGBM failed to free a handle (the predictor is closed anyway).
        """
        fast, booster = self._fast, self._booster
        self._fast = None
        self._booster = None
        self._fast_row = _closed
        self._fast_args = ()
        failures: list[str] = []
        if fast is not None and self._library.LGBM_FastConfigFree(fast):
            failures.append(f"LGBM_FastConfigFree: {_last_error(self._library)}")
        if booster is not None and self._library.LGBM_BoosterFree(booster):
            failures.append(f"LGBM_BoosterFree: {_last_error(self._library)}")
        if failures:
            raise LightGBMError("; ".join(failures))
