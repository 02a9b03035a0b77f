"""A tiny random-weight model through each part, end to end: CSV rows, run records, predictions, summary."""
import csv
import json
import platform

import numpy as np
import pytest

from common.devices import cpu_has_native_bf16
from common.records import CSV_COLUMNS

from conftest import PART3_METHODS, run_cli, run_main, tiny_args

EXPECTED_COUNTS = {"part1": {"full", "lora"}, "part2": {"full", "prefix"}, "part3": set(PART3_METHODS)}
SECTIONS = {"part1": "## Part 1", "part2": "## Part 2", "part3": "## Part 3"}


@pytest.fixture(scope="module")
def part_results(tmp_path_factory, tiny_data):
    """Each part run once as a user would (a subprocess, exit code checked); both tests read its results."""
    out = {}
    for part in ("part1", "part2", "part3"):
        res = tmp_path_factory.mktemp(part) / "results"
        r = run_cli(part, tiny_args(part, tiny_data, res))
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        out[part] = (res, r)
    return out


@pytest.mark.parametrize("part", ["part1", "part2", "part3"])
def test_part_end_to_end(part_results, part):
    res, r = part_results[part]
    rows = list(csv.DictReader(open(res / f"{part}.csv")))
    assert {row["method"] for row in rows} == EXPECTED_COUNTS[part] and len(rows) == len(EXPECTED_COUNTS[part])
    assert list(rows[0].keys())[: len(CSV_COLUMNS)] == CSV_COLUMNS
    for row in rows:
        assert row["status"] == "completed" and row["part"] == part and row["profile"].endswith("tiny_" + (
            "distilbert.yaml" if part == "part1" else "bert.yaml"))
        assert 0.0 <= float(row["accuracy"]) <= 1.0 and 0.0 < float(row["loss"]) < 5.0
        assert 0 < int(row["trainable_params"]) <= int(row["total_params"])
        assert float(row["train_time_s"]) > 0 and float(row["eval_time_s"]) > 0
        assert float(row["peak_rss_mib"]) > 100 and row["peak_mem_allocated_mib"] == ""  # CPU run
        assert row["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32") and row["device"].startswith("cpu")
        assert int(row["test_samples"]) == 16 and int(row["train_samples"]) == 32
        rec = json.loads((res / "runs" / f"{row['run_id']}.json").read_text())
        assert rec["status"] == "completed" and rec["config"]["train"]["learning_rate"] == float(row["learning_rate"])
        for key in ("torch", "transformers", "peft", "git_commit", "device", "date"):
            assert key in rec["env"]
        assert rec["env"]["transformers"] == "4.57.6" and rec["env"]["peft"] == "0.21.2"
        assert rec["params"]["trainable"] == int(row["trainable_params"]) and rec["seed"] == 0
        assert rec["data"]["fingerprints"]["train"] and len(rec["curves"]["val"]) == 1
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
        with np.load(res / "runs" / rec["predictions_file"]) as z:
            assert len(z["pred"]) == 16 and set(np.unique(z["label"])) == {0, 1}
            acc = float((z["pred"] == z["label"]).mean())
        assert acc == pytest.approx(float(row["accuracy"]))
    peft_rows = [row for row in rows if row["method"] != "full"]
    full_row = next(row for row in rows if row["method"] == "full")
    assert int(peft_rows[0]["trainable_params"]) < int(full_row["trainable_params"])
    summary = (res / "summary.md").read_text()
    section = summary.split(SECTIONS[part])[1].split("\n## ")[0]
    assert "Full FT" in section and ("LoRA" if part == "part1" else "Prefix tuning") in section
    assert ("Seed report (A100" in section) == (part != "part3") and "mean cross-entropy" in section
    if part == "part3":
        for name in ("DoRA", "(IA)³", "Prompt tuning", "P-tuning", "Adapter (seq_bn)", "Which methods beat which?"):
            assert name in section
    assert "McNemar" in section and "**Headline: " in section
    assert rec["collapsed"] in (True, False) and row["collapsed"] in ("True", "False")
    for plot in ("train_loss", "val_accuracy", "pareto", "cost"):
        assert (res / "plots" / f"{part}_{plot}.png").stat().st_size > 1000


def test_second_run_skips_completed_and_force_reruns(part_results, tiny_data, capsys):
    res, _ = part_results["part1"]
    before = (res / "part1.csv").read_text()
    rc, out, _ = run_main("part1", tiny_args("part1", tiny_data, res), capsys)
    assert rc == 0 and out.count("[skip]") == 2
    assert (res / "part1.csv").read_text() == before
    rc, out, _ = run_main("part1", tiny_args("part1", tiny_data, res, "--force",
                                             configs=["configs/part1_distilbert_lora.yaml"]), capsys)
    assert rc == 0 and "[skip]" not in out
    rows = list(csv.DictReader(open(res / "part1.csv")))
    assert len(rows) == 3  # the forced rerun appends; the summary keeps the latest row per run_id
