"""IMDb-style CSV splits: find, read, check, sample, hold out validation, tokenize (cached on disk)."""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.env import hub_reachable
from common.errors import UserError
from common.schema import PROJECT_ROOT, DataCfg

SHARED_IMDB = PROJECT_ROOT.parent / "shared" / "data" / "imdb"


@dataclass
class Split:
    """One split as plain columns; `row` is the review's 0-based data row in its file (pairs predictions)."""

    text: list
    label: np.ndarray
    row: np.ndarray


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    files: dict  # split -> path
    fingerprints: dict  # split -> sha256 of the file


def resolve_dir(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else (Path.cwd() / p)


def find_split_file(data_dir: str, split: str) -> Path:
    """train.csv or train.csv.gz in data_dir; a clear error naming both ways out when absent."""
    d = resolve_dir(data_dir)
    for name in (f"{split}.csv", f"{split}.csv.gz"):
        if (d / name).is_file():
            return d / name
    hint = ""
    if SHARED_IMDB.is_dir():
        hint = f" The full IMDb is at {os.path.relpath(SHARED_IMDB)}: pass DATA_DIR={os.path.relpath(SHARED_IMDB)}"
    if not d.is_dir():
        raise UserError(f"data.dir: folder {data_dir} does not exist. Run `make data` (needs the hub) or point "
                        f"data.dir / DATA_DIR at a folder holding train.csv and test.csv (or .csv.gz).{hint}")
    raise UserError(f"data.dir: {d / split}.csv (or .csv.gz) not found in {data_dir}.{hint}")


def fingerprint_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _rows(mask: np.ndarray, limit: int = 8) -> str:
    # Row numbers as a spreadsheet shows them: the header is line 1, the first review line 2.
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i + 2) for i in idx[:limit])
    return shown + (f" ... ({len(idx)} rows)" if len(idx) > limit else "")


