/*
 * engine.inference._tree_kernel: scores rows with the trees of a compiled layout, in place.
 *
 * The layout (engine/inference/tree_layout.py documents every byte of it) is a read-only
 * buffer, usually an mmap shared by every worker of the machine. A Kernel object holds a
 * buffer export of it (so the mapping cannot be closed under the C code), checks every
 * header field, section, tree and node once when it is created, and then walks the trees
 * straight out of the buffer.
 *
 * Exactness: the walk is LightGBM 4.x's, decision for decision (include/LightGBM/tree.h):
 *
 *   input     The dense row a LightGBM predictor sees: c_api.cpp turns a row into
 *             (index, value) pairs keeping only |value| > kZeroThreshold or NaN; every
 *             other value reads back as 0.0 from the zeroed predict buffer.
 *   numerical NumericalDecision: NaN becomes 0.0 unless the missing type is NaN; missing
 *             type Zero sends IsZero values (|v| <= kZeroThreshold) the default way,
 *             missing type NaN sends NaN the default way; otherwise `v <= threshold`
 *             goes left.
 *   category  CategoricalDecision: NaN goes right; static_cast<int>(v) (truncation), a
 *             negative result goes right; then bit (v % 32) of word (v / 32) of the
 *             split's bitset, right when the word is past the set. A value outside int's
 *             range goes right on every platform (x86-64 yields INT_MIN, others saturate
 *             past any bitset).
 *   sum       GBDT::PredictRaw: output starts at 0.0 and each tree's leaf value is added
 *             in model order, in double.
 *   output    BinaryLogloss::ConvertOutput: 1.0 / (1.0 + exp(-sigmoid * raw)) in double
 *             (LightGBM writes 1.0f, promoted to double); regression is the identity.
 *   contrib   GBDT::PredictContrib / Tree::PredictContrib: per tree in model order, the
 *             bias (last column) gets Tree::ExpectedValue (leaf values weighted by
 *             leaf_count / internal_count of the root, in leaf order), then Tree::TreeSHAP
 *             recurses hot child first with LightGBM's ExtendPath / UnwindPath /
 *             UnwoundPathSum arithmetic, operation for operation, on the same prepared row
 *             and decisions as a walk.
 *
 * The build passes -ffp-contract=off so no multiply-add is ever fused (LightGBM's wheel is
 * built for baseline x86-64, which has no FMA); the kernel has no multiply-add on its
 * scoring path anyway.
 *
 * Speed: a walk is a chain of dependent loads; on a large model most of them miss the
 * caches, so one tree at a time leaves the memory system idle while each load is in
 * flight. The kernel walks TREE_LANES trees of one row (or one tree for ROW_LANES rows of a
 * batch) in lockstep, so that many independent loads are in flight at once; leaf values
 * are still added in tree order. A step is a few instructions (only the rare cases,
 * categorical splits and missing values, branch; the direction is an index), so that
 * many lanes fit in the CPU's out-of-order window. Batches go tree-major over blocks of
 * rows, so a tree's nodes are reused from cache by every row of the block.
 *
 * Threading: predict_row/predict_row_raw use the bound row and a per-object scratch
 * buffer: one thread at a time per Kernel (as LightGBMPredictor). predict_matrix and
 * contributions_matrix use their own buffers and release the GIL on large batches;
 * release() refuses while a batch runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the tree layout is little-endian; this kernel reads it natively on little-endian hosts only"
#endif

#define HEADER_SIZE 256
#define FIXED_SIZE 128
#define NUM_SECTIONS 8
#define LAYOUT_VERSION 1
#define SECTION_ALIGNMENT 64
#define OBJECTIVE_BINARY 1
#define OBJECTIVE_REGRESSION 2
/* The widest row a layout may declare (tree_layout.MAX_FEATURES): rows are allocated at
 * this width, so a hostile header cannot ask for gigabytes. */
#define MAX_FEATURES (1 << 20)
/* The deepest tree a layout may hold: TreeSHAP recurses once per level and allocates
 * (d + 1)(d + 2) / 2 path elements, so a hostile depth must not exhaust the C stack or
 * memory. tree_layout.MAX_TREE_DEPTH refuses deeper models at publish. */
#define MAX_TREE_DEPTH 1000

#define SECTION_TREES 0
#define SECTION_NODES 1
#define SECTION_LEAF_VALUES 2
#define SECTION_LEAF_COUNTS 3
#define SECTION_INTERNAL_VALUES 4
#define SECTION_INTERNAL_COUNTS 5
#define SECTION_CAT_BOUNDS 6
#define SECTION_CAT_WORDS 7

#define DECISION_CATEGORICAL 1
#define DECISION_DEFAULT_LEFT 2
#define DECISION_KNOWN_BITS 0x0F

/* Prepared-row flags, chosen so that (flags & missing_type) says "take the default way":
 * missing type 1 (Zero) tests FLAG_ZERO, missing type 2 (NaN) tests FLAG_NAN. */
#define FLAG_ZERO 1
#define FLAG_NAN 2

/* Trees of one row walked in lockstep, and rows of a batch walked in lockstep through one
 * tree (measured on a 1,337 x 255-leaf model and the 75-tree demo model; see the module
 * docstring of engine/inference/tree_kernel.py). */
#ifndef TREE_LANES /* -DTREE_LANES=N builds a variant to measure; 8 to 16 are best here */
#define TREE_LANES 16
#endif
#define ROW_LANES 8
/* Rows per block of a batch: a tree's nodes stay cached while the block walks it. */
#define BLOCK_ROWS 64
/* Batches with at least this many tree walks release the GIL. */
#define GIL_RELEASE_WALKS 20000
/* TreeSHAP visits every node of a tree (a walk visits one path): release the GIL from this
 * many (row, tree) pairs on. */
#define GIL_RELEASE_SHAP_TREES 500

static const char MAGIC[8] = {'M', 'L', 'S', 'V', 'T', 'R', 'E', 'E'};

