"""LightGBM model text, read exactly as LightGBM 4.x reads it, for the tree layout.

Why not ``lightgbm.Booster`` or ``dump_model()``:
    The layout (:mod:`engine.inference.tree_layout`) must hold the very doubles LightGBM
    compares and adds, and must refuse whatever LightGBM would load differently from what
    this parser sees. Going through LightGBM's own objects would lose the distinction (and
    import the lightgbm package into the process that publishes); parsing the text with
    LightGBM's own rules keeps both. The sources quoted are LightGBM 4.x ``src/io/tree.cpp``
    (``Tree::Tree(const char*)``), ``src/boosting/gbdt_model_text.cpp``
    (``GBDT::LoadModelFromString``), ``include/LightGBM/utils/common.h`` and
    ``src/objective/binary_objective.hpp``.

Numbers:
    * ``threshold``, ``leaf_value`` (and ``leaf_weight``) go through
      ``CommonC::StringToArray<double>``: fast_double_parser with a ``strtod`` fallback,
      both correctly rounded. For the strict syntax accepted here that is Python's
      ``float()``.
    * ``internal_value`` (``StringToArrayFast<double>``) and the binary objective's
      ``sigmoid`` go through ``Common::Atof``, which is *not* correctly rounded; it is
      replayed operation by operation in :func:`lightgbm_atof` (the tests check the result
      against ``dump_model()``, which prints LightGBM's doubles with 17 digits).
    * Integers are plain decimal; every one is range-checked.
    A token outside the strict syntax (``nan``, ``1_0``, spaces, non-ASCII digits) is
    refused rather than risk LightGBM and Python reading it differently.

Structure:
    The header up to the first ``Tree=`` line, then ``Tree=0``, ``Tree=1``, ... blocks of at
    most 22 ``key=value`` lines (LightGBM's limit) ended by a blank line, then
    ``end of trees``. A ``tree_sizes`` index, when present, must point exactly at those
    trees. Every tree must be one binary tree rooted at node 0 (each node but the root and
    each leaf with exactly one parent, every node reachable), so that a walk always ends.

What is refused, and why, is listed in :mod:`engine.inference.tree_layout`'s docstring;
the refusals are raised here as :class:`UnsupportedModel`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from engine.errors import EngineError

__all__ = [
    "OBJECTIVE_BINARY",
    "OBJECTIVE_REGRESSION",
    "ParsedModel",
    "ParsedTree",
    "UnsupportedModel",
    "lightgbm_atof",
    "parse_model",
]

OBJECTIVE_BINARY: Final = 1
OBJECTIVE_REGRESSION: Final = 2

_INT32_MAX: Final = 2**31 - 1
# LightGBM's Tree(const char*) reads at most this many key=value lines per tree; a longer
# block would end its tree parse early and silently drop the trees after it.
_MAX_TREE_LINES: Final = 22
_CATEGORICAL: Final = 1
_KNOWN_DECISION_BITS: Final = 0x0F
_MISSING_TYPE_UNDEFINED: Final = 3

# Strict number syntax: whatever LightGBM writes, and nothing that LightGBM's parsers and
# Python's float()/int() could read differently (no "_", no spaces, no "nan", ASCII only).
_FLOAT: Final = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,4})?|-?inf"
_FLOATS: Final = re.compile(rf"(?:{_FLOAT})(?: (?:{_FLOAT}))*")
_INTS: Final = re.compile(r"-?[0-9]{1,10}(?: -?[0-9]{1,10})*")
_ONE_FLOAT: Final = re.compile(_FLOAT)

_TREE_KEYS: Final = frozenset(
    {
        "num_leaves",
        "num_cat",
        "split_feature",
        "split_gain",
        "threshold",
        "decision_type",
        "left_child",
        "right_child",
        "leaf_value",
        "leaf_weight",
        "leaf_count",
        "internal_value",
        "internal_weight",
        "internal_count",
        "cat_boundaries",
        "cat_threshold",
        "is_linear",
        "shrinkage",
    }
)
_LINEAR_KEYS: Final = frozenset({"leaf_const", "num_features", "leaf_features", "leaf_coeff"})


class UnsupportedModel(EngineError):
    """A model text the tree kernel would not score exactly; the message says why.

    Such a model must be served by the LightGBM C-API path, never by the kernel.
    """


# --------------------------------------------------------------------------- numbers


def _lightgbm_pow(base: float, power: int) -> float:
    """``Common::Pow<double>``: the exact sequence of multiplications LightGBM performs."""
    if power < 0:
        return 1.0 / _lightgbm_pow(base, -power)
    if power == 0:
        return 1.0
    if power % 2 == 0:
        return _lightgbm_pow(base * base, power // 2)
    if power % 3 == 0:
        return _lightgbm_pow(base * base * base, power // 3)
    return base * _lightgbm_pow(base, power - 1)


def lightgbm_atof(token: str) -> float:
    """Parse a number exactly as LightGBM's ``Common::Atof`` does (not correctly rounded).

    LightGBM reads ``internal_value`` and the objective's ``sigmoid`` with this function, so
    the doubles it holds for them can differ from ``float(token)`` in the last bits. This is
    the same sequence of double operations: digits accumulated as ``value * 10 + digit``,
    the fraction as ``digit + right * 10`` divided by ``Pow(10, n)``, the exponent applied
    as a product of 1e50, 1e8 and 10 factors (capped at 308), and ``inf`` read as 1e308.

    Args:
        token: One number in the strict syntax of model text (``-1.25e-3``, ``7``, ``inf``).

    Returns:
        The double LightGBM would hold.

    Raises:
        UnsupportedModel: ``token`` is not a number in that syntax.
    """
    if _ONE_FLOAT.fullmatch(token) is None:
        raise UnsupportedModel(f"model text is malformed: {token!r} is not a number")
    sign = 1.0
    body = token
    if body.startswith("-"):
        sign = -1.0
        body = body[1:]
    if body == "inf":
        return sign * 1e308
    mantissa, has_exponent, exponent_text = body.replace("E", "e").partition("e")
    whole, has_fraction, fraction = mantissa.partition(".")
    value = 0.0
    for digit in whole:
        value = value * 10.0 + float(ord(digit) - 48)
    if has_fraction:
        right = 0.0
        for digit in fraction:
            right = float(ord(digit) - 48) + right * 10.0
        value += right / _lightgbm_pow(10.0, len(fraction))
    negative_exponent = False
    scale = 1.0
    if has_exponent:
        if exponent_text[0] in "+-":
            negative_exponent = exponent_text[0] == "-"
            exponent_text = exponent_text[1:]
        exponent = min(int(exponent_text), 308)
        while exponent >= 50:
            scale *= 1e50
            exponent -= 50
        while exponent >= 8:
            scale *= 1e8
            exponent -= 8
        while exponent > 0:
            scale *= 10.0
            exponent -= 1
    return sign * (value / scale if negative_exponent else value * scale)


def _floats(key: str, text: str, count: int) -> list[float]:
    """``count`` correctly rounded doubles (LightGBM's ``StringToArray<double>``)."""
    if count == 0 and text == "":
        return []
    if _FLOATS.fullmatch(text) is None:
        raise UnsupportedModel(f"model text is malformed: {key} is not a list of numbers")
    values = [float(token) for token in text.split(" ")]
    if len(values) != count:
        raise UnsupportedModel(
            f"model text is malformed: {key} has {len(values)} values, expected {count}"
        )
    return values


def _atof_floats(key: str, text: str, count: int) -> list[float]:
    """``count`` doubles as LightGBM's ``StringToArrayFast<double>`` reads them."""
    if count == 0 and text == "":
        return []
    if _FLOATS.fullmatch(text) is None:
        raise UnsupportedModel(f"model text is malformed: {key} is not a list of numbers")
    values = [lightgbm_atof(token) for token in text.split(" ")]
    if len(values) != count:
        raise UnsupportedModel(
            f"model text is malformed: {key} has {len(values)} values, expected {count}"
        )
    return values


def _ints(key: str, text: str, count: int | None, low: int, high: int) -> list[int]:
    """Integers in ``[low, high]``; exactly ``count`` of them unless ``count`` is None."""
    if text == "" and count in (0, None):
        return []
    if _INTS.fullmatch(text) is None:
        raise UnsupportedModel(f"model text is malformed: {key} is not a list of integers")
    values = [int(token) for token in text.split(" ")]
    if count is not None and len(values) != count:
        raise UnsupportedModel(
            f"model text is malformed: {key} has {len(values)} values, expected {count}"
        )
    if any(value < low or value > high for value in values):
        raise UnsupportedModel(
            f"model text is malformed: {key} has a value outside [{low}, {high}]"
        )
    return values


def _int(key: str, text: str, low: int, high: int) -> int:
    return _ints(key, text, 1, low, high)[0]


# --------------------------------------------------------------------------- model text


@dataclass(frozen=True)
class ParsedTree:
    """One tree as LightGBM holds it: its own arrays, node numbers and leaf numbers.

    ``max_depth`` is LightGBM's ``max_depth_`` (deepest leaf; the root is at depth 0).
    Single-leaf trees have no nodes, ``leaf_count == [0]`` and depth 0.
    """

    num_leaves: int
    num_cat: int
    split_feature: list[int]
    threshold: list[float]
    decision_type: list[int]
    left_child: list[int]
    right_child: list[int]
    leaf_value: list[float]
    leaf_count: list[int]
    internal_value: list[float]
    internal_count: list[int]
    cat_boundaries: list[int]
    cat_threshold: list[int]
    max_depth: int


@dataclass(frozen=True)
class ParsedModel:
    """A checked model text: row width, output transform and trees in summation order."""

    num_features: int
    objective: int
    sigmoid: float
    trees: list[ParsedTree]


def _header_values(lines: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition("=")
        if key in values:
            raise UnsupportedModel(f"model text is malformed: header key {key!r} appears twice")
        values[key] = value
    return values


def _objective(header: dict[str, str]) -> tuple[int, float]:
    """The objective code and sigmoid, as LightGBM's ``CreateObjectiveFunction`` reads them."""
    text = header.get("objective")
    if text is None:
        raise UnsupportedModel(
            "the model has no objective (custom objective): its output transform is unknown"
        )
    parts = text.split(" ")
    if parts == ["regression"]:
        return OBJECTIVE_REGRESSION, 0.0
    if len(parts) == 2 and parts[0] == "binary" and parts[1].startswith("sigmoid:"):
        sigmoid = lightgbm_atof(parts[1][len("sigmoid:") :])
        if not (sigmoid > 0.0 and math.isfinite(sigmoid)):
            raise UnsupportedModel(f"binary objective with an invalid sigmoid: {text!r}")
        return OBJECTIVE_BINARY, sigmoid
    raise UnsupportedModel(
        f"objective {text!r} is not supported by the tree kernel (binary and plain regression only)"
    )


def _check_header(header: dict[str, str]) -> int:
    """Refuse what the kernel cannot score; return ``num_features``."""
    if header.get("version") != "v4":
        raise UnsupportedModel(
            f"model text version {header.get('version')!r} is not supported (expected 'v4')"
        )
    if "num_class" not in header:
        raise UnsupportedModel("model text is malformed: no num_class")
    num_class = _int("num_class", header["num_class"], -_INT32_MAX, _INT32_MAX)
    per_iteration = _int(
        "num_tree_per_iteration",
        header.get("num_tree_per_iteration", str(num_class)),
        -_INT32_MAX,
        _INT32_MAX,
    )
    if num_class != 1 or per_iteration != 1:
        raise UnsupportedModel(
            f"multiclass models are not supported by the tree kernel (num_class={num_class}, "
            f"num_tree_per_iteration={per_iteration}): it scores one output per row"
        )
    if "average_output" in header:
        raise UnsupportedModel(
            "models with averaged output (boosting=rf) are not supported by the tree kernel"
        )
    if "max_feature_idx" not in header:
        raise UnsupportedModel("model text is malformed: no max_feature_idx")
    return _int("max_feature_idx", header["max_feature_idx"], 0, _INT32_MAX - 1) + 1


def _tree_blocks(lines: list[str], start: int) -> tuple[list[dict[str, str]], list[int]]:
    """Split the trees from ``lines[start]`` on; return their key/values and first lines."""
    blocks: list[dict[str, str]] = []
    starts: list[int] = []
    index = start
    while True:
        while index < len(lines) and lines[index] == "":
            index += 1
        if index >= len(lines):
            raise UnsupportedModel("model text is truncated: no 'end of trees' line")
        line = lines[index]
        if line == "end of trees":
            return blocks, starts
        if line != f"Tree={len(blocks)}":
            raise UnsupportedModel(
                f"model text is malformed: expected 'Tree={len(blocks)}', found {line[:40]!r}"
            )
        starts.append(index)
        index += 1
        values: dict[str, str] = {}
        while index < len(lines) and lines[index] != "":
            key, equals, value = lines[index].partition("=")
            if not equals:
                raise UnsupportedModel(
                    f"model text is malformed: line {lines[index][:40]!r} in tree {len(blocks)}"
                )
            if key in values:
                raise UnsupportedModel(
                    f"model text is malformed: {key} appears twice in tree {len(blocks)}"
                )
            values[key] = value
            index += 1
        if len(values) > _MAX_TREE_LINES:
            raise UnsupportedModel(
                f"model text is malformed: tree {len(blocks)} has {len(values)} lines "
                f"(LightGBM reads at most {_MAX_TREE_LINES})"
            )
        blocks.append(values)


def _check_tree_sizes(
    text: str, header: dict[str, str], lines: list[str], starts: list[int]
) -> None:
    """A ``tree_sizes`` index must point exactly at the trees that were parsed in order.

    LightGBM's parallel parser jumps by these sizes; the C-API predictor drops the line and
    parses sequentially. Either way the trees must be the same ones the kernel compiles.
    """
    sizes_text = header.get("tree_sizes")
    if sizes_text is None:
        return
    sizes = _ints("tree_sizes", sizes_text, None, 1, _INT32_MAX)
    if len(sizes) != len(starts):
        raise UnsupportedModel(
            f"model text is malformed: tree_sizes lists {len(sizes)} trees, the text has "
            f"{len(starts)}"
        )
    if not starts:
        return
    # Byte offset of each line start (the index is in bytes of the UTF-8 text).
    encoded_lengths = [len(line.encode("utf-8")) + 1 for line in lines]
    offsets = [0]
    for length in encoded_lengths:
        offsets.append(offsets[-1] + length)
    position = offsets[starts[0]]
    tree_offsets = {offsets[line_index]: number for number, line_index in enumerate(starts)}
    for number, size in enumerate(sizes):
        if tree_offsets.get(position) != number:
            raise UnsupportedModel(
                f"model text is malformed: tree_sizes does not point at tree {number}"
            )
        position += size
    if position > len(text.encode("utf-8")):
        raise UnsupportedModel("model text is truncated: tree_sizes points past the end")


def _max_depth(tree_index: int, left: list[int], right: list[int], num_leaves: int) -> int:
    """Check that the children form one binary tree rooted at node 0; return its depth.

    Every node but the root and every leaf must have exactly one parent, and every node
    must be reachable from the root: then a walk always ends in a leaf.
    """
    num_nodes = num_leaves - 1
    node_parents = [0] * num_nodes
    leaf_parents = [0] * num_leaves
    for child in (*left, *right):
        if child >= 0:
            if child == 0 or child >= num_nodes:
                raise UnsupportedModel(
                    f"model text is malformed: tree {tree_index} has child node {child} "
                    f"outside 1..{num_nodes - 1}"
                )
            node_parents[child] += 1
        else:
            if ~child >= num_leaves:
                raise UnsupportedModel(
                    f"model text is malformed: tree {tree_index} has child leaf {~child} "
                    f"outside 0..{num_leaves - 1}"
                )
            leaf_parents[~child] += 1
    if any(count != 1 for count in node_parents[1:]) or any(count != 1 for count in leaf_parents):
        raise UnsupportedModel(
            f"model text is malformed: the children of tree {tree_index} do not form a tree"
        )
    depth = 0
    visited = 0
    stack = [(0, 0)]
    while stack:
        node, level = stack.pop()
        if node < 0:
            depth = max(depth, level)
            continue
        visited += 1
        stack.append((left[node], level + 1))
        stack.append((right[node], level + 1))
    if visited != num_nodes:
        raise UnsupportedModel(
            f"model text is malformed: tree {tree_index} has nodes unreachable from its root"
        )
    return depth


def _parse_tree(index: int, values: dict[str, str], num_features: int) -> ParsedTree:
    unknown = set(values) - _TREE_KEYS
    if "is_linear" in values and _int("is_linear", values["is_linear"], 0, _INT32_MAX) != 0:
        raise UnsupportedModel(
            "linear trees (linear_tree=True) are not supported by the tree kernel: "
            f"tree {index} has a linear model in its leaves"
        )
    if unknown & _LINEAR_KEYS:
        raise UnsupportedModel(f"linear tree keys in tree {index}: {sorted(unknown)}")
    if unknown:
        raise UnsupportedModel(f"model text has unknown keys in tree {index}: {sorted(unknown)}")
    for key in ("num_leaves", "num_cat", "leaf_value"):
        if key not in values:
            raise UnsupportedModel(f"model text is malformed: tree {index} has no {key}")
    num_leaves = _int("num_leaves", values["num_leaves"], 1, 1 << 24)
    num_cat = _int("num_cat", values["num_cat"], 0, 1 << 24)
    leaf_value = _floats("leaf_value", values["leaf_value"], num_leaves)
    if any(math.isnan(value) for value in leaf_value):
        raise UnsupportedModel(f"model text has a NaN leaf value in tree {index}")
    if num_leaves == 1:
        # LightGBM stops reading a single-leaf tree here: it predicts leaf_value[0].
        return ParsedTree(1, 0, [], [], [], [], [], leaf_value, [0], [], [], [], [], 0)

    num_nodes = num_leaves - 1
    for key in ("left_child", "right_child", "split_feature", "threshold"):
        if key not in values:
            raise UnsupportedModel(f"model text is malformed: tree {index} has no {key}")
    left = _ints("left_child", values["left_child"], num_nodes, -num_leaves, num_nodes - 1)
    right = _ints("right_child", values["right_child"], num_nodes, -num_leaves, num_nodes - 1)
    feature = _ints("split_feature", values["split_feature"], num_nodes, 0, num_features - 1)
    threshold = _floats("threshold", values["threshold"], num_nodes)
    # LightGBM defaults the arrays it does not require to zeros; so does the layout.
    decision = _ints(
        "decision_type", values.get("decision_type", " ".join(["0"] * num_nodes)), num_nodes, 0, 127
    )
    zeros = " ".join(["0"] * num_nodes)
    internal_value = _atof_floats("internal_value", values.get("internal_value", zeros), num_nodes)
    internal_count = _ints(
        "internal_count", values.get("internal_count", zeros), num_nodes, 0, _INT32_MAX
    )
    leaf_count = _ints(
        "leaf_count",
        values.get("leaf_count", " ".join(["0"] * num_leaves)),
        num_leaves,
        0,
        _INT32_MAX,
    )
    cat_boundaries: list[int] = []
    cat_threshold: list[int] = []
    if num_cat > 0:
        for key in ("cat_boundaries", "cat_threshold"):
            if key not in values:
                raise UnsupportedModel(f"model text is malformed: tree {index} has no {key}")
        cat_boundaries = _ints(
            "cat_boundaries", values["cat_boundaries"], num_cat + 1, 0, _INT32_MAX
        )
        if any(b > a for a, b in zip(cat_boundaries[1:], cat_boundaries, strict=False)):
            raise UnsupportedModel(f"model text is malformed: tree {index} cat_boundaries")
        cat_threshold = _ints(
            "cat_threshold", values["cat_threshold"], cat_boundaries[-1], 0, 2**32 - 1
        )
    for node in range(num_nodes):
        kind = decision[node]
        if kind & ~_KNOWN_DECISION_BITS or (kind >> 2) & 3 == _MISSING_TYPE_UNDEFINED:
            raise UnsupportedModel(
                f"tree {index} node {node} has decision_type {kind}: bits LightGBM does not define"
            )
        if kind & _CATEGORICAL:
            if num_cat == 0:
                raise UnsupportedModel(
                    f"tree {index} node {node} is a categorical split in a tree without "
                    "categorical sets (num_cat=0)"
                )
            cat_index = threshold[node]
            if not (cat_index.is_integer() and 0 <= cat_index < num_cat):
                raise UnsupportedModel(
                    f"model text is malformed: tree {index} node {node} names categorical "
                    f"set {cat_index}, the tree has {num_cat}"
                )
        elif math.isnan(threshold[node]):
            raise UnsupportedModel(f"model text has a NaN threshold in tree {index}")
    depth = _max_depth(index, left, right, num_leaves)
    return ParsedTree(
        num_leaves,
        num_cat,
        feature,
        threshold,
        decision,
        left,
        right,
        leaf_value,
        leaf_count,
        internal_value,
        internal_count,
        cat_boundaries,
        cat_threshold,
        depth,
    )


def parse_model(model_text: str | bytes) -> tuple[ParsedModel, bytes]:
    """Parse and check a model text exactly as LightGBM would load it.

    Args:
        model_text: The model as ``Booster.model_to_string()`` writes it (``str`` or UTF-8
            ``bytes``).

    Returns:
        The model, and the text's UTF-8 bytes (what a checksum of the text covers).

    Raises:
        UnsupportedModel: The text is malformed, or the model is one the tree kernel
            would not score exactly; the message says which and why.
    """
    if isinstance(model_text, str):
        text = model_text
        raw = model_text.encode("utf-8")
    else:
        raw = bytes(model_text)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsupportedModel(f"model text is not UTF-8: {exc}") from exc
    if "\0" in text:
        raise UnsupportedModel("model text contains a NUL byte; it is not a LightGBM model")
    if "\r" in text:
        raise UnsupportedModel("model text has '\\r' line endings; expected '\\n' only")
    lines = text.split("\n")
    first_tree = next(
        (i for i, line in enumerate(lines) if line.startswith("Tree=") or line == "end of trees"),
        None,
    )
    if first_tree is None:
        raise UnsupportedModel("model text is malformed or truncated: no trees")
    header = _header_values([line for line in lines[:first_tree] if line])
    num_features = _check_header(header)
    objective, sigmoid = _objective(header)
    blocks, starts = _tree_blocks(lines, first_tree)
    _check_tree_sizes(text, header, lines, starts)
    trees = [_parse_tree(i, values, num_features) for i, values in enumerate(blocks)]
    return ParsedModel(num_features, objective, sigmoid, trees), raw
