"""The headline setup's plots: training loss, validation accuracy, accuracy vs trainable parameters, cost."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from common import analysis, methods, records
from common.methods import label as method_name
from common.report import runs

method_color = methods.color  # one colour per method, the registry's: LoRA is the same red in every figure


def setup_title(part: str, st: dict) -> str:
    """A figure's first title line: the part, the model, the data, the budget, the seeds."""
    key = st["key"]
    return (f"{runs.PARTS[part][0].split(':')[0]}: {runs.model_label(key['model']).split(' (')[0]}, "
            f"{runs.count_text(key['train_samples'])} train reviews, {runs.plural(key['epochs'], 'epoch')}, "
            f"{key['precision']}, {runs.seeds_text(analysis.setup_seeds(st))}")


# Fewer validation points than this a run are drawn as points, not joined into a line that would invent a curve.
MIN_CURVE_POINTS = 8
PLOT_NAMES = ("train_loss", "val_accuracy", "pareto", "cost")  # each part's plots: plots/<part>_<name>.png
INPUTS_FILE = "inputs.json"  # part -> hash of what its plots were drawn from


def plot_paths(output_dir: Path, part: str) -> dict:
    """name -> path of each of a part's plots, for PLOT_NAMES."""
    return {name: output_dir / "plots" / f"{part}_{name}.png" for name in PLOT_NAMES}


