"""Statistics for comparing runs: mean/std, t and bootstrap intervals, exact McNemar on paired predictions."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st


# A run whose predictions fall in one class for at least this share of reviews has collapsed: it ignores its input
# (a constant classifier scores 50% on the balanced splits, and looks like an ordinary weak run in a table).
COLLAPSE_SHARE = 0.99


def majority_share(preds) -> float:
    """Share of predictions in the most frequent predicted class (0.5 for a balanced predictor, 1.0 constant)."""
    p = np.asarray(preds)
    if p.size == 0:
        return float("nan")
    return float(np.bincount(p.astype(np.int64)).max() / p.size)


def is_collapsed(share) -> bool:
    return share is not None and share == share and share >= COLLAPSE_SHARE


def mean_std(values) -> tuple:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def t_interval(values, level: float = 0.95) -> tuple:
    """Student-t interval for the mean of a few values (e.g. one accuracy per seed)."""
    v = np.asarray(values, dtype=float)
    m, s = mean_std(v)
    if v.size < 2:
        return m, m
    half = _st.t.ppf(0.5 + level / 2, v.size - 1) * s / math.sqrt(v.size)
    return m - half, m + half


def bootstrap_interval(stat, arrays, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple:
    """Percentile bootstrap over examples: resample indices, recompute stat(*arrays[idx]).

    `arrays` are aligned per-example arrays (e.g. correctness of two paired runs)."""
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    values = np.array([stat(*[a[i] for a in arrays]) for i in idx])
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def mcnemar_exact(correct_a, correct_b) -> dict:
    """Exact McNemar test: two-sided binomial test on the discordant pairs (b = only A right, c = only B right)."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n01 = int(np.sum(a & ~b))
    n10 = int(np.sum(~a & b))
    n = n01 + n10
    p = 1.0 if n == 0 else float(min(1.0, 2 * _st.binom.cdf(min(n01, n10), n, 0.5)))
    return {"only_a": n01, "only_b": n10, "p_value": p}
