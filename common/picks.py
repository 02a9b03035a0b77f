"""Stored learning-rate picks: results/sweep/picks.json, keyed by part/method/profile, reused for the same setup."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from common import records
from common.env import package_versions
from common.schema import RunCfg, with_learning_rate

SELECTION_EXCLUDE = (("train", "learning_rate"), ("train", "seed"))


def selection_key(cfg: RunCfg, fingerprints: dict, runtime: dict) -> str:
    """Identity of everything but the learning rate and seed: a pick is reused only for the same setup."""
    d = cfg.to_dict()
    for section, key in SELECTION_EXCLUDE:
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
    pick = load_picks(cfg.output.dir).get(pick_name(cfg))
    if not pick:
        return cfg, lr_origin
    if pick["selection_key"] != selection_key(cfg, fingerprints, runtime):
        print(f"[sweep] pick for {pick_name(cfg)} was made for another setup; using lr "
              f"{cfg.train.learning_rate} from {lr_origin}", file=sys.stderr)
        return cfg, lr_origin
    return with_learning_rate(cfg, pick["learning_rate"]), f"sweep: best val acc over {pick['grid']}"
