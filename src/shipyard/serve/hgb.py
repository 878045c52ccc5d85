"""A fitted HistGradientBoosting model's trees as flat NumPy arrays, evaluated without sklearn.

`HistGradientBoostingClassifier.predict_proba` costs about a millisecond per call whatever the
batch (input checks, binning set-up, one Python-level call per tree into its Cython predictor).
`Forest` reads the fitted trees (`estimator._predictors`) once into one array per node field,
every tree's nodes side by side, and walks all trees for all rows together, as the Cython
predictor (`_predictor.pyx`, `_predict_one_from_raw_data`) walks one tree for one row:

    go left  when  x[feature] <= threshold, or x[feature] is NaN and missing values go left

A missing value is handled without a test per node: the rows are widened to `[x, x']` with x'
= x where NaN became -inf, and a node whose missing values go left reads its feature from x'
(-inf <= any threshold), the others from x (NaN <= anything is False: right). Leaves point to
themselves, so stepping further from one changes nothing.

One row (a request at concurrency 1) takes one step for every node at once (where each node
leads), then follows the roots down that table: one gather of a value per tree per level (the
demo's 100 trees, 6,100 nodes, 17 levels: 35 µs; doubling the distance over every node instead,
next = next[next], took 82 µs). More rows walk down level by level, one (tree, row) pair per
element of flat arrays; at a few levels the pairs that have reached their leaf are dropped, so
the deep levels only touch the pairs still walking. The levels are chosen once per model by a
small cost model over the share of training rows that reach each depth (each node's `count`;
`_compaction_levels`). For the demo's model and 26 real rows a call took 217-255 µs walking
every pair to the deepest level, 150-175 µs dropping them. The raw sums plus the baseline then
go through the estimator's own loss, as `predict_proba`/`predict` do. Models with categorical
features are not read (`unsupported`).

    >>> forest = Forest(hgb_classifier)
    >>> forest.predict_proba(X)      # equals hgb_classifier.predict_proba(X) to ~1e-15
"""

from __future__ import annotations

from typing import Any

import numpy as np


def unsupported(estimator: Any) -> str | None:
    """Why `Forest` cannot stand in for `estimator`, or None when it can."""
    name = type(estimator).__name__
    if not hasattr(estimator, "_predictors") or not hasattr(estimator, "_baseline_prediction"):
        return f"{name} has no fitted trees (_predictors) this code can read"
    if getattr(estimator, "_preprocessor", None) is not None or any(
        tree.nodes["is_categorical"].any() for trees in estimator._predictors for tree in trees
    ):
        return f"{name} has categorical features, whose splits are not compiled"
    return None


