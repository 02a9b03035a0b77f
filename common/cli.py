"""The command line of every part: parse, plan, run with an engine, summarise, exit code.

  python -m <part folder>.train --config FILE [FILE ...] [--profile NAME] [--set section.key=value ...] [--dry-run]
"""
from __future__ import annotations

import argparse

from common import distributed, engines, recipe, records
from common.env import command_line, device_name, now_iso
from common.errors import EXIT_FAILED, EXIT_INTERRUPTED, exits_on_user_error
from common.plan import check_budget, plan_runs, print_dry_run
from common.process import release_collector
from common.report import write_summary
from common.timing import phase, process_age_s

# Part -> the module a user runs (`python -m ...`). The folder names are the user's: theirs are numbered one ahead
# of the study's parts (part2_lora holds Part 1, part3_prefix Part 2), so Part 3 lives in part4_peft_methods.
PROFILE_HELP = ("default (the reference settings) | quick (CPU-sized) | study (the committed results) | budget (the study "
                "at 3 epochs) | data (the study at 24,000 training reviews) | a profile YAML path")
ENTRY_POINTS = {"part1": "part2_lora.train", "part2": "part3_prefix.train", "part3": "part4_peft_methods.train"}


def parse_args(part: str, argv=None, prog: str = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=prog, description=f"Train and evaluate the {part} runs named by --config "
                                                        f"(default: all the part's configs).")
    ap.add_argument("--config", nargs="+", metavar="FILE",
                    help=f"one or more run configs (YAML); default: every configs/{part}_*.yaml")
    ap.add_argument("--profile", default="default", help=PROFILE_HELP)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override one config value (YAML syntax), repeatable")
    ap.add_argument("--dry-run", action="store_true", help="validate, build the model, print parameters; no training")
    ap.add_argument("--force", action="store_true", help="rerun even if a completed run with this identity exists")
    ap.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="local: one run after another in this process (or under torchrun); ray: every run a Ray "
                         "task, on a local Ray or the cluster at RAY_ADDRESS")
    return ap.parse_args(argv)


def exit_code(outcomes: list) -> int:
    if "interrupted" in outcomes:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if "failed" in outcomes else 0


def run_plans(plans: list, run_fn, force: bool = False, engine: str = "local") -> list:
    """Check every run's budget first (nothing written), then run them with the engine (common/engines.py).
    Returns (outcome, record) per plan, in plan order."""
    for plan in plans:
        check_budget(plan)
    results = engines.run(plans, run_fn, force=force, engine=engine)
    distributed.say("[runs] " + ", ".join(f"{p.run_id}: {o}" for p, (o, _) in zip(plans, results)))
    return results


def note_command(part: str, plans: list, outcomes: list) -> None:
    """<output.dir>/last_command.json: this command, when and where it ran, and each run it planned with its
    outcome; the folder's summary opens with these runs."""
    if not distributed.is_main():
        return
    for out_dir in sorted({p.cfg.output.dir for p in plans}):
        mine = [(p, o) for p, o in zip(plans, outcomes) if p.cfg.output.dir == out_dir]
        records.write_json(records.last_command_path(out_dir), {
            "command": command_line(), "date": now_iso(), "part": part, "device": device_name(mine[0][0].runtime.device),
            "profiles": sorted({p.cfg.profile for p, _ in mine}),
            "runs": [{"run_id": p.run_id, "outcome": o} for p, o in mine]})


def write_summaries(plans: list, outcomes: list) -> None:
    if distributed.is_main() and any(o in ("completed", "reused", "skipped") for o in outcomes):
        for out_dir in sorted({p.cfg.output.dir for p in plans}):
            took: dict = {}
            with phase(took, "summary_s"):
                path = write_summary(out_dir)
            print(f"[summary] {path} ({took['summary_s']:.1f} s)")


@exits_on_user_error
def main(part: str, argv=None, prog: str = None) -> int:
    """The CLI of every part; the recipe's `run` is looked up at call time (tests replace it to simulate a crash)."""
    command = {"startup_s": process_age_s()}  # interpreter start-up and imports, before main
    try:
        args = parse_args(part, argv, prog=prog)
        with phase(command, "plan_s"):
            plans = plan_runs(part, args)  # load config -> check data -> check model -> run identity; writes nothing
    finally:
        release_collector()  # held by the entry point through its imports and this planning (common/process.py)
    if args.dry_run:
        return print_dry_run(plans)
    for plan in plans:
        plan.phases = command
    results = run_plans(plans, recipe.run, force=args.force, engine=args.engine)  # train and record each
    outcomes = [outcome for outcome, _ in results]
    note_command(part, plans, outcomes)
    write_summaries(plans, outcomes)  # results/summary.md from the CSVs, once
    return exit_code(outcomes)


def entry_point(part: str):
    """A part's `main(argv=None)`: the recipe with the part's name and its own `python -m` line in --help."""
    def part_main(argv=None) -> int:
        return main(part, argv, prog=f"python -m {ENTRY_POINTS[part]}")

    return part_main
