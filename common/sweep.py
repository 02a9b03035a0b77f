"""Learning-rate sweep at equal budget: each method over its YAML grid, scored on validation, best pick reused.

  python -m common.sweep --part part1 [--profile quick] [--set k=v ...] [--force]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from common import cli, distributed, recipe, records, stats
from common.config import part_configs
from common.env import command_line, now_iso
from common.errors import EXIT_INTERRUPTED, exits_on_user_error
from common.picks import load_picks, pick_name, picks_path, selection
from common.plan import plan_runs
from common.process import exit_process


def _rank(score: dict) -> tuple:
    """Better first: higher validation accuracy, then lower validation loss, then the smaller rate (the gentler
    step when the split cannot tell two rates apart). Never the grid's order."""
    return (-(score["val_accuracy"] or 0.0), score["val_loss"] if score["val_loss"] is not None else float("inf"),
            score["learning_rate"])


def pick_best(scores: list) -> tuple:
    """(best score, note): the best final validation accuracy (ties: lower validation loss, then the smaller rate),
    never a learning rate whose validation predictions collapsed to one class while another did not."""
    alive = [s for s in scores if not s.get("collapsed")]
    dead = [s["learning_rate"] for s in scores if s.get("collapsed")]
    best = min(alive or scores, key=_rank)
    if dead and alive:
        note = (f"lr {', '.join(map(str, dead))} collapsed (predicts one class on validation): not eligible; "
                f"picked {best['learning_rate']} among the others")
    elif dead:
        note = f"every lr collapsed (predicts one class on validation); picked {best['learning_rate']} anyway"
    else:
        note = f"picked {best['learning_rate']} (best validation accuracy, no collapse)"
    return best, note


def runner_up_gap(scores: list, best: dict, sweep_dir: str):
    """The picked rate against the next best eligible one on the same validation reviews: accuracy difference with
    a paired 95% interval, and whether it excludes zero (None without a runner-up or its predictions)."""
    others = sorted((s for s in scores if s is not best and not s.get("collapsed")), key=_rank)
    if not others:
        return None
    second = others[0]
    paths = [records.predictions_path(sweep_dir, s["run_id"], "val") for s in (best, second)]
    if not all(p.is_file() for p in paths):
        return None
    a, b = (records.read_predictions(p) for p in paths)
    lo, hi = stats.paired_difference_interval(b["pred"] == b["label"], a["pred"] == a["label"])
    diff = float(np.mean(a["pred"] == a["label"]) - np.mean(b["pred"] == b["label"]))
    return {"learning_rate": second["learning_rate"], "diff": diff, "ci": [lo, hi], "resolved": lo > 0 or hi < 0,
            "how": f"paired normal interval over the {len(a['label'])} validation reviews"}


def edge_step(grid: list, lr: float):
    """The next rate past the grid's edge that `lr` sits on, one grid ratio further (None inside the grid):
    [1e-4, 3e-4, 1e-3] with 1e-3 best -> 1e-3 * (1e-3 / 3e-4) = 3.3e-3; with 1e-4 best -> 3.3e-5."""
    g = sorted(grid)
    if len(g) < 2 or g[0] < lr < g[-1]:
        return None
    nxt = g[-1] * g[-1] / g[-2] if lr == g[-1] else g[0] * g[0] / g[1]
    return float(f"{nxt:.2g}")


def _score(lr: float, rec: dict) -> dict:
    m = rec["metrics"]
    return {"learning_rate": lr, "val_accuracy": m.get("val_accuracy"), "val_loss": m.get("val_loss"),
            "val_majority_share": m.get("val_majority_share"), "collapsed": bool(m.get("val_collapsed")),
            "val_samples": rec["data"]["val_samples"], "run_id": rec["run_id"], "status": rec["status"]}


