"""Same-process A/B of CPU training steps (and evaluation batches): the quick profile's model with each dropout
kernel, precision, AdamW kernel and last-layer readout; and, in processes of their own, torch.compile.

  python -m bench.cpu_kernels [--methods lora,full] [--pairs 6] [--length 128] [--variant NAME ...]
      [--processes 3] [--process-variants all|torch.compile] [--profile 3] [--out results/bench]

Each variant is the model `build_model` makes for the quick profile with one override; steps are timed in
interleaved rounds (every variant once per round, two steps each, the order reversed every other round), so a
noisy, shared machine slows all variants alike; the table gives medians and in how many rounds a variant was
slower than the default. A fixed batch of 16 x `--length` random token ids: this isolates the
training step (forward, backward, AdamW) from data loading, which `make bench-cpu` includes; each round also
evaluates 64 such reviews (the eval batch) per variant. A compile's cost depends on what earlier processes left in
inductor's cache, so PROCESS_VARIANTS are timed in fresh processes, alternating with the default, `--processes`
of each, `--pairs` rounds in each. `--profile N` also runs N steps of the default (and of torch dropout, nearest
the plain Trainer) under torch.profiler and sorts their time into kinds of work (OP_KINDS): matrix products with
their GFLOP, attention-probability element-wise work, dropout masks, GELU, AdamW, ...; and it replays the step's
matrix products alone between unprofiled steps: where a step's time goes, hence what faster kernels could save.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from bench import write_report
from bench.cpu import CONFIGS
from common import memory
from common.config import load_config
from common.devices import resolve_runtime
from common.dropout import SFC64_WORDS, FastDropout
from common.env import collect_env, now_iso
from common.inference import autocast
from common.models import build_model, load_model_config
from common.readout import last_layer_label
from common.schema import FAST_DROPOUT_BITS

# name -> --set overrides on top of the quick profile (the first is the project's default on this machine)
VARIANTS = {
    "default": (),
    # AdamW's fused kernel runs on CPU too (torch >= 2.4): one pass over each tensor instead of foreach's several.
    "foreach AdamW": ("train.optim=adamw_torch",),
    # The last layer for every position instead of the [CLS] row the head reads (common/readout.py).
    "full last layer": ("model.last_layer=full",),
    # The fast kernel with torch's generator's words instead of SFC64's (common/dropout.py): the same masks' cost.
    "fast dropout, torch's bits": ("train.dropout_kernel=fast",),
    "torch dropout": ("train.dropout_kernel=torch",),
    "torch dropout, fp32": ("train.dropout_kernel=torch", "train.precision=fp32"),
}
# name -> overrides timed in processes of their own, alternating with the default (the first).
PROCESS_VARIANTS = {
    "default (own process)": (),
    # torch.compile (inductor) of the model: its processes share an inductor cache that starts empty, so the first
    # compiles cold and the others find it warm; the table lists each process's first step and evaluation.
    "torch.compile (own process)": ("train.torch_compile=true",),
}


# Kinds of work in a profiled step, by aten op (self time; first match wins). A 4-D input whose last two sizes are
# equal is an attention score / probability tensor (batch, heads, query, key): scale, mask, softmax, dropout, casts.
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm")
OP_KINDS = (
    ("matrix products (mm, addmm, bmm)", lambda op, shape: op in MATMUL_OPS),
    ("dropout masks (random bits, compare)",
     lambda op, shape: op in ("aten::random_", "aten::ge", "aten::bernoulli_", SFC64_WORDS)),
    ("attention probabilities, element-wise (scale, mask, softmax, dropout, casts)",
     lambda op, shape: len(shape) == 4 and shape[-1] == shape[-2]),
    ("GELU (forward, backward)", lambda op, shape: op.startswith("aten::gelu")),
    ("AdamW step", lambda op, shape: "adam" in op.lower()),
    ("layer norm", lambda op, shape: "layer_norm" in op),
    ("other element-wise, copies, autograd", lambda op, shape: True),
)


def matmul_flops(op: str, shapes: list) -> int:
    """Floating-point operations of one mm / addmm / bmm from its input shapes (2 per multiply-add; 0 for others):
    mm [m, k] x [k, n] and addmm (bias, [m, k], [k, n]): 2mkn; bmm [b, m, k] x [b, k, n]: 2bmkn."""
    if op == "aten::addmm":
        shapes = shapes[1:]
    if op not in MATMUL_OPS or len(shapes) < 2 or not shapes[0] or not shapes[1]:
        return 0
    a, b = shapes[0], shapes[1]
    batch = a[0] if op == "aten::bmm" else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


def op_kind(op: str, shapes: list) -> str:
    first = shapes[0] if shapes and shapes[0] else []
    return next(name for name, match in OP_KINDS if match(op, first))


def replay_matmuls(calls: list) -> float:
    """Seconds the (op, input shapes, calls per step) matrix products take run alone, back to back, on fresh
    contiguous operands (after one untimed call each): a step's products without the profiler's per-op overhead,
    which falls mostly on the many small element-wise ops."""
    fns = {"aten::mm": torch.mm, "aten::addmm": torch.addmm, "aten::bmm": torch.bmm}
    work = [(fns[op], [torch.randn(*s) for s in (shapes[:3] if op == "aten::addmm" else shapes[:2])], count)
            for op, shapes, count in calls]
    for fn, args, _ in work:
        fn(*args)
    total = 0.0
    for fn, args, count in work:
        t0 = time.perf_counter()
        for _ in range(round(count)):
            fn(*args)
        total += time.perf_counter() - t0
    return total


# Profiled with --profile: the project's default and the variant nearest the plain Trainer baseline (torch's dropout,
# so the full last layer too), whose products a reader can set against the project's.
PROFILED_VARIANTS = ("default", "torch dropout")


def profile_steps(method: str, steps: int, length: int, variant_name: str = "default") -> dict:
    """`steps` training steps of VARIANTS[variant_name] under torch.profiler (after two untimed ones), self time per
    kind of work: ms per step, share, and the matrix products' GFLOP/s. Then `steps` rounds, each an unprofiled step
    and the step's matrix products replayed alone (replay_matmuls): the machine's speed drifts, so the products'
    share of a step is taken per round, and the median given."""
    from torch.profiler import ProfilerActivity, profile  # lazy: only --profile uses the profiler

    variant = build_variant(method, VARIANTS[variant_name])
    batch, _ = _batches(length)
    for _ in range(2):
        train_step(*variant, batch)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            train_step(*variant, batch)
    kinds = {name: {"ms": 0.0, "flops": 0} for name, _ in OP_KINDS}
    matmuls = []
    for e in prof.key_averages(group_by_input_shape=True):
        shapes = [list(s) for s in e.input_shapes]
        flops = matmul_flops(e.key, shapes)
        if flops:
            matmuls.append((e.key, shapes, e.count / steps))
        k = kinds[op_kind(e.key, shapes)]
        k["ms"] += e.self_cpu_time_total / 1000 / steps
        k["flops"] += flops * e.count // steps
    plain, replayed = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step(*variant, batch)
        plain.append(time.perf_counter() - t0)
        replayed.append(replay_matmuls(matmuls))
    total = sum(k["ms"] for k in kinds.values())
    return {"method": method, "variant": variant_name, "steps": steps, "profiled_ms_per_step": total,
            "unprofiled_ms_per_step": 1000 * statistics.median(plain),
            "matmuls_replayed_ms_per_step": 1000 * statistics.median(replayed),
            "matmuls_replayed_share": statistics.median(r / s for r, s in zip(replayed, plain)),
            "kinds": [{"kind": name, "ms_per_step": k["ms"], "share": k["ms"] / total if total else 0.0,
                       "gflop_per_step": k["flops"] / 1e9,
                       "gflops": k["flops"] / 1e6 / k["ms"] if k["flops"] and k["ms"] else None}
                      for name, k in kinds.items()]}


def _profile_lines(profiles: list, length: int) -> list:
    lines = ["", f"Where a training step's time goes (torch.profiler, self time per op, batch 16 x {length}; "
             "the profiler's own overhead makes a profiled step slower than the unprofiled median given):", "",
             "| Method | Variant | Kind of work | ms / step | share | GFLOP / step | GFLOP/s |",
             "|---|---|---|---|---|---|---|"]
    for p in profiles:
        for k in p["kinds"]:
            rate = f"{k['gflops']:.0f}" if k["gflops"] else "–"
            flop = f"{k['gflop_per_step']:.1f}" if k["gflop_per_step"] else "–"
            lines.append(f"| {p['method']} | {p['variant']} | {k['kind']} | {k['ms_per_step']:.0f} | "
                         f"{100 * k['share']:.0f}% | {flop} | {rate} |")
        steps = f"{p['steps']} step{'s' if p['steps'] > 1 else ''}"
        lines.append(f"| {p['method']} | {p['variant']} | **profiled step** ({steps}; unprofiled median "
                     f"{p['unprofiled_ms_per_step']:.0f} ms) | {p['profiled_ms_per_step']:.0f} | 100% | | |")
        flop = sum(k["gflop_per_step"] for k in p["kinds"])
        lines.append(f"| {p['method']} | {p['variant']} | matrix products replayed alone (same shapes and counts, "
                     f"contiguous operands; rounds alternate with unprofiled steps) | "
                     f"{p['matmuls_replayed_ms_per_step']:.0f} | "
                     f"{100 * p['matmuls_replayed_share']:.0f}% of an unprofiled step | {flop:.1f} | "
                     f"{flop * 1000 / p['matmuls_replayed_ms_per_step']:.0f} |")
    return lines


def build_variant(method: str, sets: tuple):
    cfg = load_config(CONFIGS[method], "quick", sets)
    config = load_model_config(cfg)
    runtime = resolve_runtime(cfg, config.model_type)  # as a run's planning decides it
    model = build_model(cfg, config, runtime=runtime).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.learning_rate,
                            fused=runtime.optim == "adamw_torch_fused")
    return model, opt, runtime.precision


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


def _batches(length: int) -> tuple:
    torch.manual_seed(0)
    ids = torch.randint(1000, 20000, (16, length))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (16,))}
    eval_ids = torch.randint(1000, 20000, (64, length))
    return batch, {"input_ids": eval_ids, "attention_mask": torch.ones_like(eval_ids)}


def time_rounds(variants: dict, pairs: int, length: int) -> tuple:
    """One warm-up step and evaluation each (timed: a compiled variant compiles there), then interleaved rounds:
    seconds per training step and per evaluation, per variant, and the warm-up's (step, evaluation) seconds."""
    batch, evals = _batches(length)
    warmup = {}
    for name, v in variants.items():  # first steps allocate, pick kernels, compile
        t0 = time.perf_counter()
        train_step(*v, batch)
        t1 = time.perf_counter()
        eval_batch(v[0], v[2], evals)
        warmup[name] = (round(t1 - t0, 2), round(time.perf_counter() - t1, 2))
    times = {name: [] for name in variants}
    eval_times = {name: [] for name in variants}
    order = list(variants.items())
    for r in range(pairs):
        for name, v in order if r % 2 == 0 else order[::-1]:  # reversed every other round: no variant always goes first
            t0 = time.perf_counter()
            train_step(*v, batch)
            train_step(*v, batch)
            times[name].append((time.perf_counter() - t0) / 2)
            t0 = time.perf_counter()
            eval_batch(v[0], v[2], evals)
            eval_times[name].append(time.perf_counter() - t0)
    return times, eval_times, warmup


