"""Distribution distances shared by dataset diffs and (later) drift monitoring."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPS = 1e-4


def _proportions(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(counts, dtype=np.float64)
    total = arr.sum()
    if total <= 0:
        return np.full(len(arr), 1.0 / max(len(arr), 1))
    return arr / total


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> float:
    """Population stability index over matching bins (0: same; > 0.2 usually a real shift)."""
    p = np.clip(_proportions(reference), EPS, None)
    q = np.clip(_proportions(current), EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray
) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1])."""
    p = _proportions(reference)
    q = _proportions(current)
    m = (p + q) / 2

    def _kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return float(np.sqrt(max(0.0, (_kl(p, m) + _kl(q, m)) / 2)))
