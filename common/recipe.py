"""The recipe every part runs: config -> data -> model -> train -> record. Each part's train.py names its part.

  python -m <part folder>.train --config FILE [FILE ...] [--profile NAME] [--set section.key=value ...] [--dry-run]
"""
from common import distributed
from common.artifacts import save_trained
from common.data import tokenize_splits
from common.inference import measure_inference
from common.models import build_model, build_tokenizer
from common.runner import (exit_code, exits_on_user_error, parse_args, plan_runs, print_dry_run, run_plans,
                           write_summaries)
from common.training import train_and_evaluate

# Part -> the module a user runs (`python -m ...`). The folder names are the user's: theirs are numbered one ahead
# of the study's parts (part2_lora holds Part 1, part3_prefix Part 2), so Part 3 lives in part4_peft_methods.
ENTRY_POINTS = {"part1": "part2_lora.train", "part2": "part3_prefix.train", "part3": "part4_peft_methods.train"}


def run(plan) -> dict:
    """One run, after its plan checked config, data and model: tokenize -> build -> train -> evaluate -> keep the
    trained weights -> time inference."""
    tokenizer = build_tokenizer(plan.cfg)
    encoded = tokenize_splits(plan.splits, tokenizer, plan.cfg.data, plan.cfg.train.padding)
    model = build_model(plan.cfg, plan.model_config)
    result = train_and_evaluate(model, tokenizer, encoded, plan.cfg, evaluate_test=plan.evaluate_test)
    # What the trained model costs to keep and to use (sweep runs skip this). Rank 0 alone: under torchrun every
    # rank holds the same weights, and two ranks renaming into one results/models/<run_id> would collide.
    if plan.evaluate_test and distributed.is_main():
        result["saved"] = save_trained(model, plan.cfg, plan.run_id)
        result["inference"] = measure_inference(model, plan.cfg.peft.method, encoded["test"], result["metrics"],
                                                result["device"], result["precision"])
    return result


@exits_on_user_error
def main(part: str, argv=None, prog: str = None) -> int:
    """The CLI of every part; `run` is looked up here at call time (tests replace it to simulate a crash)."""
    args = parse_args(part, argv, prog=prog)
    plans = plan_runs(part, args)  # load config -> check data -> check model -> run identity; writes nothing
    if args.dry_run:
        return print_dry_run(plans)
    results = run_plans(plans, run, force=args.force, engine=args.engine)  # train and record each (skips completed)
    outcomes = [outcome for outcome, _ in results]
    write_summaries(plans, outcomes)  # results/summary.md from the CSVs, once
    return exit_code(outcomes)


def entry_point(part: str):
    """A part's `main(argv=None)`: the recipe with the part's name and its own `python -m` line in --help."""
    def part_main(argv=None) -> int:
        return main(part, argv, prog=f"python -m {ENTRY_POINTS[part]}")

    return part_main
