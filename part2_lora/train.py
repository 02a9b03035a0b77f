"""Part 1: DistilBERT on IMDb, full fine-tuning vs LoRA (the recipe: common/recipe.py; its command line: common/cli.py).

  python -m part2_lora.train --config FILE [FILE ...] [--profile NAME] [--set section.key=value ...] [--dry-run]
  make part1 [PROFILE=quick] [DATA_DIR=...] [SEEDS=0,1,2] [FORCE=1] [ARGS="--set train.epochs=1"]
"""
from common import cli
from common.errors import exit_process

main = cli.entry_point("part1")

if __name__ == "__main__":
    exit_process(main())
