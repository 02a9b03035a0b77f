"""`make bench-cpu`: the quick profile vs a plain bf16 Trainer script on the same model, sample and settings, here.

  python -m bench.cpu [--data ../shared/data/imdb] [--methods full,lora] [--seeds 0,1,2] [--out results/bench]

Baseline = bench/plain_trainer.py in its own process: what a first script does (padding="max_length", Trainer
defaults, Trainer.evaluate on the test sample) at the best precision the CPU runs natively (bf16 with AVX512-BF16
or AMX, as the project uses; else fp32), so the ratio measures the project's own work. Project = `python -m
part2_lora.train --profile quick --force`, also its own process. Both sides interleaved per seed (the order
alternates between seeds), whole process timed from outside; the table splits each into training and the time
outside training, and lists the project's phases from its run record.
Also prints tokenization throughput (reviews/s) for the full train split with the cache cold and warm.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import write_report
from common import records
from common.config import load_config
from common.data import load_splits, tokenize_split
from common.env import collect_env, now_iso
from common.models import build_tokenizer
from common.records import read_csv_rows
from common.schema import PROJECT_ROOT

SHARED_IMDB = PROJECT_ROOT.parent / "shared" / "data" / "imdb"
CONFIGS = {"full": "configs/part1_distilbert_full.yaml", "lora": "configs/part1_distilbert_lora.yaml"}


def _subprocess(cmd: list) -> str:
    r = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True,
                       env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return r.stdout


def plain_trainer_run(method: str, data_dir: str, seed: int, sets: tuple = ()) -> dict:
    """The baseline (bench/plain_trainer.py) in its own process; its wall time is the process's whole life."""
    cmd = [sys.executable, "-m", "bench.plain_trainer", "--method", method, "--seed", str(seed), "--data", data_dir]
    out = _subprocess(cmd + [x for item in sets for x in ("--set", item)])
    return json.loads(out.strip().splitlines()[-1])


def project_run(method: str, data_dir: str, seed: int, out_dir: str, sets: tuple = ()) -> dict:
    """`python -m part2_lora.train --profile quick --force` in its own process; per-phase seconds from its record."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "part2_lora.train", "--config", CONFIGS[method], "--profile", "quick", "--force",
           "--set", f"data.dir={data_dir}", "--set", f"output.dir={out_dir}", "--set", "train.use_sweep_lr=false",
           "--set", f"train.seed={seed}"]
    _subprocess(cmd + [x for item in sets for x in ("--set", item)])
    wall = time.perf_counter() - t0
    row = [x for x in read_csv_rows(Path(out_dir) / "part1.csv") if x["method"] == method][-1]
    rec = json.loads(records.record_path(out_dir, row["run_id"]).read_text())
    return {"wall_s": wall, "train_s": float(row["train_time_s"]), "accuracy": float(row["accuracy"]),
            "precision": row["precision"], "dropout_kernel": row["dropout_kernel"], "lr": float(row["learning_rate"]),
            "phases_s": rec.get("phases_s", {})}


def tokenization_throughput(data_dir: str) -> dict:
    """Full train split (25,000 reviews), quick profile's tokenizer and length: cold cache, then warm."""
    cfg = load_config(CONFIGS["full"], "quick", (f"data.dir={data_dir}",))
    splits = load_splits(dataclasses.replace(cfg.data, train_samples=None, val_samples=0))
    tok = build_tokenizer(cfg)
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        dcfg = dataclasses.replace(cfg.data, cache_dir=cache)
        for state in ("cold", "warm"):
            t0 = time.perf_counter()
            ds, hit = tokenize_split(splits.train, "train", splits.fingerprints["train"], tok, dcfg)
            dt = time.perf_counter() - t0
            assert hit == (state == "warm")
            out[state] = {"reviews": len(ds), "seconds": round(dt, 3), "reviews_per_s": round(len(ds) / dt, 1)}
    return out


