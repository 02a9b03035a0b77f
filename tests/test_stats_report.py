"""Statistics on constructed data with known answers; the summary generator on fixture CSVs."""
import numpy as np
import pytest

from common import records, stats
from common.report import write_summary


def test_mcnemar_exact_known_table():
    # 10 reviews only A gets right, 2 only B: p = 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * 79 / 4096.
    a = np.array([1] * 10 + [0] * 2 + [1] * 50 + [0] * 5, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50 + [0] * 5, bool)
    r = stats.mcnemar_exact(a, b)
    assert (r["only_a"], r["only_b"]) == (10, 2)
    assert r["p_value"] == pytest.approx(2 * 79 / 4096)
    assert stats.mcnemar_exact(a, a)["p_value"] == 1.0
    assert stats.mcnemar_exact([1, 0], [0, 1])["p_value"] == 1.0


def test_bootstrap_interval_covers_the_true_accuracy():
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(40):
        correct = rng.random(800) < 0.85
        lo, hi = stats.bootstrap_interval(np.mean, [correct], n_boot=400, seed=trial)
        covered += lo <= 0.85 <= hi
        assert hi - lo < 0.07
    assert covered >= 34  # ~95% of 40


def test_mean_std_and_t_interval():
    m, s = stats.mean_std([0.90, 0.92, 0.94])
    assert m == pytest.approx(0.92) and s == pytest.approx(0.02)
    lo, hi = stats.t_interval([0.90, 0.92, 0.94])
    assert lo == pytest.approx(0.92 - 4.302653 * 0.02 / 3 ** 0.5, abs=1e-6) and hi > 0.94
    assert stats.mean_std([0.5]) == (0.5, 0.0)


def _fixture_results(out, seeds=(0, 1, 2), kernel=None):
    """Full FT right on 90% of 1,000 test reviews, LoRA on 80% (LoRA's errors a superset): a known gap."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 1000)
    for seed in seeds:
        for method, acc, params in (("full", 0.9, 1000), ("lora", 0.8, 10)):
            wrong = np.zeros(1000, bool)
            wrong[: int(round(1000 * (1 - acc))) + seed] = True
            pred = np.where(wrong, 1 - label, label)
            run_id = f"part1-{method}-s{seed}-fixture" + (f"-{kernel}" if kernel else "")
            records.write_predictions(str(out), run_id, {"row": np.arange(1000), "label": label, "pred": pred,
                                                         "prob_pos": np.where(pred == 1, 0.9, 0.1)})
            records.write_json(records.record_path(str(out), run_id), {
                "run_id": run_id, "curves": {"val": [{"epoch": 1.0, "val_loss": 0.4, "val_accuracy": acc},
                                                     {"epoch": 2.0, "val_loss": 0.3, "val_accuracy": acc}]}})
            records.append_row(out / "part1.csv", {
                "run_id": run_id, "part": "part1", "method": method, "model": "m", "profile": "fixture",
                "seed": seed, "learning_rate": 1e-3, "lr_source": "config", "accuracy": float((pred == label).mean()),
                "loss": 0.3, "trainable_params": params, "total_params": 1000, "trainable_pct": params / 10,
                "train_time_s": 10, "peak_rss_mib": 500, "device": "cpu", "precision": "fp32",
                "train_samples": 100, "test_samples": 1000, "max_length": 64, "epochs": 1, "status": "completed",
                **({"dropout_kernel": kernel} if kernel else {})})


def test_summary_from_fixture_csvs(tmp_path):
    out = tmp_path / "results"
    _fixture_results(out)
    records.append_row(out / "part1.csv", {"run_id": "part1-lora-s9-broken", "part": "part1", "method": "lora",
                                           "status": "failed"})
    text = write_summary(str(out)).read_text()
    part1 = text.split("## Part 1")[1].split("## Part 2")[0]
    # full: 100, 101, 102 wrong of 1000 -> 89.90% +- 0.10; lora: 200, 201, 202 wrong -> 79.90%
    assert "| Full FT | 1,000 (100.00%) | 89.90% ± 0.10 |" in part1
    assert "| LoRA | 10 (1.00%) | 79.90% ± 0.10 |" in part1
    assert "t-interval over 3 seeds" in part1
    assert "LoRA (lr 0.001) is 10.00 points below full fine-tuning (lr 0.001) while training 1.00% as many " \
           "parameters" in part1
    assert "excludes zero" in part1 and "3 of 3 below 0.05" in part1
    assert "accuracy 89.9%" in part1  # the seed report's LoRA figure, in its own column
    assert "s9" not in part1  # failed rows are not reported
    assert "No completed runs yet." in text.split("## Part 2")[1]
    for plot in ("pareto", "cost", "curves"):
        assert f"plots/part1_{plot}.png" in part1 and (out / "plots" / f"part1_{plot}.png").is_file()


def test_dropout_kernels_are_separate_groups_compared_within(tmp_path):
    out = tmp_path / "results"
    _fixture_results(out)  # rows from before the kernel was recorded: torch's dropout
    _fixture_results(out, seeds=(0,), kernel="fast")
    part1 = write_summary(str(out), plots=False).read_text().split("## Part 1")[1].split("## Part 2")[0]
    assert part1.count("torch dropout, profile") == 2 and part1.count("fast dropout, profile") == 2
    assert "Profile `fixture`, torch dropout, lr from config: LoRA" in part1
    assert "Profile `fixture`, fast dropout, lr from config: LoRA" in part1
    assert "(1 seed)" in part1 and "t-interval over 3 paired seeds" in part1  # each kernel paired with its own


def test_single_seed_uses_bootstrap_and_flags_a_null_gap(tmp_path):
    out = tmp_path / "results"
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, 400)
    for method in ("full", "lora"):
        pred = label.copy()
        flip = rng.random(400) < 0.15  # independent errors at the same rate: no real difference
        pred[flip] = 1 - pred[flip]
        run_id = f"part1-{method}-s0-x"
        records.write_predictions(str(out), run_id, {"row": np.arange(400), "label": label, "pred": pred,
                                                     "prob_pos": pred.astype(float)})
        records.append_row(out / "part1.csv", {
            "run_id": run_id, "part": "part1", "method": method, "model": "m", "profile": "p", "seed": 0,
            "learning_rate": 1e-3, "accuracy": float((pred == label).mean()), "loss": 0.4, "trainable_params": 5,
            "total_params": 10, "trainable_pct": 50, "device": "cpu", "precision": "fp32", "status": "completed"})
    part1 = write_summary(str(out), plots=False).read_text().split("## Part 1")[1]
    assert "bootstrap over 400 test reviews (1 seed)" in part1
    assert "paired bootstrap over test reviews (1 seed)" in part1
    assert "includes zero" in part1
