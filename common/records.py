"""Run records: identity hash, atomic JSON records (the only thing a run writes besides its files), predictions files,
completed-run lookup."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from common.schema import PROJECT_ROOT, method_section

# The committed study: written only by the commands that name it (`make study`, OUT=study); every other command
# writes to its own output folder (results/ by default, git-ignored) and reads the study's runs and picks from here.
STUDY_DIR = PROJECT_ROOT / "study"

CSV_COLUMNS = [
    "run_id", "part", "method", "model", "profile", "seed", "learning_rate", "lr_source", "accuracy", "loss", "f1",
    "val_accuracy", "val_loss", "trainable_params", "total_params", "trainable_pct", "train_time_s", "eval_time_s",
    "train_samples_per_s", "peak_mem_allocated_mib", "peak_mem_reserved_mib", "peak_rss_mib", "device",
    "precision", "dropout_kernel", "train_samples", "test_samples", "max_length", "epochs", "date", "git_commit", "status",
    "collapsed", "majority_share", "init", "train_pooler",
    "saved_bytes", "test_reviews_per_s", "latency_ms", "latency_merged_ms", "world_size", "made_for",
]

# Settings that do not change what a run computes are left out of its identity (train.allocator: the same bits).
# data.dir too: the data files' sha256 stand for the data, wherever the folder is. And the part: Part 2's full FT and
# prefix runs in the proxy are Part 3's, to the digit (same model, data and settings), so they are computed once.
IDENTITY_EXCLUDE = {("part",), ("output",), ("train", "allow_cpu"), ("train", "use_sweep_lr"), ("train", "lr_grid"),
                    ("train", "lr_grid_edge_steps"),
                    ("train", "seeds"), ("profile",), ("data", "cache_dir"), ("data", "dir"),
                    ("train", "evals_per_epoch"), ("train", "logging_steps"), ("train", "report_to"),
                    ("train", "allocator")}
# Keys added after runs were recorded, left out while at their default: the default keeps the earlier behaviour,
# so a completed run stays recognised when a later version of the code adds an option it did not use.
# model.last_layer's auto computes the same numbers as before up to rounding (common/readout.py), as a fused
# optimizer kernel does; the record's `kernels` says which ran.
IDENTITY_OMIT_AT_DEFAULT = {("peft", "train_pooler"): False, ("peft", "prefix", "init"): "random",
                            ("model", "last_layer"): "auto", ("data", "test_drawn_as_train_samples"): None}


# A pick is about the science: which rate trains this model on this data with this method, budget and precision
# best. The machine (device), kernels that compute the same maths (attention path, last-layer form, optimizer kernel,
# compile, workers) and the dropout kernel's random stream (another stream, as another seed is) do not change that,
# so they do not stop a pick from being reused; nor do package versions.
NOT_SCIENCE = {"train.learning_rate", "train.seed", "train.device", "train.precision", "train.dropout_kernel",
               "train.optim", "train.torch_compile", "train.dataloader_workers", "model.attn_implementation",
               "model.last_layer"}


def _strip(d: dict, prefix=()) -> dict:
    out = {}
    for k, v in d.items():
        key = prefix + (k,)
        if key in IDENTITY_EXCLUDE or (key in IDENTITY_OMIT_AT_DEFAULT and IDENTITY_OMIT_AT_DEFAULT[key] == v):
            continue
        out[k] = _strip(v, key) if isinstance(v, dict) and k != "config_overrides" else v
    return out


def active_sections(config: dict) -> dict:
    """The config with the active method's own peft section only: the other methods' sections are unused."""
    peft = config.get("peft")
    if not isinstance(peft, dict):
        return config
    own = method_section(peft.get("method"))
    return {**config, "peft": {k: v for k, v in peft.items() if not isinstance(v, dict) or k == own}}


def identity_config(config: dict) -> dict:
    """The config as it bears on the result: without what does not change it, and with the active method's own
    peft section only."""
    return active_sections(_strip(config))


# Settings whose value the runtime carries (devices.Runtime.identity): with a runtime, the identity hashes what they
# resolved to and not the word that asked for it, so `auto` that became the fast kernel and an explicit `fast` are
# one computation, as they are. Hashed as "auto", the word every committed run with a runtime holds for the
# device and precision and the study's runs hold for the kernel, so their identities stay as they were.
RUNTIME_WORDS = (("train", "device"), ("train", "precision"), ("train", "dropout_kernel"))


def run_identity(config: dict, fingerprints: dict, versions: dict, runtime: dict = None) -> str:
    """Hash of what determines the result: resolved config, data file hashes, package versions, and the runtime
    choices that `auto` settings resolved to on this machine (device type, precision, dropout kernel): the same
    YAML run in fp32 on one CPU and in bf16 on another computes different numbers, so it is a different run."""
    cfg = identity_config(config)
    if runtime:
        for section, key in RUNTIME_WORDS:
            if key in cfg.get(section, {}):
                cfg[section][key] = "auto"
    blob = json.dumps({"config": cfg, "data": fingerprints, "versions": versions,
                       "runtime": runtime or {}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def run_id_for(part: str, method: str, seed: int, identity: str) -> str:
    return f"{part}-{method}-s{seed}-{identity}"


def _clean(obj):
    """JSON-safe: numpy scalars to Python, NaN/inf to null (json.dump would write invalid JSON)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, rename: readers see the old file or the new, never half.
    A failure removes the temporary file; one left by a killed process is removed by the next write of `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    remove_orphans(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphans(path: Path) -> None:
    """Temporary files of `path` whose writer died before renaming them (SIGKILL, power loss): .<name>.<pid>.*.tmp
    with no live process of that pid on this machine."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def write_json(path: Path, obj: dict) -> None:
    write_atomic(Path(path), (json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n").encode())


def made_from(keys_file: Path, name: str, key: str, paths: list, make) -> list:
    """paths, made by make() only where what they are made from (key) changed since, or one is missing; keys_file
    holds name -> key for every name, read again after making (another name's key may have been written meanwhile)."""
    def keys() -> dict:
        try:
            return json.loads(Path(keys_file).read_text())
        except (OSError, ValueError):  # a lost or damaged file only makes them again
            return {}

    if keys().get(name) == key and all(Path(p).is_file() for p in paths):
        return list(paths)
    made = make()
    write_json(keys_file, {**keys(), name: key})
    return made


def read_csv_rows(path: Path) -> list:
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def flat_row(record: dict) -> dict:
    """A run record flattened: its row in the report's table, and in the <part>.csv generated from it."""
    m, p, c, e = record["metrics"], record["params"], record["config"], record["env"]
    return {
        "run_id": record["run_id"], "part": record["part"], "method": record["method"],
        "model": c["model"]["name_or_path"], "profile": c["profile"], "seed": record["seed"],
        "learning_rate": c["train"]["learning_rate"], "lr_source": record.get("lr_source"),
        **{k: m.get(k) for k in ("accuracy", "loss", "f1", "val_accuracy", "val_loss", "train_time_s",
                                 "eval_time_s", "train_samples_per_s", "peak_mem_allocated_mib",
                                 "peak_mem_reserved_mib", "peak_rss_mib")},
        "trainable_params": p.get("trainable"), "total_params": p.get("total"), "trainable_pct": p.get("trainable_pct"),
        "device": e.get("device"), "precision": record.get("precision"),
        "dropout_kernel": (record.get("kernels") or {}).get("dropout"),
        "train_samples": record["data"]["train_samples"], "test_samples": record["data"]["test_samples"],
        "max_length": c["data"]["max_length"], "epochs": c["train"]["epochs"], "date": e.get("date"),
        "git_commit": (e.get("git_commit") or "")[:12], "status": record["status"],
        "collapsed": m.get("collapsed"), "majority_share": m.get("majority_share"), "init": c["model"]["init"],
        "train_pooler": c["peft"].get("train_pooler", False),
        "saved_bytes": (record.get("saved") or {}).get("bytes"),
        **{k: (record.get("inference") or {}).get(k) for k in ("test_reviews_per_s", "latency_ms",
                                                                 "latency_merged_ms")},
        "world_size": record.get("world_size"), "made_for": record["part"],
    }


LAST_COMMAND = "last_command.json"  # what the newest command in a folder planned, for its summary's first section


def last_command_path(output_dir: str) -> Path:
    return Path(output_dir) / LAST_COMMAND


def runs_dir(output_dir: str) -> Path:
    return Path(output_dir) / "runs"


def sweep_dir(output_dir: str) -> Path:
    """Where `make sweep` keeps its runs (their own runs/, CSVs and picks.json) under an output folder."""
    return Path(output_dir) / "sweep"


def logs_dir(output_dir: str, run_id: str) -> Path:
    """Live training logs of a run (train.report_to), git-ignored: <output.dir>/logs/<run_id>/."""
    return Path(output_dir) / "logs" / run_id


def record_path(output_dir: str, run_id: str) -> Path:
    return runs_dir(output_dir) / f"{run_id}.json"


def predictions_path(output_dir: str, run_id: str, split: str = "test") -> Path:
    return runs_dir(output_dir) / (f"{run_id}.preds.npz" if split == "test" else f"{run_id}.{split}.preds.npz")


# A listing: a run recorded in one folder and shown in another (a sweep's run that is also the final run, a committed
# run a user's folder finds done). It holds the source record's path, relative to its own folder, and the few fields
# that differ where it is listed; everything else, predictions included, is read from the source, never copied.
LISTED_FROM = "listed_from"


def resolve(rec: dict, output_dir: str) -> dict:
    """A record as read from output_dir: a listing becomes the record it lists, its own fields over the source's
    (and kept, as `listing`, for writing it back)."""
    if LISTED_FROM not in rec:
        return rec
    return {**json.loads(_source(rec, output_dir).read_text()), **rec, "listing": rec}


def _source(rec: dict, output_dir: str) -> Path:
    # normpath: '../study' from a folder that does not exist yet (a user's first command) is still the study
    return Path(os.path.normpath(Path(output_dir) / rec[LISTED_FROM]))


def files_dir(rec: dict, output_dir: str) -> str:
    """The output folder holding a resolved record's predictions: its source's for a listing."""
    return str(_source(rec, output_dir).parent.parent) if LISTED_FROM in rec else str(output_dir)


def listing(src_dir: str, rec: dict, output_dir: str, **fields) -> dict:
    """src_dir's run rec as listed in output_dir, with the fields that differ there, resolved."""
    path = os.path.relpath(record_path(src_dir, rec["run_id"]).resolve(), Path(output_dir).resolve())
    return resolve({"run_id": rec["run_id"], LISTED_FROM: path, **fields}, output_dir)


def stored(rec: dict) -> dict:
    """What is written for a resolved record: a listing's own fields (with the parts that list it), else all of it."""
    if "listing" not in rec:
        return rec
    return {**rec["listing"], **({"parts": rec["parts"]} if "parts" in rec else {})}


def read_record(output_dir: str, run_id: str) -> dict:
    """A run's record in output_dir, a listing resolved (OSError, ValueError: missing or unreadable)."""
    return resolve(json.loads(record_path(output_dir, run_id).read_text()), output_dir)


def completed_record(output_dir: str, run_id: str):
    """The record of a completed run with this id in output_dir, or None (missing, failed, unreadable)."""
    try:
        rec = read_record(output_dir, run_id)
    except (OSError, ValueError):
        return None
    return rec if rec.get("status") == "completed" else None


def is_study(output_dir: str) -> bool:
    """Whether output_dir is the committed study's folder."""
    return Path(output_dir).expanduser().resolve() == STUDY_DIR.resolve()


def study_counterpart(output_dir: str):
    """The committed study's folder that output_dir stands beside: the study itself for an output folder, the
    study's sweep/ for a sweep folder; None for the study's own folders (they are the committed runs)."""
    out = Path(output_dir).expanduser().resolve()
    if out in (STUDY_DIR.resolve(), sweep_dir(str(STUDY_DIR)).resolve()):
        return None
    return sweep_dir(str(STUDY_DIR)) if out.name == sweep_dir("").name else STUDY_DIR


def committed_same(output_dir: str, method: str, seed: int, identity: str):
    """The committed study's completed record of this computation (from the counterpart of output_dir), or None."""
    src = study_counterpart(output_dir)
    return find_same(str(src), method, seed, identity) if src is not None else None


def adopt_committed(rec: dict, output_dir: str) -> dict:
    """A committed run listed in output_dir: the user's folder shows the run without training it again (its weights
    are the study's machine's, not committed)."""
    return listing(str(study_counterpart(output_dir)), rec, output_dir, parts=parts_of(rec), saved=None)


def find_same(output_dir: str, method: str, seed: int, identity: str):
    """The completed record of this computation (method, seed, identity) in output_dir, made for whichever part,
    or None: a run is recorded once, by the part that made it, and listed by every part it serves."""
    for path in sorted(runs_dir(output_dir).glob(f"*-{method}-s{seed}-{identity}.json")):
        rec = completed_record(output_dir, path.stem)
        if rec:
            return rec
    return None


def parts_of(rec: dict) -> list:
    """The parts that list a run: the one it was made for, then any that found it done (`parts`)."""
    return rec.get("parts") or [rec["part"]]


def list_for(rec: dict, part: str) -> dict:
    return {**rec, "parts": list(dict.fromkeys(parts_of(rec) + [part]))}


def computation(run_id: str) -> str:
    """'full-s0-1b2668482e' of 'part1-full-s0-1b2668482e': the run whatever part lists it."""
    return run_id.split("-", 1)[-1]  # an id with no part before it is its own


def promote_swept(swept: dict, output_dir: str, lr_source: str, config: dict) -> dict:
    """A sweep run that is also a final run (the pick, on the seed the sweep trained), listed beside the part's runs
    with the final run's config and rate source: the computation is made once, recorded once and counted once."""
    saved = swept.get("saved")
    if saved and saved.get("dir"):  # the weights stay where the sweep wrote them; dir is relative to output.dir
        saved = {**saved, "dir": str(Path(sweep_dir(output_dir).name) / saved["dir"])}
    return listing(str(sweep_dir(output_dir)), swept, output_dir, parts=parts_of(swept), lr_source=lr_source,
                   config=config, saved=saved)


def write_predictions(output_dir: str, run_id: str, preds: dict, split: str = "test") -> Path:
    """Predictions of one split, compact: row (int32), label and pred (int8), P(positive) (float16, ~3 decimals;
    test only)."""
    buf = io.BytesIO()
    cols = {"row": preds["row"].astype(np.int32), "label": preds["label"].astype(np.int8),
            "pred": preds["pred"].astype(np.int8)}
    if "prob_pos" in preds:
        cols["prob_pos"] = preds["prob_pos"].astype(np.float16)
    np.savez_compressed(buf, **cols)
    path = predictions_path(output_dir, run_id, split)
    write_atomic(path, buf.getvalue())
    return path


def read_predictions(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
