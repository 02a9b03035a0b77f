"""The run table: every completed run record of a folder as one pandas row, the one loader every report reads from."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pandas as pd

from common import records
from common.schema import flatten

_WARNED: set = set()
# A run's own seconds: tokenize, build, train and evaluate, save, time inference (the command's start-up excluded).
PHASES = ("tokenize_s", "build_model_s", "train_and_evaluate_s", "save_s", "inference_s")


def warn_once(path, what: str, error: Exception = None) -> None:
    """'[warning] PATH: WHAT' on stderr, once per path and message: a damaged file is named, never a traceback."""
    if (str(path), what) in _WARNED:
        return
    _WARNED.add((str(path), what))
    why = f" ({type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''})" if error else ""
    print(f"[warning] {path}: {what}{why}", file=sys.stderr)


def read_json(path: Path, damaged: str):
    """A folder's JSON file beside its runs (picks, the last command), {} without one; damaged: named in a warning."""
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as e:
        warn_once(path, damaged, e)
        return {}


def as_float(x):
    """x as a float, or None where it is no number (a CSV cell, a hand edit)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _predictions(folder: Path, run_id: str) -> dict:
    """correct[review] (bool) and the test reviews' rows, or None each without a readable predictions file."""
    path = records.predictions_path(str(folder), run_id)
    if not path.is_file():
        return {"correct": None, "review_rows": None}
    try:
        p = records.read_predictions(path)
        return {"correct": p["pred"] == p["label"], "review_rows": p["row"]}
    except Exception as e:  # noqa: BLE001 - any damage (truncated zip, missing array) leaves the run's statistics out
        warn_once(path, "damaged predictions file, its intervals and McNemar left out", e)
        return {"correct": None, "review_rows": None}


def report_fields(rec: dict, folder: Path) -> dict:
    """What a report reads of a record beyond its CSV row: the folder of its files, curves, validation size, seconds,
    the config of the sections it read, and its test predictions."""
    phases = rec.get("phases_s", {})
    return {"_dir": str(folder), "curves": rec.get("curves", {}), "train_steps": rec["metrics"].get("train_steps"),
            "val_samples": rec.get("data", {}).get("val_samples"), "listed_from": rec.get("listed_from"),
            "run_seconds": sum(float(phases.get(k) or 0.0) for k in PHASES),
            "config": flatten(records.active_sections(rec.get("config", {}))), **_predictions(folder, rec["run_id"])}


def _damage(r: dict):
    """What makes a completed run's row unusable (a hand edit, a field lost), or None. A run with no test pass (a
    sweep's) has no accuracy, and that is no damage."""
    if any(r.get(k) is None for k in ("run_id", "method", "seed")):
        return "fields missing"
    if (r["accuracy"] is not None and as_float(r["accuracy"]) is None) or not str(r["seed"]).lstrip("-").isdigit():
        return "accuracy or seed not a number"
    return None


def load_table(output_dir) -> pd.DataFrame:
    """Every completed run under output_dir/runs as one row per part that lists it (records.flat_row and
    report_fields), in the order the runs were made; a damaged record is named in a warning and left out."""
    rows = []
    for path in sorted(records.runs_dir(str(output_dir)).glob("*.json")):
        try:
            rec = records.read_record(str(output_dir), path.stem)
            if rec.get("status") != "completed":
                continue
            row = records.flat_row(rec)
            damage = _damage(row)
            if not damage:
                row.update(report_fields(rec, Path(records.files_dir(rec, str(output_dir)))))
            listed = [dict(row, part=part) for part in records.parts_of(rec)]
        except FileNotFoundError as e:  # only a listing reads another file: the one it lists
            warn_once(path, f"lists {e.filename}, which is missing; left out of the report")
            continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            warn_once(path, "damaged run record, left out of the report", e)
            continue
        if damage:
            warn_once(path, f"damaged run record ({damage}), left out of the report")
            continue
        rows += listed
    # object: the records' own values (an int stays an int beside a missing one, never 16089.0)
    table = pd.DataFrame(rows, columns=list(dict.fromkeys(records.CSV_COLUMNS + [k for r in rows for k in r])),
                         dtype=object)
    table = table.sort_values(["date", "run_id"], kind="stable", na_position="first")
    # A computation listed by a part and also forced to run again for it: the part shows the newer one.
    key = table["part"].astype(str) + "/" + table["run_id"].map(records.computation)
    return table[~key.duplicated(keep="last")].reset_index(drop=True)


def load_sweep_table(output_dir):
    """The table of output_dir's sweep runs, or None where it has no sweep."""
    sweep = records.sweep_dir(str(output_dir))
    return load_table(sweep) if records.runs_dir(str(sweep)).is_dir() else None


def select(table: pd.DataFrame, parts=None, profiles=None, since=None, run_ids=None) -> pd.DataFrame:
    """The table's rows of the given parts, profiles and run ids, made on or after the date `since` (ISO, a day
    or a time); None keeps every value."""
    keep = pd.Series(True, index=table.index)
    for column, values in (("part", parts), ("profile", profiles), ("run_id", run_ids)):
        if values:
            keep &= table[column].isin(list(values))
    if since:
        keep &= table["date"].fillna("") >= since
    return table[keep]


def part_rows(table: pd.DataFrame, part: str) -> list:
    """One part's runs scored on the test reviews, as dicts, None where a value is missing."""
    sub = table[(table["part"] == part) & table["accuracy"].notna()]
    return [{k: (None if v is None or (isinstance(v, float) and v != v) else v) for k, v in r.items()}
            for r in sub.to_dict("records")]


def write_part_csvs(output_dir, table: pd.DataFrame) -> list:
    """<part>.csv for each part with runs: the table's CSV columns of that part, generated, never appended to."""
    written = []
    for part in sorted(set(table["part"].dropna())):
        buf = io.StringIO()
        table.loc[table["part"] == part, records.CSV_COLUMNS].to_csv(buf, index=False, lineterminator="\n")
        path = Path(output_dir) / f"{part}.csv"
        if not path.is_file() or path.read_text() != buf.getvalue():
            records.write_atomic(path, buf.getvalue().encode())
        written.append(path)
    return written
