"""The headline setup's plots: training loss, validation accuracy, accuracy vs trainable parameters, cost."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from common import records
from common.report.runs import method_name, read_record

# One colour per method, fixed by its name: LoRA is the same red in every figure of every part.
METHOD_COLORS = {"full": "#1f77b4", "lora": "#d62728", "dora": "#ff7f0e", "ia3": "#2ca02c", "prompt": "#9467bd",
                 "ptuning": "#8c564b", "prefix": "#e377c2", "adapter": "#17becf"}


def method_color(method: str) -> str:
    return METHOD_COLORS.get(method, "#7f7f7f")


def curves(output_dir: Path, g: dict, which: str, field: str) -> tuple:
    """Per-seed curves of one group, aligned on the steps they share: (steps, values[seed, step])."""
    series = []
    for r in g["rows"]:
        rec = read_record(output_dir, r["run_id"])
        if rec is None:
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


PLOT_NAMES = ("train_loss", "val_accuracy", "pareto", "cost")  # each part's plots: plots/<part>_<name>.png
INPUTS_FILE = "inputs.json"  # part -> hash of what its plots were drawn from


def plot_inputs_key(output_dir: Path, part: str, head: dict) -> str:
    """Hash of everything a part's plots show: its headline groups and their statistics, each run's record (the
    curves), and this module's code. Equal keys draw identical plots."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    members = [(g["method"], [r["run_id"] for r in g["rows"]], s) for g, s in head["best"].values()]
    h.update(json.dumps([part, members], sort_keys=True, default=str).encode())
    for _, run_ids, _ in members:
        for run_id in run_ids:
            try:
                h.update(records.record_path(str(output_dir), run_id).read_bytes())
            except OSError:
                h.update(b"missing")
    return h.hexdigest()


def plot_paths(output_dir: Path, part: str) -> dict:
    """name -> path of each of a part's plots, for PLOT_NAMES."""
    return {name: output_dir / "plots" / f"{part}_{name}.png" for name in PLOT_NAMES}


def _drawn_keys(plot_dir: Path) -> dict:
    try:
        return json.loads((plot_dir / INPUTS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_plots(output_dir: Path, part: str, head: dict) -> list:
    """The headline setup's plots, drawn again only when what they show changed: matplotlib takes ~1 s a plot
    (12 s of a 3-part summary here), and every command rewrites the summary of every part."""
    plot_dir = output_dir / "plots"
    paths = list(plot_paths(output_dir, part).values())
    key = plot_inputs_key(output_dir, part, head)
    if _drawn_keys(plot_dir).get(part) == key and all(p.is_file() for p in paths):
        return paths
    made = draw_plots(output_dir, part, head)
    # Read again after drawing: another part's key may have been written meanwhile.
    records.write_json(plot_dir / INPUTS_FILE, {**_drawn_keys(plot_dir), part: key})
    return made


def draw_plots(output_dir: Path, part: str, head: dict) -> list:
    """The headline setup's plots: training loss, validation accuracy, accuracy vs parameters, cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 - the parameter axis's labels

    plot_dir = output_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = plot_paths(output_dir, part)
    members = list(head["best"].values())
    colors = {g["method"]: method_color(g["method"]) for g, _ in members}
    made = []
    for which, field, scale, ylabel, name in (("train", "loss", 1, "training loss", "train_loss"),
                                               ("val", "val_accuracy", 100, "validation accuracy (%)",
                                                "val_accuracy")):
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for g, s in members:
            steps, vals = curves(output_dir, g, which, field)
            if not len(steps):
                continue
            vals = scale * vals
            label = f"{method_name(g['method'])} (n={len(vals)})"
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
        made.append(save_figure(fig, paths[name]))
    # Accuracy vs trainable parameters: one point per method, 95% interval as whiskers, labelled in place.
    fig, ax = plt.subplots(figsize=(6.4, 4))
    labels = []
    for g, s in members:
        x, y = s["trainable_params"], 100 * s["acc_mean"]
        ci = s.get("acc_ci") or (s["acc_mean"], s["acc_mean"])
        err = [[y - 100 * max(0.0, ci[0])], [100 * min(1.0, ci[1]) - y]]  # an accuracy stays in [0, 100]
        ax.errorbar([x], [y], yerr=err, fmt="o", color=colors[g["method"]], capsize=4, ms=7)
        label = f"{method_name(g['method'])} {y:.1f}%" + \
            (f" ({s['collapsed']}/{s['n']} collapsed)" if s["collapsed"] else "")
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
    made.append(save_figure(fig, paths["pareto"]))
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
        ax.set_xticks(range(len(members)), [method_name(g["method"]) for g, _ in members], fontsize=8, rotation=30,
                      ha="right", rotation_mode="anchor")  # method names are wider than their bars
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_title("train time (bars: mean, dots: seeds)", fontsize=9)
    axes[1].set_title("peak memory (bars: mean, dots: seeds)", fontsize=9)
    fig.tight_layout()
    made.append(save_figure(fig, paths["cost"]))
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


def save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp.png")  # atomic like every other result file
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
