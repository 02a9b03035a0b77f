"""The interval for a difference between two methods, validated by simulation: studies with a known true gap, seed
effects and per-review effects, each scored on its own test sample shared by every seed."""
import numpy as np
import pytest
from scipy import stats as st

from common import stats


def simulate_studies(n_seeds: int, n_studies: int = 2000, n_reviews: int = 400, seed: int = 0, mu=(1.45, 1.30),
                     review_sd: float = 0.9, method_review_sd: float = 0.5, seed_sd: float = 0.12,
                     noise_sd: float = 0.6):
    """correct[study, seed, review] for two methods, and the true accuracy difference (B - A).

    Review i is right for method m under seed s when mu_m + c_i + g_mi + w_ms + e_msi > 0: c a review's difficulty
    (shared), g its method-specific part, w the seed's effect, e the rest; all normal, so a method's accuracy over
    reviews and seeds is Phi(mu_m / sqrt(V)), V the sum of the variances: a known truth. The defaults give ~88%
    vs ~86% (a 2.6-point gap), a seed sd of about one point, and methods that disagree on ~15% of reviews, like the
    committed Part 3 runs."""
    rng = np.random.default_rng(seed)
    var = review_sd ** 2 + method_review_sd ** 2 + seed_sd ** 2 + noise_sd ** 2
    truth = st.norm.cdf(mu[1] / np.sqrt(var)) - st.norm.cdf(mu[0] / np.sqrt(var))
    shared = review_sd * rng.standard_normal((n_studies, 1, n_reviews))
    correct = []
    for m in (0, 1):
        latent = (mu[m] + shared + method_review_sd * rng.standard_normal((n_studies, 1, n_reviews))
                  + seed_sd * rng.standard_normal((n_studies, n_seeds, 1))
                  + noise_sd * rng.standard_normal((n_studies, n_seeds, n_reviews)))
        correct.append((latent > 0).astype(float))
    return correct[0], correct[1], truth


def t_over_seeds(diff: np.ndarray, level: float = 0.95):
    """Today's earlier interval: a t-interval over the per-seed accuracy differences (test sample held fixed)."""
    per_seed = diff.mean(-1)
    n = per_seed.shape[-1]
    half = st.t.ppf(0.5 + level / 2, n - 1) * per_seed.std(-1, ddof=1) / np.sqrt(n)
    return per_seed.mean(-1) - half, per_seed.mean(-1) + half


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_interval_for_a_difference_covers_the_truth_95_percent_of_the_time(n_seeds, capsys):
    a, b, truth = simulate_studies(n_seeds)
    diff = b - a
    lo, hi, half, _ = stats.crossed_interval(diff)
    coverage = np.mean((lo <= truth) & (truth <= hi))
    t_lo, t_hi = t_over_seeds(diff)
    t_coverage = np.mean((t_lo <= truth) & (truth <= t_hi))
    with capsys.disabled():
        print(f"\n[coverage] {n_seeds} seeds, 2,000 simulated studies, true gap {100 * truth:.2f} points: "
              f"seeds x reviews interval {coverage:.1%} (mean half-width {100 * half.mean():.2f} points); "
              f"t over seeds {t_coverage:.1%}")
    assert 0.93 <= coverage <= 0.97
    assert abs(truth) > 0.01  # a real gap, not the null


def test_t_over_seeds_under_covers_when_the_test_sample_dominates(capsys):
    """Seeds that barely differ: the t-interval sees only the seed spread and forgets that another test sample would
    move every seed's score together; the crossed interval keeps its coverage."""
    a, b, truth = simulate_studies(5, seed_sd=0.02, seed=1)
    diff = b - a
    lo, hi, _, _ = stats.crossed_interval(diff)
    t_lo, t_hi = t_over_seeds(diff)
    coverage, t_coverage = (np.mean((x <= truth) & (truth <= y)) for x, y in ((lo, hi), (t_lo, t_hi)))
    with capsys.disabled():
        print(f"\n[coverage] 5 seeds with a seed sd near zero: seeds x reviews {coverage:.1%}, t over seeds "
              f"{t_coverage:.1%}")
    assert coverage >= 0.93 and t_coverage < 0.90


def test_crossed_interval_on_constructed_scores():
    # No seed effect at all and every seed identical: the variance is the reviews' alone, p (1 - p) / M.
    scores = np.tile((np.arange(1000) < 800).astype(float), (4, 1))
    lo, hi, half, df = stats.crossed_interval(scores)
    assert (lo + hi) / 2 == pytest.approx(0.8)
    assert half == pytest.approx(st.t.ppf(0.975, df) * np.sqrt(0.8 * 0.2 / 999), rel=1e-6)
    # Seeds that differ by a constant shift on every review: the seeds' spread decides, with S - 1 = 2 df.
    shift = np.stack([np.zeros(1000), np.zeros(1000), np.zeros(1000)])
    shift[1, :30] = 1.0
    shift[2, :60] = 1.0
    lo, hi, half, df = stats.crossed_interval(shift)
    assert (lo + hi) / 2 == pytest.approx(0.03)
    # The half-width by hand: seed means 0, .03, .06 (MS_seed = 1000 x sum of squares / 2 = 0.9); reviews 0-29
    # score 2/3, 30-59 1/3, the rest 0; residuals from the two-way fit; variance (MS_s + MS_r - MS_e) / (S M).
    seed_means, review_means = shift.mean(1), shift.mean(0)
    resid = shift - seed_means[:, None] - review_means[None, :] + shift.mean()
    ms_s = 1000 * ((seed_means - 0.03) ** 2).sum() / 2
    ms_r = 3 * ((review_means - 0.03) ** 2).sum() / 999
    ms_e = (resid ** 2).sum() / (2 * 999)
    assert ms_s == pytest.approx(0.9)
    assert half == pytest.approx(st.t.ppf(0.975, df) * np.sqrt((ms_s + ms_r - ms_e) / 3000), rel=1e-9)
    assert 1.5 < df < 3  # the seeds' term dominates: about S - 1 = 2 degrees of freedom
    with pytest.raises(ValueError):
        stats.crossed_interval(scores[:1])


def test_wilson_and_paired_difference_intervals():
    # 840 of 1,000: centre (0.84 + 1.96^2 / 2000) / (1 + 1.96^2 / 1000) = 0.83870, half-width
    # 1.96 sqrt(0.84 * 0.16 / 1000 + 1.96^2 / 4e6) / 1.0038416 = 0.02272.
    lo, hi = stats.wilson_interval(840, 1000)
    assert lo == pytest.approx(0.81598, abs=1e-4) and hi == pytest.approx(0.86142, abs=1e-4)
    a = np.array([1] * 900 + [0] * 100, bool)
    b = a.copy()
    b[:50] = False  # b wrong on 50 reviews a gets right: b - a = -0.05
    lo, hi = stats.paired_difference_interval(a, b)
    assert lo < -0.05 < hi < 0 and hi - lo == pytest.approx(2 * 1.959964 * np.sqrt(0.05 * 0.95 / 999), rel=1e-4)
