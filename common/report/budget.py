"""How verdicts move with training: the headline setup beside the same setup trained longer or on more reviews."""
from __future__ import annotations

from pathlib import Path

from common import records
from common.report.cells import delta_verdict_cell, reference_gap, table
from common.report.comparison import change, compare, diff_text, verdict
from common.report.plots import count_label, curves, method_color, save_figure, setup_title
from common.report.runs import (
    PARTS,
    SETUP_KEYS,
    count_text,
    format_rate,
    method_name,
    plural,
    read_record,
    seeds_text,
    setup_seeds,
)
from common.schema import flatten

SECTION = "How verdicts move with training"
ANCHOR = "#" + SECTION.lower().replace(" ", "-")
# What may differ between the budgets of one setup: the budget itself (epochs, training reviews), the profile that
# asked for it, and the machine (hardware does not change what a run computes; precision and dropout kernel do, and
# must match). The test reviews must match: every Δ here is paired review by review.
BUDGET_KEYS = ("epochs", "train_samples")
BUDGET_FREE_KEYS = BUDGET_KEYS + ("profile", "device")


def budget_of(st: dict) -> tuple:
    return tuple(int(st["key"][k]) for k in BUDGET_KEYS)


def examples_seen(st: dict) -> int:
    """Training examples the budget shows the model: reviews x epochs (3,000 x 3 = 9,000)."""
    epochs, reviews = budget_of(st)
    return epochs * reviews


def budget_label(st: dict) -> str:
    """'3,000 × 3 epochs': training reviews times epochs, the two axes of a budget."""
    epochs, reviews = budget_of(st)
    return f"{count_text(reviews)} × {plural(epochs, 'epoch')}"


def budget_setups(all_setups: list, head) -> list:
    """The headline, then every other budget of the same setup that has full fine-tuning, fewest examples seen
    first; of several setups at one budget, the one comparing the most methods with the most seeds."""
    if head is None or "full" not in head["best"]:
        return []
    same = [st for st in all_setups if st is not head and "full" in st["best"] and budget_of(st) != budget_of(head)
            and all(st["key"][k] == head["key"][k] for k in SETUP_KEYS if k not in BUDGET_FREE_KEYS)]
    best = {}
    for st in sorted(same, key=lambda st: (len(st["best"]), st["seeds"], st["date"])):
        best[budget_of(st)] = st  # the last one sorted wins
    return [head, *sorted(best.values(), key=examples_seen)] if best else []


def _run_seconds(rec: dict) -> float:
    """A run's own seconds from its record's phases: tokenize, build, train and evaluate, save, time inference."""
    phases = rec.get("phases_s", {})
    return sum(float(phases.get(k) or 0.0) for k in ("tokenize_s", "build_model_s", "train_and_evaluate_s",
                                                     "save_s", "inference_s"))


def compute_hours(output_dir: Path, part: str, st: dict, method: str) -> float:
    """Hours of one method's runs in a setup: its sweep's runs (every rate, from the sweep records of the same
    profile and epochs) and its final runs that trained (a run promoted from the sweep or reused from another part is
    counted where it trained). Summed from each record's phases, excluding the command's start-up."""
    total = 0.0
    for r in st["best"][method][0]["rows"]:
        rec = None if r["made_for"] != part else read_record(output_dir, r["run_id"])
        if rec and not rec.get("promoted_from"):
            total += _run_seconds(rec)
    sweep = records.sweep_dir(str(output_dir))
    for path in sorted(records.runs_dir(str(sweep)).glob(f"{part}-{method}-s*.json")):
        rec = read_record(sweep, path.stem) or {}
        cfg = rec.get("config", {})
        if rec.get("status") == "completed" and cfg.get("profile") == st["key"]["profile"] and \
                str(cfg.get("train", {}).get("epochs")) == str(st["key"]["epochs"]) and \
                str(cfg.get("data", {}).get("train_samples")) == str(st["key"]["train_samples"]):
            total += _run_seconds(rec)
    return total / 3600


