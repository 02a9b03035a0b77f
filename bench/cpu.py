"""`make bench-cpu`: the quick profile vs a plain Trainer run of the same model, sample and settings, this machine.

  python -m bench.cpu [--data ../shared/data/imdb] [--methods full,lora] [--seeds 0,1,2] [--out results/bench]

Plain run = what a first script does: tokenizer(padding="max_length"), fp32, Trainer defaults, Trainer.evaluate
on the test sample; same MiniLM checkpoint, same reviews (common.data.load_splits with the quick profile's
data settings), same learning rate, warmup, batch and epochs. Project run = `python -m part2_lora.train
--profile quick --force` as a subprocess (process start-up included, so the ratio is conservative).
Also prints tokenization throughput (reviews/s) for the full train split with the cache cold and warm.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

from bench import write_report
from common.config import load_config
from common.data import load_splits, tokenize_split
from common.env import collect_env, now_iso
from common.methods import wrap
from common.models import build_tokenizer, resolve_source
from common.records import read_csv_rows
from common.schema import PROJECT_ROOT

SHARED_IMDB = PROJECT_ROOT.parent / "shared" / "data" / "imdb"
CONFIGS = {"full": "configs/part1_distilbert_full.yaml", "lora": "configs/part1_distilbert_lora.yaml"}


def plain_trainer_run(method: str, data_dir: str, sets: tuple = ()) -> dict:
    """The baseline: a plain Hugging Face Trainer script on the quick profile's model, data and settings."""
    cfg = load_config(CONFIGS[method], "quick", (f"data.dir={data_dir}", *sets))
    t0 = time.perf_counter()
    splits = load_splits(cfg.data)
    path = resolve_source(cfg.model.name_or_path)
    tok = AutoTokenizer.from_pretrained(path)

    class DS(torch.utils.data.Dataset):
        def __init__(self, split):
            self.enc = tok(split.text, truncation=True, max_length=cfg.data.max_length, padding="max_length")
            self.labels = split.label

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {"input_ids": self.enc["input_ids"][i], "attention_mask": self.enc["attention_mask"][i],
                    "labels": int(self.labels[i])}

    train, test = DS(splits.train), DS(splits.test)
    torch.manual_seed(cfg.train.seed)
    model = wrap(cfg, AutoModelForSequenceClassification.from_pretrained(path, num_labels=2))  # same PEFT config
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=cfg.train.batch_size,
                                 per_device_eval_batch_size=cfg.train.eval_batch_size,
                                 num_train_epochs=cfg.train.epochs, learning_rate=cfg.train.learning_rate,
                                 warmup_ratio=cfg.train.warmup_ratio, seed=cfg.train.seed, use_cpu=True,
                                 save_strategy="no", report_to=[], disable_tqdm=True, logging_steps=10_000)

        def acc(p):
            return {"accuracy": float((np.argmax(p.predictions, axis=1) == p.label_ids).mean())}

        trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=test, compute_metrics=acc)
        t_train = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t_train
        ev = trainer.evaluate()
    return {"wall_s": time.perf_counter() - t0, "train_s": train_s, "accuracy": ev["eval_accuracy"],
            "lr": cfg.train.learning_rate}


def project_run(method: str, data_dir: str, out_dir: str, sets: tuple = ()) -> dict:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "part2_lora.train", "--config", CONFIGS[method], "--profile", "quick", "--force",
           "--set", f"data.dir={data_dir}", "--set", f"output.dir={out_dir}", "--set", "train.use_sweep_lr=false"]
    cmd += [x for item in sets for x in ("--set", item)]
    r = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True,
                       env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    row = [x for x in read_csv_rows(Path(out_dir) / "part1.csv") if x["method"] == method][-1]
    return {"wall_s": wall, "train_s": float(row["train_time_s"]), "accuracy": float(row["accuracy"]),
            "precision": row["precision"], "dropout_kernel": row["dropout_kernel"], "lr": float(row["learning_rate"])}


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


def _table(rows: list, methods: list, seeds: list) -> list:
    lines = ["| Method | Seed | Plain wall s | Plain train s | Plain acc | Project wall s | Project train s | "
             "Project acc | Project precision, dropout | Speed-up (wall) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, q = r["plain"], r["project"]
        lines.append(f"| {r['method']} | {r['seed']} | {p['wall_s']:.1f} | {p['train_s']:.1f} | {p['accuracy']:.3f} | "
                     f"{q['wall_s']:.1f} | {q['train_s']:.1f} | {q['accuracy']:.3f} | {q['precision']}, "
                     f"{q['dropout_kernel']} | {r['speedup']:.2f}x |")
    if len(seeds) > 1:
        for m in methods:
            mr = [r for r in rows if r["method"] == m]
            pw, qw = sum(r["plain"]["wall_s"] for r in mr), sum(r["project"]["wall_s"] for r in mr)
            pa, qa = (np.mean([r[side]["accuracy"] for r in mr]) for side in ("plain", "project"))
            lines.append(f"| {m} | mean | {pw / len(mr):.1f} | | {pa:.3f} | {qw / len(mr):.1f} | | {qa:.3f} | | "
                         f"{pw / qw:.2f}x |")
    total_plain = sum(r["plain"]["wall_s"] for r in rows)
    total_proj = sum(r["project"]["wall_s"] for r in rows)
    lines.append(f"| all | {','.join(map(str, seeds))} | {total_plain:.1f} | | | {total_proj:.1f} | | | | "
                 f"{total_plain / total_proj:.2f}x |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED_IMDB))
    ap.add_argument("--methods", default="full,lora")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds; each runs both sides")
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--set", action="append", default=[], help="override for both runs (e.g. smaller samples)")
    ap.add_argument("--no-tokenization", action="store_true", help="skip the 25,000-review tokenization timing")
    a = ap.parse_args(argv)
    env = collect_env("cpu")
    methods, seeds = a.methods.split(","), [int(x) for x in a.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for method in methods:
                sets = (*a.set, f"train.seed={seed}")
                plain = plain_trainer_run(method, a.data, sets)
                proj = project_run(method, a.data, tmp, sets)
                rows.append({"method": method, "seed": seed, "plain": plain, "project": proj,
                             "speedup": plain["wall_s"] / proj["wall_s"]})
                print(f"[bench-cpu] {method} seed {seed}: plain {plain['wall_s']:.1f} s "
                      f"(acc {plain['accuracy']:.3f}), project {proj['wall_s']:.1f} s (acc {proj['accuracy']:.3f}, "
                      f"{proj['precision']}, {proj['dropout_kernel']} dropout): {rows[-1]['speedup']:.2f}x", flush=True)
    tok = None if a.no_tokenization else tokenization_throughput(a.data)
    lines = [f"Device: {env['device']}; quick profile (MiniLM-L6 on a class-balanced IMDb sample, see "
             "configs/profiles/quick.yaml) vs a plain Trainer run of the same model, sample and settings "
             "(learning rate from the config, not a sweep). Wall times include process start, tokenization and "
             "the test evaluation.", ""]
    lines += _table(rows, methods, seeds) + [""]
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
