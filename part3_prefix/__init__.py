"""Part 2 of the study (the user's folder name): BERT-base, full fine-tuning vs prefix tuning."""