/* LightGBM's kZeroThreshold is the float literal 1e-35f widened to double (meta.h). */
static const double kZeroThreshold = (double)1e-35f;

typedef struct {
    double threshold;
    int32_t child[2]; /* left, right */
    int32_t feature;
    uint8_t decision_type;
    uint8_t pad[3];
} Node;

typedef struct {
    int32_t node_offset;
    int32_t num_nodes;
    int32_t leaf_offset;
    int32_t num_leaves;
    int32_t cat_offset;
    int32_t num_cat;
    int32_t max_depth;
    int32_t reserved;
} TreeRecord;

_Static_assert(sizeof(Node) == 24, "a node record is 24 bytes");
_Static_assert(offsetof(Node, child) == 8, "node.left at 8, node.right at 12");
_Static_assert(offsetof(Node, feature) == 16, "node.feature at 16");
_Static_assert(offsetof(Node, decision_type) == 20, "node.decision_type at 20");
_Static_assert(sizeof(TreeRecord) == 32, "a tree record is 32 bytes");
_Static_assert(sizeof(double) == 8, "IEEE-754 binary64 doubles");

typedef struct {
    const TreeRecord *trees;
    const Node *nodes;
    const double *leaf_values;
    const int32_t *leaf_counts;
    const int32_t *internal_counts;
    const int32_t *cat_bounds;
    const uint32_t *cat_words;
    int32_t num_features;
    int32_t num_trees;
    int32_t objective;
    int32_t max_depth; /* the deepest tree's depth: TreeSHAP's path size */
    double sigmoid;
} Model;

typedef struct {
    PyObject_HEAD
    Py_buffer layout;
    Py_buffer row;
    int has_layout;
    int has_row;
    Py_ssize_t busy;
    Model model;
    double *scratch_values;
    uint8_t *scratch_flags;
    double *expected; /* each tree's expected value, computed on first contributions call */
} Kernel;

/* ------------------------------------------------------------------------ scoring */

/* The row as LightGBM's predict buffer holds it (values) plus the flags of each value. */
static inline void prepare_row(const double *in, int32_t n, double *values, uint8_t *flags) {
    for (int32_t i = 0; i < n; i++) {
        const double v = in[i];
        if (isnan(v)) {
            /* NumericalDecision turns NaN into 0.0 unless the missing type is NaN (which
             * tests FLAG_NAN first), and 0.0 is IsZero for missing type Zero. */
            values[i] = 0.0;
            flags[i] = FLAG_ZERO | FLAG_NAN;
        } else if (fabs(v) <= kZeroThreshold) {
            /* Dropped from the sparse row by the C API: reads back as 0.0. */
            values[i] = 0.0;
            flags[i] = FLAG_ZERO;
        } else {
            values[i] = v;
            flags[i] = 0;
        }
    }
}

static inline int32_t categorical_child(const Node *node, double v, uint8_t flag,
                                        const int32_t *tree_bounds, const uint32_t *words) {
    if (flag & FLAG_NAN) {
        return node->child[1];
    }
    /* static_cast<int> truncates toward zero: (-1, 0) is category 0; anything at or below
     * -1 is negative, and at or above 2^31 out of range: both go right. */
    if (!(v > -1.0 && v < 2147483648.0)) {
        return node->child[1];
    }
    const int32_t category = (int32_t)v;
    const int32_t set = (int32_t)node->threshold;
    const int32_t first = tree_bounds[set];
    const int32_t word = category / 32;
    if (word >= tree_bounds[set + 1] - first) {
        return node->child[1];
    }
    return ((words[first + word] >> (category % 32)) & 1u) ? node->child[0] : node->child[1];
}

static inline int32_t next_node(const Node *node, const double *values, const uint8_t *flags,
                                const int32_t *tree_bounds, const uint32_t *words) {
    const int32_t feature = node->feature;
    const uint32_t decision = node->decision_type;
    if (__builtin_expect(decision & DECISION_CATEGORICAL, 0)) {
        return categorical_child(node, values[feature], flags[feature], tree_bounds, words);
    }
    /* decision >> 2 is the missing type (bits 4-7 are checked to be zero at load), and
     * (flags & missing type) says the value takes the default way: rare, so a branch. */
    if (__builtin_expect((flags[feature] & (decision >> 2)) != 0, 0)) {
        return node->child[(decision & DECISION_DEFAULT_LEFT) ? 0 : 1];
    }
    /* The direction itself is data, unpredictable: an index, not a branch. `v > threshold`
     * is `!(v <= threshold)` here, since prepared values and numerical thresholds are
     * never NaN. */
    return node->child[values[feature] > node->threshold];
}

static inline int32_t root_of(const TreeRecord *tree) { return tree->num_nodes > 0 ? 0 : -1; }

/* Raw score of one prepared row. TREE_LANES trees are walked in lockstep (the lane loop is
 * unrolled so each lane's node index stays in a register), then their leaf values are
 * added in tree order; the trees left over are walked one by one, in order. */
static double raw_score(const Model *m, const double *values, const uint8_t *flags) {
    const TreeRecord *trees = m->trees;
    const uint32_t *words = m->cat_words;
    const int32_t num_trees = m->num_trees;
    double sum = 0.0;
    int32_t t = 0;
    for (; t + TREE_LANES <= num_trees; t += TREE_LANES) {
        const Node *base[TREE_LANES];
        const int32_t *bounds[TREE_LANES];
        int32_t node[TREE_LANES];
#pragma GCC unroll 16
        for (int l = 0; l < TREE_LANES; l++) {
            const TreeRecord *tree = &trees[t + l];
            base[l] = m->nodes + tree->node_offset;
            bounds[l] = m->cat_bounds + tree->cat_offset;
            node[l] = root_of(tree);
        }
        int active;
        do {
            active = 0;
#pragma GCC unroll 16
            for (int l = 0; l < TREE_LANES; l++) {
                if (node[l] >= 0) {
                    node[l] = next_node(base[l] + node[l], values, flags, bounds[l], words);
                    active = 1;
                }
            }
        } while (active);
#pragma GCC unroll 16
        for (int l = 0; l < TREE_LANES; l++) {
            sum += m->leaf_values[trees[t + l].leaf_offset + ~node[l]];
        }
    }
    for (; t < num_trees; t++) {
        const TreeRecord *tree = &trees[t];
        const Node *base = m->nodes + tree->node_offset;
        const int32_t *bounds = m->cat_bounds + tree->cat_offset;
        int32_t node = root_of(tree);
        while (node >= 0) {
            node = next_node(base + node, values, flags, bounds, words);
        }
        sum += m->leaf_values[tree->leaf_offset + ~node];
    }
    return sum;
}

