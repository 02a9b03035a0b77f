"""Part 1 recipe: DistilBERT on IMDb, full fine-tuning vs LoRA.

  python -m part2_lora.train --config FILE [FILE ...] [--profile NAME] [--set section.key=value ...] [--dry-run]
  make part1 [PROFILE=quick] [DATA_DIR=...] [SEEDS=0,1,2] [FORCE=1] [ARGS="--set train.epochs=1"]
"""
import sys

from common.data import tokenize_splits
from common.models import build_model, build_tokenizer
from common.runner import (exit_code, exits_on_user_error, parse_args, plan_runs, print_dry_run, run_plans,
                           write_summaries)
from common.training import train_and_evaluate

PART = "part1"


def run(plan) -> dict:
    """One run, after its plan checked config, data and model: tokenize -> build -> train -> evaluate."""
    tokenizer = build_tokenizer(plan.cfg)
    encoded = tokenize_splits(plan.splits, tokenizer, plan.cfg.data, plan.cfg.train.padding)
    model = build_model(plan.cfg, plan.model_config)
    return train_and_evaluate(model, tokenizer, encoded, plan.cfg, evaluate_test=plan.evaluate_test)


@exits_on_user_error
def main(argv=None) -> int:
    args = parse_args(PART, argv, prog="python -m part2_lora.train")
    plans = plan_runs(PART, args)  # load config -> check data -> check model -> run identity; writes nothing
    if args.dry_run:
        return print_dry_run(plans)
    outcomes = run_plans(plans, run, force=args.force)  # train and record each run (skips completed ones)
    write_summaries(plans, outcomes)  # results/summary.md from the CSVs
    return exit_code(outcomes)


if __name__ == "__main__":
    sys.exit(main())
