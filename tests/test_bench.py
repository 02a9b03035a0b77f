"""The benchmark wrapper runs end to end on CPU with a couple of steps (numbers meaningless; the plumbing is not)."""
import json
import shlex

import pytest

from conftest import IMDB


def test_gpu_bench_wrapper_on_cpu(tmp_path, capsys):
    from bench import gpu

    rc = gpu.main(["--steps", "2", "--methods", "distilbert-lora,bert-ia3", "--eval-size", "32", "--data", str(IMDB),
                   "--out", str(tmp_path), "--set", "data.test_samples=32"])
    assert rc == 0
    (md,) = tmp_path.glob("*.md")
    (js,) = tmp_path.glob("*.json")
    rec = json.loads(js.read_text())
    row = rec["rows"][0]
    assert row["method"] == "distilbert-lora" and row["ratio_ms"] > 0
    assert row["project"]["trainable_params"] == row["reference"]["trainable_params"] == 739_586
    assert row["project"]["real_tokens"] > 0 and rec["env"]["transformers"] == "4.57.6"
    text = md.read_text()
    assert "Command: `" in text and "| distilbert-lora | project |" in text and "| distilbert-lora | reference |" in text
    # A Part 3 method the reference recipe lacks: the project's path alone, no ratio.
    ia3 = rec["rows"][1]
    assert ia3["reference"] is None and ia3["ratio_ms"] is None and ia3["project"]["trainable_params"] == 66_050
    assert "| bert-ia3 | project |" in text and "| bert-ia3 | reference |" not in text


def test_gpu_bench_rejects_unknown_method(tmp_path, capsys):
    from bench import gpu

    assert gpu.main(["--steps", "1", "--methods", "gpt2-full", "--out", str(tmp_path)]) == 2
    assert "unknown" in capsys.readouterr().err


def test_cpu_bench_on_a_small_sample(tmp_path):
    from bench import cpu

    sets = ["data.train_samples=32", "data.val_samples=8", "data.test_samples=16", "data.max_length=32"]
    rc = cpu.main(["--methods", "lora", "--seeds", "0,1", "--out", str(tmp_path), "--no-tokenization",
                   "--data", str(IMDB),
                   *[x for s in sets for x in ("--set", s)]])
    assert rc == 0
    rec = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert [(r["method"], r["seed"]) for r in rec["rows"]] == [("lora", 0), ("lora", 1)]
    from common.devices import cpu_has_native_bf16

    row = rec["rows"][0]
    assert row["method"] == "lora" and row["project"]["dropout_kernel"] == "fast_sfc64"
    assert 0 <= row["plain"]["accuracy"] <= 1 and 0 <= row["project"]["accuracy"] <= 1
    assert row["plain"]["lr"] == row["project"]["lr"]  # same settings on both sides
    # The baseline runs at the best precision the CPU has, as the project does: the ratio is the project's work.
    assert row["plain"]["precision"] == row["project"]["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32")
    for side in ("plain", "project"):  # whole process, timed from outside, holds the training
        assert row[side]["wall_s"] > row[side]["train_s"] > 0
        assert row[side]["gemm_gflops"] > 0  # the machine's speed, probed just before the run
    phases = row["project"]["phases_s"]
    assert {"startup_s", "plan_s", "tokenize_s", "build_model_s", "train_s", "validation_s", "test_s", "save_s",
            "inference_s"} <= set(phases) and all(v is not None and v >= 0 for v in phases.values())
    md = next(tmp_path.glob("*.md")).read_text()
    assert "Overrides for both runs" in md and "| **lora** | mean of 2 |" in md
    assert "Whole-process speed-up" in md and "| Method | startup | plan | tokenize |" in md and "GEMM probe" in md
    cols = cpu.phase_columns(row["project"])
    assert cols["rest"] >= 0 and cols["trainer_other"] >= 0  # phases nest as the record says; none counted twice
    assert sum(cols.values()) == pytest.approx(row["project"]["wall_s"])