static inline double transform(const Model *m, double raw) {
    if (m->objective == OBJECTIVE_BINARY) {
        return 1.0 / (1.0 + exp(-m->sigmoid * raw));
    }
    return raw;
}

/* Raw scores of `count` prepared rows (row r at values + r * width), tree-major: each tree
 * is walked for the whole block while its nodes are in cache, ROW_LANES rows in lockstep.
 * Every row still receives the trees' leaf values in tree order. */
static void raw_scores_block(const Model *m, const double *values, const uint8_t *flags,
                             int32_t count, double *sums) {
    const size_t width = (size_t)m->num_features;
    const uint32_t *words = m->cat_words;
    for (int32_t r = 0; r < count; r++) {
        sums[r] = 0.0;
    }
    for (int32_t t = 0; t < m->num_trees; t++) {
        const TreeRecord *tree = &m->trees[t];
        const Node *base = m->nodes + tree->node_offset;
        const int32_t *bounds = m->cat_bounds + tree->cat_offset;
        const double *leaves = m->leaf_values + tree->leaf_offset;
        const int32_t root = root_of(tree);
        int32_t r = 0;
        for (; r + ROW_LANES <= count; r += ROW_LANES) {
            int32_t node[ROW_LANES];
#pragma GCC unroll 16
            for (int l = 0; l < ROW_LANES; l++) {
                node[l] = root;
            }
            int active;
            do {
                active = 0;
#pragma GCC unroll 16
                for (int l = 0; l < ROW_LANES; l++) {
                    if (node[l] >= 0) {
                        const size_t row = (size_t)(r + l) * width;
                        node[l] = next_node(base + node[l], values + row, flags + row, bounds,
                                            words);
                        active = 1;
                    }
                }
            } while (active);
#pragma GCC unroll 16
            for (int l = 0; l < ROW_LANES; l++) {
                sums[r + l] += leaves[~node[l]];
            }
        }
        for (; r < count; r++) {
            const size_t row = (size_t)r * width;
            int32_t node = root;
            while (node >= 0) {
                node = next_node(base + node, values + row, flags + row, bounds, words);
            }
            sums[r] += leaves[~node];
        }
    }
}

/* ------------------------------------------------------------------------ TreeSHAP */

/* One element of TreeSHAP's unique path: a feature split on the way from the root, the
 * fraction of the training rows (zero) and of this row (one, 0 or 1) that flow through
 * it, and the permutation weight of the subsets of its size. */
typedef struct {
    int32_t feature;
    double zero_fraction;
    double one_fraction;
    double pweight;
} PathElement;

/* What one tree's recursion reads, resolved once per tree. */
typedef struct {
    const Node *nodes;
    const double *leaf_values;
    const int32_t *leaf_counts;
    const int32_t *internal_counts;
    const int32_t *bounds;
    const uint32_t *words;
} ShapTree;

/* The training rows that reached a node (c >= 0) or leaf (c < 0): TreeSHAP's cover. */
static inline double cover(const ShapTree *t, int32_t child) {
    return child >= 0 ? (double)t->internal_counts[child] : (double)t->leaf_counts[~child];
}

/* Tree::ExtendPath: append a split to the path and update every subset size's weight. The
 * arithmetic is written operation for operation as LightGBM's (tree.cpp), so the sums of
 * products round the same way. */
static void extend_path(PathElement *path, int32_t depth, double zero_fraction,
                        double one_fraction, int32_t feature) {
    path[depth].feature = feature;
    path[depth].zero_fraction = zero_fraction;
    path[depth].one_fraction = one_fraction;
    path[depth].pweight = depth == 0 ? 1.0 : 0.0;
    for (int32_t i = depth - 1; i >= 0; i--) {
        path[i + 1].pweight += one_fraction * path[i].pweight * (i + 1) / (double)(depth + 1);
        path[i].pweight = zero_fraction * path[i].pweight * (depth - i) / (double)(depth + 1);
    }
}

