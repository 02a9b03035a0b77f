"""The CPU baseline `make bench-cpu` measures against: a plain Hugging Face Trainer script, in its own process.

What a first script does: tokenizer(padding="max_length"), Trainer defaults, Trainer.evaluate on the test sample,
at the best precision the CPU runs natively (bf16 where it has AVX512-BF16 or AMX, as the project does; else fp32),
so that the ratio measures the project's own work, not the precision flag any user can set. Same MiniLM checkpoint,
same reviews (the quick profile's sample), learning rate, warmup, batch, epochs and PEFT config as the project run.

  python -m bench.plain_trainer --method full|lora --seed 0 [--data DIR] [--set key=value ...]

Prints one JSON line: whole-process wall seconds, train seconds, test accuracy, precision.
"""
import argparse
import json
import tempfile
import time

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

from common.config import load_config
from common.data import load_splits
from common.devices import cpu_has_native_bf16
from common.methods import wrap
from common.models import resolve_source
from common.timing import process_age_s

CONFIGS = {"full": "configs/part1_distilbert_full.yaml", "lora": "configs/part1_distilbert_lora.yaml"}


def run(method: str, data_dir: str, seed: int, sets: tuple = ()) -> dict:
    cfg = load_config(CONFIGS[method], "quick", (f"data.dir={data_dir}", f"train.seed={seed}", *sets))
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
    bf16 = cpu_has_native_bf16()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=cfg.train.batch_size,
                                 per_device_eval_batch_size=cfg.train.eval_batch_size,
                                 num_train_epochs=cfg.train.epochs, learning_rate=cfg.train.learning_rate,
                                 warmup_ratio=cfg.train.warmup_ratio, seed=cfg.train.seed, use_cpu=True, bf16=bf16,
                                 save_strategy="no", report_to=[], disable_tqdm=True, logging_steps=10_000)

        def acc(p):
            return {"accuracy": float((np.argmax(p.predictions, axis=1) == p.label_ids).mean())}

        trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=test, compute_metrics=acc)
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
        ev = trainer.evaluate()
    return {"wall_s": process_age_s(), "train_s": round(train_s, 3), "accuracy": ev["eval_accuracy"],
            "precision": "bf16" if bf16 else "fp32", "lr": cfg.train.learning_rate}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", required=True)
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args(argv)
    print(json.dumps(run(a.method, a.data, a.seed, tuple(a.set))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