def test_cpu_kernel_ab_reports_each_variant(tmp_path):
    from bench import cpu_kernels

    # --process-variants none of PROCESS_VARIANTS' names: the default alone in its own process (a compile takes a
    # minute); its row pools the fresh process's rounds and keeps that process's warm-up.
    assert cpu_kernels.main(["--methods", "lora", "--pairs", "1", "--length", "16", "--processes", "1",
                             "--process-variants", "none", "--profile", "1", "--out", str(tmp_path)]) == 0
    report = json.loads(next(tmp_path.glob("*-cpu-kernels.json")).read_text())
    rows = report["rows"]
    names = [r["variant"] for r in rows]
    assert "default (own process)" in names and "torch.compile (own process)" not in names
    assert all(len(r["warmup_s"]) == 1 and all(s > 0 for s in r["warmup_s"][0]) for r in rows)
    got = {r["variant"]: (r["dropout_kernel"], r["precision"], r["optim"]) for r in rows}
    assert got["default"][0] == "fast_sfc64" and got["torch dropout"][0] == "torch"
    assert got["fast dropout, torch's bits"][0] == "fast"
    assert got["torch dropout, fp32"][:2] == ("torch", "fp32")
    assert got["default"][2] == "fused" and got["foreach AdamW"][2] == "foreach"  # auto: fused on this machine
    assert all(r["ms_per_step"] > 0 and len(r["samples_ms"]) == 1 and r["eval_ms_per_64"] > 0 for r in rows)
    layers = {r["variant"]: r["last_layer"] for r in rows}
    assert layers["default"] == "cls" and layers["full last layer"] == "full"
    assert layers["torch dropout"] == "full"  # auto: cls only where the random stream stays the run's
    prof, nearest_baseline = report["profiles"]
    assert (prof["variant"], nearest_baseline["variant"]) == ("default", "torch dropout")
    kinds = {k["kind"]: k for k in prof["kinds"]}
    assert sum(k["share"] for k in kinds.values()) == pytest.approx(1.0)
    assert sum(k["ms_per_step"] for k in kinds.values()) == pytest.approx(prof["profiled_ms_per_step"])
    products = kinds["matrix products (mm, addmm, bmm)"]
    assert products["gflop_per_step"] > 0 and products["gflops"] > 0 and products["share"] > 0.2
    assert all(k["gflops"] is None for name, k in kinds.items() if name != products["kind"])
    assert kinds["dropout masks (random bits, compare)"]["ms_per_step"] > 0  # the fast kernel's random_ and ge
    assert prof["matmuls_replayed_ms_per_step"] > 0 and prof["matmuls_replayed_share"] > 0


def test_cpu_kernel_ab_times_the_named_variants_against_the_default(tmp_path):
    from bench import cpu_kernels

    assert cpu_kernels.main(["--methods", "lora", "--pairs", "2", "--length", "16", "--processes", "0",
                             "--variant", "fast dropout, torch's bits", "--out", str(tmp_path)]) == 0
    report = json.loads(next(tmp_path.glob("*-cpu-kernels.json")).read_text())
    assert [(r["variant"], r["dropout_kernel"]) for r in report["rows"]] == [
        ("default", "fast_sfc64"), ("fast dropout, torch's bits", "fast")]
    assert all(len(r["samples_ms"]) == 2 for r in report["rows"])
    md = next(tmp_path.glob("*-cpu-kernels.md")).read_text()
    assert "| rounds slower than default |" in md and " of 2 |" in md
    command = md.split("Command: `")[1].split("`")[0]
    assert "fast dropout, torch's bits" in shlex.split(command)  # the header's command runs as it reads
    with pytest.raises(SystemExit) as e:
        cpu_kernels.main(["--variant", "no such variant", "--out", str(tmp_path)])
    assert e.value.code == 2


def test_kernel_profile_counts_matrix_flops_and_sorts_ops_by_kind():
    from bench.cpu_kernels import matmul_flops, op_kind
    from common.dropout import SFC64_WORDS

    assert matmul_flops("aten::mm", [[4, 3], [3, 5]]) == 2 * 4 * 3 * 5
    assert matmul_flops("aten::addmm", [[5], [4, 3], [3, 5], [], []]) == 2 * 4 * 3 * 5  # the bias is not a product
    assert matmul_flops("aten::bmm", [[2, 4, 3], [2, 3, 5]]) == 2 * 2 * 4 * 3 * 5
    assert matmul_flops("aten::mul", [[4, 3], [4, 3]]) == 0
    attention = "attention probabilities, element-wise (scale, mask, softmax, dropout, casts)"
    assert op_kind("aten::_softmax", [[16, 12, 128, 128], [], []]) == attention
    assert op_kind("aten::bmm", [[192, 128, 128], [192, 128, 32]]) == "matrix products (mm, addmm, bmm)"
    assert op_kind("aten::random_", [[190464], [], [], []]) == "dropout masks (random bits, compare)"
    assert op_kind(SFC64_WORDS, [[]]) == "dropout masks (random bits, compare)"  # numpy's part, named for the profiler
    assert op_kind("aten::gelu_backward", [[16, 128, 1536], [16, 128, 1536], []]) == "GELU (forward, backward)"
    assert op_kind("aten::_fused_adamw_", [[], [], []]) == "AdamW step"
    assert op_kind("aten::mul", [[16, 128, 384], [16, 128, 384]]) == "other element-wise, copies, autograd"