def gemm_probe(seconds: float = 1.0) -> float:
    """The machine's matrix-multiply speed now (GFLOP/s, fp32, a training step's 2,048 x 384 x 1,536 product, all
    threads), taken just before each side's run: a shared machine's speed drifts (seen here: 120-180 GFLOP/s within an
    hour, idle), and the table shows whether both sides of a pair ran at the same speed."""
    import torch  # lazy: only the benchmark's driver probes

    a, b = torch.randn(2048, 384), torch.randn(384, 1536)
    a @ b  # first call: threads and kernels set up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return round(2 * 2048 * 384 * 1536 * n / (time.perf_counter() - t0) / 1e9, 1)


def _outside(side: dict) -> float:
    return side["wall_s"] - side["train_s"]


def _table(rows: list, methods: list) -> list:
    lines = ["| Method | Seed | Baseline: whole / train / outside s, acc | Project: whole / train / outside s, acc | "
             "Whole-process speed-up | Training speed-up | GEMM probe before, GFLOP/s: baseline / project |",
             "|---|---|---|---|---|---|---|"]

    def cells(side):
        return f"{side['wall_s']:.1f} / {side['train_s']:.1f} / {_outside(side):.1f}, {100 * side['accuracy']:.1f}%"

    for r in rows:
        p, q = r["plain"], r["project"]
        lines.append(f"| {r['method']} | {r['seed']} | {cells(p)} | {cells(q)} | {p['wall_s'] / q['wall_s']:.2f}x | "
                     f"{p['train_s'] / q['train_s']:.2f}x | {p['gemm_gflops']:.0f} / {q['gemm_gflops']:.0f} |")
    for m in methods:
        mr = [r for r in rows if r["method"] == m]
        keys = ("wall_s", "train_s", "accuracy", "gemm_gflops")
        mean = {side: {k: float(np.mean([r[side][k] for r in mr])) for k in keys} for side in ("plain", "project")}
        p, q = mean["plain"], mean["project"]
        lines.append(f"| **{m}** | mean of {len(mr)} | {cells(p)} | {cells(q)} | **{p['wall_s'] / q['wall_s']:.2f}x** | "
                     f"{p['train_s'] / q['train_s']:.2f}x | {p['gemm_gflops']:.0f} / {q['gemm_gflops']:.0f} |")
    return lines


# The record's phases in the order a run goes through them. train_and_evaluate_s holds train, validation,
# final_validation and test; what else it spent (the Trainer's set-up, moving predictions) is `trainer_other`.
TOP_PHASES = ("startup_s", "plan_s", "tokenize_s", "build_model_s", "train_and_evaluate_s", "save_s", "inference_s")
INNER_PHASES = ("train_s", "validation_s", "final_validation_s", "test_s")


def phase_columns(side: dict) -> dict:
    """One project run's seconds per phase, plus `trainer_other` and `rest`: the whole process minus every phase
    the record has (writing the record and CSV row, the summary, interpreter exit)."""
    ph = {k: float(v or 0.0) for k, v in side.get("phases_s", {}).items()}
    cols = {k.removesuffix("_s"): ph.get(k, 0.0) for k in ("startup_s", "plan_s", "tokenize_s", "build_model_s")}
    cols.update({k.removesuffix("_s"): ph.get(k, 0.0) for k in INNER_PHASES})
    cols["trainer_other"] = ph.get("train_and_evaluate_s", 0.0) - sum(ph.get(k, 0.0) for k in INNER_PHASES)
    cols.update({k.removesuffix("_s"): ph.get(k, 0.0) for k in ("save_s", "inference_s")})
    cols["rest"] = side["wall_s"] - sum(ph.get(k, 0.0) for k in TOP_PHASES)
    return cols


