"""Tiny random-weight models through each part, end to end, on reviews they can learn: CSV rows, run records,
predictions, and a summary whose numbers are checked against the predictions."""
import csv
import json
import platform

import numpy as np
import pytest

from common import methods
from common.devices import cpu_has_native_bf16
from common.records import CSV_COLUMNS

from conftest import LEARN, PART3_METHODS, run_cli, run_main, table, tiny_args

EXPECTED_COUNTS = {"part1": {"full", "lora"}, "part2": {"full", "prefix"}, "part3": set(PART3_METHODS)}
SECTIONS = {"part1": "## Part 1", "part2": "## Part 2", "part3": "## Part 3"}
NAMES = {m: methods.label(m) for m in PART3_METHODS}  # the registry's labels, as the tables print them
# Methods that learn the planted signal at the test profile's rates (learn_*.yaml): far above chance.
LEARNERS = {"part1": ("full", "lora"), "part2": ("full",), "part3": ("full", "lora")}


@pytest.fixture(scope="module")
def part_results(tmp_path_factory, signal_data):
    """Each part run once as a user would (a subprocess, exit code checked); the tests read its results."""
    out = {}
    for part in ("part1", "part2", "part3"):
        res = tmp_path_factory.mktemp(part) / "results"
        r = run_cli(part, tiny_args(part, signal_data, res, profile=LEARN[part]))
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        out[part] = (res, r)
    return out


def preds_of(res, row) -> dict:
    with np.load(res / "runs" / f"{row['run_id']}.preds.npz") as z:
        return {k: z[k] for k in z.files}


def bootstrap_diff(ca, cb, n_boot=2000, seed=0) -> tuple:
    """Percentile bootstrap of mean(cb) - mean(ca) over reviews, written out here: the report's interval for a
    paired comparison of one seed."""
    idx = np.random.default_rng(seed).integers(0, len(ca), size=(n_boot, len(ca)))
    values = cb[idx].mean(axis=1) - ca[idx].mean(axis=1)
    return tuple(np.quantile(values, [0.025, 0.975]))