def _header(path: Path) -> list:
    """The CSV's header row as written (gzip or plain)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        return next(csv.reader(f), [])


def read_split(path: Path, cfg: DataCfg) -> pd.DataFrame:
    """Read one CSV and check it: the configured columns, labels in {0,1}, no empty review text."""
    try:
        df = pd.read_csv(path, dtype={cfg.text_column: "string"}, keep_default_na=False, na_values=[])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError, ValueError) as e:
        raise UserError(f"{path}: cannot read as CSV: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    problems = []
    # pandas renames a repeated header name to "name.1" and reads on: the review text would come from one of two
    # columns without a word. The header as written decides.
    header = _header(path)
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise UserError(f"{path}: header names column(s) {repeated} more than once ({header}); name each column once "
                        f"so that data.text_column and data.label_column say which one is meant")
    for key, col in (("data.text_column", cfg.text_column), ("data.label_column", cfg.label_column)):
        if col not in df.columns:
            problems.append(f"{path}: {key}: column '{col}' not found; the file has columns {list(df.columns)}")
    if problems:
        raise UserError(problems)
    raw = df[cfg.label_column]
    labels = pd.to_numeric(raw, errors="coerce")
    bad = ~labels.isin([0, 1]).to_numpy()
    if bad.any():
        values = sorted({str(v) for v in raw[bad]})[:10]
        problems.append(f"{path}: {cfg.label_column}: labels must be 0 or 1; found {values} on rows {_rows(bad)}")
    text = df[cfg.text_column].fillna("").astype(str)
    empty = (text.str.strip() == "").to_numpy()
    if empty.any():
        problems.append(f"{path}: {cfg.text_column}: empty or missing review text on rows {_rows(empty)}")
    if problems:
        raise UserError(problems)
    return pd.DataFrame({"text": text.to_numpy(), "label": labels.astype(np.int64).to_numpy(),
                         "row": np.arange(len(df), dtype=np.int64)})


def sample_balanced(df: pd.DataFrame, n: int, rng: np.random.Generator, where: str, key: str) -> pd.DataFrame:
    """n rows, half per class (the odd one to class 0), in shuffled order."""
    per = {0: n - n // 2, 1: n // 2}
    counts = df["label"].value_counts().to_dict()
    short = {c: (per[c], counts.get(c, 0)) for c in per if counts.get(c, 0) < per[c]}
    if short:
        detail = "; ".join(f"class {c}: needs {need}, has {have}" for c, (need, have) in short.items())
        raise UserError(f"{where}: {key}: {n} reviews requested (class-balanced) but the file is too small ({detail})")
    parts = [df[df["label"] == c].iloc[rng.permutation(counts[c])[: per[c]]] for c in (0, 1)]
    out = pd.concat(parts)
    return out.iloc[rng.permutation(len(out))]


def _split(df: pd.DataFrame) -> Split:
    return Split(text=list(df["text"]), label=df["label"].to_numpy(), row=df["row"].to_numpy())


def load_splits(cfg: DataCfg) -> Splits:
    """Train (minus a stratified validation hold-out), validation and test, all checked before any training."""
    ensure_data(cfg)
    files = {s: find_split_file(cfg.dir, s) for s in ("train", "test")}
    frames = {s: read_split(p, cfg) for s, p in files.items()}
    rng = np.random.default_rng(cfg.seed)
    train = frames["train"]
    val = sample_balanced(train, cfg.val_samples, rng, str(files["train"]), "data.val_samples") if cfg.val_samples \
        else train.iloc[:0]
    pool = rest = train.drop(index=val.index)
    before_train = rng.bit_generator.state  # the stream as the training draw finds it (test_drawn_as_train_samples)
    if cfg.train_samples is not None:
        where = f"{files['train']} (after holding out data.val_samples={cfg.val_samples})"
        rest = sample_balanced(rest, cfg.train_samples, rng, where, "data.train_samples")
    else:
        rest = rest.iloc[rng.permutation(len(rest))]
    if len(rest) < 2:
        raise UserError(f"{files['train']}: data.val_samples: holding out {cfg.val_samples} reviews leaves "
                        f"{len(rest)} for training")
    test = frames["test"]
    if cfg.test_samples is not None:
        if cfg.test_drawn_as_train_samples is not None:  # replay the smaller training draw, keep only its stream
            rng = np.random.default_rng(cfg.seed)
            rng.bit_generator.state = before_train
            sample_balanced(pool, cfg.test_drawn_as_train_samples, rng, str(files["train"]),
                            "data.test_drawn_as_train_samples")
        test = sample_balanced(test, cfg.test_samples, rng, str(files["test"]), "data.test_samples")
    return Splits(train=_split(rest), val=_split(val), test=_split(test), files={k: str(v) for k, v in files.items()},
                  fingerprints={k: fingerprint_file(v) for k, v in files.items()})


# ------------------------------------------------------------------------------------------- tokenization


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the serialized fast tokenizer (vocab, normalizer, specials): equal hash, equal token ids.

    Truncation and padding are dropped: the backend records the last call's settings there, and max_length
    is part of the cache key anyway."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]


def _cache_key(split: Split, name: str, file_sha: str, tok_sha: str, cfg: DataCfg, padding: str) -> str:
    rows = hashlib.sha256(np.ascontiguousarray(split.row).tobytes()).hexdigest()[:16]
    blob = json.dumps([name, file_sha, tok_sha, cfg.max_length, padding, rows, cfg.text_column, cfg.label_column])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def tokenize_split(split: Split, name: str, file_sha: str, tokenizer, cfg: DataCfg, padding: str = "dynamic"):
    """A datasets.Dataset of input_ids, attention_mask, labels, length, row; cached by tokenizer, length and file."""
    import datasets

    if not split.text:
        return None, True
    cache_root = resolve_dir(cfg.cache_dir)
    path = cache_root / f"{name}-{_cache_key(split, name, file_sha, tokenizer_fingerprint(tokenizer), cfg, padding)}"
    if path.is_dir():
        return datasets.load_from_disk(str(path)), True
    ds = datasets.Dataset.from_dict({"text": split.text, "labels": split.label, "row": split.row})
    pad = {"padding": "max_length"} if padding == "max_length" else {}

    def encode(batch):
        enc = tokenizer(batch["text"], truncation=True, max_length=cfg.max_length, **pad)
        enc["length"] = [sum(m) for m in enc["attention_mask"]]
        return enc

    ds = ds.map(encode, batched=True, batch_size=1000, remove_columns=["text"], desc=f"tokenize {name}")
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_root))
    ds.save_to_disk(str(tmp))
    try:
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache entry under its final name
    except OSError:  # another run won the race: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(path)), False


def tokenize_splits(splits: Splits, tokenizer, cfg: DataCfg, padding: str = "dynamic") -> dict:
    out, hits = {}, []
    for name in ("train", "val", "test"):
        file_sha = splits.fingerprints["test" if name == "test" else "train"]
        out[name], hit = tokenize_split(getattr(splits, name), name, file_sha, tokenizer, cfg, padding)
        hits.append(hit)
    out["cache_hit"] = all(hits)
    return out


# ------------------------------------------------------------------------------------------- make data


def write_hub_imdb(out_dir: str, dataset_id: str = "stanfordnlp/imdb") -> list:
    """Download IMDb from the hub and write train/test CSVs with the study's columns (sentences, labels)."""

    if not hub_reachable():
        raise UserError(
            f"make data: the Hugging Face hub is not reachable (offline), so {dataset_id} cannot be downloaded. "
            f"Point the runs at local CSVs instead: DATA_DIR=DIR (or --set data.dir=DIR) where DIR holds "
            f"train.csv and test.csv (or .csv.gz) with columns sentences,labels"
            + (f"; here the full IMDb is at {os.path.relpath(SHARED_IMDB)}" if SHARED_IMDB.is_dir() else ""))
    import datasets

    out = resolve_dir(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    # Both splits are downloaded before the folder gets either: an interrupted fetch leaves no half data folder.
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as tmp:
        for split in ("train", "test"):
            ds = datasets.load_dataset(dataset_id, split=split)
            pd.DataFrame({"sentences": ds["text"], "labels": ds["label"]}).to_csv(Path(tmp) / f"{split}.csv",
                                                                                  index=False)
        out.mkdir(exist_ok=True)
        for split in ("train", "test"):
            os.replace(Path(tmp) / f"{split}.csv", out / f"{split}.csv")
            written.append(out / f"{split}.csv")
    return written


def fetch_decision(data_dir: str, reachable) -> str:
    """present: use the folder. fetch: data.dir is the default, absent, and the hub answers: download IMDb into it
    first (what `make data` does), so the first run after `make setup` is one command. missing: leave it to the
    clear error of find_split_file (offline, or a folder the user named: never guess their data)."""
    if resolve_dir(data_dir).exists():
        return "present"
    if Path(data_dir) != Path(DataCfg.dir):
        return "missing"
    return "fetch" if reachable() else "missing"


def ensure_data(cfg: DataCfg) -> None:

    if fetch_decision(cfg.dir, hub_reachable) == "fetch":
        print(f"[data] {cfg.dir} does not exist: downloading IMDb from the Hugging Face hub into it "
              f"(what `make data` does; once)", flush=True)
        for path in write_hub_imdb(cfg.dir):
            print(f"[data] wrote {path}", flush=True)


def main(argv=None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="Write data/imdb/{train,test}.csv from the hub's IMDb.")
    ap.add_argument("--out", default="data/imdb")
    a = ap.parse_args(argv)
    try:
        for p in write_hub_imdb(a.out):
            print(p)
    except UserError as e:
        print(e.render(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