def _row(method: str, name: str, variant: tuple, ts: list, eval_ts: list, warmup: tuple) -> dict:
    model, opt, precision = variant
    bits = {m.bits for m in model.modules() if isinstance(m, FastDropout)}
    kernel = next(k for k, b in FAST_DROPOUT_BITS.items() if b in bits) if bits else "torch"
    return {"method": method, "variant": name, "precision": precision, "dropout_kernel": kernel,
            "optim": "fused" if opt.defaults.get("fused") else "foreach", "last_layer": last_layer_label(model),
            "ms_per_step": 1000 * statistics.median(ts),
            "samples_ms": [round(1000 * t, 1) for t in ts], "eval_ms_per_64": 1000 * statistics.median(eval_ts),
            "eval_samples_ms": [round(1000 * t, 1) for t in eval_ts], "warmup_s": [list(warmup)]}


def measure(method: str, pairs: int, length: int, names: list) -> list:
    """The in-process variants named."""
    variants = {name: build_variant(method, VARIANTS[name]) for name in names}
    times, eval_times, warmup = time_rounds(variants, pairs, length)
    return [_row(method, name, variants[name], times[name], eval_times[name], warmup[name])
            for name in variants]


def worker(method: str, sets: tuple, pairs: int, length: int) -> dict:
    """One process variant in this (fresh) process: the model compiled where train.torch_compile asks (inductor, as
    the Trainer's torch_compile does), then `pairs` timed rounds."""
    cfg = load_config(CONFIGS[method], "quick", sets)
    variant = build_variant(method, sets)
    if cfg.train.torch_compile:
        variant[0].compile()
    times, eval_times, warmup = time_rounds({"v": variant}, pairs, length)
    return _row(method, "", variant, times["v"], eval_times["v"], warmup["v"])


