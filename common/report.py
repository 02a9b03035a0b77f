"""Comparison report: results/<part>.csv (+ run records, predictions) -> results/summary.md and plots.

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

PARTS = OrderedDict([
    ("part1", "Part 1: DistilBERT, full fine-tuning vs LoRA"),
    ("part2", "Part 2: BERT-base, full fine-tuning vs prefix tuning"),
])
METHOD_NAMES = {"full": "Full FT", "lora": "LoRA", "prefix": "Prefix tuning"}

# The seed report's own figures (one run each, A100, fp16), quoted for comparison, not produced here.
# Its memory was probably read from nvidia-smi (reserved + CUDA context): not comparable to allocated MiB.
SEED_REPORT = {
    "part1": {"full": {"accuracy": "92.2%", "time": "~4.5 min", "memory": "~3340 MB"},
              "lora": {"accuracy": "89.9%", "time": "4m24s", "memory": "~2588 MB"}},
    "part2": {"full": {"accuracy": "93.09%", "loss": "0.3227", "params": "109,483,778"},
              "prefix": {"accuracy": "90.79%", "loss": "0.2374", "params": "9,866,242"}},
}

GROUP_KEYS = ("method", "model", "profile", "learning_rate", "max_length", "train_samples", "test_samples",
              "epochs", "device", "precision", "dropout_kernel")


def _f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def load_rows(output_dir: Path, part: str) -> list:
    """Completed rows of a part, the last row per run_id (a forced rerun replaces the earlier one)."""
    rows = OrderedDict()
    for r in records.read_csv_rows(output_dir / f"{part}.csv"):
        if r.get("status") == "completed":
            # Rows written before the dropout kernel was recorded ran torch's dropout: it was the only kernel.
            r["dropout_kernel"] = r.get("dropout_kernel") or "torch"
            rows.pop(r["run_id"], None)
            rows[r["run_id"]] = r
    return list(rows.values())


def group_rows(rows: list) -> list:
    groups = OrderedDict()
    for r in rows:
        groups.setdefault(tuple(r.get(k, "") for k in GROUP_KEYS), []).append(r)
    return [dict(zip(GROUP_KEYS, k), rows=v) for k, v in groups.items()]


def _predictions(output_dir: Path, row: dict):
    path = records.predictions_path(str(output_dir), row["run_id"])
    return records.read_predictions(path) if path.is_file() else None


def summarize_group(output_dir: Path, g: dict) -> dict:
    rows = g["rows"]
    acc = [_f(r["accuracy"]) for r in rows]
    loss = [_f(r["loss"]) for r in rows if _f(r["loss"]) is not None]
    s = {"n": len(rows), "seeds": [int(r["seed"]) for r in rows]}
    s["acc_mean"], s["acc_std"] = stats.mean_std(acc)
    s["loss_mean"], s["loss_std"] = stats.mean_std(loss) if loss else (None, None)
    if len(rows) > 1:
        s["acc_ci"], s["ci_how"] = stats.t_interval(acc), f"t-interval over {len(rows)} seeds"
    else:
        p = _predictions(output_dir, rows[0])
        if p is not None:
            s["acc_ci"] = stats.bootstrap_interval(np.mean, [p["pred"] == p["label"]])
            s["ci_how"] = f"bootstrap over {len(p['label'])} test reviews (1 seed)"
        else:
            s["acc_ci"], s["ci_how"] = None, "no predictions file"
    for k in ("train_time_s", "peak_mem_allocated_mib", "peak_mem_reserved_mib", "peak_rss_mib",
              "trainable_params", "total_params", "trainable_pct", "val_accuracy"):
        vals = [_f(r.get(k)) for r in rows if _f(r.get(k)) is not None]
        s[k] = float(np.mean(vals)) if vals else None
    s["lr_source"] = rows[-1].get("lr_source") or "config"
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
    if len(seeds) > 1:
        out["diff_ci"], out["ci_how"] = stats.t_interval(out["diffs"]), f"t-interval over {len(seeds)} paired seeds"
    elif pairs:
        ca, cb = pairs[0]
        out["diff_ci"] = stats.bootstrap_interval(lambda a, b: b.mean() - a.mean(), [ca, cb])
        out["ci_how"] = "paired bootstrap over test reviews (1 seed)"
    return out


def _pct(x, nd=2):
    return "–" if x is None else f"{100 * x:.{nd}f}%"


def _num(x, fmt="{:,.0f}"):
    return "–" if x is None else fmt.format(x)


def _pm(mean, std, n, scale, fmt, std_fmt) -> str:
    """'mean ± std' over seeds; a single run shows its value alone (a std of one run means nothing)."""
    if mean is None:
        return "–"
    text = fmt.format(scale * mean)
    return text + (f" ± {std_fmt.format(scale * std)}" if n > 1 else " (1 seed)")


def _ci(ci):
    return "–" if not ci else f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"


def _memory(s) -> str:
    if s["peak_mem_allocated_mib"] is not None:
        return f"{s['peak_mem_allocated_mib']:,.0f} MiB alloc / {s['peak_mem_reserved_mib']:,.0f} reserved"
    return f"{s['peak_rss_mib']:,.0f} MiB RSS (CPU)" if s["peak_rss_mib"] is not None else "–"


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
    return text + "."


def _lr_kind(s: dict) -> str:
    return s["lr_source"].split(":")[0]


def _group_label(g: dict) -> str:
    return (f"profile `{g['profile']}`: {g['model']}, {g['train_samples']} train / {g['test_samples']} test "
            f"reviews, max_length {g['max_length']}, {g['epochs']} epoch(s), {g['device']}, {g['precision']}, "
            f"{g['dropout_kernel']} dropout")


def write_plots(output_dir: Path, part: str, groups: list, summaries: list) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = output_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    made = []
    # Pareto view: accuracy against trainable parameters, every run.
    fig, ax = plt.subplots(figsize=(6, 4))
    for g in groups:
        xs = [_f(r["trainable_params"]) for r in g["rows"]]
        ys = [100 * _f(r["accuracy"]) for r in g["rows"]]
        ax.scatter(xs, ys, label=f"{METHOD_NAMES.get(g['method'], g['method'])} ({g['profile']}, lr {g['learning_rate']})")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{part}: accuracy vs trainable parameters")
    ax.legend(fontsize=7)
    fig.tight_layout()
    made.append(_save(fig, plot_dir / f"{part}_pareto.png"))
    # Cost: train time and peak memory per method.
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    labels = [f"{METHOD_NAMES.get(g['method'], g['method'])}\n{g['profile']}" for g in groups]
    axes[0].bar(labels, [s["train_time_s"] or 0 for s in summaries])
    axes[0].set_ylabel("train time (s)")
    mem = [s["peak_mem_allocated_mib"] if s["peak_mem_allocated_mib"] is not None else (s["peak_rss_mib"] or 0)
           for s in summaries]
    axes[1].bar(labels, mem)
    axes[1].set_ylabel("peak memory (MiB: GPU allocated, or CPU RSS)")
    fig.suptitle(f"{part}: cost per method")
    fig.tight_layout()
    made.append(_save(fig, plot_dir / f"{part}_cost.png"))
    # Learning curves: validation loss and accuracy per epoch, from the run records.
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    for g in groups:
        for r in g["rows"]:
            try:
                rec = json.loads(records.record_path(str(output_dir), r["run_id"]).read_text())
            except (OSError, ValueError):
                continue
            val = rec.get("curves", {}).get("val", [])
            if not val:
                continue
            ep = [v["epoch"] for v in val]
            lab = f"{METHOD_NAMES.get(g['method'], g['method'])} s{r['seed']} ({g['profile']})"
            axes[0].plot(ep, [v["val_loss"] for v in val], marker="o", label=lab)
            axes[1].plot(ep, [100 * v["val_accuracy"] for v in val], marker="o", label=lab)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("validation loss")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation accuracy (%)")
    axes[1].legend(fontsize=6)
    fig.suptitle(f"{part}: learning curves (validation split)")
    fig.tight_layout()
    made.append(_save(fig, plot_dir / f"{part}_curves.png"))
    return made


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp.png")  # atomic like every other result file
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def part_section(output_dir: Path, part: str, plots: bool = True) -> list:
    rows = load_rows(output_dir, part)
    lines = [f"## {PARTS[part]}", ""]
    if not rows:
        return lines + ["No completed runs yet.", ""]
    groups = group_rows(rows)
    summaries = [summarize_group(output_dir, g) for g in groups]
    seed_ref = SEED_REPORT.get(part, {})
    lines += ["| Method | Trainable params | Accuracy (mean ± std) | 95% CI | Loss (mean ± std) | Train time | "
              "Peak memory | Seeds | Learning rate | Ran on | Seed report (A100, fp16) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for g, s in zip(groups, summaries):
        ref = seed_ref.get(g["method"], {})
        ref_txt = ", ".join(f"{k} {v}" for k, v in ref.items()) or "–"
        loss = _pm(s["loss_mean"], s["loss_std"], s["n"], 1, "{:.4f}", "{:.4f}")
        lines.append(
            f"| {METHOD_NAMES.get(g['method'], g['method'])} | {_num(s['trainable_params'])} "
            f"({s['trainable_pct']:.2f}%) | {_pm(s['acc_mean'], s['acc_std'], s['n'], 100, '{:.2f}%', '{:.2f}')} | "
            f"{_ci(s.get('acc_ci'))} | "
            f"{loss} | {_num(s['train_time_s'], '{:,.1f} s')} | {_memory(s)} | {', '.join(map(str, s['seeds']))} | "
            f"{g['learning_rate']} ({s['lr_source']}) | {g['device']}, {g['precision']}, {g['dropout_kernel']} dropout, "
            f"profile `{g['profile']}` | "
            f"{ref_txt} |")
    lines.append("")
    lines.append("Settings of each row group: " + "; ".join(sorted({_group_label(g) for g in groups})) + ".")
    dates = sorted(r.get("date", "") for r in rows if r.get("date"))
    if dates:
        lines.append(f"Runs dated {dates[0][:16].replace('T', ' ')} to {dates[-1][:16].replace('T', ' ')} UTC "
                     f"({len(rows)} completed runs).")
    lines.append("95% CI: " + "; ".join(sorted({s["ci_how"] for s in summaries})) + ".")
    lines.append("")
    # Comparisons: every PEFT group against the full-FT group run with the same model/profile/data/device.
    same = ("model", "profile", "max_length", "train_samples", "test_samples", "epochs", "device", "precision",
            "dropout_kernel")
    sentences = []
    for g, s in zip(groups, summaries):
        if g["method"] == "full":
            continue
        for bg, bs in zip(groups, summaries):
            # Like with like: learning rates from the config compare with the config's, swept with swept.
            if bg["method"] == "full" and all(bg[k] == g[k] for k in same) \
                    and _lr_kind(bs) == _lr_kind(s):
                c = compare(output_dir, bg, g)
                where = f"- Profile `{g['profile']}`, {g['dropout_kernel']} dropout, lr from {_lr_kind(s)}: "
                sentences.append(where + interpret(
                    f"{METHOD_NAMES.get(g['method'], g['method'])} (lr {g['learning_rate']})", c, bs, s,
                    bg["learning_rate"]))
    if sentences:
        lines += ["**Is the gap real?** (each PEFT row group against the full-FT group with the same settings and "
                  "the same way of choosing its learning rate)", ""] + sentences + [""]
    lines += ["Loss is the mean cross-entropy over the test reviews. It can disagree with accuracy: accuracy only "
              "counts which side of 0.5 a prediction falls on, while the loss also charges for confidence, "
              "heavily for confident mistakes. A method that is less often right but less confident when "
              "wrong can have the lower loss; that is calibration, not evidence of being \"more stable\".", ""]
    if plots:
        made = write_plots(output_dir, part, groups, summaries)
        lines += [" · ".join(f"[{p.stem}](plots/{p.name})" for p in made), ""]
        lines += [f"![{made[0].stem}](plots/{made[0].name})", ""]
    return lines


def write_summary(output_dir: str = "results", plots: bool = True) -> Path:
    """Regenerate summary.md from the CSVs (and the run records and predictions they point to)."""
    out = Path(output_dir)
    lines = ["# imdb-peft: results summary", "",
             f"Generated by `python -m common.report --output-dir {output_dir}` at {now_iso()} from "
             f"{', '.join(f'{p}.csv' for p in PARTS)}. Each row group is one configuration; seeds are separate "
             "runs. Run records (resolved config, environment, curves) are in `runs/`. The seed report's "
             "figures are quoted from it (one run each on an A100), not produced here. Peak memory here is "
             "`torch.cuda.max_memory_allocated/reserved` on GPU, or the process's peak RSS on CPU; the seed's "
             "MB figures were probably read from nvidia-smi and are not directly comparable.", ""]
    for part in PARTS:
        lines += part_section(out, part, plots)
    picks = out / "sweep" / "picks.json"
    if picks.is_file():
        lines += ["## Learning-rate selection", "", "Chosen by `make sweep` on the validation split "
                  "(never the test split); the best final validation accuracy wins.", "",
                  "| Part / method / profile | Grid | Validation accuracy per lr | Picked |", "|---|---|---|---|"]
        for key, p in json.loads(picks.read_text()).items():
            scores = ", ".join(f"{s['learning_rate']}: {_pct(s['val_accuracy'])}" for s in p["scores"])
            lines.append(f"| {key} | {p['grid']} | {scores} | {p['learning_rate']} |")
        lines.append("")
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
