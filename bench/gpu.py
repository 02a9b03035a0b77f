"""`make bench`: the project's training path vs ../shared/bench/seed_reference.py, same card, same process.

  python -m bench.gpu [--steps 300] [--data ../shared/data/imdb] [--methods distilbert-full,...] [--out results/bench]

For each method (DistilBERT full and LoRA, BERT full and prefix) it runs the project's real training path
(the plans and recipe `run` that `make part1`/`make part2` use, `model.init: random` from the published
configs, real IMDb text) for a fixed number of steps, then the reference recipe for the same method and steps,
and prints one table: ms/step, train samples/s, MFU on real (non-pad) tokens, peak allocated/reserved MiB,
and the project / reference recipe ratio. A Markdown table and a JSON copy go to --out with card, date, versions, command.
Without a GPU it runs on the CPU (use few steps): a test of the wrapper, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from argparse import Namespace
from pathlib import Path

import torch

from bench import write_report
from common import methods, recipe
from common.env import collect_env, now_iso
from common.plan import plan_runs
from common.schema import PROJECT_ROOT

SHARED = PROJECT_ROOT.parent / "shared"
METHODS = {  # name -> (part, config, seed_reference --model, --method)
    "distilbert-full": ("part1", "configs/part1_distilbert_full.yaml", "distilbert", "full"),
    "distilbert-lora": ("part1", "configs/part1_distilbert_lora.yaml", "distilbert", "lora"),
    "bert-full": ("part2", "configs/part2_bert_full.yaml", "bert", "full"),
    "bert-prefix": ("part2", "configs/part2_bert_prefix.yaml", "bert", "prefix"),
    # Part 3's other families: the reference recipe has no such method, so the project's path alone (no ratio).
    **{f"bert-{m}": ("part3", f"configs/part3_bert_{m}.yaml", "bert", None)
       for m in methods.METHODS if m not in ("full", "prefix")},
}
PART3_METHODS = [n for n, (part, *_) in METHODS.items() if part == "part3"]  # --methods part3
DEFAULT_METHODS = ["distilbert-full", "distilbert-lora", "bert-full", "bert-prefix"]
# Dense bf16/fp16 tensor-core peak (TFLOP/s) by card name fragment, for MFU.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}
# Published architectures: (layers, hidden, ffn). FLOPs per token = 6 * matmul params + 12 * layers * hidden * seq.
ARCH = {"distilbert": (6, 768, 3072), "bert": (12, 768, 3072)}


def flops_per_token(model: str, seq: float) -> float:
    layers, h, ffn = ARCH[model]
    return 6 * layers * (4 * h * h + 2 * h * ffn) + 12 * layers * h * seq


def peak_tflops(device: str):
    return next((v for k, v in PEAK_TFLOPS.items() if k in device), None)


def run_project(name: str, steps: int, data: str, vocab: str, extra: list) -> dict:
    """The project's path: plan_runs + the recipe's run, exactly as `make partN` runs them."""
    part, config, model, _ = METHODS[name]
    sets = ["model.init=random", f"model.tokenizer={vocab}", f"data.dir={data}", f"train.max_steps={steps}",
            f"data.train_samples={steps * 16}", "data.val_samples=0", "data.test_samples=512",
            "train.allow_cpu=true", "train.use_sweep_lr=false", *extra]
    with tempfile.TemporaryDirectory() as out:
        args = Namespace(config=[config], profile="default", set=sets + [f"output.dir={out}"], dry_run=False,
                         force=True)
        plan = plan_runs(part, args)[0]
        res = recipe.run(plan)
    m = res["metrics"]
    real_tokens = m["train_real_tokens"]
    mean_len = real_tokens / (steps * 16)
    return {"ms_per_step": 1000 * m["train_time_s"] / m["train_steps"], "samples_per_s": m["train_samples_per_s"],
            "train_s": m["train_time_s"], "peak_alloc_mib": m.get("peak_mem_allocated_mib"),
            "peak_reserved_mib": m.get("peak_mem_reserved_mib"), "precision": res["precision"],
            "useful_flops": flops_per_token(model, mean_len) * real_tokens, "real_tokens": real_tokens,
            "eval_s": m.get("eval_time_s"), "trainable_params": plan.params["trainable"]}


def run_reference(name: str, steps: int, data: str, vocab: str, eval_size: int, reference: str) -> dict:
    _, _, model, method = METHODS[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "reference.json"
        # It runs in a temporary folder: every path absolute (sys.executable is relative under a relative PATH).
        cmd = [str(Path(sys.executable).absolute()), str(Path(reference).absolute()),
               "--data", str(Path(data).absolute()), "--vocab", str(Path(vocab).absolute()),
               "--model", model, "--method", method, "--max-steps", str(steps), "--eval-size", str(eval_size),
               "--out", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if r.returncode != 0:
            raise RuntimeError(f"seed_reference.py failed for {name}:\n{r.stderr[-3000:]}")
        res = json.loads(out.read_text())
    real_tokens = res["real_token_fraction"] * steps * 16 * 256
    return {"ms_per_step": res["ms_per_step"], "samples_per_s": steps * 16 / res["train_s"], "train_s": res["train_s"],
            "peak_alloc_mib": res["peak_alloc_mib"] or None, "peak_reserved_mib": res["peak_reserved_mib"] or None,
            "precision": "fp16" if res["device"] != "cpu" else "fp32", "eval_s": res["eval_s"],
            "useful_flops": flops_per_token(model, res["real_token_fraction"] * 256) * real_tokens,
            "real_tokens": real_tokens,
            "trainable_params": res["trainable_params"]}


def mfu(r: dict, peak) -> float | None:
    # Useful FLOPs only (real tokens): the padding the reference recipe pushes through counts as waste, not work.
    return None if not peak else r["useful_flops"] / (r["train_s"] * peak * 1e12)


def table(rows: list, device: str, steps: int) -> str:
    def f(x, fmt):
        return "–" if x is None else fmt.format(x)

    lines = [f"Device: {device}; {steps} steps of batch 16 per method; "
             "ratio = project / reference recipe (lower is faster).", "",
             "| Method | Path | Precision | ms/step | samples/s | MFU (real tokens) | Peak alloc MiB | "
             "Peak reserved MiB | ms/step ratio | alloc ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for path in ("project", "reference"):
            x = r[path]
            if x is None:
                continue
            ratio = f(r["ratio_ms"], "{:.2f}") if path == "project" else ""
            aratio = f(r["ratio_alloc"], "{:.2f}") if path == "project" else ""
            lines.append(f"| {r['method']} | {path} | {x['precision']} | {x['ms_per_step']:.1f} | "
                         f"{x['samples_per_s']:.1f} | {f(x['mfu'], '{:.1%}')} | {f(x['peak_alloc_mib'], '{:,.0f}')} | "
                         f"{f(x['peak_reserved_mib'], '{:,.0f}')} | {ratio} | {aratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--data", default=str(SHARED / "data" / "imdb"))
    ap.add_argument("--vocab", default=str(SHARED / "data" / "vocab" / "bert-base-uncased-vocab.txt"))
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                    help=f"comma-separated, from {', '.join(METHODS)}; 'part3' for Part 3's families on the project's "
                         f"path alone; 'all' for every one")
    ap.add_argument("--reference", default=str(SHARED / "bench" / "seed_reference.py"),
                    help="the reference recipe's script (../shared/bench/seed_reference.py)")
    ap.add_argument("--eval-size", type=int, default=512)
    ap.add_argument("--set", action="append", default=[], help="extra config overrides for the project path")
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--tag", default="", help="appended to the report's file name (two tables from one day)")
    a = ap.parse_args(argv)
    names = list(METHODS) if a.methods == "all" else PART3_METHODS if a.methods == "part3" else a.methods.split(",")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        print(f"error: --methods: unknown {unknown}; known: {', '.join(METHODS)}", file=sys.stderr)
        return 2
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    env = collect_env(device_type)
    peak = peak_tflops(env["device"]) if device_type == "cuda" else None
    rows = []
    for name in names:
        row = {"method": name, "project": run_project(name, a.steps, a.data, a.vocab, a.set),
               "reference": run_reference(name, a.steps, a.data, a.vocab, a.eval_size, a.reference)
               if METHODS[name][3] else None}
        for path in ("project", "reference"):
            if row[path] is not None:
                row[path]["mfu"] = mfu(row[path], peak)
        p, s = row["project"], row["reference"] or {}
        row["ratio_ms"] = p["ms_per_step"] / s["ms_per_step"] if s else None
        row["ratio_alloc"] = (p["peak_alloc_mib"] / s["peak_alloc_mib"]) if p["peak_alloc_mib"] and s.get(
            "peak_alloc_mib") else None
        rows.append(row)
        ref_txt = (f", reference recipe {s['ms_per_step']:.1f} ms/step, ratio {row['ratio_ms']:.2f}" if s
                   else " (no reference recipe)")
        print(f"[bench] {name}: project {p['ms_per_step']:.1f} ms/step{ref_txt}", flush=True)
    text = table(rows, env["device"], a.steps)
    print(text)
    stamp = f"{now_iso()[:10]}-{env['device'].split('(')[0].strip().replace(' ', '_')}" + (f"-{a.tag}" if a.tag else "")
    path = write_report(a.out, stamp, "Benchmark", "bench.gpu", argv, env, text, {"steps": a.steps, "rows": rows})
    print(f"[bench] wrote {path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
