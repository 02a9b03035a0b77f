"""Same-process A/B of CPU training steps (and evaluation batches): the quick profile's model with each dropout
kernel, precision, AdamW kernel and last-layer readout.

  python -m bench.cpu_kernels [--methods lora,full] [--pairs 6] [--length 128] [--out results/bench]

Each variant is the model `build_model` makes for the quick profile with one override; steps are timed in
interleaved rounds (every variant once per round, two steps each), so a noisy, shared machine slows all
variants alike; the table gives medians. A fixed batch of 16 x `--length` random token ids: this isolates the
training step (forward, backward, AdamW) from data loading, which `make bench-cpu` includes; each round also
evaluates 64 such reviews (the eval batch) per variant.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench import write_report
from bench.cpu import CONFIGS
from common.config import load_config
from common.devices import pick_optim, pick_precision
from common.dropout import FastDropout
from common.env import collect_env, now_iso
from common.inference import autocast
from common.models import build_model
from common.readout import last_layer_label

# name -> --set overrides on top of the quick profile (the first is the project's default on this machine)
VARIANTS = {
    "default": (),
    # AdamW's fused kernel runs on CPU too (torch >= 2.4): one pass over each tensor instead of foreach's several.
    "foreach AdamW": ("train.optim=adamw_torch",),
    # The last layer for every position instead of the [CLS] row the head reads (common/readout.py).
    "full last layer": ("model.last_layer=full",),
    "torch dropout": ("train.dropout_kernel=torch",),
    "torch dropout, fp32": ("train.dropout_kernel=torch", "train.precision=fp32"),
}


def build_variant(method: str, sets: tuple):
    cfg = load_config(CONFIGS[method], "quick", sets)
    model = build_model(cfg).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.learning_rate,
                            fused=pick_optim(cfg, "cpu") == "adamw_torch_fused")
    return model, opt, pick_precision(cfg, "cpu")


def train_step(model, opt, precision: str, batch: dict) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(**batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def eval_batch(model, precision: str, batch: dict) -> None:
    model.eval()
    with torch.no_grad(), autocast("cpu", precision):
        model(**batch)
    model.train()


def measure(method: str, pairs: int, length: int) -> list:
    torch.manual_seed(0)
    ids = torch.randint(1000, 20000, (16, length))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (16,))}
    eval_ids = torch.randint(1000, 20000, (64, length))
    evals = {"input_ids": eval_ids, "attention_mask": torch.ones_like(eval_ids)}
    variants = {name: build_variant(method, sets) for name, sets in VARIANTS.items()}
    for v in variants.values():  # warm-up: first steps allocate and pick kernels
        train_step(*v, batch)
    times = {name: [] for name in variants}
    eval_times = {name: [] for name in variants}
    for _ in range(pairs):
        for name, v in variants.items():
            t0 = time.perf_counter()
            train_step(*v, batch)
            train_step(*v, batch)
            times[name].append((time.perf_counter() - t0) / 2)
            t0 = time.perf_counter()
            eval_batch(v[0], v[2], evals)
            eval_times[name].append(time.perf_counter() - t0)
    rows = []
    for name, ts in times.items():
        model, _, precision = variants[name]
        kernel = "fast" if any(isinstance(m, FastDropout) for m in model.modules()) else "torch"
        rows.append({"method": method, "variant": name, "precision": precision, "dropout_kernel": kernel,
                     "optim": "fused" if variants[name][1].defaults.get("fused") else "foreach",
                     "last_layer": last_layer_label(model),
                     "ms_per_step": 1000 * statistics.median(ts), "samples_ms": [round(1000 * t, 1) for t in ts],
                     "eval_ms_per_64": 1000 * statistics.median(eval_times[name])})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="lora,full")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--out", default="results/bench")
    a = ap.parse_args(argv)
    env = collect_env("cpu")
    rows = [r for m in a.methods.split(",") for r in measure(m, a.pairs, a.length)]
    lines = [f"Device: {env['device']}; quick-profile model (MiniLM-L6), batch 16 x {a.length} tokens, "
             f"median of {a.pairs} interleaved rounds of 2 steps and one evaluation of 64 reviews.", "",
             "| Method | Variant | Precision | Dropout kernel | AdamW | Last layer | ms/step | time vs default | "
             "eval ms / 64 reviews | time vs default |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = next(x for x in rows if x["method"] == r["method"] and x["variant"] == "default")
        lines.append(f"| {r['method']} | {r['variant']} | {r['precision']} | {r['dropout_kernel']} | {r['optim']} | "
                     f"{r['last_layer']} | {r['ms_per_step']:.0f} | {r['ms_per_step'] / base['ms_per_step']:.2f}x | "
                     f"{r['eval_ms_per_64']:.0f} | {r['eval_ms_per_64'] / base['eval_ms_per_64']:.2f}x |")
    text = "\n".join(lines)
    print(text)
    write_report(a.out, f"{now_iso()[:16].replace(':', '')}-cpu-kernels", "CPU training-step A/B",
                 "bench.cpu_kernels", argv, env, text, {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
