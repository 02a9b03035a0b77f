"""Bring committed result files up to the current format, changing no result and no run identity.

  python -m common.migrate [--output-dir results]

Picks written before `selection` was kept hold only a setup hash, which a change of machine or of a speed kernel
breaks: each gets the selection it was made for, rebuilt from the record of the sweep run it picked.
"""
from __future__ import annotations

import argparse
import json

from common import records
from common.picks import load_picks, picks_path, selection
from common.process import exit_process


def add_selections(output_dir: str) -> list:
    """Picks given their `selection`, from the sweep record of the picked rate; returns their names."""
    picks, done = load_picks(output_dir), []
    sweep = str(records.sweep_dir(output_dir))
    for name, pick in picks.items():
        if "selection" in pick:
            continue
        run_id = next((sc["run_id"] for sc in pick.get("scores", []) if sc["learning_rate"] == pick["learning_rate"]),
                      None)
        try:
            rec = json.loads(records.record_path(sweep, run_id).read_text()) if run_id else None
        except (OSError, ValueError):
            rec = None
        if rec is None:
            print(f"[migrate] {name}: no readable sweep record of its pick; left as it is")
            continue
        pick["selection"] = selection(rec["config"], rec["data"]["fingerprints"], rec.get("runtime") or {})
        done.append(name)
    if done:
        records.write_json(picks_path(output_dir), picks)
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.migrate", description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", default="results")
    a = ap.parse_args(argv)
    done = add_selections(a.output_dir)
    print(f"[migrate] {len(done)} pick(s) given their selection: {', '.join(done) or 'none needed'}")
    return 0


if __name__ == "__main__":
    exit_process(main())