class Forest:
    """`estimator`'s trees, predicting as `estimator.predict_proba`/`predict` do on an ndarray."""

    __slots__ = (
        "baseline",
        "by_class",
        "children",
        "children2",
        "class_starts",
        "classes",
        "compact_at",
        "depth",
        "estimator",
        "evens",
        "feature",
        "feature2",
        "leaf2",
        "n_features",
        "n_trees",
        "roots",
        "roots2",
        "threshold",
        "threshold2",
        "value",
    )

    def __init__(self, estimator: Any) -> None:
        why = unsupported(estimator)
        if why is not None:
            raise ValueError(why)
        self.estimator = estimator
        self.classes = getattr(estimator, "classes_", None)
        self.n_features = int(estimator.n_features_in_)
        per_iteration = int(estimator.n_trees_per_iteration_)
        trees = [tree.nodes for iteration in estimator._predictors for tree in iteration]
        klass = np.tile(np.arange(per_iteration), len(estimator._predictors))
        depths = np.array([int(nodes["depth"].max()) for nodes in trees], dtype=np.intp)
        sizes = np.array([len(nodes) for nodes in trees], dtype=np.intp)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.intp)
        nodes = np.concatenate(trees)
        n = len(nodes)
        here = np.arange(n, dtype=np.intp)
        offset = np.repeat(starts, sizes)
        leaf = nodes["is_leaf"].astype(bool)
        missing_left = nodes["missing_go_to_left"].astype(bool) & ~leaf
        self.feature = np.where(
            leaf, 0, nodes["feature_idx"] + self.n_features * missing_left
        ).astype(np.intp)
        self.threshold = np.where(leaf, np.inf, nodes["num_threshold"]).astype(np.float64)
        left = np.where(leaf, here, nodes["left"].astype(np.intp) + offset)
        right = np.where(leaf, here, nodes["right"].astype(np.intp) + offset)
        self.children = np.stack((right, left), axis=1).reshape(-1)  # [2i + went_left]
        self.evens = 2 * here
        self.value = nodes["value"].astype(np.float64)
        self.roots = starts
        self.n_trees = len(trees)
        self.depth = int(depths.max(initial=0))
        # The batch walk's tables are indexed by 2 * node, so that 2 * node + went_left is
        # where a pair goes next without a multiplication per level.
        self.feature2 = np.repeat(self.feature, 2)
        self.threshold2 = np.repeat(self.threshold, 2)
        self.leaf2 = np.repeat(leaf, 2)
        self.children2 = 2 * self.children
        self.roots2 = 2 * starts
        self.compact_at = _compaction_levels(nodes, leaf, starts, self.depth)
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64)
        self.by_class = np.argsort(klass, kind="stable")
        self.class_starts = np.searchsorted(klass[self.by_class], np.arange(per_iteration))

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The summed leaf values plus the baseline, (rows, trees per iteration): what the
        estimator's `_raw_predict` returns."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"X has shape {X.shape}, the model takes {self.n_features} features per row"
            )
        wide = np.concatenate((X, np.where(np.isnan(X), -np.inf, X)), axis=1)
        leaves = self._one(wide[0]) if len(X) == 1 else self._walk(wide)  # (trees, rows)
        values = self.value[leaves]
        if len(self.class_starts) == 1:
            sums = values.sum(axis=0)[:, None]
        else:
            sums = np.add.reduceat(values[self.by_class], self.class_starts, axis=0).T
        return sums + self.baseline

    def _one(self, row: np.ndarray) -> np.ndarray:
        went_left = row[self.feature] <= self.threshold
        following = self.children[self.evens + went_left]
        at = self.roots
        for _ in range(self.depth):
            at = following[at]
        return at[:, None]

    def _walk(self, wide: np.ndarray) -> np.ndarray:
        rows, width = wide.shape
        flat = wide.reshape(-1)
        at = np.repeat(self.roots2, rows)  # 2 * node of each (tree, row) pair, tree-major
        offsets = np.tile(np.arange(rows, dtype=np.intp) * width, self.n_trees)
        done = at  # where each pair ended (2 * node), filled in as pairs are dropped
        walking: np.ndarray | None = None  # the pairs `at` holds, once some were dropped
        for level in range(self.depth):
            if level in self.compact_at:
                live = ~self.leaf2[at]
                if walking is None:
                    done = at.copy()
                    walking = np.flatnonzero(live)
                else:
                    done[walking] = at
                    walking = walking[live]
                at, offsets = at[live], offsets[live]
                if not len(at):
                    break
            index = self.feature2[at]
            index += offsets
            at = at + (flat[index] <= self.threshold2[at])
            at = self.children2[at]
        if walking is None:
            done = at
        else:
            done[walking] = at
        return (done // 2).reshape(self.n_trees, rows)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator._loss.predict_proba(self.raw(X)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        raw = self.raw(X)
        if self.classes is None:
            return np.asarray(self.estimator._loss.link.inverse(raw.ravel()))
        if raw.shape[1] == 1:  # as the classifier's predict: "> 0", not argmax of [p, 1 - p]
            return np.asarray(self.classes)[(raw.ravel() > 0).astype(int)]
        return np.asarray(self.classes)[np.argmax(raw, axis=1)]

    def describe(self) -> str:
        return f"{self.n_trees} trees, {len(self.value)} nodes"


def _compaction_levels(
    nodes: np.ndarray, leaf: np.ndarray, starts: np.ndarray, depth: int
) -> frozenset[int]:
    """The levels at which the batch walk drops the pairs that reached a leaf, chosen to make
    the walk cheapest: the share of pairs still walking at a level is the share of training
    rows that reached an inner node of that depth (`count`), and by measure (26 rows, the
    demo's model) a level costs about 5 + 8 * share µs, a drop 4 + 6 * share."""
    counts = nodes["count"].astype(np.float64)
    total = float(counts[starts].sum()) or 1.0
    inner = ~leaf
    depth_of = nodes["depth"].astype(np.intp)
    share = np.bincount(depth_of[inner], weights=counts[inner], minlength=depth + 1) / total
    share[0] = 1.0

    def levels(since: int) -> float:  # the cost of levels since..depth-1 at since's share
        return (depth - since) * (5 + 8 * share[since])

    # best[j]: the cheapest walk from level j on, having dropped the finished pairs at j
    best = [0.0] * (depth + 1)
    then: list[int | None] = [None] * (depth + 1)
    for j in range(depth - 1, -1, -1):
        best[j], then[j] = levels(j), None
        for k in range(j + 1, depth):
            cost = (k - j) * (5 + 8 * share[j]) + 4 + 6 * share[j] + best[k]
            if cost < best[j]:
                best[j], then[j] = cost, k
    chosen, at = set(), then[0]
    while at is not None:
        chosen.add(at)
        at = then[at]
    return frozenset(chosen)


__all__ = ["Forest", "unsupported"]