@pytest.mark.parametrize("part", ["part1", "part2", "part3"])
def test_part_end_to_end(part_results, part):
    res, r = part_results[part]
    rows = list(csv.DictReader(open(res / f"{part}.csv")))
    assert {row["method"] for row in rows} == EXPECTED_COUNTS[part] and len(rows) == len(EXPECTED_COUNTS[part])
    assert list(rows[0].keys())[: len(CSV_COLUMNS)] == CSV_COLUMNS
    for row in rows:
        assert row["status"] == "completed" and row["part"] == part and row["profile"] == str(LEARN[part])
        assert 0 < int(row["trainable_params"]) <= int(row["total_params"])
        assert float(row["train_time_s"]) > 0 and float(row["eval_time_s"]) > 0
        assert float(row["peak_rss_mib"]) > 100 and row["peak_mem_allocated_mib"] == ""  # CPU run
        assert row["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32") and row["device"].startswith("cpu")
        assert int(row["test_samples"]) == 64 and int(row["train_samples"]) == 160
        rec = json.loads((res / "runs" / f"{row['run_id']}.json").read_text())
        assert rec["status"] == "completed" and rec["config"]["train"]["learning_rate"] == float(row["learning_rate"])
        for key in ("torch", "transformers", "peft", "git_commit", "device", "date"):
            assert key in rec["env"]
        assert rec["env"]["transformers"] == "4.57.6" and rec["env"]["peft"] == "0.21.2"
        assert rec["params"]["trainable"] == int(row["trainable_params"]) and rec["seed"] == 0
        # Where each value off the schema's defaults came from, as --dry-run lists it.
        assert rec["config_sources"]["part"]["source"].startswith("configs/part")
        assert rec["config_sources"]["train.learning_rate"] == {"value": float(row["learning_rate"]),
                                                                "source": row["lr_source"]}
        # Validation at step 0 and twice an epoch for 3 epochs of 10 steps: 7 points, the last the final model.
        assert [p["step"] for p in rec["curves"]["val"]] == [0, 5, 10, 15, 20, 25, 30]
        assert rec["metrics"]["val_accuracy"] == rec["curves"]["val"][-1]["val_accuracy"]
        assert rec["metrics"]["f1"] is not None and rec["command"]
        # the process's resident memory when training began is recorded beside the peak, and lies below it
        assert 100 < rec["metrics"]["rss_start_mib"] <= rec["metrics"]["peak_rss_mib"]
        # CPU defaults: the fast dropout kernel (SFC64's words), so attention dropout must run eager while training:
        # BERT keeps SDPA for evaluation, DistilBERT is built eager.
        # AdapterHub replaces BERT's attention class with its own: it keeps SDPA (attention dropout inside it).
        attention = "eager" if part == "part1" else ("sdpa" if row["method"] == "adapter" else
                                                      "sdpa (eager while training)")
        # AdamW's fused kernel: what `auto` picks on CPU with torch >= 2.4 (the pinned torch). The last layer for
        # the [CLS] row only: BERT's (parts 2 and 3); DistilBERT classifies its own way.
        # The allocator that keeps freed blocks for the next step: auto's choice on CPU under glibc.
        assert row["dropout_kernel"] == "fast_sfc64" and rec["kernels"] == {
            "dropout": "fast_sfc64", "attention": attention, "optimizer": "adamw_torch_fused",
            "last_layer": "full" if part == "part1" else "cls",
            "allocator": "reuse" if platform.libc_ver()[0] == "glibc" else "system"}
        p = preds_of(res, row)
        assert len(p["pred"]) == 64 and set(np.unique(p["label"])) == {0, 1}
        assert float((p["pred"] == p["label"]).mean()) == pytest.approx(float(row["accuracy"]))
        # The collapse flag is what the predictions say: one class for at least 99% of the reviews.
        share = np.bincount(p["pred"].astype(int), minlength=2).max() / len(p["pred"])
        assert float(row["majority_share"]) == pytest.approx(share)
        assert row["collapsed"] == str(share >= 0.99) and rec["collapsed"] == (share >= 0.99)
        if row["method"] in LEARNERS[part]:
            assert float(row["accuracy"]) >= 0.9 and row["collapsed"] == "False", row
    peft_rows = [row for row in rows if row["method"] != "full"]
    full_row = next(row for row in rows if row["method"] == "full")
    assert int(peft_rows[0]["trainable_params"]) < int(full_row["trainable_params"])
    summary = (res / "summary.md").read_text()
    section = summary.split(SECTIONS[part])[1].split("\n## ")[0]
    findings = summary.split("## Findings")[1].split("\n## ")[0]
    assert ("Reference report: cost" in section) == (part != "part3")
    assert "mean cross-entropy" in summary.split("## How to read this report")[1]
    # The only part here, so the Findings show it: one row per method (¹ marks a trained pooler).
    head = {k.rstrip("¹²"): v for k, v in table(findings, "Method").items()}
    detail = {k.rstrip("¹²"): v for k, v in table(section, "Method").items()}
    assert set(head) == set(detail) == {NAMES[m] for m in EXPECTED_COUNTS[part]}
    # Every Δ and its interval, recomputed here from the two runs' predictions on the same reviews; a collapsed
    # run has none.
    full_correct = (lambda p: (p["pred"] == p["label"]).astype(float))(preds_of(res, full_row))
    for row in peft_rows:
        cell = head[NAMES[row["method"]]]["Δ vs full FT, points [95% CI]"]
        collapsed = row["collapsed"] == "True"
        assert ("collapsed" in detail[NAMES[row["method"]]]["Accuracy, mean ± sd [95% CI]"]) == collapsed
        if collapsed:
            assert cell == "collapsed"
            continue
        p = preds_of(res, row)
        correct = (p["pred"] == p["label"]).astype(float)
        lo, hi = bootstrap_diff(full_correct, correct)
        assert cell == f"{100 * (correct.mean() - full_correct.mean()):+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]"
    if part == "part3":
        # The pairwise table: row minus column, a star where the paired interval excludes zero; collapsed methods
        # are left out of it. With this many methods it is in other_runs.md, columns numbered as the rows.
        assert "other_runs.md#which-methods-beat-which" in section
        numbered = table((res / "other_runs.md").read_text().split("## Which methods beat which?")[1], "")
        number = {k.split(". ", 1)[1]: k.split(".")[0] for k in numbered}
        pair = {name: {b: numbered[f"{number[name]}. {name}"][number[b]] for b in number} for name in number}
        correct = {row["method"]: (lambda p: (p["pred"] == p["label"]).astype(float))(preds_of(res, row))
                   for row in rows if row["collapsed"] == "False"}
        assert set(pair) == {NAMES[m] for m in correct}
        for a in correct:
            for b in correct:
                if a == b:
                    continue
                lo, hi = bootstrap_diff(correct[b], correct[a])
                star = "*" if lo > 0 or hi < 0 else ""
                assert pair[NAMES[a]][NAMES[b]] == f"{100 * (correct[a].mean() - correct[b].mean()):+.1f}{star}"
    # Each plot shows every method in the method's own colour (fixed by its name, the same in every figure).
    import matplotlib.image

    from common.report.plots import method_color

    for plot in ("train_loss", "val_accuracy", "pareto", "cost"):
        img = matplotlib.image.imread(res / "plots" / f"{part}_{plot}.png")[..., :3]
        assert img.shape[0] > 300 and img.shape[1] > 500
        # Bars never hide each other; lines and points of collapsed methods (all at 50%) can.
        shown = {"cost": EXPECTED_COUNTS[part], "train_loss": EXPECTED_COUNTS[part],
                 "pareto": {row["method"] for row in rows if row["collapsed"] == "False"}}.get(plot, ())
        for method in shown:
            rgb = np.array([int(method_color(method)[i:i + 2], 16) / 255 for i in (1, 3, 5)])
            # Bars are drawn at 60% opacity over white: their pixels mix the colour with white.
            shades = [rgb, 0.6 * rgb + 0.4]
            assert any((np.abs(img - c).max(axis=-1) < 0.02).sum() > 20 for c in shades), (plot, method)


