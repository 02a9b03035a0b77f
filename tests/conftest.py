"""Shared fixtures: a few dozen real IMDb reviews from ../shared, tiny-model arguments, CLI runners."""
import csv
import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from common.methods import METHODS

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
IMDB = SHARED / "data" / "imdb"
VOCAB = SHARED / "data" / "vocab" / "bert-base-uncased-vocab.txt"
TINY = {"part1": ROOT / "tests" / "profiles" / "tiny_distilbert.yaml",
        "part2": ROOT / "tests" / "profiles" / "tiny_bert.yaml",
        "part3": ROOT / "tests" / "profiles" / "tiny_bert.yaml"}
# The same tiny models on reviews they can learn in a few dozen steps (signal_data): runs whose numbers mean something.
LEARN = {"part1": ROOT / "tests" / "profiles" / "learn_distilbert.yaml",
         "part2": ROOT / "tests" / "profiles" / "learn_bert.yaml",
         "part3": ROOT / "tests" / "profiles" / "learn_bert.yaml"}
PART3_METHODS = list(METHODS)  # every method of the registry has a Part 3 config
CONFIGS = {"part1": ["configs/part1_distilbert_full.yaml", "configs/part1_distilbert_lora.yaml"],
           "part2": ["configs/part2_bert_full.yaml", "configs/part2_bert_prefix.yaml"],
           "part3": [f"configs/part3_bert_{m}.yaml" for m in PART3_METHODS]}

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from common.cli import ENTRY_POINTS as RECIPES  # noqa: E402  (part -> the module a user runs; after the env)


def read_reviews(split: str, per_class: int) -> list:
    with gzip.open(IMDB / f"{split}.csv.gz", "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    neg = [r for r in rows if r["labels"] == "0"][:per_class]
    pos = [r for r in rows if r["labels"] == "1"][:per_class]
    return neg + pos


def write_csv(path: Path, rows: list, columns=("sentences", "labels")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """30 + 30 train and 20 + 20 test real reviews, plain CSV."""
    d = tmp_path_factory.mktemp("imdb_tiny")
    write_csv(d / "train.csv", read_reviews("train", 30))
    write_csv(d / "test.csv", read_reviews("test", 20))
    return d


# A planted word signal: each review is a few neutral words and six words of its class (positive or negative).
FILLER = ("the a movie film story was is it and of to in this that with for plot scene actor time one really very "
          "just").split()
SIGNAL = {1: ("excellent", "wonderful", "brilliant"), 0: ("dreadful", "awful", "boring")}


def signal_reviews(n: int, seed: int) -> list:
    """n reviews, alternating negative and positive, that a 2-layer 32-wide model learns in ~36 steps."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 8))]
        for _ in range(6):
            words.insert(rng.randint(0, len(words)), rng.choice(SIGNAL[label]))
        rows.append({"sentences": " ".join(words), "labels": label})
    return rows


@pytest.fixture(scope="session")
def signal_data(tmp_path_factory) -> Path:
    """192 train and 64 test reviews with a planted word signal (signal_reviews), plain CSV."""
    d = tmp_path_factory.mktemp("imdb_signal")
    write_csv(d / "train.csv", signal_reviews(192, seed=0))
    write_csv(d / "test.csv", signal_reviews(64, seed=1))
    return d


def tiny_args(part: str, data_dir, out_dir, *extra, configs=None, profile=None) -> list:
    args = ["--config", *(configs or CONFIGS[part]), "--profile", str(profile or TINY[part]),
            "--set", f"data.dir={data_dir}", "--set", f"output.dir={out_dir}",
            "--set", f"model.tokenizer={VOCAB}", "--set", f"data.cache_dir={Path(out_dir).parent / 'tokcache'}"]
    return args + list(extra)


def run_cli(part: str, args: list, timeout: int = 300, env=None) -> subprocess.CompletedProcess:
    """The recipe as a user runs it: a subprocess in the project root."""
    return subprocess.run([sys.executable, "-m", RECIPES[part], *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def tree(path: Path) -> list:
    """Every file under path (empty list when it does not exist): for 'nothing was written' checks."""
    return sorted(str(p.relative_to(path)) for p in Path(path).rglob("*")) if Path(path).exists() else []


def run_main(part: str, args: list, capsys) -> tuple:
    """The recipe in-process (fast): (exit code, stdout, stderr)."""
    import importlib

    capsys.readouterr()
    rc = importlib.import_module(RECIPES[part]).main(list(map(str, args)))
    out = capsys.readouterr()
    return rc, out.out, out.err


def table(section: str, first: str) -> dict:
    """The markdown table whose header starts with `| first |` in a section: its first column -> {header: cell}."""
    lines = section.splitlines()
    opening = f"| {first} |" if first else "| |"
    start = next(i for i, line in enumerate(lines) if line.startswith(opening))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def write_run(out, row: dict, **record) -> dict:
    """A completed run's record written under out/runs, built from the flat row the report's table holds
    (records.flat_row of it gives the row back); record: other fields of the record (curves, config, ...)."""
    import copy

    from common import records

    r = {"status": "completed", "lr_source": "config", "init": "pretrained", "train_pooler": False,
         "dropout_kernel": "torch", "collapsed": False, **row}
    rec = copy.deepcopy(record)
    cfg = rec.setdefault("config", {})
    cfg.setdefault("model", {}).update(name_or_path=r.get("model"), init=r["init"])
    cfg["profile"] = r.get("profile")
    cfg.setdefault("train", {}).update(learning_rate=r.get("learning_rate"), epochs=r.get("epochs"))
    cfg.setdefault("data", {}).update(max_length=r.get("max_length"))
    cfg.setdefault("peft", {})["train_pooler"] = r["train_pooler"]
    rec.update({k: r.get(k) for k in ("run_id", "part", "method", "seed", "lr_source", "status", "precision",
                                      "world_size", "parts")})
    rec["kernels"] = {"dropout": r["dropout_kernel"]}
    rec["metrics"] = {k: r.get(k) for k in ("accuracy", "loss", "f1", "val_accuracy", "val_loss", "train_time_s",
                                            "eval_time_s", "train_samples_per_s", "peak_mem_allocated_mib",
                                            "peak_mem_reserved_mib", "peak_rss_mib", "collapsed", "majority_share")}
    rec["params"] = {"trainable": r.get("trainable_params"), "total": r.get("total_params"),
                     "trainable_pct": r.get("trainable_pct")}
    rec["env"] = {"device": r.get("device"), "date": r.get("date"), "git_commit": r.get("git_commit")}
    rec["data"] = {"train_samples": r.get("train_samples"), "test_samples": r.get("test_samples")}
    rec["saved"] = {"bytes": r.get("saved_bytes")}
    rec["inference"] = {k: r.get(k) for k in ("test_reviews_per_s", "latency_ms", "latency_merged_ms")}
    if rec.get("predictions_file") is None and records.predictions_path(str(out), r["run_id"]).is_file():
        rec["predictions_file"] = records.predictions_path(str(out), r["run_id"]).name
    records.write_json(records.record_path(str(out), r["run_id"]), rec)
    return rec