def budget_rows(output_dir: Path, part: str, columns: list) -> list:
    """Per method of the headline: at each budget its Δ vs full FT (None where it did not run), the change of that
    Δ from the headline's, its accuracy, rate and compute hours."""
    head = columns[0]
    rows = []
    for method in head["best"]:
        row = {"method": method, "cells": []}
        for st in columns:
            if method not in st["best"]:
                row["cells"].append(None)
                continue
            g, s = st["best"][method]
            cell = {"summary": s, "lr": g["learning_rate"], "collapsed": bool(s["collapsed"]),
                    "hours": compute_hours(output_dir, part, st, method)}
            if method != "full":
                cell["vs_full"] = compare(output_dir, st["best"]["full"][0], g)
                first = row["cells"][0] if row["cells"] else None
                if first and not (cell["collapsed"] or first["collapsed"]):
                    g0 = head["best"][method][0]
                    cell["change"] = change(output_dir, head["best"]["full"][0], g0, st["best"]["full"][0], g)
            row["cells"].append(cell)
        rows.append(row)
    return rows


def _verdict(cell) -> str:
    return verdict(cell["vs_full"], cell["collapsed"]) if cell and "vs_full" in cell else "–"


def _kind(text: str) -> str:
    return text.split(" by ")[0]  # 'below by 1.3' and 'below by 2.4' are the same verdict


def verdict_moves(rows: list, i: int) -> tuple:
    """(changed, kept) at column i against the headline, each a list of (method, verdict there, verdict here)."""
    changed, kept = [], []
    for r in rows:
        a, b = _verdict(r["cells"][0]), _verdict(r["cells"][i])
        if r["method"] == "full" or "–" in (a, b):
            continue
        (kept if _kind(a) == _kind(b) else changed).append((r["method"], a, b))
    return changed, kept


def budget_note(columns: list, rows: list) -> str:
    """One sentence for the Findings: which verdicts change at each other budget (the section lists those that hold)."""
    parts, n = [], 0
    for i, st in enumerate(columns[1:], start=1):
        changed, kept = verdict_moves(rows, i)
        n += len(changed)
        to = {}
        for m, _, b in changed:  # 'LoRA and (IA)³ → no difference resolved'
            to.setdefault(b, []).append(method_name(m))
        moved = ", ".join(f"{' and '.join(ms)} → {b}" for b, ms in to.items()) or "none"
        parts.append(f"at {budget_label(st)} ({seeds_text(setup_seeds(st))}) {moved}, {len(kept)} hold")
    return f"[More training]({ANCHOR}) changes {plural(n, 'verdict')}: " + "; ".join(parts) + "."


def _reference_bullets(rows: list, columns: list) -> list:
    """Where the reference report's own gap falls in each budget's interval, per method it measured."""
    out = []
    for r in rows:
        for gap, model in reference_gap(r["method"]):
            where = []
            for st, cell in zip(columns, r["cells"]):
                ci = (cell or {}).get("vs_full", {}).get("diff_ci") if cell and not cell["collapsed"] else None
                side = "–" if not ci else "inside" if 100 * ci[0] <= gap <= 100 * ci[1] else \
                    "below" if gap < 100 * ci[0] else "above"
                where.append(f"{side if side == '–' else side + ' the interval'} at {budget_label(st)}")
            out.append(f"- The reference report's {gap:+.2f} for {method_name(r['method'])} ({model}, one run) lies "
                       f"{'; '.join(where)}.")
    return out


# Keys that differ between two budgets by construction or per run, or that change speed and not the science
# (records.NOT_SCIENCE; the precision and dropout kernel a setup resolved to are part of its key), so the sentence on
# what else differs skips them.
_PER_RUN_KEYS = {"train.epochs", "data.train_samples", "train.seeds", "profile", "output.dir", "train.lr_grid", "part",
                 "train.report_to", "data.dir", "data.cache_dir", "train.allocator", *records.NOT_SCIENCE}


def _shown(value) -> str:
    return "not recorded" if value is None else repr(value)  # a key added after the run was made


def setup_differences(output_dir: Path, head: dict, st: dict) -> list:
    """'key (headline's value, this budget's value)' for every config value and the device that differ between the
    two setups' full fine-tuning runs, other than the budget itself and what each run sets for itself."""
    recs = [read_record(output_dir, x["best"]["full"][0]["rows"][0]["run_id"]) or {} for x in (head, st)]
    # Only the sections the runs read: full FT reads no method's own peft section, so a difference there changes
    # nothing it ran.
    a, b = (flatten(records.active_sections(r.get("config", {}))) for r in recs)
    out = [f"{k} ({_shown(a.get(k))}, {_shown(b.get(k))})" for k in sorted(set(a) | set(b))
           if k not in _PER_RUN_KEYS and a.get(k) != b.get(k)]
    devices = [r.get("env", {}).get("device") for r in recs]
    if devices[0] != devices[1]:
        out.append(f"the machine ({devices[0]}, {devices[1]})")
    return out


