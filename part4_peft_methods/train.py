"""Part 3: every common PEFT family on BERT-base, on the same footing: full fine-tuning, LoRA, DoRA, (IA)^3,
prompt tuning, P-tuning, prefix tuning and a bottleneck adapter (the recipe: common/recipe.py; its command line:
common/cli.py).

  python -m part4_peft_methods.train --config FILE [FILE ...] [--profile NAME] [--set section.key=value ...]
  make part3 [PROFILE=quick] [DATA_DIR=...] [SEEDS=0,1,2] [FORCE=1] [ARGS="--set train.epochs=1"]
"""
from common import process

process.hold_collector()  # until the runs are planned: the imports below create ~530k lasting objects
from common import cli  # noqa: E402  (after the collector is held)

main = cli.entry_point("part3")

if __name__ == "__main__":
    process.exit_process(main())
