"""Compile a LightGBM text model into a flat binary layout the tree kernel scores in place.

Why a layout of our own:
    A LightGBM booster is a per-process heap structure: every worker parses ``model.txt``
    into its own copy (35 MiB for a 2,000-tree, 255-leaf model). The layout written here is
    a single read-only file that every worker memory-maps: the page cache holds it once per
    machine, and the compiled kernel (:mod:`engine.inference.tree_kernel`) walks the trees
    straight out of the mapping. The trees are the model text's trees, node for node, with
    the exact doubles LightGBM compares against; nothing is re-derived or approximated.

Exactness (what is copied from LightGBM 4.x, and how):
    * :mod:`engine.inference.lgbm_text` reads the text with LightGBM's own rules, so the
      layout holds the doubles LightGBM holds in memory: thresholds and leaf values
      correctly rounded, ``internal_value`` and ``sigmoid`` through a replay of LightGBM's
      imprecise ``Common::Atof`` (:func:`lightgbm_atof`).
    * Every node keeps its threshold, split feature and LightGBM's ``decision_type`` byte;
      children are LightGBM's children (a negative child ``c`` is leaf ``~c``, with
      LightGBM's leaf numbering). The kernel reproduces ``Tree::NumericalDecision`` /
      ``Tree::CategoricalDecision`` on them. Only the storage order of a tree's internal
      nodes differs from LightGBM's (see ``nodes`` below): the trees are the same trees.

What is refused (:class:`UnsupportedModel`), because the kernel would not score it exactly:
    linear trees (``is_linear``), more than one output per row (multiclass, ``num_class`` or
    ``num_tree_per_iteration`` not 1), averaged output (random forest), objectives other than
    ``binary sigmoid:<s>`` and plain ``regression``, decision bits LightGBM does not define
    (missing type 3, bits 4-7), a categorical split in a tree without categorical sets,
    model text versions other than ``v4``, and anything malformed: unknown tree keys,
    counts that disagree, children that do not form one tree, features outside
    ``max_feature_idx``, NaN thresholds or leaf values, a ``tree_sizes`` index that does
    not match the trees, carriage returns, text that stops before ``end of trees``, more
    than :data:`MAX_FEATURES` features, a tree deeper than :data:`MAX_TREE_DEPTH` levels.
    Refusing is always safe: such a model keeps the LightGBM C-API path.

Binary layout, version 1 (every integer and float little-endian, no implicit padding):

    Header, 256 bytes:

    ====== ====== ======== ==============================================================
    offset size   type     field
    ====== ====== ======== ==============================================================
    0      8      bytes    magic ``b"MLSVTREE"``
    8      4      uint32   layout version (1)
    12     4      uint32   header size (256)
    16     8      uint64   file size in bytes (the whole file, header included)
    24     4      uint32   CRC-32 (zlib) of the whole file with these 4 bytes read as zero
    28     4      uint32   flags (0; reserved)
    32     4      int32    num_features (LightGBM's ``max_feature_idx + 1``: the row width;
                           1 to 2**20)
    36     4      int32    num_trees
    40     4      int32    num_nodes: internal nodes of all trees
    44     4      int32    num_leaves: leaves of all trees
    48     4      int32    num_cat_bounds: entries of the categorical-boundary section
    52     4      int32    num_cat_words: 32-bit words of all categorical bitsets
    56     4      uint32   objective: 1 = binary (``1 / (1 + exp(-sigmoid * raw))``),
                           2 = regression (identity)
    60     4      uint32   reserved (0)
    64     8      float64  sigmoid (binary; 0.0 for regression)
    72     32     bytes    SHA-256 of the model text the layout was compiled from
    104    24     -        reserved (zero)
    128    128    -        section table: 8 entries of (uint64 offset, uint64 size in
                           bytes), in the section order below
    ====== ====== ======== ==============================================================

    Sections follow in this order, each starting at a multiple of 64 bytes (cache-line
    aligned in the mapping; the gaps are zero), none overlapping, the last one ending the
    file:

    0. ``trees``: num_trees records of 8 int32 (32 bytes): ``node_offset``, ``num_nodes``,
       ``leaf_offset``, ``num_leaves``, ``cat_offset``, ``num_cat``, ``max_depth``,
       ``reserved`` (0). A tree's nodes are ``nodes[node_offset : node_offset +
       num_nodes]`` with ``num_nodes == num_leaves - 1``, its leaves likewise from
       ``leaf_offset``; trees are packed back to back in model order (the order their
       outputs are summed). Node indices inside a tree are local, as in LightGBM: the
       root is node 0, or leaf 0 when the tree is a single leaf (``num_nodes == 0``).
       ``max_depth`` is LightGBM's ``max_depth_`` (deepest leaf, root at depth 0): the
       path length TreeSHAP allocates for (at most :data:`MAX_TREE_DEPTH`).
    1. ``nodes``: num_nodes records of 24 bytes: ``threshold`` float64, ``left`` int32,
       ``right`` int32, ``feature`` int32, ``decision_type`` uint8, 3 zero bytes.
       ``decision_type`` is LightGBM's byte: bit 0 categorical, bit 1 default left, bits 2-3
       missing type (0 none, 1 zero, 2 NaN). A child ``c >= 0`` is node ``c`` of the same
       tree; ``c < 0`` is leaf ``~c``. For a categorical split ``threshold`` is, as in
       LightGBM, the index (an integral double) of the split's bitset among the tree's
       ``num_cat`` sets. Two choices make walks touch few cache lines (a large model's
       single-row time is mostly waiting for memory): the fields a step reads share one
       record instead of five parallel arrays, and each tree's nodes are stored depth
       first with the busier child (more training rows, ``internal_count``/``leaf_count``)
       first, so a walk mostly steps to the next record. Node ``k`` of the layout is
       therefore generally not LightGBM's node ``k``; the root is node 0 in both, and
       leaves keep LightGBM's numbers.
    2. ``leaf_values``: num_leaves float64.
    3. ``leaf_counts``: num_leaves int32 (LightGBM's ``leaf_count``: TreeSHAP's cover; 0
       for a single-leaf tree, whose counts LightGBM does not load).
    4. ``internal_values``: num_nodes float64 (``internal_value`` as LightGBM parses it),
       in the order of ``nodes``.
    5. ``internal_counts``: num_nodes int32 (``internal_count``: TreeSHAP's cover), in the
       order of ``nodes``.
    6. ``cat_bounds``: num_cat_bounds int32. A tree with ``num_cat > 0`` owns
       ``num_cat + 1`` entries from ``cat_offset``; set ``k`` of that tree is
       ``cat_words[cat_bounds[cat_offset + k] : cat_bounds[cat_offset + k + 1]]``
       (LightGBM's ``cat_boundaries``, made global to the file). A tree without
       categorical splits owns no entry.
    7. ``cat_words``: num_cat_words uint32: the bitsets (``cat_threshold``); category ``c``
       is in a set when bit ``c % 32`` of word ``c / 32`` is 1.

    Readers must check everything before use (:func:`read_header` does the header, the
    section table and the checksum; the C kernel re-checks those and every tree and node).
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from engine.errors import EngineError
from engine.inference.lgbm_text import (
    OBJECTIVE_BINARY,
    OBJECTIVE_REGRESSION,
    ParsedModel,
    ParsedTree,
    UnsupportedModel,
    lightgbm_atof,
    parse_model,
)

__all__ = [
    "HEADER_SIZE",
    "LAYOUT_VERSION",
    "MAGIC",
    "MAX_FEATURES",
    "MAX_TREE_DEPTH",
    "NODE_DTYPE",
    "OBJECTIVE_BINARY",
    "OBJECTIVE_REGRESSION",
    "SECTION_NAMES",
    "TREE_DTYPE",
    "LayoutError",
    "LayoutHeader",
    "UnsupportedModel",
    "compile_model",
    "layout_checksum",
    "lightgbm_atof",
    "read_header",
    "write_layout",
]

MAGIC: Final = b"MLSVTREE"
LAYOUT_VERSION: Final = 1
HEADER_SIZE: Final = 256
SECTION_ALIGNMENT: Final = 64
SECTION_NAMES: Final = (
    "trees",
    "nodes",
    "leaf_values",
    "leaf_counts",
    "internal_values",
    "internal_counts",
    "cat_bounds",
    "cat_words",
)

_FIXED: Final = struct.Struct("<8sIIQIIiiiiiiIId32s24x")
_SECTION: Final = struct.Struct("<QQ")
_CHECKSUM_OFFSET: Final = 24
_INT32_MAX: Final = 2**31 - 1
# The widest row a layout may declare: every kernel allocates a row of this many doubles,
# so a hostile header must not be able to ask for gigabytes. LightGBM models of more
# features are refused (they keep the C-API path).
MAX_FEATURES: Final = 1 << 20
# The deepest tree a layout may hold (the C kernel checks it too): TreeSHAP recurses once
# per level and needs (d + 1)(d + 2) / 2 path elements, so depth is bounded like width.
# Deeper models (only possible with num_leaves far above any useful setting) are refused.
MAX_TREE_DEPTH: Final = 1000

TREE_DTYPE: Final = np.dtype(
    [
        ("node_offset", "<i4"),
        ("num_nodes", "<i4"),
        ("leaf_offset", "<i4"),
        ("num_leaves", "<i4"),
        ("cat_offset", "<i4"),
        ("num_cat", "<i4"),
        ("max_depth", "<i4"),
        ("reserved", "<i4"),
    ]
)
NODE_DTYPE: Final = np.dtype(
    [
        ("threshold", "<f8"),
        ("left", "<i4"),
        ("right", "<i4"),
        ("feature", "<i4"),
        ("decision_type", "u1"),
        ("pad", "V3"),
    ]
)
_RECORD_SIZES: Final = (TREE_DTYPE.itemsize, NODE_DTYPE.itemsize, 8, 4, 8, 4, 4, 4)
assert TREE_DTYPE.itemsize == 32
assert NODE_DTYPE.itemsize == 24
assert _FIXED.size + len(SECTION_NAMES) * _SECTION.size == HEADER_SIZE


class LayoutError(EngineError):
    """A layout file is truncated, corrupted or of an unknown version."""


# --------------------------------------------------------------------------- layout


def _aligned(offset: int) -> int:
    return (offset + SECTION_ALIGNMENT - 1) // SECTION_ALIGNMENT * SECTION_ALIGNMENT


def _count(tree: ParsedTree, child: int) -> int:
    return tree.internal_count[child] if child >= 0 else tree.leaf_count[~child]


def _walk_order(tree: ParsedTree) -> list[int]:
    """LightGBM node numbers in storage order: depth first, the busier child first.

    A walk then mostly steps to the next record (the child more training rows took), so a
    root-to-leaf path touches few cache lines and pages. Ties keep the left child first.
    """
    order: list[int] = []
    stack = [0]
    while stack:
        node = stack.pop()
        order.append(node)
        left, right = tree.left_child[node], tree.right_child[node]
        first, second = (right, left) if _count(tree, right) > _count(tree, left) else (left, right)
        for child in (second, first):  # pushed last, visited first
            if child >= 0:
                stack.append(child)
    return order


def _renumbered(child: int, renumber: list[int]) -> int:
    return renumber[child] if child >= 0 else child


def _sections(model: ParsedModel) -> tuple[list[bytes], dict[str, int]]:
    """The eight sections' bytes and the header's totals."""
    trees = model.trees
    num_nodes = sum(tree.num_leaves - 1 for tree in trees)
    num_leaves = sum(tree.num_leaves for tree in trees)
    num_cat_bounds = sum(tree.num_cat + 1 for tree in trees if tree.num_cat > 0)
    num_cat_words = sum(len(tree.cat_threshold) for tree in trees)
    if max(num_nodes, num_leaves, num_cat_bounds, num_cat_words) > _INT32_MAX:
        raise UnsupportedModel("model is too large for the layout's 32-bit indices")

    tree_records = np.zeros(len(trees), dtype=TREE_DTYPE)
    nodes = np.zeros(num_nodes, dtype=NODE_DTYPE)
    leaf_values = np.empty(num_leaves, dtype="<f8")
    leaf_counts = np.empty(num_leaves, dtype="<i4")
    internal_values = np.empty(num_nodes, dtype="<f8")
    internal_counts = np.empty(num_nodes, dtype="<i4")
    cat_bounds = np.empty(num_cat_bounds, dtype="<i4")
    cat_words = np.empty(num_cat_words, dtype="<u4")

    node_at = leaf_at = bound_at = word_at = 0
    for number, tree in enumerate(trees):
        count = tree.num_leaves - 1
        tree_records[number] = (
            node_at,
            count,
            leaf_at,
            tree.num_leaves,
            bound_at,
            tree.num_cat,
            tree.max_depth,
            0,
        )
        if count:
            order = _walk_order(tree)
            renumber = [0] * count
            for position, node in enumerate(order):
                renumber[node] = position
            block = nodes[node_at : node_at + count]
            block["threshold"] = [tree.threshold[node] for node in order]
            block["left"] = [_renumbered(tree.left_child[node], renumber) for node in order]
            block["right"] = [_renumbered(tree.right_child[node], renumber) for node in order]
            block["feature"] = [tree.split_feature[node] for node in order]
            block["decision_type"] = [tree.decision_type[node] for node in order]
            internal_values[node_at : node_at + count] = [tree.internal_value[n] for n in order]
            internal_counts[node_at : node_at + count] = [tree.internal_count[n] for n in order]
        leaf_values[leaf_at : leaf_at + tree.num_leaves] = tree.leaf_value
        leaf_counts[leaf_at : leaf_at + tree.num_leaves] = tree.leaf_count
        if tree.num_cat > 0:
            # LightGBM's per-tree boundaries become indexes into the file's word section.
            base = word_at - tree.cat_boundaries[0]
            cat_bounds[bound_at : bound_at + tree.num_cat + 1] = [
                base + bound for bound in tree.cat_boundaries
            ]
            bound_at += tree.num_cat + 1
            words = tree.cat_threshold[tree.cat_boundaries[0] :]
            cat_words[word_at : word_at + len(words)] = words
            word_at += len(words)
        node_at += count
        leaf_at += tree.num_leaves
    # A tree's words before its first boundary are never read; they are not copied.
    cat_words = cat_words[:word_at]
    arrays: list[npt.NDArray[np.generic]] = [
        tree_records,
        nodes,
        leaf_values,
        leaf_counts,
        internal_values,
        internal_counts,
        cat_bounds,
        cat_words,
    ]
    totals = {
        "num_nodes": num_nodes,
        "num_leaves": num_leaves,
        "num_cat_bounds": num_cat_bounds,
        "num_cat_words": word_at,
    }
    return [array.tobytes() for array in arrays], totals


def layout_checksum(data: bytes | bytearray | memoryview | mmap.mmap) -> int:
    """CRC-32 of a layout with its checksum field read as zero (header offset 24)."""
    # The views are released on the way out (even on error), so that a mapping can close.
    with memoryview(data) as raw, raw.cast("B") as view:
        crc = zlib.crc32(view[:_CHECKSUM_OFFSET])
        crc = zlib.crc32(b"\0\0\0\0", crc)
        with view[_CHECKSUM_OFFSET + 4 :] as rest:
            return zlib.crc32(rest, crc)


def compile_model(model_text: str | bytes) -> bytes:
    """Compile a LightGBM text model into the binary layout described in this module.

    Args:
        model_text: The model as ``Booster.model_to_string()`` writes it (``str`` or UTF-8
            ``bytes``); every tree in the text is compiled, as the C-API predictor uses them.

    Returns:
        The layout file's bytes.

    Raises:
        UnsupportedModel: The model (or its text) is one the kernel must not score; the
            message says why.
    """
    model, raw = parse_model(model_text)
    if model.num_features > MAX_FEATURES:
        raise UnsupportedModel(
            f"the model has {model.num_features} features; the tree kernel takes at most "
            f"{MAX_FEATURES}"
        )
    deepest = max((tree.max_depth for tree in model.trees), default=0)
    if deepest > MAX_TREE_DEPTH:
        raise UnsupportedModel(
            f"a tree of the model is {deepest} levels deep; the tree kernel takes at most "
            f"{MAX_TREE_DEPTH} (TreeSHAP recurses once per level)"
        )
    sections, totals = _sections(model)
    placed: list[tuple[int, int]] = []
    position = HEADER_SIZE
    for section in sections:
        position = _aligned(position)
        placed.append((position, len(section)))
        position += len(section)
    file_size = position
    buffer = bytearray(file_size)
    _FIXED.pack_into(
        buffer,
        0,
        MAGIC,
        LAYOUT_VERSION,
        HEADER_SIZE,
        file_size,
        0,
        0,
        model.num_features,
        len(model.trees),
        totals["num_nodes"],
        totals["num_leaves"],
        totals["num_cat_bounds"],
        totals["num_cat_words"],
        model.objective,
        0,
        model.sigmoid,
        hashlib.sha256(raw).digest(),
    )
    for number, (offset, size) in enumerate(placed):
        _SECTION.pack_into(buffer, _FIXED.size + number * _SECTION.size, offset, size)
        buffer[offset : offset + size] = sections[number]
    struct.pack_into("<I", buffer, _CHECKSUM_OFFSET, layout_checksum(buffer))
    return bytes(buffer)


def write_layout(model_text: str | bytes, path: Path) -> None:
    """Compile ``model_text`` and write the layout to ``path`` atomically.

    The bytes go to a temporary file in the same directory, are flushed to disk, and are
    renamed over ``path``: a reader never maps a half-written layout.

    Raises:
        UnsupportedModel: As :func:`compile_model`.
        OSError: The file cannot be written.
    """
    data = compile_model(model_text)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class LayoutHeader:
    """The checked header of a layout.

    Attributes:
        num_features: Row width (LightGBM's ``max_feature_idx + 1``).
        num_trees: Trees, summed in order.
        num_nodes: Internal nodes of all trees.
        num_leaves: Leaves of all trees.
        num_cat_bounds: Entries of the categorical-boundary section.
        num_cat_words: Words of all categorical bitsets.
        objective: :data:`OBJECTIVE_BINARY` or :data:`OBJECTIVE_REGRESSION`.
        sigmoid: The binary objective's sigmoid parameter (0.0 for regression).
        source_sha256: SHA-256 of the model text the layout was compiled from.
        sections: ``(offset, size)`` in bytes per section, in :data:`SECTION_NAMES` order.
        file_size: Bytes in the file.
    """

    num_features: int
    num_trees: int
    num_nodes: int
    num_leaves: int
    num_cat_bounds: int
    num_cat_words: int
    objective: int
    sigmoid: float
    source_sha256: bytes
    sections: tuple[tuple[int, int], ...]
    file_size: int


def read_header(
    data: bytes | bytearray | memoryview | mmap.mmap, verify_checksum: bool = True
) -> LayoutHeader:
    """Check a layout's header, section table and (by default) checksum against its bytes.

    Nothing past the header is interpreted here; the C kernel checks every tree and node
    before it scores.

    Args:
        data: The whole layout (bytes, or a buffer such as an ``mmap``).
        verify_checksum: Recompute the CRC-32 of the whole file (touches every page).

    Returns:
        The header.

    Raises:
        LayoutError: The bytes are not a complete, intact layout of this version.
    """
    # The views are released on the way out, error or not: an mmap cannot be closed while
    # a view of it is alive (and a traceback would keep one alive).
    with memoryview(data) as raw, raw.cast("B") as view:
        return _checked_header(view, verify_checksum)


def _checked_header(view: memoryview, verify_checksum: bool) -> LayoutHeader:
    length = len(view)
    if length < HEADER_SIZE:
        raise LayoutError(f"layout is truncated: {length} bytes, the header alone is {HEADER_SIZE}")
    (
        magic,
        version,
        header_size,
        file_size,
        checksum,
        flags,
        num_features,
        num_trees,
        num_nodes,
        num_leaves,
        num_cat_bounds,
        num_cat_words,
        objective,
        reserved,
        sigmoid,
        source_sha256,
    ) = _FIXED.unpack_from(view, 0)
    if magic != MAGIC:
        raise LayoutError("not a tree layout (bad magic)")
    if version != LAYOUT_VERSION:
        raise LayoutError(f"layout version {version} is not supported (expected {LAYOUT_VERSION})")
    if header_size != HEADER_SIZE or flags != 0 or reserved != 0:
        raise LayoutError("layout header is corrupted")
    if file_size != length:
        raise LayoutError(
            f"layout is truncated or padded: the header says {file_size} bytes, the file has "
            f"{length}"
        )
    counts = (
        num_trees,
        num_nodes,
        num_leaves,
        num_leaves,
        num_nodes,
        num_nodes,
        num_cat_bounds,
        num_cat_words,
    )
    if min(counts) < 0:
        raise LayoutError("layout header has a negative count")
    if not 1 <= num_features <= MAX_FEATURES:
        raise LayoutError(f"layout header has {num_features} features (at most {MAX_FEATURES})")
    if objective == OBJECTIVE_BINARY:
        if not (sigmoid > 0.0 and math.isfinite(sigmoid)):
            raise LayoutError("layout header has an invalid sigmoid")
    elif objective != OBJECTIVE_REGRESSION:
        raise LayoutError(f"layout header has an unknown objective {objective}")
    sections: list[tuple[int, int]] = []
    end = HEADER_SIZE
    for number, name in enumerate(SECTION_NAMES):
        offset, size = _SECTION.unpack_from(view, _FIXED.size + number * _SECTION.size)
        if offset % SECTION_ALIGNMENT or offset < end or size > length - offset:
            raise LayoutError(f"layout section {name} lies outside the file or overlaps another")
        if size != counts[number] * _RECORD_SIZES[number]:
            raise LayoutError(f"layout section {name} has the wrong size for its count")
        sections.append((offset, size))
        end = offset + size
    if end != length:
        raise LayoutError("layout has bytes after its last section")
    if verify_checksum and layout_checksum(view) != checksum:
        raise LayoutError("layout is corrupted: checksum mismatch")
    return LayoutHeader(
        num_features,
        num_trees,
        num_nodes,
        num_leaves,
        num_cat_bounds,
        num_cat_words,
        objective,
        sigmoid,
        bytes(source_sha256),
        tuple(sections),
        file_size,
    )
