"""Run orchestration shared by the recipes: CLI, preflight plans, skip/force, recorded execution, exit codes."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from common import distributed, records
from common.config import RunCfg, expand_seeds, load_config
from common.data import Splits, load_splits
from common.env import collect_env, git_state, package_versions
from common.errors import EXIT_USER_ERROR, UserError
from common.models import build_model, count_parameters, load_model_config, parameter_table

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130


def parse_args(part: str, argv=None, prog: str = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=prog, description=f"Train and evaluate the {part} runs named by --config.")
    ap.add_argument("--config", nargs="+", required=True, metavar="FILE", help="one or more run configs (YAML)")
    ap.add_argument("--profile", default="default", help="default (seed settings) | quick | a profile YAML path")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override one config value (YAML syntax), repeatable")
    ap.add_argument("--dry-run", action="store_true", help="validate, build the model, print parameters; no training")
    ap.add_argument("--force", action="store_true", help="rerun even if a completed run with this identity exists")
    ap.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="local: one run after another in this process (or under torchrun); ray: every run a Ray "
                         "task, on a local Ray or the cluster at RAY_ADDRESS")
    return ap.parse_args(argv)


def exits_on_user_error(fn):
    """Bad input ends in one message on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except UserError as e:
            print(e.render(), file=sys.stderr)
            return EXIT_USER_ERROR

    return wrapper


@dataclass
class Plan:
    """Everything known about a run before it starts; building one writes nothing."""

    cfg: RunCfg
    splits: Splits
    model_config: object
    params: dict
    identity: str
    runtime: dict  # what the auto settings resolved to here (device type, precision, dropout kernel)
    run_id: str
    lr_source: str
    table: str
    source: str  # the config file it came from
    evaluate_test: bool = True


def plan_runs(part: str, args, output_dir_override: str = None) -> list:
    """Config -> data checks -> model checks -> identity, for every config and seed, before anything trains."""
    from common.sweep import apply_pick  # sweep imports runner
    from common.training import resolve_runtime

    git_state()  # pin the commit now: the code in memory is this commit's, whatever happens to the checkout later
    cfgs = [(path, load_config(path, args.profile, tuple(args.set), part=part)) for path in args.config]
    versions = package_versions()
    plans, split_cache = [], {}
    for path, base in cfgs:
        for cfg in expand_seeds(base):
            if output_dir_override:
                cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, dir=output_dir_override))
            if cfg.data not in split_cache:
                split_cache[cfg.data] = load_splits(cfg.data)
            splits = split_cache[cfg.data]
            distributed.per_device_batch(cfg.train.batch_size)  # NPROC must divide the global batch: refuse now
            runtime = resolve_runtime(cfg, strict=not getattr(args, "dry_run", False))
            cfg, lr_source = apply_pick(cfg, splits.fingerprints, runtime)
            model_config = load_model_config(cfg)
            skeleton = build_model(cfg, model_config, meta=True)  # shapes only: instant, checks compatibility
            identity = records.run_identity(cfg.to_dict(), splits.fingerprints, versions, runtime)
            plans.append(Plan(cfg, splits, model_config, count_parameters(skeleton), identity, runtime,
                              records.run_id_for(part, cfg.peft.method, cfg.train.seed, identity), lr_source,
                              parameter_table(skeleton), path))
    return plans


def print_dry_run(plans: list) -> int:
    for p in plans:
        print(f"# {p.run_id}: {p.cfg.peft.method} on {p.cfg.model.name_or_path} ({p.cfg.model.init} init), "
              f"profile {p.cfg.profile}, lr {p.cfg.train.learning_rate} ({p.lr_source})")
        print(f"# data: {len(p.splits.train.text)} train / {len(p.splits.val.text)} val / "
              f"{len(p.splits.test.text)} test reviews from {p.splits.files['train']}")
        print(p.table)
        print(json.dumps({"run_id": p.run_id, "trainable_params": p.params["trainable"],
                          "total_params": p.params["total"], "trainable_pct": p.params["trainable_pct"]}))
    return 0


def check_budget(plan: Plan) -> None:
    from common.training import check_cpu_budget, pick_device

    device = pick_device(plan.cfg)
    check_cpu_budget(plan.cfg, device, len(plan.splits.train.text), plan.params["total"], plan.cfg.data.max_length)


def build_record(plan: Plan, status: str, result: dict = None, error: str = None) -> dict:
    from common.training import pick_device

    result = result or {}
    cfg = plan.cfg
    device = result.get("device") or pick_device(cfg)
    return {
        "run_id": plan.run_id, "identity": plan.identity, "part": cfg.part, "method": cfg.peft.method,
        "status": status, "seed": cfg.train.seed, "lr_source": plan.lr_source,
        # One class for >= 99% of test reviews: the run ignores its input (stats.COLLAPSE_SHARE).
        "collapsed": (result.get("metrics") or {}).get("collapsed"), "runtime": plan.runtime,
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "config": cfg.to_dict(),
        "data": {"files": plan.splits.files, "fingerprints": plan.splits.fingerprints,
                 "train_samples": len(plan.splits.train.text), "val_samples": len(plan.splits.val.text),
                 "test_samples": len(plan.splits.test.text)},
        "metrics": result.get("metrics", {}), "params": plan.params, "precision": result.get("precision"),
        "kernels": {"dropout": result.get("dropout_kernel"), "attention": result.get("attn_implementation")},
        "curves": result.get("curves", {}), "predictions_file": result.get("predictions_file"),
        "val_predictions_file": result.get("val_predictions_file"),
        # Trained weights (folder under output.dir, bytes on disk) and what the model costs to use.
        "saved": result.get("saved"), "inference": result.get("inference"),
        # Processes that trained it (torchrun); the config's batch is the global batch whatever this is.
        "world_size": result.get("world_size", distributed.world_size()),
        "env": collect_env(device), "error": error,
    }


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _say(*args, **kw) -> None:
    if distributed.is_main():  # one voice under torchrun: the other ranks train silently
        print(*args, **kw)


