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


def crossed_components(scores) -> dict:
    """Variance components of a mean over seeds x test reviews (scores[s, i]: review i's score, 0/1 or a difference
    of two 0/1, under seed s), from the two-way crossed ANOVA without replication:
    score = mu + seed effect + review effect + residual. The mean over S seeds and M reviews then varies by
        Var = sd_seed^2 / S + sd_review^2 / M + sd_resid^2 / (S M)
    estimated without bias by (MS_seed + MS_review - MS_resid) / (S M), since E[MS_seed] = M sd_seed^2 + sd_resid^2,
    E[MS_review] = S sd_review^2 + sd_resid^2 and E[MS_resid] = sd_resid^2. Works on the last two axes, so a
    stack of simulated studies [..., S, M] is computed at once."""
    x = np.asarray(scores, dtype=float)
    S, M = x.shape[-2], x.shape[-1]
    grand = x.mean(axis=(-2, -1), keepdims=True)
    seed_means = x.mean(axis=-1, keepdims=True)
    review_means = x.mean(axis=-2, keepdims=True)
    ss_seed = M * ((seed_means - grand) ** 2).sum(axis=(-2, -1))
    ss_review = S * ((review_means - grand) ** 2).sum(axis=(-2, -1))
    ss_resid = ((x - seed_means - review_means + grand) ** 2).sum(axis=(-2, -1))
    df_seed, df_review, df_resid = S - 1, M - 1, (S - 1) * (M - 1)
    ms_seed = ss_seed / df_seed if df_seed else np.zeros_like(ss_seed)
    ms_review = ss_review / df_review
    ms_resid = ss_resid / df_resid if df_resid else np.zeros_like(ss_resid)
    return {"mean": grand[..., 0, 0], "ms_seed": ms_seed, "ms_review": ms_review, "ms_resid": ms_resid,
            "df": (df_seed, df_review, df_resid), "S": S, "M": M}


def crossed_interval(scores, level: float = 0.95):
    """95% interval for the mean of scores[seed, review] that counts both seed-to-seed variation and the sampling
    of the test reviews (shared by every seed): the variance of crossed_components, with Satterthwaite's degrees of
    freedom for that sum of mean squares (about S - 1 when seeds dominate, large when the test sample does).
    Returns (low, high, half_width, df); arrays for a stack of studies [..., S, M]. Needs S >= 2."""
    c = crossed_components(scores)
    S, M = c["S"], c["M"]
    if S < 2:
        raise ValueError("crossed_interval needs at least 2 seeds")
    df_seed, df_review, df_resid = c["df"]
    terms = [(c["ms_seed"], df_seed, 1.0), (c["ms_review"], df_review, 1.0), (c["ms_resid"], df_resid, -1.0)]
    est = sum(sign * ms for ms, _, sign in terms)
    # The floor applies when a variance component's estimate comes out negative: MS_seed < MS_resid (seeds differ
    # less than their review-by-review flips predict, as when seed effects are shared by both methods of a
    # difference) or MS_review < MS_resid (no review is consistently easier for one method). That component is
    # then taken as zero: est = MS_review = S sd_review^2 + sd_resid^2, or MS_seed likewise; the larger of the
    # two is that estimate with the other term dropped. Otherwise est >= both and the floor changes nothing.
    est = np.maximum(est, np.maximum(c["ms_seed"], c["ms_review"]))
    var = est / (S * M)
    denom = sum(ms ** 2 / df for ms, df, _ in terms)
    df = np.where(denom > 0, est ** 2 / np.where(denom > 0, denom, 1.0), float(M - 1))
    half = _st.t.ppf(0.5 + level / 2, np.maximum(df, 1.0)) * np.sqrt(var)
    return c["mean"] - half, c["mean"] + half, half, df


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple:
    """Wilson score interval for a proportion k/n (one run's validation accuracy)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = _st.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def paired_difference_interval(correct_a, correct_b, level: float = 0.95) -> tuple:
    """Normal interval for accuracy(b) - accuracy(a) on the same reviews (one run each): the paired
    per-review differences' standard error."""
    d = np.asarray(correct_b, float) - np.asarray(correct_a, float)
    se = d.std(ddof=1) / math.sqrt(d.size) if d.size > 1 else 0.0
    z = _st.norm.ppf(0.5 + level / 2)
    return float(d.mean() - z * se), float(d.mean() + z * se)
