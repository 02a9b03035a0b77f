"""Execute one planned run and record it: completed, reused, failed or interrupted (a record each, nothing else)."""
from __future__ import annotations

import dataclasses
import signal
import sys
import traceback

from common import distributed, records
from common.env import collect_env, command_line, portable_path
from common.plan import Plan


def build_record(plan: Plan, status: str, result: dict = None, error: str = None) -> dict:
    result = result or {}
    cfg = plan.cfg
    device = result.get("device") or plan.runtime.device
    return {
        "run_id": plan.run_id, "identity": plan.identity, "part": cfg.part, "method": cfg.peft.method,
        "status": status, "seed": cfg.train.seed, "lr_source": plan.lr_source,
        # One class for >= 99% of test reviews: the run ignores its input (stats.COLLAPSE_SHARE).
        "collapsed": (result.get("metrics") or {}).get("collapsed"), "runtime": plan.runtime.identity(),
        "resolved": dataclasses.asdict(plan.runtime),  # every auto setting as planning decided it
        "command": command_line(),
        "config": cfg.to_dict(),
        "config_sources": plan.explained,  # every value off the schema default, and where it came from
        "data": {"files": {k: portable_path(v) for k, v in plan.splits.files.items()},
                 "fingerprints": plan.splits.fingerprints,
                 "train_samples": len(plan.splits.train.text), "val_samples": len(plan.splits.val.text),
                 "test_samples": len(plan.splits.test.text)},
        "metrics": result.get("metrics", {}), "params": plan.params, "precision": result.get("precision"),
        "kernels": {"dropout": result.get("dropout_kernel"), "attention": result.get("attn_implementation"),
                    "optimizer": result.get("optim"), "last_layer": result.get("last_layer"),
                    "allocator": result.get("allocator")},
        "curves": result.get("curves", {}), "predictions_file": result.get("predictions_file"),
        "val_predictions_file": result.get("val_predictions_file"),
        # Trained weights (folder under output.dir, bytes on disk) and what the model costs to use.
        "saved": result.get("saved"), "inference": result.get("inference"),
        # Processes that trained it (torchrun); the config's batch is the global batch whatever this is.
        "world_size": result.get("world_size", distributed.world_size()),
        # Seconds per phase: the command's start-up and planning (shared by its runs), then this run's own.
        "phases_s": {**plan.phases, **result.get("phases_s", {})},
        "env": collect_env(device), "error": error,
    }


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def execute(plan: Plan, run_fn, force: bool = False) -> tuple:
    """Run one plan and record it (completed, failed or interrupted): the record is all it writes besides the
    run's predictions, weights and logs. Returns (outcome, record). Under torchrun every rank trains; rank 0 writes."""
    out = plan.cfg.output.dir
    main = distributed.is_main()
    method, seed = plan.cfg.peft.method, plan.cfg.train.seed
    done = None if force else records.find_same(out, method, seed, plan.identity)
    if done and plan.cfg.part in records.parts_of(done):
        distributed.say(f"[skip] {plan.run_id}: completed already in {records.record_path(out, done['run_id'])} "
                        f"(same config, data and packages); --force / FORCE=1 reruns it")
        return "skipped", done
    if done:  # the same computation, made for another part: listed for this part too, nothing trained
        rec = records.list_for(done, plan.cfg.part)
        _keep(out, rec)
        distributed.say(f"[reuse] {plan.run_id}: the same computation as {done['run_id']} (same config, data and "
                        f"packages; only the part differs): listed for {plan.cfg.part} too, nothing trained")
        return "reused", rec
    committed = None if force else records.committed_same(out, method, seed, plan.identity)
    if committed:  # the committed study made this very run: shown here, not trained again
        rec = records.list_for(records.adopt_committed(committed, out), plan.cfg.part)
        _keep(out, rec)
        distributed.say(f"[reuse] {plan.run_id}: the committed study's run ({rec['listed_from']}, same config, "
                        f"data and packages): listed here, nothing trained")
        return "reused", rec
    swept = None if force else records.completed_record(str(records.sweep_dir(out)), plan.run_id)
    if swept and swept.get("predictions_file"):  # the sweep trained this very run, test pass included
        rec = records.promote_swept(swept, out, plan.lr_source, plan.cfg.to_dict())
        _keep(out, rec)
        distributed.say(f"[reuse] {plan.run_id}: the sweep's run at this rate and seed "
                        f"({rec['listed_from']}): listed as the final run, nothing trained")
        return "reused", rec
    distributed.say(f"[run] {plan.run_id}: {plan.cfg.peft.method} on {plan.cfg.model.name_or_path}, "
                    f"lr {plan.cfg.train.learning_rate} ({plan.lr_source}), seed {plan.cfg.train.seed}", flush=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = run_fn(plan)
    except KeyboardInterrupt:
        rec = build_record(plan, "interrupted", error="interrupted (Ctrl-C/SIGTERM)")
        if main:
            records.write_json(records.record_path(out, plan.run_id), rec)
            print(f"[interrupted] {plan.run_id}: recorded as interrupted", file=sys.stderr)
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
    _keep(out, rec)
    m = rec["metrics"]
    collapsed = " COLLAPSED: predicts one class" if m.get("collapsed") or m.get("val_collapsed") else ""
    scored = f"accuracy {m.get('accuracy')}, loss {m.get('loss')}" if m.get("accuracy") is not None else \
        f"validation accuracy {m.get('val_accuracy')} (no test pass)"  # a sweep run
    distributed.say(f"[done] {plan.run_id}: {scored}, train {m.get('train_time_s')} s{collapsed}", flush=True)
    return "completed", rec


def _keep(out: str, rec: dict) -> None:
    """A completed run's record, or its listing (rank 0 alone writes); the part's CSV and reports are generated from
    the records."""
    if distributed.is_main():
        records.write_json(records.record_path(out, rec["run_id"]), records.stored(rec))


def record_failure(plan: Plan, message: str, tb: str = None) -> dict:
    """A failed run's record: the message and where it happened."""
    rec = build_record(plan, "failed", error=message)
    rec["traceback"] = tb
    records.write_json(records.record_path(plan.cfg.output.dir, plan.run_id), rec)
    print(f"[failed] {plan.run_id}: {message}", file=sys.stderr)
    return rec