def execute(plan: Plan, run_fn, force: bool = False, write_row: bool = True) -> tuple:
    """Run one plan and record it: completed (record + CSV row), failed (record), interrupted (record).
    Returns (outcome, record). Under torchrun every rank trains and only rank 0 writes."""
    out = plan.cfg.output.dir
    main = distributed.is_main()
    done = None if force else records.completed_record(out, plan.run_id)
    if done:
        _say(f"[skip] {plan.run_id}: completed already in {records.record_path(out, plan.run_id)} "
             f"(same config, data and packages); --force / FORCE=1 reruns it")
        return "skipped", done
    other = None if force else records.completed_elsewhere(out, plan.cfg.part, plan.cfg.peft.method,
                                                           plan.cfg.train.seed, plan.identity)
    if other:  # the same computation, made for another part: record it for this part, train nothing
        rec = records.reuse_record(other, plan.cfg.part, plan.run_id, plan.cfg.to_dict())
        if main:
            records.write_json(records.record_path(out, plan.run_id), rec)
            if write_row:
                records.append_row(Path(out) / f"{plan.cfg.part}.csv", records.csv_row(rec))
        _say(f"[reuse] {plan.run_id}: the same computation as {other['run_id']} (same config, data and packages; "
             f"only the part differs): its results recorded for {plan.cfg.part}, nothing trained")
        return "reused", rec
    _say(f"[run] {plan.run_id}: {plan.cfg.peft.method} on {plan.cfg.model.name_or_path}, "
         f"lr {plan.cfg.train.learning_rate} ({plan.lr_source}), seed {plan.cfg.train.seed}", flush=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = run_fn(plan)
    except KeyboardInterrupt:
        rec = build_record(plan, "interrupted", error="interrupted (Ctrl-C/SIGTERM)")
        if main:
            records.write_json(records.record_path(out, plan.run_id), rec)
            print(f"[interrupted] {plan.run_id}: recorded as interrupted, no CSV row written", file=sys.stderr)
        return "interrupted", rec
    except Exception as e:  # noqa: BLE001 - any crash becomes a failed record; the part goes on
        rec = record_failure(plan, f"{type(e).__name__}: {e}", traceback.format_exc(limit=8)) if main else None
        return "failed", rec
    finally:
        signal.signal(signal.SIGTERM, previous)
    if main and plan.cfg.output.save_predictions:
        if result.get("predictions") is not None:
            result["predictions_file"] = records.write_predictions(out, plan.run_id, result["predictions"]).name
        if result.get("val_predictions") is not None:  # the sweep pairs two rates on these
            result["val_predictions_file"] = records.write_predictions(out, plan.run_id, result["val_predictions"],
                                                                       "val").name
    rec = build_record(plan, "completed", result)
    if main:
        records.write_json(records.record_path(out, plan.run_id), rec)
        if write_row:
            records.append_row(Path(out) / f"{plan.cfg.part}.csv", records.csv_row(rec))
    m = rec["metrics"]
    collapsed = " COLLAPSED: predicts one class" if m.get("collapsed") or m.get("val_collapsed") else ""
    _say(f"[done] {plan.run_id}: accuracy {m.get('accuracy')}, loss {m.get('loss')}, "
         f"train {m.get('train_time_s')} s{collapsed}", flush=True)
    return "completed", rec


def record_failure(plan: Plan, message: str, tb: str = None) -> dict:
    """A failed run's record (no CSV row): the message and where it happened."""
    rec = build_record(plan, "failed", error=message)
    rec["traceback"] = tb
    records.write_json(records.record_path(plan.cfg.output.dir, plan.run_id), rec)
    print(f"[failed] {plan.run_id}: {message}", file=sys.stderr)
    return rec


def exit_code(outcomes: list) -> int:
    if "interrupted" in outcomes:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if "failed" in outcomes else 0


def run_plans(plans: list, run_fn, force: bool = False, engine: str = "local") -> list:
    """Check every run's budget first (nothing written), then run them with the engine (common/engines.py).
    Returns (outcome, record) per plan, in plan order."""
    from common import engines

    for plan in plans:
        check_budget(plan)
    results = engines.run(plans, run_fn, force=force, engine=engine)
    _say("[runs] " + ", ".join(f"{p.run_id}: {o}" for p, (o, _) in zip(plans, results)))
    return results


def write_summaries(plans: list, outcomes: list) -> None:
    from common.report import write_summary

    if distributed.is_main() and any(o in ("completed", "reused") for o in outcomes):
        for out_dir in sorted({p.cfg.output.dir for p in plans}):
            print(f"[summary] {write_summary(out_dir)}")
