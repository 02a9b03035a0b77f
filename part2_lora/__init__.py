"""Part 1 of the study (the user's folder name): DistilBERT, full fine-tuning vs LoRA."""