def run_sweep(part: str, profile: str, sets: list, force: bool, engine: str = "local") -> int:
    """Every method x learning rate of the part, scored on validation (all of them one grid for the engine); a pick
    on an edge of its grid is tried train.lr_grid_edge_steps rates past it; then the picks per method."""
    base_args = argparse.Namespace(config=part_configs(part), profile=profile, dry_run=False, force=force,
                                   set=list(sets) + ["train.use_sweep_lr=false", "train.seeds=null"])
    base_plans = plan_runs(part, base_args)
    out_dir = base_plans[0].cfg.output.dir
    swept = str(records.sweep_dir(out_dir))

    def plan_rate(base, lr: float):
        args = argparse.Namespace(**{**vars(base_args), "set": base_args.set + [f"train.learning_rate={lr}"],
                                     "config": [base.source]})
        # The test pass runs too, though the pick never reads it: the picked rate's run is its seed's final run
        # (common/execute.py promotes it), so no final run trains twice.
        return plan_runs(part, args, output_dir_override=swept)[0]

    tried = {id(b): {} for b in base_plans}  # base plan -> {lr: record or None}
    todo = []
    for base in base_plans:
        grid = [float(x) for x in base.cfg.train.lr_grid]
        if not grid:
            print(f"[sweep] {pick_name(base.cfg)}: no train.lr_grid in its config, keeps lr {base.cfg.train.learning_rate}")
        todo += [(base, lr) for lr in grid]
    failed = False
    while todo:
        plans = [plan_rate(base, lr) for base, lr in todo]
        results = cli.run_plans(plans, recipe.run, force=force, engine=engine)
        if any(outcome == "interrupted" for outcome, _ in results):
            return EXIT_INTERRUPTED  # Ctrl-C/SIGTERM stops the sweep: no picks from half a grid, no final runs
        for (base, lr), (_, rec) in zip(todo, results):
            ok = rec is not None and rec["status"] == "completed"
            tried[id(base)][lr] = rec if ok else None
            failed = failed or not ok
        todo = []
        for base in base_plans:  # a pick on an edge: one more rate past it, up to lr_grid_edge_steps of them
            scores = [_score(lr, r) for lr, r in tried[id(base)].items() if r is not None]
            if not scores:
                continue
            searched = sorted(tried[id(base)])
            past = len(searched) - len(base.cfg.train.lr_grid)
            nxt = edge_step(searched, pick_best(scores)[0]["learning_rate"])
            if nxt is not None and past < base.cfg.train.lr_grid_edge_steps and nxt not in tried[id(base)]:
                print(f"[sweep] {pick_name(base.cfg)}: the best rate is on an edge of {searched}; trying {nxt}")
                todo.append((base, nxt))
    picks = load_picks(out_dir)
    for base in base_plans:
        scores = [_score(lr, r) for lr, r in sorted(tried[id(base)].items()) if r is not None]
        if not scores:
            continue
        grid = [float(x) for x in base.cfg.train.lr_grid]
        best, note = pick_best(scores)
        extended = [sc["learning_rate"] for sc in scores if sc["learning_rate"] not in grid]
        if extended:
            note += f"; grid {grid} extended past its edge to {', '.join(map(str, extended))}"
        gap = runner_up_gap(scores, best, swept)
        if gap and not gap["resolved"]:
            note += (f"; not distinguishable from {gap['learning_rate']} on validation "
                     f"({100 * gap['diff']:+.1f} points [{100 * gap['ci'][0]:+.1f}, {100 * gap['ci'][1]:+.1f}])")
        print(f"[sweep] {pick_name(base.cfg)}: {note}")
        pick = {"learning_rate": best["learning_rate"], "grid": sorted(lr for lr in tried[id(base)]),
                "scores": scores, "note": note, "runner_up": gap,
                "selection": selection(base.cfg, base.splits.fingerprints, base.runtime.identity()),
                "seed": base.cfg.train.seed}
        if extended:
            pick["extended"] = extended
        earlier = picks.get(pick_name(base.cfg), {})
        if {k: earlier.get(k) for k in pick} == json.loads(json.dumps(pick)):
            continue  # the same decision from the same runs: it keeps the date and command that made it
        picks[pick_name(base.cfg)] = {**pick, "date": now_iso(), "command": command_line()}
        if distributed.is_main():
            records.write_json(picks_path(out_dir), picks)
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Sweep learning rates on validation, then run the part with the picks.")
    ap.add_argument("--part", choices=sorted(cli.ENTRY_POINTS), required=True)
    ap.add_argument("--profile", default="default", help=cli.PROFILE_HELP)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--no-final", action="store_true", help="only sweep; do not run the part afterwards")
    ap.add_argument("--engine", choices=("local", "ray"), default="local", help="as the part recipes' --engine")
    a = ap.parse_args(argv)

    @exits_on_user_error
    def go():
        rc = run_sweep(a.part, a.profile, a.set, a.force, a.engine)
        if a.no_final or rc == EXIT_INTERRUPTED:
            return rc
        final = ["--config", *part_configs(a.part), "--profile", a.profile] + \
            [x for s in a.set for x in ("--set", s)] + (["--force"] if a.force else []) + ["--engine", a.engine]
        return max(rc, cli.main(a.part, final, prog=f"python -m {cli.ENTRY_POINTS[a.part]}"))

    return go()


if __name__ == "__main__":
    exit_process(main())