def beyond_headline(rows: list) -> list:
    """The rows of methods that ran at another budget too: one that ran at the headline's alone has nothing to move
    (its row is the Findings')."""
    return [r for r in rows if any(c is not None for c in r["cells"][1:])]


def _delta_cell(cell) -> str:
    if cell is None:
        return "–"
    if "vs_full" not in cell:
        return "reference"
    return delta_verdict_cell(cell["vs_full"], cell["summary"])


def budget_tables(rows: list, columns: list) -> list:
    """The verdict table (Δ vs full FT and its change from the headline per budget), then what each cost."""
    labels = [budget_label(st) for st in columns]
    header = ["Method", f"Δ vs full FT, {labels[0]} [95% CI]"]
    for label in labels[1:]:
        header += [f"Δ vs full FT, {label} [95% CI]", f"Change of Δ, {labels[0]} → {label} [95% CI]"]
    rows = beyond_headline(rows)
    body = []
    for r in rows:
        line = [method_name(r["method"]), _delta_cell(r["cells"][0])]
        for cell in r["cells"][1:]:
            line += [_delta_cell(cell), diff_text(cell["change"]) if cell and "change" in cell else "–"]
        body.append(line)
    cost = [[method_name(r["method"]),
             " / ".join("–" if c is None or c["summary"]["acc_mean"] is None else
                        f"{100 * c['summary']['acc_mean']:.2f}%" for c in r["cells"]),
             " / ".join("–" if c is None else format_rate(c["lr"]) for c in r["cells"]),
             " / ".join("–" if c is None else f"{c['hours']:.2f}" for c in r["cells"][1:])] for r in rows]
    joined = " / ".join(labels)
    # Compute for the longer budgets only: the headline's runs are counted where they trained (Parts 1 and 2).
    return table(header, body) + [""] + table(
        ["Method", f"Accuracy, {joined}", f"Learning rate, {joined}", f"Compute (h), {' / '.join(labels[1:])}"], cost)


def draw_moves(output_dir: Path, part: str, columns: list, rows: list) -> Path:
    """Δ vs full FT against training examples seen (log scale), a line per method with its 95% intervals: every
    method on the left, the ones within a few points of full FT enlarged on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.9))
    xs = [examples_seen(st) for st in columns]
    peft = [r for r in beyond_headline(rows) if r["method"] != "full"]
    lines = []
    for i, r in enumerate(peft):
        # Side by side around each budget (x 0.9-1.1), so intervals at one budget do not hide each other.
        shift = 1 + 0.2 * (i - (len(peft) - 1) / 2) / max(len(peft) - 1, 1)
        pts = [(x * shift, 100 * c["vs_full"]["diff_mean"], 100 * c["vs_full"]["diff_ci"][0],
                100 * c["vs_full"]["diff_ci"][1]) for x, c in zip(xs, r["cells"])
               if c and not c["collapsed"] and c["vs_full"].get("diff_ci")]
        if pts:
            lines.append((r["method"], [list(v) for v in zip(*pts)]))
    gaps = sorted({(round(g, 2), method_name(r["method"]), m) for r in peft for g, m in reference_gap(r["method"])})
    # The enlarged panel: methods whose every interval lies within ZOOM points of full FT.
    zoom = -6.0
    for ax, keep in zip(axes, (lambda lo: True, lambda lo: min(lo) >= zoom)):
        for method, (x, y, lo, hi) in lines:
            if keep(lo):
                ax.errorbar(x, y, yerr=[[a - b for a, b in zip(y, lo)], [b - a for a, b in zip(y, hi)]],
                            color=method_color(method), marker="o", ms=5, capsize=3, lw=1.3, label=method_name(method))
        ax.axhline(0, color="0.3", lw=0.9, label="Full FT")
        for g in sorted({g for g, _, _ in gaps}):
            who = ", ".join(f"{n} ({m})" for v, n, m in gaps if v == g)
            ax.axhline(g, color="0.5", lw=0.9, ls="--", label=f"reference report {g:+.2f}: {who}")
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{count_label(x)}\n{budget_label(st)}" for x, st in zip(xs, columns)], fontsize=8)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
        ax.set_xlabel("training examples seen (reviews × epochs, log scale)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Δ accuracy vs full FT (points)")
    axes[0].set_title("every method", fontsize=9)
    axes[1].set_title(f"the methods whose intervals stay within {-zoom:.0f} points, enlarged", fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=5, frameon=False)
    legend_rows = -(-len(names) // 5)  # ceil: 5 entries a row, each row ~0.035 of the figure's height
    fig.suptitle(f"{setup_title(part, columns[0]).split(',')[0]}: Δ vs full fine-tuning as training grows (paired 95% "
                 "intervals over seeds and test reviews; no point where a method did not run)", fontsize=9)
    fig.tight_layout(rect=(0, 0.02 + 0.035 * legend_rows, 1, 1))
    plot_dir = output_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, plot_dir / f"budget_{part}_delta.png")


def draw_budget_curves(output_dir: Path, part: str, st: dict) -> Path:
    """Validation accuracy against optimizer step for every method of one budget, mean over seeds (band:
    min-max), epoch ends marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    epochs = int(st["key"]["epochs"])
    last = 0
    for method, (g, _) in st["best"].items():
        steps, vals = curves(output_dir, g, "val", "val_accuracy")
        if not len(steps):
            continue
        vals = 100 * vals
        color = method_color(method)
        ax.plot(steps, vals.mean(0), color=color, marker="o", ms=3, lw=1.4, label=f"{method_name(method)} (n={len(vals)})")
        if len(vals) > 1:
            ax.fill_between(steps, vals.min(0), vals.max(0), color=color, alpha=0.15, lw=0)
        last = max(last, int(steps[-1]))
    for e in range(1, epochs):
        ax.axvline(last * e / epochs, color="0.6", lw=0.8, ls="--")
    ends = "; dashed: epoch ends" if epochs > 1 else ""
    ax.set_xlabel(f"optimizer step ({plural(epochs, 'epoch')}{ends})")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{setup_title(part, st)}\nvalidation accuracy during training (mean over seeds, band: min–max)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    plot_dir = output_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    epochs_, reviews = budget_of(st)
    return save_figure(fig, plot_dir / f"budget_{part}_{reviews}x{epochs_}_val_accuracy.png")


