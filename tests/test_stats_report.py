"""Statistics on constructed data with known answers; the summary generator on fixture CSVs."""
import re

import numpy as np
import pytest

from common import records, stats
from common.report import write_summary

from conftest import table, write_run


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


def test_collapse_flag_on_constructed_predictions():
    assert stats.majority_share(np.array([0] * 990 + [1] * 10)) == pytest.approx(0.99)
    assert stats.is_collapsed(stats.majority_share(np.array([0] * 990 + [1] * 10)))  # 99%: collapsed
    assert not stats.is_collapsed(stats.majority_share(np.array([1] * 989 + [0] * 11)))  # 98.9%: a weak model
    assert stats.is_collapsed(stats.majority_share(np.ones(50, int)))
    assert stats.majority_share(np.array([0, 1, 1, 0])) == 0.5
    assert not stats.is_collapsed(None) and not stats.is_collapsed(float("nan"))


def test_classification_metrics_report_the_majority_share():
    from common.training import classification_metrics

    labels = np.array([0, 1] * 50)
    m = classification_metrics(np.tile([[2.0, -1.0]], (100, 1)), labels)  # always class 0
    assert m["accuracy"] == 0.5 and m["majority_share"] == 1.0


def test_sweep_never_picks_a_collapsed_rate_when_another_learned():
    from common.sweep import pick_best

    scores = [{"learning_rate": 1e-3, "val_accuracy": 0.70, "val_loss": 0.5, "collapsed": False},
              {"learning_rate": 3e-3, "val_accuracy": 0.71, "val_loss": 0.69, "collapsed": True},
              {"learning_rate": 1e-2, "val_accuracy": 0.60, "val_loss": 0.6, "collapsed": False}]
    best, note = pick_best(scores)
    assert best["learning_rate"] == 1e-3 and "0.003 collapsed" in note and "not eligible" in note
    best, note = pick_best([dict(s, collapsed=True) for s in scores])
    assert best["learning_rate"] == 3e-3 and "every lr collapsed" in note
    best, note = pick_best([dict(s, collapsed=False) for s in scores])
    assert best["learning_rate"] == 3e-3 and "no collapse" in note


