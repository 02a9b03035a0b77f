"""Part 3 recipe: every common PEFT family on one model."""