def _phases_table(rows: list) -> list:
    """The project's seconds per phase (means over seeds, per method), from its run records."""
    if not any(r["project"].get("phases_s") for r in rows):
        return []
    names = list(phase_columns(rows[0]["project"]))
    lines = ["| Method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m in dict.fromkeys(r["method"] for r in rows):
        cols = [phase_columns(r["project"]) for r in rows if r["method"] == m]
        lines.append(f"| {m} | " + " | ".join(f"{np.mean([c[n] for c in cols]):.1f}" for n in names) + " |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED_IMDB))
    ap.add_argument("--methods", default="full,lora")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds; each runs both sides")
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--set", action="append", default=[], help="override for both runs (e.g. smaller samples)")
    ap.add_argument("--no-tokenization", action="store_true", help="skip the 25,000-review tokenization timing")
    a = ap.parse_args(argv)
    env = collect_env("cpu")
    methods, seeds = a.methods.split(","), [int(x) for x in a.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate(seeds):
            for method in methods:
                sides = {}
                # Alternate which side goes first, so that a machine drifting (thermal, caches) favours neither.
                for side in (("plain", "project") if i % 2 == 0 else ("project", "plain")):
                    probe = gemm_probe()
                    sides[side] = plain_trainer_run(method, a.data, seed, tuple(a.set)) if side == "plain" else \
                        project_run(method, a.data, seed, tmp, tuple(a.set))
                    sides[side]["gemm_gflops"] = probe
                rows.append({"method": method, "seed": seed, **sides})
                p, q = sides["plain"], sides["project"]
                print(f"[bench-cpu] {method} seed {seed}: baseline {p['wall_s']:.1f} s (train {p['train_s']:.1f}, "
                      f"acc {p['accuracy']:.3f}, {p['precision']}), project {q['wall_s']:.1f} s (train "
                      f"{q['train_s']:.1f}, acc {q['accuracy']:.3f}, {q['precision']}, {q['dropout_kernel']} "
                      f"dropout): {p['wall_s'] / q['wall_s']:.2f}x whole, {p['train_s'] / q['train_s']:.2f}x train",
                      flush=True)
    tok = None if a.no_tokenization else tokenization_throughput(a.data)
    lines = [f"Device: {env['device']}. Quick profile (MiniLM-L6 on a class-balanced IMDb sample, see "
             f"configs/profiles/quick.yaml) vs bench/plain_trainer.py, a plain Trainer script on the same model, "
             f"sample and settings at {rows[0]['plain']['precision'] if rows else '?'} (learning rate from the "
             f"config, not a sweep). Whole = the process from start to exit, timed from outside (start-up, data, "
             f"tokenization, training, evaluation, and for the project its records, inference timing and summary); "
             f"outside = whole minus training. GEMM probe: the machine's fp32 matrix-multiply speed just before each "
             f"run (bench.cpu.gemm_probe); a pair whose probes differ ran on a machine that changed speed.", ""]
    lines += _table(rows, methods) + [""]
    phases = _phases_table(rows)
    if phases:
        lines += ["The project's seconds per phase (mean over seeds; startup = interpreter and imports, plan = "
                  "config, data and model checks; validation = the passes during training, final_validation = the "
                  "final model's pass when the last one fell earlier, test = the test pass, trainer_other = the "
                  "Trainer's set-up and the rest of train_and_evaluate, save = the adapter's weights, inference = "
                  "the latency measurement, rest = the whole process minus all of these: record, CSV row, "
                  "summary, exit):", ""] + phases + [""]
    if a.set:
        lines += [f"Overrides for both runs: {', '.join(a.set)}.", ""]
    if tok:
        lines += [f"Tokenization, full train split ({tok['cold']['reviews']:,} reviews): cold cache "
                  f"{tok['cold']['reviews_per_s']:,.0f} reviews/s ({tok['cold']['seconds']} s), warm cache "
                  f"{tok['warm']['reviews_per_s']:,.0f} reviews/s ({tok['warm']['seconds']} s)."]
    text = "\n".join(lines)
    print(text)
    # Minute in the name: a second benchmark on the same day keeps the first report.
    write_report(a.out, f"{now_iso()[:16].replace(':', '')}-cpu-quick", "CPU benchmark", "bench.cpu", argv, env,
                 text, {"rows": rows, "tokenization": tok})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