def test_second_run_skips_completed_a_changed_set_reruns_and_force_replaces(part_results, signal_data, capsys):
    res, _ = part_results["part1"]
    args = tiny_args("part1", signal_data, res, profile=LEARN["part1"])
    before = (res / "part1.csv").read_text()
    rc, out, _ = run_main("part1", args, capsys)
    assert rc == 0 and out.count("[skip]") == 2
    assert (res / "part1.csv").read_text() == before
    # A value that changes what a run computes makes a new run, not a skip.
    lora = ["configs/part1_distilbert_lora.yaml"]
    rc, out, _ = run_main("part1", tiny_args("part1", signal_data, res, "--set", "train.learning_rate=0.02",
                                             profile=LEARN["part1"], configs=lora), capsys)
    assert rc == 0 and "[skip]" not in out and "[run]" in out
    rows = list(csv.DictReader(open(res / "part1.csv")))
    assert len(rows) == 3 and len({row["run_id"] for row in rows}) == 3
    # --force reruns the r=8 LoRA run and replaces its record. Mark its CSV row so that reading the CSV would show.
    lora_row = next(row for row in rows if row["method"] == "lora" and row["run_id"] in before)
    marked = [dict(row, accuracy="0.123456") if row["run_id"] == lora_row["run_id"] else row for row in rows]
    with open(res / "part1.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(marked)
    rc, out, _ = run_main("part1", tiny_args("part1", signal_data, res, "--force", profile=LEARN["part1"],
                                             configs=lora), capsys)
    assert rc == 0 and "[skip]" not in out
    rows = list(csv.DictReader(open(res / "part1.csv")))
    # The rerun replaced the run's record; the CSV is generated from the records, so the hand edit is gone too.
    assert len(rows) == 3 and [row["run_id"] for row in rows].count(lora_row["run_id"]) == 1
    new = next(row for row in rows if row["run_id"] == lora_row["run_id"])
    assert new["accuracy"] != "0.123456" and new["date"] > lora_row["date"]
    summary = (res / "summary.md").read_text()
    assert "12.35" not in summary and f"{100 * float(new['accuracy']):.2f}%" in summary