def measure_processes(method: str, processes: int, pairs: int, length: int, names: list) -> list:
    """PROCESS_VARIANTS named, each in `processes` fresh processes, alternating (A B A B ...); samples pooled."""
    pooled = {}
    with tempfile.TemporaryDirectory(prefix="imdb-peft-inductor-") as cache:
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TORCHINDUCTOR_CACHE_DIR": cache}
        for _ in range(processes):
            for name in names:
                sets = PROCESS_VARIANTS[name]
                cmd = [sys.executable, "-m", "bench.cpu_kernels", "--worker", "--methods", method, "--pairs",
                       str(pairs), "--length", str(length)] + [x for item in sets for x in ("--set", item)]
                r = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if r.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
                got = json.loads(r.stdout.strip().splitlines()[-1])
                if name not in pooled:
                    pooled[name] = {**got, "variant": name, "samples_ms": [], "eval_samples_ms": [], "warmup_s": []}
                for key in ("samples_ms", "eval_samples_ms", "warmup_s"):
                    pooled[name][key] += got[key]
    for row in pooled.values():
        row["ms_per_step"] = statistics.median(row["samples_ms"])
        row["eval_ms_per_64"] = statistics.median(row["eval_samples_ms"])
    return list(pooled.values())


def _slower_rounds(row: dict, base: dict) -> str:
    """In how many rounds the variant's step took longer than the default's in the same round (samples are in
    round order on both sides): a ratio of medians can hide that the two swapped places as the machine drifted."""
    if row is base:
        return "–"
    pairs = list(zip(row["samples_ms"], base["samples_ms"]))
    return f"{sum(a > b for a, b in pairs)} of {len(pairs)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="lora,full")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--processes", type=int, default=3, help="fresh processes per process-wide variant (0: none)")
    ap.add_argument("--variant", action="append", default=[], help="an in-process VARIANTS name to time (repeat "
                    "for more; the default runs always); none given: all of them")
    ap.add_argument("--process-variants", default="all", help="which PROCESS_VARIANTS, by the word before "
                    "'(own process)', comma-separated: torch.compile (the default runs always)")
    ap.add_argument("--profile", type=int, default=0, help="also profile this many steps per method of each "
                    "PROFILED_VARIANTS (the default, torch dropout) and replay their matrix products")
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one process-wide variant, JSON out
    ap.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    # The host allocator the project's CPU runs use (train.allocator auto), for every variant: it is the process's.
    full = load_config(CONFIGS["full"], "quick", ())
    allocator = memory.set_allocator(resolve_runtime(full, load_model_config(full).model_type).allocator)
    if a.worker:
        print(json.dumps(worker(a.methods, tuple(a.set), a.pairs, a.length)), flush=True)
        return 0
    env = collect_env("cpu")
    wanted = {w.strip() for w in a.process_variants.split(",")}
    names = [n for n in PROCESS_VARIANTS if a.process_variants == "all" or n.startswith("default")
             or n.removesuffix(" (own process)") in wanted]
    unknown = [v for v in a.variant if v not in VARIANTS]
    if unknown:
        ap.error(f"--variant: unknown {unknown}; known: {sorted(VARIANTS)}")
    in_process = [n for n in VARIANTS if not a.variant or n == "default" or n in a.variant]
    rows, profiles = [], []
    for m in a.methods.split(","):
        rows += measure(m, a.pairs, a.length, in_process)
        rows += measure_processes(m, a.processes, a.pairs, a.length, names) if a.processes else []
        profiles += [profile_steps(m, a.profile, a.length, v) for v in PROFILED_VARIANTS] if a.profile else []
    lines = [f"Device: {env['device']}; quick-profile model (MiniLM-L6), batch 16 x {a.length} tokens, "
             f"glibc allocator setting {allocator} (train.allocator), "
             f"median of {a.pairs} interleaved rounds of 2 steps and one evaluation of 64 reviews; the variants "
             f"marked 'own process' pool {a.pairs} rounds from each of {a.processes} fresh processes per variant, "
             f"the processes alternating (first step / first evaluation: one pair per process, in order; "
             f"torch.compile's first process compiles with an empty cache, the others with a warm one).", "",
             "| Method | Variant | Precision | Dropout kernel | AdamW | Last layer | ms/step | "
             "time vs default | rounds slower than default | eval ms / 64 reviews | time vs default | "
             "first step / first evaluation, s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        own = r["variant"].endswith("(own process)")
        base = next(x for x in rows if x["method"] == r["method"] and
                    x["variant"] == ("default (own process)" if own else "default"))
        lines.append(f"| {r['method']} | {r['variant']} | {r['precision']} | {r['dropout_kernel']} | {r['optim']} | "
                     f"{r['last_layer']} | {r['ms_per_step']:.0f} | "
                     f"{r['ms_per_step'] / base['ms_per_step']:.2f}x | {_slower_rounds(r, base)} | "
                     f"{r['eval_ms_per_64']:.0f} | "
                     f"{r['eval_ms_per_64'] / base['eval_ms_per_64']:.2f}x | "
                     f"{'; '.join(f'{a:.1f} / {b:.1f}' for a, b in r['warmup_s'])} |")
    text = "\n".join(lines + (_profile_lines(profiles, a.length) if profiles else []))
    print(text)
    write_report(a.out, f"{now_iso()[:16].replace(':', '')}-cpu-kernels", "CPU training-step A/B",
                 "bench.cpu_kernels", argv, env, text, {"rows": rows, "profiles": profiles})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