/* Tree::UnwindPath: remove element `index` (a feature seen again deeper down). */
static void unwind_path(PathElement *path, int32_t depth, int32_t index) {
    const double one_fraction = path[index].one_fraction;
    const double zero_fraction = path[index].zero_fraction;
    double next_one_portion = path[depth].pweight;
    for (int32_t i = depth - 1; i >= 0; i--) {
        if (one_fraction != 0) {
            const double kept = path[i].pweight;
            path[i].pweight = next_one_portion * (depth + 1) / (double)((i + 1) * one_fraction);
            next_one_portion =
                kept - path[i].pweight * zero_fraction * (depth - i) / (double)(depth + 1);
        } else {
            path[i].pweight = (path[i].pweight * (depth + 1)) / (double)(zero_fraction * (depth - i));
        }
    }
    for (int32_t i = index; i < depth; i++) {
        path[i].feature = path[i + 1].feature;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

/* Tree::UnwoundPathSum: the total weight of the path with element `index` unwound, without
 * modifying the path. */
static double unwound_path_sum(const PathElement *path, int32_t depth, int32_t index) {
    const double one_fraction = path[index].one_fraction;
    const double zero_fraction = path[index].zero_fraction;
    double next_one_portion = path[depth].pweight;
    double total = 0;
    for (int32_t i = depth - 1; i >= 0; i--) {
        if (one_fraction != 0) {
            const double part = next_one_portion * (depth + 1) / (double)((i + 1) * one_fraction);
            total += part;
            next_one_portion =
                path[i].pweight - part * zero_fraction * ((depth - i) / (double)(depth + 1));
        } else {
            total += (path[i].pweight / zero_fraction) / ((depth - i) / (double)(depth + 1));
        }
    }
    return total;
}

/* Tree::TreeSHAP: Lundberg et al.'s path-dependent TreeSHAP, recursing into the child the
 * row takes (hot) before the other (cold), as LightGBM does, so contributions accumulate
 * in the same order. `parent_path` holds the caller's path; this call's copy starts right
 * after it (the buffer is sized for the tree's depth, see tree_contributions). */
static void tree_shap(const ShapTree *t, const double *values, const uint8_t *flags,
                      double *phi, int32_t node, int32_t depth, PathElement *parent_path,
                      double parent_zero_fraction, double parent_one_fraction,
                      int32_t parent_feature) {
    PathElement *path = parent_path + depth;
    if (depth > 0) {
        memcpy(path, parent_path, sizeof(PathElement) * (size_t)depth);
    }
    extend_path(path, depth, parent_zero_fraction, parent_one_fraction, parent_feature);

    if (node < 0) {
        const double leaf_value = t->leaf_values[~node];
        for (int32_t i = 1; i <= depth; i++) {
            const double w = unwound_path_sum(path, depth, i);
            const PathElement *el = &path[i];
            phi[el->feature] += w * (el->one_fraction - el->zero_fraction) * leaf_value;
        }
        return;
    }
    const Node *split = &t->nodes[node];
    const int32_t hot = next_node(split, values, flags, t->bounds, t->words);
    const int32_t cold = hot == split->child[0] ? split->child[1] : split->child[0];
    const double w = cover(t, node);
    const double hot_zero_fraction = cover(t, hot) / w;
    const double cold_zero_fraction = cover(t, cold) / w;
    double incoming_zero_fraction = 1;
    double incoming_one_fraction = 1;

    /* A feature already on the path is unwound, so its split is redone here. */
    int32_t index = 0;
    for (; index <= depth; index++) {
        if (path[index].feature == split->feature) {
            break;
        }
    }
    if (index != depth + 1) {
        incoming_zero_fraction = path[index].zero_fraction;
        incoming_one_fraction = path[index].one_fraction;
        unwind_path(path, depth, index);
        depth -= 1;
    }
    tree_shap(t, values, flags, phi, hot, depth + 1, path,
              hot_zero_fraction * incoming_zero_fraction, incoming_one_fraction, split->feature);
    tree_shap(t, values, flags, phi, cold, depth + 1, path,
              cold_zero_fraction * incoming_zero_fraction, 0, split->feature);
}

/* Tree::ExpectedValue: the leaves' values weighted by their share of the training rows,
 * summed in leaf order (a single leaf is its own value). */
static double expected_value(const Model *m, const TreeRecord *tree) {
    const double *leaves = m->leaf_values + tree->leaf_offset;
    if (tree->num_leaves == 1) {
        return leaves[0];
    }
    const int32_t *counts = m->leaf_counts + tree->leaf_offset;
    const double total = (double)m->internal_counts[tree->node_offset];
    double sum = 0.0;
    for (int32_t i = 0; i < tree->num_leaves; i++) {
        sum += (counts[i] / total) * leaves[i];
    }
    return sum;
}

/* Path elements TreeSHAP needs for a tree of depth d: one path of up to d + 1 elements per
 * level of the recursion (Tree::PredictContrib's (d + 1)(d + 2) / 2). */
static size_t shap_path_size(int32_t max_depth) {
    return (size_t)(max_depth + 1) * (size_t)(max_depth + 2) / 2;
}

/* GBDT::PredictContrib for one prepared row: phi (num_features + 1 values) is zeroed, then
 * every tree in model order adds its expected value to the bias (the last column) and its
 * TreeSHAP values to the features. `expected` holds each tree's expected value. */
static void row_contributions(const Model *m, const double *expected, const double *values,
                              const uint8_t *flags, double *phi, PathElement *path) {
    memset(phi, 0, sizeof(double) * ((size_t)m->num_features + 1));
    for (int32_t t = 0; t < m->num_trees; t++) {
        const TreeRecord *tree = &m->trees[t];
        phi[m->num_features] += expected[t];
        if (tree->num_nodes > 0) {
            const ShapTree shap = {
                .nodes = m->nodes + tree->node_offset,
                .leaf_values = m->leaf_values + tree->leaf_offset,
                .leaf_counts = m->leaf_counts + tree->leaf_offset,
                .internal_counts = m->internal_counts + tree->node_offset,
                .bounds = m->cat_bounds + tree->cat_offset,
                .words = m->cat_words,
            };
            tree_shap(&shap, values, flags, phi, 0, 0, path, 1, 1, -1);
        }
    }
}

/* ------------------------------------------------------------------------ validation */

static int invalid(const char *message) {
    PyErr_Format(PyExc_ValueError, "invalid tree layout: %s", message);
    return -1;
}

static uint32_t read_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static int32_t read_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t read_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Check one tree's structure: children in range, every node but the root and every leaf
 * with exactly one parent, every node reachable from the root, and its depth as recorded.
 * A walk of a tree that passes always ends in one of its leaves. */
static int check_tree_structure(const TreeRecord *tree, const Node *nodes, uint8_t *node_parents,
                                uint8_t *leaf_parents, int32_t *stack_node,
                                int32_t *stack_depth) {
    const int32_t num_nodes = tree->num_nodes;
    const int32_t num_leaves = tree->num_leaves;
    if (num_nodes == 0) {
        return tree->max_depth == 0 ? 0 : invalid("a single-leaf tree must have depth 0");
    }
    memset(node_parents, 0, (size_t)num_nodes);
    memset(leaf_parents, 0, (size_t)num_leaves);
    for (int32_t i = 0; i < num_nodes; i++) {
        const int32_t children[2] = {nodes[i].child[0], nodes[i].child[1]};
        for (int c = 0; c < 2; c++) {
            const int32_t child = children[c];
            if (child >= 0) {
                if (child == 0 || child >= num_nodes) {
                    return invalid("a child node is out of range");
                }
                if (node_parents[child]++ != 0) {
                    return invalid("a node has two parents");
                }
            } else {
                const int32_t leaf = ~child;
                if (leaf >= num_leaves) {
                    return invalid("a child leaf is out of range");
                }
                if (leaf_parents[leaf]++ != 0) {
                    return invalid("a leaf has two parents");
                }
            }
        }
    }
    for (int32_t i = 0; i < num_leaves; i++) {
        if (leaf_parents[i] != 1) {
            return invalid("a leaf is not reached");
        }
    }
    int32_t top = 0;
    int32_t visited = 0;
    int32_t depth = 0;
    stack_node[0] = 0;
    stack_depth[0] = 0;
    top = 1;
    while (top > 0) {
        top--;
        const int32_t node = stack_node[top];
        const int32_t level = stack_depth[top];
        if (node < 0) {
            if (level > depth) {
                depth = level;
            }
            continue;
        }
        visited++;
        /* Each node is popped once (one parent each), so the stack never exceeds
         * num_nodes + 1 entries. */
        stack_node[top] = nodes[node].child[0];
        stack_depth[top] = level + 1;
        stack_node[top + 1] = nodes[node].child[1];
        stack_depth[top + 1] = level + 1;
        top += 2;
    }
    if (visited != num_nodes) {
        return invalid("a node is unreachable from its tree's root");
    }
    if (depth != tree->max_depth) {
        return invalid("a tree's recorded depth is wrong");
    }
    return 0;
}

static int validate_layout(const uint8_t *base, Py_ssize_t length, Model *m) {
    if (length < HEADER_SIZE) {
        return invalid("truncated header");
    }
    if (((uintptr_t)base) % 8 != 0) {
        return invalid("the buffer is not 8-byte aligned");
    }
    if (memcmp(base, MAGIC, sizeof MAGIC) != 0) {
        return invalid("bad magic");
    }
    if (read_u32(base + 8) != LAYOUT_VERSION || read_u32(base + 12) != HEADER_SIZE) {
        return invalid("unsupported version");
    }
    if (read_u64(base + 16) != (uint64_t)length) {
        return invalid("the file size in the header is not the buffer's size");
    }
    if (read_u32(base + 28) != 0 || read_u32(base + 60) != 0) {
        return invalid("reserved header fields are not zero");
    }
    const int32_t num_features = read_i32(base + 32);
    const int32_t num_trees = read_i32(base + 36);
    const int32_t num_nodes = read_i32(base + 40);
    const int32_t num_leaves = read_i32(base + 44);
    const int32_t num_cat_bounds = read_i32(base + 48);
    const int32_t num_cat_words = read_i32(base + 52);
    const uint32_t objective = read_u32(base + 56);
    double sigmoid;
    memcpy(&sigmoid, base + 64, sizeof sigmoid);
    if (num_trees < 0 || num_nodes < 0 || num_leaves < 0 || num_cat_bounds < 0 ||
        num_cat_words < 0) {
        return invalid("negative count");
    }
    if (num_features < 1 || num_features > MAX_FEATURES) {
        return invalid("the number of features is out of range");
    }
    if (objective == OBJECTIVE_BINARY) {
        if (!(sigmoid > 0.0 && isfinite(sigmoid))) {
            return invalid("bad sigmoid");
        }
    } else if (objective != OBJECTIVE_REGRESSION) {
        return invalid("unknown objective");
    }

    const int64_t counts[NUM_SECTIONS] = {num_trees,  num_nodes, num_leaves,     num_leaves,
                                          num_nodes,  num_nodes, num_cat_bounds, num_cat_words};
    const uint64_t record_sizes[NUM_SECTIONS] = {sizeof(TreeRecord), sizeof(Node), 8, 4, 8, 4,
                                                 4, 4};
    const uint8_t *section[NUM_SECTIONS];
    uint64_t end = HEADER_SIZE;
    for (int s = 0; s < NUM_SECTIONS; s++) {
        const uint64_t offset = read_u64(base + FIXED_SIZE + 16 * s);
        const uint64_t size = read_u64(base + FIXED_SIZE + 16 * s + 8);
        if (offset % SECTION_ALIGNMENT != 0 || offset < end || offset > (uint64_t)length ||
            size > (uint64_t)length - offset) {
            return invalid("a section lies outside the buffer or overlaps another");
        }
        if (size != (uint64_t)counts[s] * record_sizes[s]) {
            return invalid("a section's size does not match its count");
        }
        section[s] = base + offset;
        end = offset + size;
    }
    if (end != (uint64_t)length) {
        return invalid("bytes after the last section");
    }

    const TreeRecord *trees = (const TreeRecord *)section[SECTION_TREES];
    const Node *nodes = (const Node *)section[SECTION_NODES];
    const int32_t *cat_bounds = (const int32_t *)section[SECTION_CAT_BOUNDS];

    /* Trees are packed back to back: their ranges tile the sections exactly. */
    int64_t node_at = 0, leaf_at = 0, bound_at = 0;
    int32_t widest = 1;
    int32_t max_depth = 0;
    for (int32_t t = 0; t < num_trees; t++) {
        const TreeRecord *tree = &trees[t];
        if (tree->num_leaves < 1 || tree->num_nodes != tree->num_leaves - 1 ||
            tree->node_offset != node_at || tree->leaf_offset != leaf_at ||
            tree->cat_offset != bound_at || tree->num_cat < 0 || tree->max_depth < 0 ||
            tree->max_depth > tree->num_nodes || tree->reserved != 0) {
            return invalid("a tree record is inconsistent");
        }
        if (tree->max_depth > MAX_TREE_DEPTH) {
            return invalid("a tree is deeper than the kernel's limit");
        }
        if (tree->max_depth > max_depth) {
            max_depth = tree->max_depth;
        }
        node_at += tree->num_nodes;
        leaf_at += tree->num_leaves;
        if (tree->num_cat > 0) {
            bound_at += (int64_t)tree->num_cat + 1;
        }
        if (node_at > num_nodes || leaf_at > num_leaves || bound_at > num_cat_bounds) {
            return invalid("trees exceed their sections");
        }
        if (tree->num_leaves > widest) {
            widest = tree->num_leaves;
        }
    }
    if (node_at != num_nodes || leaf_at != num_leaves || bound_at != num_cat_bounds) {
        return invalid("trees do not cover their sections");
    }

    uint8_t *node_parents = PyMem_Malloc((size_t)widest);
    uint8_t *leaf_parents = PyMem_Malloc((size_t)widest);
    int32_t *stack_node = PyMem_Malloc(sizeof(int32_t) * ((size_t)widest + 1));
    int32_t *stack_depth = PyMem_Malloc(sizeof(int32_t) * ((size_t)widest + 1));
    int result = 0;
    if (!node_parents || !leaf_parents || !stack_node || !stack_depth) {
        PyErr_NoMemory();
        result = -1;
    }
    for (int32_t t = 0; result == 0 && t < num_trees; t++) {
        const TreeRecord *tree = &trees[t];
        const int32_t *bounds = cat_bounds + tree->cat_offset;
        for (int32_t k = 0; k < tree->num_cat + (tree->num_cat > 0); k++) {
            if (bounds[k] < 0 || bounds[k] > num_cat_words || (k > 0 && bounds[k] < bounds[k - 1])) {
                result = invalid("categorical bounds are out of range or decreasing");
                break;
            }
        }
        const Node *tree_nodes = nodes + tree->node_offset;
        for (int32_t i = 0; result == 0 && i < tree->num_nodes; i++) {
            const Node *node = &tree_nodes[i];
            const uint8_t decision = node->decision_type;
            if (node->feature < 0 || node->feature >= num_features) {
                result = invalid("a split feature is out of range");
            } else if ((decision & ~DECISION_KNOWN_BITS) != 0 || (decision >> 2) == 3) {
                result = invalid("a decision type has undefined bits");
            } else if (decision & DECISION_CATEGORICAL) {
                const double set = node->threshold;
                if (!(set >= 0.0 && set < (double)tree->num_cat && set == floor(set))) {
                    result = invalid("a categorical split names a set its tree does not have");
                }
            } else if (isnan(node->threshold)) {
                result = invalid("a numerical threshold is NaN");
            }
        }
        if (result == 0) {
            result = check_tree_structure(tree, tree_nodes, node_parents, leaf_parents, stack_node,
                                          stack_depth);
        }
    }
    PyMem_Free(node_parents);
    PyMem_Free(leaf_parents);
    PyMem_Free(stack_node);
    PyMem_Free(stack_depth);
    if (result != 0) {
        return -1;
    }

    m->trees = trees;
    m->nodes = nodes;
    m->leaf_values = (const double *)section[SECTION_LEAF_VALUES];
    m->leaf_counts = (const int32_t *)section[SECTION_LEAF_COUNTS];
    m->internal_counts = (const int32_t *)section[SECTION_INTERNAL_COUNTS];
    m->max_depth = max_depth;
    m->cat_bounds = cat_bounds;
    m->cat_words = (const uint32_t *)section[SECTION_CAT_WORDS];
    m->num_features = num_features;
    m->num_trees = num_trees;
    m->objective = (int32_t)objective;
    m->sigmoid = sigmoid;
    return 0;
}

/* ------------------------------------------------------------------------ buffers */

static int is_float64_format(const char *format) {
    return format != NULL && (strcmp(format, "d") == 0 || strcmp(format, "<d") == 0 ||
                              strcmp(format, "=d") == 0 || strcmp(format, "@d") == 0);
}

/* A C-contiguous float64 buffer of `ndim` dimensions (or fails with a TypeError). */
static int get_float64_buffer(PyObject *object, Py_buffer *view, int ndim, int writable,
                              const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
    if (writable) {
        flags |= PyBUF_WRITABLE;
    }
    if (PyObject_GetBuffer(object, view, flags) != 0) {
        return -1;
    }
    if (view->itemsize != 8 || !is_float64_format(view->format) || view->ndim != ndim) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous %d-D buffer of float64", what,
                     ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ Kernel type */

static void kernel_release_all(Kernel *self) {
    if (self->has_row) {
        PyBuffer_Release(&self->row);
        self->has_row = 0;
    }
    if (self->has_layout) {
        PyBuffer_Release(&self->layout);
        self->has_layout = 0;
    }
    PyMem_Free(self->scratch_values);
    PyMem_Free(self->scratch_flags);
    PyMem_Free(self->expected);
    self->scratch_values = NULL;
    self->scratch_flags = NULL;
    self->expected = NULL;
    memset(&self->model, 0, sizeof self->model);
}

static PyObject *kernel_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"layout", "row", NULL};
    PyObject *layout = NULL;
    PyObject *row = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:Kernel", keywords, &layout, &row)) {
        return NULL;
    }
    Kernel *self = (Kernel *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (PyObject_GetBuffer(layout, &self->layout, PyBUF_SIMPLE) != 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->has_layout = 1;
    if (validate_layout((const uint8_t *)self->layout.buf, self->layout.len, &self->model) != 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (get_float64_buffer(row, &self->row, 1, 0, "row") != 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->has_row = 1;
    if (self->row.shape[0] != self->model.num_features) {
        PyErr_Format(PyExc_ValueError, "row has %zd values, the model %d features",
                     self->row.shape[0], (int)self->model.num_features);
        Py_DECREF(self);
        return NULL;
    }
    self->scratch_values = PyMem_Malloc(sizeof(double) * (size_t)self->model.num_features);
    self->scratch_flags = PyMem_Malloc((size_t)self->model.num_features);
    if (self->scratch_values == NULL || self->scratch_flags == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void kernel_dealloc(Kernel *self) {
    kernel_release_all(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check_open(const Kernel *self) {
    if (!self->has_layout) {
        PyErr_SetString(PyExc_ValueError, "the tree kernel is released");
        return -1;
    }
    return 0;
}

static PyObject *kernel_predict_row(Kernel *self, PyObject *Py_UNUSED(ignored)) {
    if (check_open(self) != 0) {
        return NULL;
    }
    prepare_row((const double *)self->row.buf, self->model.num_features, self->scratch_values,
                self->scratch_flags);
    const double raw = raw_score(&self->model, self->scratch_values, self->scratch_flags);
    return PyFloat_FromDouble(transform(&self->model, raw));
}

static PyObject *kernel_predict_row_raw(Kernel *self, PyObject *Py_UNUSED(ignored)) {
    if (check_open(self) != 0) {
        return NULL;
    }
    prepare_row((const double *)self->row.buf, self->model.num_features, self->scratch_values,
                self->scratch_flags);
    return PyFloat_FromDouble(raw_score(&self->model, self->scratch_values, self->scratch_flags));
}

static void predict_rows(const Model *m, const double *matrix, Py_ssize_t count, double *out,
                         int raw, double *values, uint8_t *flags) {
    const size_t width = (size_t)m->num_features;
    for (Py_ssize_t start = 0; start < count; start += BLOCK_ROWS) {
        const int32_t block =
            (int32_t)(count - start < BLOCK_ROWS ? count - start : BLOCK_ROWS);
        for (int32_t r = 0; r < block; r++) {
            prepare_row(matrix + (size_t)(start + r) * width, m->num_features,
                        values + (size_t)r * width, flags + (size_t)r * width);
        }
        raw_scores_block(m, values, flags, block, out + start);
        if (!raw) {
            for (int32_t r = 0; r < block; r++) {
                out[start + r] = transform(m, out[start + r]);
            }
        }
    }
}

/* Take the (matrix, out) arguments of a batch call: matrix a C-contiguous (n, num_features)
 * float64 buffer, out a writable C-contiguous float64 buffer of n values (out_columns 0)
 * or of shape (n, out_columns), not overlapping matrix. On success both views are held
 * (the caller releases them); on failure neither is, and an exception is set. */
static int take_rows(const Kernel *self, PyObject *matrix_object, PyObject *out_object,
                     Py_ssize_t out_columns, Py_buffer *matrix, Py_buffer *out) {
    if (get_float64_buffer(matrix_object, matrix, 2, 0, "matrix") != 0) {
        return -1;
    }
    if (get_float64_buffer(out_object, out, out_columns ? 2 : 1, 1, "out") != 0) {
        PyBuffer_Release(matrix);
        return -1;
    }
    const Py_ssize_t count = matrix->shape[0];
    const char *m_lo = matrix->buf, *m_hi = (const char *)matrix->buf + matrix->len;
    const char *o_lo = out->buf, *o_hi = (const char *)out->buf + out->len;
    if (matrix->shape[1] != self->model.num_features) {
        PyErr_Format(PyExc_ValueError, "matrix has %zd columns, the model %d features",
                     matrix->shape[1], (int)self->model.num_features);
    } else if (!out_columns && out->shape[0] != count) {
        PyErr_Format(PyExc_ValueError, "out has %zd values for %zd rows", out->shape[0], count);
    } else if (out_columns && (out->shape[0] != count || out->shape[1] != out_columns)) {
        PyErr_Format(PyExc_ValueError, "out has shape (%zd, %zd), not (%zd, %zd)", out->shape[0],
                     out->shape[1], count, out_columns);
    } else if (count > 0 && m_lo < o_hi && o_lo < m_hi) {
        PyErr_SetString(PyExc_ValueError, "out overlaps matrix");
    } else {
        return 0;
    }
    PyBuffer_Release(out);
    PyBuffer_Release(matrix);
    return -1;
}

static PyObject *kernel_predict_matrix(Kernel *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "predict_matrix(matrix, out, raw) takes 3 arguments");
        return NULL;
    }
    if (check_open(self) != 0) {
        return NULL;
    }
    const int raw = PyObject_IsTrue(args[2]);
    if (raw < 0) {
        return NULL;
    }
    Py_buffer matrix, out;
    if (take_rows(self, args[0], args[1], 0, &matrix, &out) != 0) {
        return NULL;
    }
    PyObject *result = NULL;
    const Py_ssize_t count = matrix.shape[0];
    const size_t width = (size_t)self->model.num_features;
    double *values = count ? PyMem_Malloc(sizeof(double) * width * BLOCK_ROWS) : NULL;
    uint8_t *flags = count ? PyMem_Malloc(width * BLOCK_ROWS) : NULL;
    if (count && (values == NULL || flags == NULL)) {
        PyErr_NoMemory();
    } else {
        const Model model = self->model;
        self->busy++;
        if ((double)count * (double)model.num_trees >= GIL_RELEASE_WALKS) {
            Py_BEGIN_ALLOW_THREADS
            predict_rows(&model, matrix.buf, count, out.buf, raw, values, flags);
            Py_END_ALLOW_THREADS
        } else {
            predict_rows(&model, matrix.buf, count, out.buf, raw, values, flags);
        }
        self->busy--;
        result = Py_NewRef(Py_None);
    }
    PyMem_Free(values);
    PyMem_Free(flags);
    PyBuffer_Release(&out);
    PyBuffer_Release(&matrix);
    return result;
}

/* Each tree's expected value, computed once per Kernel (with the GIL held). */
static const double *expected_values(Kernel *self) {
    if (self->expected == NULL) {
        const Model *m = &self->model;
        double *expected = PyMem_Malloc(sizeof(double) * ((size_t)m->num_trees + 1));
        if (expected == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        for (int32_t t = 0; t < m->num_trees; t++) {
            expected[t] = expected_value(m, &m->trees[t]);
        }
        self->expected = expected;
    }
    return self->expected;
}

static void contributions_rows(const Model *m, const double *expected, const double *matrix,
                               Py_ssize_t count, double *out, double *values, uint8_t *flags,
                               PathElement *path) {
    const size_t width = (size_t)m->num_features;
    for (Py_ssize_t r = 0; r < count; r++) {
        prepare_row(matrix + (size_t)r * width, m->num_features, values, flags);
        row_contributions(m, expected, values, flags, out + (size_t)r * (width + 1), path);
    }
}

static PyObject *kernel_contributions_matrix(Kernel *self, PyObject *const *args,
                                             Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "contributions_matrix(matrix, out) takes 2 arguments");
        return NULL;
    }
    if (check_open(self) != 0) {
        return NULL;
    }
    const double *expected = expected_values(self);
    if (expected == NULL) {
        return NULL;
    }
    Py_buffer matrix, out;
    if (take_rows(self, args[0], args[1], (Py_ssize_t)self->model.num_features + 1, &matrix,
                  &out) != 0) {
        return NULL;
    }
    PyObject *result = NULL;
    const Py_ssize_t count = matrix.shape[0];
    const size_t width = (size_t)self->model.num_features;
    double *values = PyMem_Malloc(sizeof(double) * width);
    uint8_t *flags = PyMem_Malloc(width);
    PathElement *path = PyMem_Malloc(sizeof(PathElement) * shap_path_size(self->model.max_depth));
    if (values == NULL || flags == NULL || path == NULL) {
        PyErr_NoMemory();
    } else {
        const Model model = self->model;
        self->busy++;
        if ((double)count * (double)model.num_trees >= GIL_RELEASE_SHAP_TREES) {
            Py_BEGIN_ALLOW_THREADS
            contributions_rows(&model, expected, matrix.buf, count, out.buf, values, flags, path);
            Py_END_ALLOW_THREADS
        } else {
            contributions_rows(&model, expected, matrix.buf, count, out.buf, values, flags, path);
        }
        self->busy--;
        result = Py_NewRef(Py_None);
    }
    PyMem_Free(values);
    PyMem_Free(flags);
    PyMem_Free(path);
    PyBuffer_Release(&out);
    PyBuffer_Release(&matrix);
    return result;
}

static PyObject *kernel_release(Kernel *self, PyObject *Py_UNUSED(ignored)) {
    if (self->busy > 0) {
        PyErr_SetString(PyExc_BufferError, "the tree kernel is scoring a batch in another thread");
        return NULL;
    }
    kernel_release_all(self);
    Py_RETURN_NONE;
}

static PyObject *kernel_get_num_features(Kernel *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLong(self->model.num_features);
}

static PyObject *kernel_get_num_trees(Kernel *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLong(self->model.num_trees);
}

static PyObject *kernel_get_objective(Kernel *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLong(self->model.objective);
}

static PyObject *kernel_get_sigmoid(Kernel *self, void *Py_UNUSED(closure)) {
    return PyFloat_FromDouble(self->model.sigmoid);
}

static PyObject *kernel_get_released(Kernel *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(!self->has_layout);
}

static PyMethodDef kernel_methods[] = {
    {"predict_row", (PyCFunction)kernel_predict_row, METH_NOARGS,
     "predict_row() -> float: the transformed output (probability) for the bound row."},
    {"predict_row_raw", (PyCFunction)kernel_predict_row_raw, METH_NOARGS,
     "predict_row_raw() -> float: the raw score (sum of leaf values) for the bound row."},
    {"predict_matrix", (PyCFunction)(void (*)(void))kernel_predict_matrix, METH_FASTCALL,
     "predict_matrix(matrix, out, raw) -> None: score C-contiguous float64 rows into out."},
    {"contributions_matrix", (PyCFunction)(void (*)(void))kernel_contributions_matrix,
     METH_FASTCALL,
     "contributions_matrix(matrix, out) -> None: TreeSHAP values of C-contiguous float64 rows "
     "into out, shape (n, num_features + 1), the bias last (LightGBM's pred_contrib)."},
    {"release", (PyCFunction)kernel_release, METH_NOARGS,
     "release() -> None: drop the layout and row buffers; the kernel cannot score after."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef kernel_getset[] = {
    {"num_features", (getter)kernel_get_num_features, NULL, "row width", NULL},
    {"num_trees", (getter)kernel_get_num_trees, NULL, "number of trees", NULL},
    {"objective", (getter)kernel_get_objective, NULL, "1 binary, 2 regression", NULL},
    {"sigmoid", (getter)kernel_get_sigmoid, NULL, "binary sigmoid parameter", NULL},
    {"released", (getter)kernel_get_released, NULL, "True once release() was called", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine.inference._tree_kernel.Kernel",
    .tp_doc = "Kernel(layout, row): scores the bound float64 row (or matrices) with the trees "
              "of a checked layout buffer.",
    .tp_basicsize = sizeof(Kernel),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = kernel_new,
    .tp_dealloc = (destructor)kernel_dealloc,
    .tp_methods = kernel_methods,
    .tp_getset = kernel_getset,
};

static struct PyModuleDef tree_kernel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "engine.inference._tree_kernel",
    .m_doc = "Exact LightGBM tree evaluation over a compiled, memory-mapped layout.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__tree_kernel(void) {
    if (PyType_Ready(&KernelType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&tree_kernel_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&KernelType);
    if (PyModule_AddObject(module, "Kernel", (PyObject *)&KernelType) < 0) {
        Py_DECREF(&KernelType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "LAYOUT_VERSION", LAYOUT_VERSION) < 0 ||
        PyModule_AddIntConstant(module, "TREE_LANES", TREE_LANES) < 0 ||
        PyModule_AddIntConstant(module, "ROW_LANES", ROW_LANES) < 0 ||
        PyModule_AddIntConstant(module, "BLOCK_ROWS", BLOCK_ROWS) < 0 ||
        PyModule_AddIntConstant(module, "MAX_TREE_DEPTH", MAX_TREE_DEPTH) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
