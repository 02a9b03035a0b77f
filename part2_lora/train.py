"""Part 1: DistilBERT on IMDb, full fine-tuning vs LoRA (the recipe: common/recipe.py; its command line: common/cli.py).

  python -m part2_lora.train --config FILE [FILE ...] [--profile NAME] [--set section.key=value ...] [--dry-run]
  make part1 [PROFILE=quick] [DATA_DIR=...] [SEEDS=0,1,2] [FORCE=1] [ARGS="--set train.epochs=1"]
"""
from common import process

process.hold_collector()  # until the runs are planned: the imports below create ~530k lasting objects
from common import cli  # noqa: E402  (after the collector is held)

main = cli.entry_point("part1")

if __name__ == "__main__":
    process.exit_process(main())