def budget_data(output_dir: Path, part: str, all_setups: list, head) -> tuple:
    """(columns, rows) of one part: its budgets, headline first, and each method's cells; ([], []) with one."""
    columns = budget_setups(all_setups, head)
    return (columns, budget_rows(output_dir, part, columns)) if columns else ([], [])


def budget_section(output_dir: Path, part: str, columns: list, rows: list, plots: bool = True) -> list:
    """One part's lines of the section: what differs, the two tables, what moved, and the plots."""
    if not columns:
        return []
    head = columns[0]
    lines = [f"### {PARTS[part][0].split(':')[0]}: " + ", ".join(budget_label(st) for st in columns), ""]
    said = "; ".join(
        f"`{st['key']['profile']}` ({budget_label(st)}, {seeds_text(setup_seeds(st))}"
        + ("" if st is head else ": " + (", ".join(setup_differences(output_dir, head, st)) or "nothing else "
                                         "different")) + ")" for st in columns)
    lines += [f"The same model and test reviews at each budget, each at its own picked rate; a dash where a method did "
              f"not run; methods that ran at {budget_label(head)} alone are the Findings'. Profiles, and what else "
              f"differs from the first: {said}. The change of Δ pairs seeds by "
              f"number on the same test reviews; compute is the CPU or GPU hours of each budget's runs, sweep "
              f"included; each rate's validation accuracy is in `other_runs.md`.", ""]
    lines += budget_tables(rows, columns) + [""]
    # The verdicts that change are the Findings' sentence; here the ones that hold.
    for i, st in enumerate(columns[1:], start=1):
        _, kept = verdict_moves(rows, i)
        if kept:
            lines.append(f"- Verdicts that hold at {budget_label(st)} (the size of a gap may move): "
                         + "; ".join(f"{method_name(m)} ({a}" + (f" → {b})" if a != b else ")") for m, a, b in kept)
                         + ".")
    lines += _reference_bullets(rows, columns) + [""]
    if plots:
        made = [draw_moves(output_dir, part, columns, rows)] + [draw_budget_curves(output_dir, part, st)
                                                                for st in columns[1:]]
        for stale in (output_dir / "plots").glob(f"budget_{part}_*.png"):  # an earlier layout's plots mislead
            if stale not in made:
                stale.unlink()
        lines += [" ".join(f"![{p.stem}](plots/{p.name})" for p in made), ""]
    return lines
