"""Predict with a trained run: its base model plus the weights it saved, on texts or a CSV.

  python -m common.predict --run RUN_ID [--output-dir results] "a review" ["another" ...]
  python -m common.predict --run RUN_ID --input reviews.csv [--output predictions.csv]
"""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
import torch

from common import records
from common.artifacts import load_trained, require_saved
from common.config import load_config_dict
from common.devices import cpu_has_native_bf16
from common.errors import UserError, exits_on_user_error
from common.inference import autocast
from common.models import build_tokenizer, load_model_config
from common.process import exit_process

LABELS = {0: "negative", 1: "positive"}


def load_record(output_dir: str, run_id: str) -> dict:
    path = records.record_path(output_dir, run_id)
    try:
        rec = records.read_record(output_dir, run_id)
    except FileNotFoundError as e:
        if path.is_file():  # a listing whose listed record is gone (a study or sweep folder removed)
            raise UserError(f"--run {run_id}: {path} lists {e.filename}, which is missing") from None
        known = sorted(p.stem for p in records.runs_dir(output_dir).glob("*.json")) if \
            records.runs_dir(output_dir).is_dir() else []
        hint = f"; runs there: {', '.join(known[:5])}{' ...' if len(known) > 5 else ''}" if known else ""
        raise UserError(f"--run {run_id}: no run record {path} (--output-dir {output_dir}){hint}") from None
    except ValueError as e:
        raise UserError(f"{path}: not a readable run record: {e}") from None
    if rec.get("status") != "completed":
        raise UserError(f"--run {run_id}: the run is {rec.get('status')}, not completed: it has no trained weights")
    return rec


def read_texts(path: str, column: str) -> list:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--input {path}: file not found")
    try:
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"--input {path}: cannot read as CSV: {e}") from None
    if not rows or column not in rows[0]:
        have = list(rows[0]) if rows else []
        raise UserError(f"--input {path}: no column '{column}' (--column); the file has {have}")
    return [r[column] for r in rows]


class Predictor:
    """A run's trained model, ready for new text: same tokenizer, max_length and precision as the run."""

    def __init__(self, output_dir: str, run_id: str, device: str = None):
        rec = load_record(output_dir, run_id)
        folder = require_saved(output_dir, run_id, rec)
        self.cfg = load_config_dict(rec["config"], f"{run_id} (its record)")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        precision = rec.get("precision") or "fp32"
        if self.device == "cpu" and precision == "bf16" and not cpu_has_native_bf16():
            precision = "fp32"  # the same maths, slower on a CPU without native bf16; labels may differ at ties
        self.precision = "fp32" if self.device == "cpu" and precision == "fp16" else precision
        self.tokenizer = build_tokenizer(self.cfg)
        self.model = load_trained(self.cfg, folder, load_model_config(self.cfg)).to(self.device).eval()

    @torch.no_grad()
    def predict(self, texts: list, batch_size: int = None) -> tuple:
        """(labels, P(positive)) for each text, in order."""
        bs = batch_size or self.cfg.train.eval_batch_size
        labels, probs = [], []
        for start in range(0, len(texts), bs):
            enc = self.tokenizer(texts[start:start + bs], truncation=True, max_length=self.cfg.data.max_length,
                                 padding=True, return_tensors="pt").to(self.device)
            with autocast(self.device, self.precision):
                logits = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            labels.append(p.argmax(1))
            probs.append(p[:, 1])
        return np.concatenate(labels), np.concatenate(probs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.predict", description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, metavar="RUN_ID", help="a completed run (its record in OUTPUT_DIR/runs)")
    ap.add_argument("--output-dir", default="results")
    ap.add_argument("--input", metavar="FILE.csv", help="predict every row of this CSV")
    ap.add_argument("--column", help="text column of --input (default: the run's data.text_column)")
    ap.add_argument("--output", metavar="FILE.csv", help="write text, label, probability here instead of printing")
    ap.add_argument("texts", nargs="*", metavar="TEXT")
    a = ap.parse_args(argv)

    @exits_on_user_error
    def go() -> int:
        if bool(a.texts) == bool(a.input):
            raise UserError("give either TEXT arguments or --input FILE.csv (one of the two)")
        pred = Predictor(a.output_dir, a.run)
        texts = read_texts(a.input, a.column or pred.cfg.data.text_column) if a.input else a.texts
        labels, probs = pred.predict(texts)
        if a.output:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["text", "label", "label_name", "prob_positive"])
            w.writerows([t, int(y), LABELS[int(y)], f"{p:.4f}"] for t, y, p in zip(texts, labels, probs))
            records.write_atomic(Path(a.output), buf.getvalue().encode())
            print(f"[predict] {len(texts)} predictions -> {a.output}")
        else:
            for t, y, p in zip(texts, labels, probs):
                short = " ".join(t.split())
                print(f"{LABELS[int(y)]}\t{p:.4f}\t{short[:70] + ('...' if len(short) > 70 else '')}")
        return 0

    return go()


if __name__ == "__main__":
    exit_process(main())