def pyplot():
    """matplotlib's pyplot, drawing to files (imported here: a report without plots never loads it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(output_dir: Path, part: str, head: dict) -> list:
    """The headline setup's plots: training loss, validation accuracy, Δ vs full FT against parameters, cost. Drawn
    again only when what they show changed (a hash of the groups, their statistics and curves, and this module's
    code): matplotlib takes ~1 s a plot, and every command rewrites the summary of every part."""
    members, paths = list(head["best"].values()), plot_paths(output_dir, part)
    key = hashlib.sha256(Path(__file__).read_bytes() + json.dumps(
        [part, [(g["method"], [(r["run_id"], r["curves"]) for r in g["rows"]], s) for g, s in members]],
        sort_keys=True, default=str).encode()).hexdigest()

    def draw() -> list:
        plt, title = pyplot(), setup_title(part, head)
        made = [draw_loss(plt, members, title, paths["train_loss"]),
                draw_validation(plt, members, title, paths["val_accuracy"]),
                draw_pareto(plt, head, title, paths["pareto"]), draw_cost(plt, members, title, paths["cost"])]
        for stale in paths["cost"].parent.glob(f"{part}_*.png"):  # plots of an earlier report layout would mislead
            if stale not in made:
                stale.unlink()
        return made

    return records.made_from(output_dir / "plots" / INPUTS_FILE, part, key, list(paths.values()), draw)


def draw_loss(plt, members: list, title: str, path: Path) -> Path:
    """Training loss against step: one small panel per method on shared axes (eight bands on one axis tangle)."""
    n = len(members)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 0.6, 2.2 * rows + 0.9), sharex=True, sharey=True,
                             squeeze=False)
    for ax, (g, _) in zip(axes.flat, members):
        steps, vals = analysis.curves(g, "train", "loss")
        color = method_color(g["method"])
        if len(steps):
            mean_band(ax, steps, vals, color, 0.25, lw=1.2)
        ax.set_title(f"{method_name(g['method'])} (n={len(vals)})", fontsize=9, color=color)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.supxlabel("optimizer step", fontsize=9)
    fig.supylabel("training loss", fontsize=9)
    return save_figure(fig, path, f"{title}\ntraining loss (mean over seeds, band: min–max)")


def draw_validation(plt, members: list, title: str, path: Path, epochs: int = 1) -> Path:
    """Validation accuracy against step; runs with few evaluations are drawn as points with their seed range, the
    ends of epochs (past one) as dashed lines."""
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    few, last = False, 0
    for i, (g, _) in enumerate(members):
        steps, vals = analysis.curves(g, "val", "val_accuracy")
        if not len(steps):
            continue
        vals, color, last = 100 * vals, method_color(g["method"]), max(last, int(steps[-1]))
        label = f"{method_name(g['method'])} (n={len(vals)})"
        if len(steps) < MIN_CURVE_POINTS:
            few = True
            # Side by side around each step, so methods at the same step do not hide each other.
            x = steps + (i - (len(members) - 1) / 2) * 0.012 * max(steps.max(), 1)
            ax.errorbar(x, vals.mean(0), yerr=[vals.mean(0) - vals.min(0), vals.max(0) - vals.mean(0)], fmt="o",
                        color=color, ms=5, capsize=3, label=label)
        else:
            mean_band(ax, steps, vals, color, 0.15, marker="o", ms=3, lw=1.3, label=label)
    for e in range(1, epochs):
        ax.axvline(last * e / epochs, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel(f"optimizer step ({runs.plural(epochs, 'epoch')}; dashed: epoch ends)" if epochs > 1
                  else "optimizer step")
    ax.set_ylabel("validation accuracy (%)")
    how = "mean, bars: min–max over seeds; too few points for a curve" if few else "mean, band: min–max over seeds"
    ax.set_title(f"{title}\nvalidation accuracy during training ({how})", fontsize=9)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2, loc="best")
    return save_figure(fig, path)


def draw_pareto(plt, head: dict, title: str, path: Path) -> Path:
    """Accuracy against size, one row per method (the most accurate on top): its Δ vs full FT with the paired 95%
    interval the text uses, and beside it its trainable parameters. Rows, not a scatter: 18 methods within 2x of
    each other's size would stack their labels on one spot."""
    import matplotlib.ticker

    # (method, Δ, low, high, size): full FT at zero; a method without an interval (a collapse) is not drawn
    rows = [(g["method"], *(analysis.points(s["vs_full"]) or (0.0,) * 3), s["trainable_params"])
            for g, s in head["best"].values()
            if s["trainable_params"] is not None and (g["method"] == "full" or analysis.points(s["vs_full"]))]
    rows.sort(key=lambda r: r[1])  # bottom to top: the most accurate ends on top
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 1.6 + 0.28 * max(len(rows), 5)), sharey=True,
                                      gridspec_kw={"width_ratios": (3, 2)})
    for i, (method, y, lo, hi, n) in enumerate(rows):
        color = method_color(method)
        left.errorbar([y], [i], xerr=[[y - lo], [hi - y]], fmt="o", color=color, capsize=3, ms=6)
        left.annotate(f"{y:+.2f}" if method != "full" else "reference", (hi, i), xytext=(4, 0),
                      textcoords="offset points", va="center", fontsize=8)
        right.barh(i, n, color=color, alpha=0.6, height=0.6)
        right.annotate(count_label(n), (n, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    left.set_yticks(range(len(rows)), [method_name(m) for m, *_ in rows], fontsize=8)
    left.axvline(0, color="0.4", lw=0.8, ls="--")
    lo_x, hi_x = left.get_xlim()
    left.set_xlim(lo_x, hi_x + 0.12 * (hi_x - lo_x))  # room for the numbers right of the whiskers
    left.set_xlabel("Δ accuracy vs full FT, points [95% CI]", fontsize=9)
    right.set_xscale("log")
    right.set_xlim(left=min(r[4] for r in rows) / 3 if rows else 1, right=max(r[4] for r in rows) * 8 if rows else 10)
    right.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(count_label))
    right.set_xlabel("trainable parameters (log scale)", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, path, f"{title}\naccuracy and size: Δ vs full fine-tuning (seeds and reviews), trainable "
                                  "parameters")


def draw_cost(plt, members: list, title: str, path: Path) -> Path:
    """Train time per seed; peak memory beside it only where it compares methods (GPU allocations: a CPU
    process's RSS carries what the process held before training)."""
    gpu = all(s["peak_mem_allocated_mib"] is not None for _, s in members)
    panels = [("train_time_s", "train time per seed (s)")] + \
        ([("peak_mem_allocated_mib", "peak GPU memory allocated (MiB)")] if gpu else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(7.2 if len(panels) == 1 else 9.6, 4.4), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for i, (g, s) in enumerate(members):
            vals = s[key + "_all"]
            if not vals:
                continue
            ax.bar(i, s[key], color=method_color(g["method"]), alpha=0.6, width=0.6)  # the tables' figure
            ax.scatter([i] * len(vals), vals, color="black", s=12, zorder=3)
        ax.set_xticks(range(len(members)), [method_name(g["method"]) for g, _ in members], fontsize=8, rotation=30,
                      ha="right", rotation_mode="anchor")  # method names are wider than their bars
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    note = "" if gpu else "\nmemory: GPU runs only (a CPU process's RSS does not compare methods)"  # a line of its own
    return save_figure(fig, path, f"{title}\ncost per seed: bars as in the tables (time: median), dots seeds{note}")


def count_label(x, _pos=None) -> str:
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"  # 2,717,314 -> 2.72M: three figures a glance can read
    return f"{x:g}"


def mean_band(ax, steps, vals, color, alpha: float, **line) -> None:
    """The mean over seeds as a line, their min–max as a band around it (with two seeds or more)."""
    ax.plot(steps, vals.mean(0), color=color, **line)
    if len(vals) > 1:
        ax.fill_between(steps, vals.min(0), vals.max(0), color=color, alpha=alpha, lw=0)


def save_figure(fig, path: Path, title: str = None, rect=None) -> Path:
    """Title, lay out and write a figure; rect: the part of it the axes may fill (a legend below takes the rest)."""
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=rect)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")  # atomic like every other result file
    fig.savefig(tmp, dpi=110)
    pyplot().close(fig)
    tmp.replace(path)
    return path