def _fixture_results(out, seeds=(0, 1, 2), kernel=None, precision="fp32", date="2026-11-27T10:00:00+00:00",
                     accs=(("full", 0.9, 1000), ("lora", 0.8, 10)), lr=1e-3, epochs=1, profile="fixture",
                     train_samples=100, config=None):
    """Full FT right on 90% of 1,000 test reviews, LoRA on 80% (LoRA's errors a superset): a known gap."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 1000)
    for seed in seeds:
        for method, acc, params in accs:
            wrong = np.zeros(1000, bool)
            wrong[: int(round(1000 * (1 - acc))) + seed] = True
            pred = np.where(wrong, 1 - label, label) if acc > 0.5 else np.zeros(1000, int)  # 0.5: constant
            run_id = f"part1-{method}-s{seed}-fixture" + (f"-{kernel}" if kernel else "") + f"-{precision}-{lr}" + \
                ("" if epochs == 1 else f"-e{epochs}") + ("" if train_samples == 100 else f"-n{train_samples}")
            records.write_predictions(str(out), run_id, {"row": np.arange(1000), "label": label, "pred": pred,
                                                         "prob_pos": np.where(pred == 1, 0.9, 0.1)})
            share = stats.majority_share(pred)
            write_run(out, {
                "run_id": run_id, "part": "part1", "method": method, "model": "m", "profile": profile,
                "seed": seed, "learning_rate": lr, "lr_source": "config", "accuracy": float((pred == label).mean()),
                "loss": 0.3, "trainable_params": params, "total_params": 1000, "trainable_pct": params / 10,
                "train_time_s": 10, "peak_rss_mib": 500, "device": "cpu", "precision": precision, "date": date,
                "train_samples": train_samples, "test_samples": 1000, "max_length": 64, "epochs": epochs,
                "majority_share": share, "collapsed": stats.is_collapsed(share),
                **({"dropout_kernel": kernel} if kernel else {})},
                **({"config": config} if config else {}), curves={
                    "val": [{"step": 5, "epoch": 0.5, "val_loss": 0.4, "val_accuracy": acc - 0.1},
                            {"step": 10, "epoch": 1.0, "val_loss": 0.3, "val_accuracy": acc}],
                    "train": [{"step": k, "loss": 0.7 - 0.02 * k - 0.01 * seed} for k in range(1, 11)]})


def test_summary_from_fixture_csvs(tmp_path):
    out = tmp_path / "results"
    _fixture_results(out)
    records.write_json(records.record_path(str(out), "part1-lora-s9-broken"),
                       {"run_id": "part1-lora-s9-broken", "part": "part1", "method": "lora", "status": "failed"})
    (out / "plots").mkdir()
    (out / "plots" / "part1_curves.png").write_bytes(b"an earlier layout's plot")
    text = write_summary(str(out)).read_text()
    findings = text.split("## Findings")[1].split("\n## ")[0]
    part1 = text.split("## Part 1")[1].split("## Part 2")[0]
    # The Findings open the summary: what ran, then one row per method with one denominator for the share.
    assert text.splitlines().index("## Findings") < 5
    # The model's size is said once, in the table's share column (full FT trains every parameter).
    assert "**What ran:** m, standing in for DistilBERT-base; profile `fixture`: 100 train / 1,000 test reviews, " \
           "64 tokens, 1 epoch; fp32 on cpu, torch dropout kernel; seeds 0-2." in " ".join(findings.split())
    row = table(findings, "Method")
    assert "Trainable, % of full FT's 1,000" in row["LoRA"] and findings.count("1,000 parameters") == 0
    # full: 100, 101, 102 wrong of 1000 -> 89.90% +- 0.10; lora: 200, 201, 202 wrong -> 79.90%. The seeds agree,
    # so the gap's interval is the test sample's: -10 +- 1.96 * sqrt(0.1 * 0.9 / 1000) = +-1.86 (100 reviews differ
    # in every seed).
    assert [row["LoRA"][k] for k in ("Trainable, % of full FT's 1,000", "Accuracy", "Δ vs full FT, points [95% CI]",
                                     "Verdict", "Reference report")] == \
        ["1.00%", "79.90%", "-10.00 [-11.85, -8.15]", "below by 10.0", "89.9% (DistilBERT)"]
    assert row["Full FT"]["Verdict"] == "reference"
    assert "At 1 epoch, LoRA is below full FT, the interval excluding zero." in " ".join(findings.split())
    # The reference report's own gap (89.9 - 92.2) is said once, beside this interval: -2.30 > -8.15.
    assert "LoRA's -2.30 (DistilBERT) above it" in " ".join(findings.split()) and text.count("-2.30") == 1
    # The part's own table keeps what the Findings do not say: LoRA 79.90 +- 1.96 * sqrt(0.8 * 0.2 / 1000) = +-2.49.
    detail = table(part1, "Method")
    assert detail["LoRA"]["Accuracy, mean ± sd [95% CI]"] == "79.90% ± 0.10 [77.41, 82.39]"
    assert detail["LoRA"]["McNemar p < 0.05"].startswith("3 of 3 (p ≤ ")
    assert "Δ vs full FT, points [95% CI]" not in detail["LoRA"]  # said once, in the Findings
    assert detail["LoRA"]["Reference report: cost"] == "4m24s, ~2588 MB" and text.count("92.2%") == 1
    assert "s9" not in text  # failed rows are not reported
    assert "No completed runs yet." in text.split("## Part 2")[1]
    # Each note once, in the closing section the tables point to.
    how = text.split("## How to read this report")[1]
    assert text.count("mean cross-entropy") == 1 and "mean cross-entropy" in how
    assert text.count("Satterthwaite") == 1 and "Satterthwaite" in how
    for plot in ("train_loss", "val_accuracy", "pareto", "cost"):
        assert f"plots/part1_{plot}.png" in part1 and (out / "plots" / f"part1_{plot}.png").stat().st_size > 5000
    assert not (out / "plots" / "part1_curves.png").exists()  # stale plots of another layout are removed


def test_plots_are_drawn_again_only_when_what_they_show_changed(tmp_path, monkeypatch):
    from common.report import plots

    out = tmp_path / "results"
    _fixture_results(out)
    write_summary(str(out))
    drawn = []
    real = plots.draw_loss  # the first of a part's plots: drawn once per drawing of them
    monkeypatch.setattr(plots, "draw_loss", lambda *a: drawn.append(a[3].name.split("_")[0]) or real(*a))
    first = (out / "plots" / "part1_pareto.png").read_bytes()
    write_summary(str(out))
    assert drawn == [] and (out / "plots" / "part1_pareto.png").read_bytes() == first  # nothing changed
    (out / "plots" / "part1_cost.png").unlink()
    write_summary(str(out))
    assert drawn == ["part1"]  # a plot missing: the part's plots are drawn again
    run_id = next(r["run_id"] for r in records.read_csv_rows(out / "part1.csv") if r["method"] == "lora")
    path = records.record_path(str(out), run_id)
    path.write_text(path.read_text().replace('"loss": ', '"loss": 0.1, "was": ', 1))  # a record's curve changed
    write_summary(str(out))
    assert drawn == ["part1", "part1"]


def test_headline_is_the_most_recent_setup_with_the_most_seeds(tmp_path):
    out = tmp_path / "results"
    _fixture_results(out, seeds=(0, 1, 2), precision="bf16", date="2026-11-20T10:00:00+00:00")  # old, 3 seeds
    _fixture_results(out, seeds=(0,), precision="fp16", date="2026-11-28T10:00:00+00:00")  # newest, 1 seed
    _fixture_results(out, seeds=(0, 1, 2), kernel="fast", date="2026-11-25T10:00:00+00:00",  # newer, 3 seeds
                     accs=(("full", 0.9, 1000), ("lora", 0.85, 10)))
    _fixture_results(out, seeds=(0,), kernel="fast", date="2026-11-25T09:00:00+00:00", lr=5e-3,  # same setup,
                     accs=(("lora", 0.7, 10),))                                                 # another lr
    _fixture_results(out, seeds=(0, 1, 2, 3), kernel="fast", precision="bf16", date="2026-11-26T10:00:00+00:00",
                     accs=(("lora", 0.8, 10),))  # the most seeds, but one method only: not a comparison
    summary = write_summary(str(out), plots=False).read_text()
    head = summary.split("## Findings")[1].split("\n## ")[0]
    others = (out / "other_runs.md").read_text()
    assert "fp32 on cpu, fast dropout kernel; seeds 0-2" in " ".join(head.split())
    assert table(head, "Method")["LoRA"]["Accuracy"] == "84.90%" and head.count("| LoRA |") == 1
    assert "| Full FT |" in head and "5e-3" not in summary and "Other runs" not in summary
    # Every other setup in its own file, linked once, labelled by what differs from the headline.
    assert summary.count("(other_runs.md)") == 1
    assert "### precision bf16 (headline: fp32); dropout kernel torch (headline: fast)" in others
    assert "### precision fp16 (headline: fp32); dropout kernel torch (headline: fast)" in others
    assert "### precision bf16 (headline: fp32)\n" in others
    same = others.split("### same setup, other learning rates")[1].split("\n## ")[0]
    assert table(same, "Method")["LoRA"]["Accuracy, mean ± sd [95% CI]"].startswith("70.00% (1 seed)")
    assert "Reference report" not in others  # quoted once, in the summary


def test_no_duplicate_labels_and_one_rate_format(tmp_path):
    """Two learning rates of one method in one table are told apart by their rate, written one way."""
    out = tmp_path / "results"
    _fixture_results(out, seeds=(0, 1, 2), kernel="fast", date="2026-11-25T10:00:00+00:00")
    _fixture_results(out, seeds=(0,), kernel="fast", date="2026-11-25T09:00:00+00:00", lr=5e-3,
                     accs=(("lora", 0.7, 10),))
    _fixture_results(out, seeds=(0,), kernel="fast", date="2026-11-25T09:00:00+00:00", lr=2.5e-05,
                     accs=(("lora", 0.75, 10),))
    write_summary(str(out), plots=False)
    rows = table((out / "other_runs.md").read_text(), "Method")
    assert set(rows) == {"LoRA, lr 5e-3", "LoRA, lr 2.5e-5"}
    from common.report.runs import format_rate

    assert [format_rate(x) for x in (0.0001, "1e-04", 0.00033, 2.5e-05, 0.01, "x")] == \
        ["1e-4", "1e-4", "3.3e-4", "2.5e-5", "1e-2", "x"]


def test_a_collapsed_run_is_called_what_it_is(tmp_path):
    out = tmp_path / "results"
    _fixture_results(out, accs=(("full", 0.9, 1000), ("lora", 0.5, 10)))  # LoRA predicts class 0 throughout
    text = write_summary(str(out), plots=False).read_text()
    findings = table(text.split("## Findings")[1], "Method")["LoRA"]
    detail = table(text.split("## Part 1")[1], "Method")["LoRA"]
    # No Δ, interval, verdict or McNemar for a failed run: it says collapsed, with how many seeds.
    assert findings["Δ vs full FT, points [95% CI]"] == findings["Verdict"] == "collapsed"
    assert re.fullmatch(r"\d\d\.\d\d% ± 0\.00 \*\*collapsed\*\* \(3 of 3 seeds\)",
                        detail["Accuracy, mean ± sd [95% CI]"])
    assert detail["McNemar p < 0.05"] == "–" and "e-" not in detail["McNemar p < 0.05"]
    assert "Collapsed (one class for at least 99% of reviews): LoRA (3 of 3 seeds)" in " ".join(text.split())
    # The flag is the record's (metrics.collapsed, from the predictions at test time), and the generated CSV says it.
    from common.table import load_table, part_rows

    lora = [r for r in part_rows(load_table(out), "part1") if r["method"] == "lora"]
    assert lora and all(r["collapsed"] is True and r["majority_share"] == 1.0 for r in lora)
    assert {r["collapsed"] for r in records.read_csv_rows(out / "part1.csv") if r["method"] == "lora"} == {"True"}


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
        write_run(out, {
            "run_id": run_id, "part": "part1", "method": method, "model": "m", "profile": "p", "seed": 0,
            "learning_rate": 1e-3, "accuracy": float((pred == label).mean()), "loss": 0.4, "trainable_params": 5,
            "total_params": 10, "trainable_pct": 50, "device": "cpu", "precision": "fp32"})
    text = write_summary(str(out), plots=False).read_text()
    lora = table(text.split("## Findings")[1], "Method")["LoRA"]
    assert lora["Verdict"] == "no difference resolved"
    lo, hi = map(float, re.search(r"\[(\S+), (\S+)\]", lora["Δ vs full FT, points [95% CI]"]).groups())
    assert lo < 0 < hi
    # One seed: the accuracy's interval is a bootstrap over the 400 reviews, about +-1.96 sqrt(.85 .15 / 400) = +-3.5.
    acc = table(text.split("## Part 1")[1], "Method")["LoRA"]["Accuracy, mean ± sd [95% CI]"]
    lo, hi = map(float, re.search(r"\(1 seed\) \[(\S+), (\S+)\]", acc).groups())
    assert 5 < hi - lo < 9


def test_make_summary_regenerates_the_summary(tmp_path):
    """`make summary` as a user types it (ARGS passes the output folder), writing from the CSVs."""
    import subprocess

    from conftest import ROOT

    out = tmp_path / "results"
    _fixture_results(out, accs=(("full", 0.9, 1000), ("lora", 0.85, 10)))
    r = subprocess.run(["make", "-s", "summary", f"ARGS=--output-dir {out}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# imdb-peft") and "| LoRA |" in summary and "| Full FT |" in summary


def test_the_training_section_shows_each_verdict_at_every_budget(tmp_path):
    """One setup at 100 reviews x 1 epoch, x 3 epochs and 800 reviews x 1 epoch: each method's Δ vs full FT at
    each, the change of that Δ with its interval, a dash where a method did not run, what moved, the plots."""
    out = tmp_path / "results"
    _fixture_results(out, accs=(("full", 0.9, 1000), ("lora", 0.8, 10), ("prefix", 0.85, 20)),
                     config={"train": {"evals_per_epoch": 2},
                             "peft": {"method": "full", "train_pooler": True, "loha": {"r": 8}}})
    _fixture_results(out, accs=(("full", 0.92, 1000), ("lora", 0.92, 10), ("prefix", 0.9, 20)), epochs=3,
                     profile="longer")
    _fixture_results(out, accs=(("full", 0.93, 1000), ("lora", 0.91, 10)), profile="more", train_samples=800,
                     config={"train": {"evals_per_epoch": 4},
                             "peft": {"method": "full", "train_pooler": True, "loha": {"r": 4}}})
    summary = write_summary(str(out), plots=True).read_text()
    section = summary.split("## How verdicts move with training")[1].split("\n## ")[0]
    # What else differs between two budgets' full FT runs: a training key does; a method section full FT never
    # reads (LoHa's rank) does not.
    assert "train.evals_per_epoch (2, 4)" in section and "peft.loha" not in section
    assert "### Part 1: 100 × 1 epoch, 100 × 3 epochs, 800 × 1 epoch" in section
    rows = table(section, "Method")
    lora, prefix = rows["LoRA"], rows["Prefix tuning"]
    # 1 epoch: LoRA wrong on 200 + seed reviews, full FT on 100 + seed: -10.00 points at every seed.
    assert lora["Δ vs full FT, 100 × 1 epoch [95% CI]"].startswith("-10.00 [")
    assert lora["Δ vs full FT, 100 × 1 epoch [95% CI]"].endswith("below by 10.0")
    assert lora["Δ vs full FT, 100 × 3 epochs [95% CI]"] == "+0.00 [+0.00, +0.00] no difference resolved"
    # The change of Δ, review by review: 0 - (-10) = +10 points; at 800 reviews -2 - (-10) = +8.
    assert lora["Change of Δ, 100 × 1 epoch → 100 × 3 epochs [95% CI]"].startswith("+10.00 [")
    assert lora["Change of Δ, 100 × 1 epoch → 800 × 1 epoch [95% CI]"].startswith("+8.00 [")
    assert lora["Δ vs full FT, 800 × 1 epoch [95% CI]"].startswith("-2.00 [")
    # Prefix tuning did not run at 800 reviews: a dash, never a guess.
    assert prefix["Δ vs full FT, 800 × 1 epoch [95% CI]"] == "–"
    assert prefix["Change of Δ, 100 × 1 epoch → 800 × 1 epoch [95% CI]"] == "–"
    assert rows["Full FT"]["Δ vs full FT, 100 × 1 epoch [95% CI]"] == "reference"
    cost = table("| Method | Accuracy" + section.split("| Method | Accuracy", 1)[1], "Method")
    assert cost["LoRA"]["Accuracy, 100 × 1 epoch / 100 × 3 epochs / 800 × 1 epoch"] == "79.90% / 91.90% / 90.90%"
    assert cost["Prefix tuning"]["Learning rate, 100 × 1 epoch / 100 × 3 epochs / 800 × 1 epoch"] == "1e-3 / 1e-3 / –"
    text = " ".join(section.split())
    # At 800 reviews LoRA is still below full FT, by less: the same verdict.
    assert "Verdicts that hold at 800 × 1 epoch (the size of a gap may move): LoRA (below by 10.0 → below by 2.0)." \
        in text
    # -2.3 against [-11.9, -8.1], [0, 0] and -2 +- 1.96 sqrt(.02 .98 / 1000) = [-2.9, -1.1].
    assert "The reference report's -2.30 for LoRA (DistilBERT, one run) lies above the interval at 100 × 1 epoch; " \
           "below the interval at 100 × 3 epochs; inside the interval at 800 × 1 epoch." in text
    findings = " ".join(summary.split("## Findings")[1].split("\n## ")[0].split())
    # The verdicts that change are the Findings' (said once); the section keeps the ones that hold.
    assert "changes 1 verdict: at 100 × 3 epochs (seeds 0-2) LoRA → no difference resolved, 1 holds; at 800 × 1 " \
           "epoch (seeds 0-2) none, 1 holds." in findings and "Verdicts that change" not in text
    for name in ("budget_part1_delta", "budget_part1_100x3_val_accuracy", "budget_part1_800x1_val_accuracy"):
        assert f"![{name}](plots/{name}.png)" in section and (out / "plots" / f"{name}.png").stat().st_size > 1000


def test_a_damaged_run_record_is_named_in_a_warning_not_a_traceback(tmp_path, capsys):
    out = tmp_path / "results"
    _fixture_results(out)
    damaged = next((out / "runs").glob("part1-lora-s1-*.json"))
    damaged.write_text(damaged.read_text()[:40])  # cut short, as a full disk or an interrupted copy leaves it
    capsys.readouterr()
    summary = write_summary(str(out), plots=True).read_text()
    err = capsys.readouterr().err
    assert f"[warning] {damaged}: damaged run record, left out of the report" in err and err.count("[warning]") == 1
    assert "| LoRA |" in summary and "Traceback" not in err


def test_a_hand_edited_record_is_named_in_a_warning_and_the_csv_is_only_a_view(tmp_path, capsys):
    """A record whose accuracy is no number or whose seed is gone is left out with a warning; the part CSV is
    generated from the records, so a damaged CSV is simply written again."""
    import json

    out = tmp_path / "results"
    _fixture_results(out)
    paths = sorted((out / "runs").glob("part1-lora-s*.json"))
    for path, edit in zip(paths, ({"accuracy": "n/a"}, {"seed": None})):
        rec = json.loads(path.read_text())
        rec["metrics"].update(edit) if "accuracy" in edit else rec.update(edit)
        path.write_text(json.dumps(rec))
    (out / "part1.csv").write_text("run_id,part\ncut sho")
    gone = out / "runs" / "part1-full-s9-gone.json"  # a listing whose listed record was removed
    gone.write_text(json.dumps({"run_id": gone.stem, "listed_from": "sweep/runs/part1-full-s9-gone.json"}))
    capsys.readouterr()
    text = write_summary(str(out), plots=False).read_text()
    err = capsys.readouterr().err
    assert f"[warning] {gone}: lists {out / 'sweep' / 'runs' / gone.name}, which is missing; left out" in err
    assert f"[warning] {paths[0]}: damaged run record (accuracy or seed not a number), left out of the report" in err
    assert f"[warning] {paths[1]}: damaged run record (fields missing), left out of the report" in err
    assert "Traceback" not in err and "| LoRA |" in text
    rows = records.read_csv_rows(out / "part1.csv")
    assert len(rows) == 4 and {r["run_id"] for r in rows} == {p.stem for p in (out / "runs").glob("*.json")} - \
        {p.stem for p in paths[:2]} - {gone.stem}


def test_compare_falls_back_when_seeds_saw_different_reviews(tmp_path):
    """The crossed interval needs one review order for every seed; seeds scored on other reviews get the
    t-interval over paired seeds, and say why."""
    from common.analysis import compare

    out = tmp_path / "results"
    _fixture_results(out)
    from common.table import load_table, part_rows

    def groups():
        rows = part_rows(load_table(out), "part1")
        return {m: {"rows": [r for r in rows if r["method"] == m]} for m in ("full", "lora")}

    assert compare(groups()["full"], groups()["lora"])["ci_how"].startswith("seeds and test reviews")
    rows = part_rows(load_table(out), "part1")
    for r in rows:
        if r["seed"] == 1:  # seed 1 of both methods scored on the reviews in another order
            p = records.read_predictions(records.predictions_path(str(out), r["run_id"]))
            records.write_predictions(str(out), r["run_id"], {k: v[::-1] for k, v in p.items()})
    g = groups()  # the table read again: it holds each run's predictions as they were when it was loaded
    c = compare(g["full"], g["lora"])
    assert c["ci_how"] == "t-interval over 3 paired seeds (seeds scored on different reviews)"
    assert len(c["mcnemar"]) == 3  # each seed's own pair still lines up


def test_eighteen_methods_read_as_a_ranked_table_and_a_gain_over_head_only(tmp_path):
    """Every method of the registry in one setup: the Findings give each its Δ vs head only with its interval and
    still fit the first 40 lines; the pairwise table, past eight methods, moves to other_runs.md with its columns
    numbered."""
    from common import methods

    out = tmp_path / "results"
    names = list(methods.METHODS)
    accs = tuple((m, 0.9 - 0.005 * i, 10 + i) for i, m in enumerate(names))  # full best, each next one 0.5 lower
    _fixture_results(out, accs=accs)
    summary = write_summary(str(out), plots=True).read_text()
    lines = summary.splitlines()
    start = lines.index("## Findings")
    assert next(i for i, line in enumerate(lines) if i > start and line.startswith("## ")) <= 40
    assert "Which methods beat which?" not in summary and "other_runs.md#which-methods-beat-which" in summary
    other = (out / "other_runs.md").read_text()
    pair = other.split("## Which methods beat which?")[1].split("\n\n", 4)[3].splitlines()
    assert pair[0] == "| | " + " | ".join(str(i) for i in range(1, 19)) + " |"
    assert pair[2].startswith("| 1. Full FT | – |") and pair[-1].startswith("| 18. ")
    findings = summary.split("## Findings")[1].split("\n## ")[0]
    head = 0.9 - 0.005 * names.index("head")
    words = " ".join(findings.split())
    assert f"Head-only training (the encoder frozen) scores {100 * head - 0.1:.2f}%" in words
    # Each method sits 0.5 x (its index - head's) points from head only on every seed: resolved at 1,000 reviews,
    # so every method above head only in the list adds to it and every one below takes away.
    row = table(findings, "Method")
    gap = 0.5 * (names.index("head") - names.index("lora"))
    assert row["LoRA"]["Δ vs head only [95% CI]"].startswith(f"{gap:+.2f} [")
    assert row["Head only"]["Δ vs head only [95% CI]"] == "–"
    below = len(names) - 1 - names.index("head")
    assert f"{len(names) - 1 - below} of {len(names) - 1} methods add to it" in words
    assert (out / "plots" / "part1_pareto.png").stat().st_size > 1000


def test_the_report_selects_runs_and_puts_two_folders_side_by_side(tmp_path, capsys):
    """A selection (part, profile, date, run ids) reports only the runs it keeps; --beside prints two folders'
    headlines in one table; neither writes a file. A folder without records is one clear error, exit 2."""
    from common.report.__main__ import main

    mine, theirs = tmp_path / "results", tmp_path / "study"
    _fixture_results(mine, date="2026-12-07T10:00:00+00:00")
    _fixture_results(theirs, accs=(("full", 0.9, 1000), ("lora", 0.85, 10)))
    _fixture_results(mine, seeds=(0,), profile="other", accs=(("lora", 0.7, 10),), lr=5e-3)
    before = sorted(p.name for p in mine.rglob("*"))
    assert main(["--output-dir", str(mine), "--profile", "other"]) == 0
    text = capsys.readouterr().out
    assert "selected by profiles other" in text and "70.00%" in text and "79.90%" not in text
    assert main(["--output-dir", str(mine), "--since", "2026-12-07"]) == 0
    text = capsys.readouterr().out
    assert "79.90%" in text and "70.00%" not in text
    lora0 = next(p.stem for p in (mine / "runs").glob("part1-lora-s0-*-0.001.json"))
    assert main(["--output-dir", str(mine), "--runs", lora0]) == 0 and "Full FT" not in capsys.readouterr().out
    assert main(["--output-dir", str(mine), "--beside", str(theirs), "--profile", "fixture"]) == 0
    row = table(capsys.readouterr().out, "Method")["LoRA"]
    assert row[f"`{mine}`: accuracy"].startswith("79.90%") and row[f"`{theirs}`: accuracy"].startswith("84.90%")
    assert row[f"`{theirs}`: Δ vs full FT [95% CI]"].startswith("-5.00 [")
    assert sorted(p.name for p in mine.rglob("*")) == before  # nothing written
    assert main(["--output-dir", str(mine), "--beside", str(tmp_path / "nowhere")]) == 2
    assert "--beside" in capsys.readouterr().err
