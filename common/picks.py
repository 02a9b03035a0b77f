"""Stored learning-rate picks: results/sweep/picks.json, keyed by part/method/profile, reused for the same setup."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from common import records
from common.env import package_versions
from common.schema import RunCfg, flatten, with_learning_rate


def selection(cfg, fingerprints: dict, runtime: dict) -> dict:
    """What a pick was made for, key by key: the run's identity config (common/records.py; cfg a RunCfg or a
    record's config) less NOT_SCIENCE, the data files' fingerprints, and the precision the run resolved to."""
    config = cfg.to_dict() if isinstance(cfg, RunCfg) else cfg
    fields = {k: v for k, v in flatten(records.identity_config(config)).items() if k not in records.NOT_SCIENCE}
    fields.update({f"data.fingerprints.{k}": v for k, v in fingerprints.items()})
    fields["precision"] = runtime.get("precision")
    return json.loads(json.dumps(fields))  # as picks.json holds it (lists, not tuples)


def differing(a: dict, b: dict) -> list:
    """The fields on which two selections disagree."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def selection_key(cfg: RunCfg, fingerprints: dict, runtime: dict) -> str:
    """The identity hash picks were keyed by before `selection` (picks.json files written then still hold it)."""
    d = cfg.to_dict()
    for section, key in (("train", "learning_rate"), ("train", "seed")):
        d[section].pop(key, None)
    return records.run_identity(d, fingerprints, package_versions(), runtime)


def pick_name(cfg: RunCfg) -> str:
    return f"{cfg.part}/{cfg.peft.method}/{cfg.profile}"


def picks_path(output_dir: str) -> Path:
    return records.sweep_dir(output_dir) / "picks.json"


def load_picks(output_dir: str) -> dict:
    try:
        return json.loads(picks_path(output_dir).read_text())
    except (OSError, ValueError):
        return {}


def apply_pick(cfg: RunCfg, fingerprints: dict, runtime: dict, lr_origin: str = "schema default") -> tuple:
    """(cfg, lr_source): the swept learning rate when a matching pick exists, else the rate where it came from
    (lr_origin: the part YAML, the profile, or --set). --set train.learning_rate always wins over a pick."""
    if not cfg.train.use_sweep_lr or lr_origin.startswith("--set"):
        return cfg, lr_origin
    picks = load_picks(cfg.output.dir)
    counterpart = records.study_counterpart(cfg.output.dir)
    if counterpart is not None:  # the committed study's picks serve where this folder has none for the computation
        picks = {**{f"study:{k}": v for k, v in load_picks(str(counterpart)).items()}, **picks}
    pick = picks.get(pick_name(cfg))
    here = selection(cfg, fingerprints, runtime)
    if not pick or pick.get("selection") != here:
        # A pick is for a computation, not a part: Part 1's LoRA in the study is Part 3's LoRA run to the digit, so
        # a sweep of either part serves both (selections leave out the part and the profile's name).
        pick = next((p for p in picks.values() if p.get("selection") == here), pick)
    if not pick:
        return cfg, lr_origin
    if "selection" in pick:
        diff = differing(pick["selection"], here)
        why = "it differs in " + ", ".join(
            f"{k} ({pick['selection'].get(k)!r} there, {here.get(k)!r} here)"
            for k in diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
    else:  # a pick written before selections were kept: only its hash can be compared
        diff = [] if pick.get("selection_key") == selection_key(cfg, fingerprints, runtime) else ["selection_key"]
        why = "its setup hash differs (an older pick, made before selections were kept: sweep again to renew it)"
    if diff:
        print(f"[sweep] pick for {pick_name(cfg)} not used: {why}; using lr {cfg.train.learning_rate} from "
              f"{lr_origin}", file=sys.stderr)
        return cfg, lr_origin
    return with_learning_rate(cfg, pick["learning_rate"]), f"sweep: best val acc over {pick['grid']}"
