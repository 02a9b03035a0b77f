"""The markdown of results/summary.md: per part a headline table with its sentences, pairwise table, plots and
"Other runs"; then the learning-rate selection."""
from __future__ import annotations

import json
from pathlib import Path

from common import records, stats
from common.env import now_iso
from common.report.budget import budget_section
from common.report.comparison import CROSSED_HOW, compare, summarize_group
from common.report.plots import write_plots
from common.report.runs import (
    HEADLINE_PROFILE,
    PARTS,
    SETUP_KEYS,
    group_rows,
    head_rows,
    load_rows,
    method_name,
    model_label,
    pick_headline,
    plural,
    setups,
    validation_reviews,
)

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
SETUP_LABELS = {"model": "model", "init": "weights", "profile": "profile", "train_samples": "train reviews",
                "test_samples": "test reviews", "max_length": "max tokens", "epochs": "epochs", "device": "device",
                "precision": "precision", "dropout_kernel": "dropout kernel"}


def setup_heading(part: str, key: dict, seeds: list, val_reviews=None) -> str:
    """What actually ran, in words: the model (and whose place it takes), data, device, precision, seeds."""
    seed_model = PARTS[part][1]
    name = model_label(key["model"])
    model = name if name == seed_model else f"{name} in place of {seed_model}"
    if key["init"] != "pretrained":
        model += f" ({key['init']} weights)"
    n = lambda x: f"{int(x):,}" if str(x).isdigit() else str(x)  # noqa: E731
    val = f"{n(val_reviews)} validation / " if val_reviews is not None else ""
    return (f"{model}; profile `{key['profile']}`: {n(key['train_samples'])} train / {val}{n(key['test_samples'])} "
            f"test reviews, {key['max_length']} tokens, {plural(key['epochs'], 'epoch')}; {key['device']}, "
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
    return method_name(g["method"])


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
        text += (f"; 95% CI of the difference [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}] (half-width "
                 f"{50 * (ci[1] - ci[0]):.2f} points; {c['ci_how']})")
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
        text += (f". It collapsed ({other_s['collapsed']} of {plural(other_s['n'], 'seed')} predict"
                 f"{'s' if other_s['collapsed'] == 1 else ''} one class for at least "
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


def part_setups(output_dir: Path, part: str) -> list:
    """A part's completed runs gathered into setups, each group with its statistics."""
    groups = group_rows(load_rows(output_dir, part))
    return setups(groups, [summarize_group(output_dir, g) for g in groups])


def part_section(output_dir: Path, part: str, all_setups: list, plots: bool = True) -> list:
    rows = load_rows(output_dir, part)
    lines = [f"## {PARTS[part][0]}", ""]
    if not rows:
        return lines + ["No completed runs yet.", ""]
    head = pick_headline(all_setups)
    seeds = sorted({sd for _, s in head["best"].values() for sd in s["seeds"]})
    table, sentences = setup_table(output_dir, part, head, list(head["best"].values()), headline=True)
    heading = setup_heading(part, head["key"], seeds, validation_reviews(output_dir, head_rows(head)))
    lines += [f"**Headline: {heading}.**", ""] + table + [""]
    dates = sorted(r.get("date", "") for r in rows if r.get("date"))
    n_other = len(all_setups) - 1 + bool(head["extra"])
    where = f"; {plural(n_other, 'other group')} of runs are under \"Other runs\" below" if n_other else ""
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
        st_rows = [r for g, _ in members for r in g["rows"]]
        lines += [f"#### {differences(st['key'], head['key'])}", "",
                  f"{setup_heading(part, st['key'], sd, validation_reviews(output_dir, st_rows))}.", ""]
        table, sentences = setup_table(output_dir, part, st, members, headline=False)
        lines += table + [""] + sentences + ([""] if sentences else [])
    return lines


# ------------------------------------------------------------------------------------------------ summary


def _val_samples(sweep_dir: Path, score: dict):
    """Validation reviews behind a score: in the pick, or (picks made before it was kept there) in the run's record."""
    if score.get("val_samples"):
        return score["val_samples"]
    try:
        return json.loads(records.record_path(str(sweep_dir), score["run_id"]).read_text())["data"]["val_samples"]
    except (OSError, ValueError, KeyError):
        return None


def _val_cell(score: dict, n) -> str:
    """One rate's validation accuracy with its 95% Wilson interval over the n validation reviews."""
    acc = score.get("val_accuracy")
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


def _edge_flag(p: dict) -> str:
    """A pick on the lowest or highest rate searched: the best rate may lie past it."""
    grid = sorted(p.get("grid") or [])
    if len(grid) < 2 or grid[0] < p["learning_rate"] < grid[-1]:
        return ""
    return f" **at the {'lowest' if p['learning_rate'] == grid[0] else 'highest'} rate searched**"


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
        scores = ", ".join(_val_cell(sc, _val_samples(output_dir / "sweep", sc)) for sc in p["scores"])
        lines.append(f"| {key} | {scores} | {p['learning_rate']}{_edge_flag(p)} ({p.get('date', '')[:10]}) | "
                     f"{_runner_up_cell(p)} |")
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
             f"when at least {stats.COLLAPSE_SHARE:.0%} of its test predictions are one class. Intervals over several "
             "seeds count both sources of chance: seed-to-seed variation and the sample of test reviews every seed is "
             "scored on (two-way variance components of seeds x reviews, Satterthwaite's degrees of freedom; "
             "`common.stats.crossed_interval`; `tests/test_coverage.py` requires it to cover a known true gap 93-97% of "
             "the time over 2,000 simulated studies of 3 and of 5 seeds).", ""]
    budget = []
    for part in PARTS:
        all_setups = part_setups(out, part)
        lines += part_section(out, part, all_setups, plots)
        budget += budget_section(out, part, all_setups, plots)
    if budget:
        lines += ["## Budget: does the verdict hold with more training?", ""] + budget
    lines += sweep_section(out)
    path = out / "summary.md"
    records.write_atomic(path, "\n".join(lines).encode())
    return path
