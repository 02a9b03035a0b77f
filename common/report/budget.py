"""The Budget section: one setup trained for fewer and for more epochs, each method's verdict at both budgets."""
from __future__ import annotations

from pathlib import Path

from common import records
from common.report.cells import delta_cells, table
from common.report.comparison import compare, diff_text, verdict
from common.report.plots import curves, method_color, save_figure, setup_title
from common.report.runs import PARTS, SETUP_KEYS, format_rate, method_name, plural, read_record, seed_list, setup_seeds
from common.schema import flatten

# What may differ between the two budgets of one setup: the epochs (the budget itself), the profile that asked for
# them, and the machine (hardware does not change what a run computes; precision and dropout kernel do, and must
# match).
BUDGET_FREE_KEYS = ("epochs", "profile", "device")


def _same_but_budget(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in SETUP_KEYS if k not in BUDGET_FREE_KEYS)


def budget_pairs(all_setups: list) -> list:
    """(shorter, longer) setups that differ only in epochs, both with full fine-tuning; for each longer budget the
    shorter one comparing the most methods with the most seeds."""
    pairs = []
    for long in all_setups:
        if "full" not in long["best"]:
            continue
        shorter = [st for st in all_setups if st is not long and "full" in st["best"]
                   and _same_but_budget(st["key"], long["key"]) and int(st["key"]["epochs"]) < int(long["key"]["epochs"])]
        if shorter:
            pairs.append((max(shorter, key=lambda st: (len(st["best"]), st["seeds"], st["date"])), long))
    return pairs


def compute_hours(output_dir: Path, part: str, st: dict, method: str) -> float:
    """Hours of one method's runs in a setup: its sweep's runs (every rate, from the sweep records of the same
    profile and epochs) and its final runs that trained (a run promoted from the sweep or reused from another part is
    counted where it trained). Summed from each record's phases (tokenize, build, train and evaluate, save, time
    inference), excluding the command's start-up, which its runs share."""
    total = 0.0
    g = st["best"][method][0]
    for r in g["rows"]:
        if r.get("reused_from"):
            continue
        rec = read_record(output_dir, r["run_id"])
        if rec and not rec.get("promoted_from"):
            total += _run_seconds(rec)
    sweep = records.sweep_dir(str(output_dir))
    for path in sorted(records.runs_dir(str(sweep)).glob(f"{part}-{method}-s*.json")):
        rec = read_record(sweep, path.stem)
        cfg = (rec or {}).get("config", {})
        if rec and rec.get("status") == "completed" and cfg.get("profile") == st["key"]["profile"] and \
                str(cfg.get("train", {}).get("epochs")) == str(st["key"]["epochs"]):
            total += _run_seconds(rec)
    return total / 3600


def _run_seconds(rec: dict) -> float:
    """A run's own seconds from its record's phases: tokenize, build, train and evaluate, save, time inference."""
    phases = rec.get("phases_s", {})
    return sum(float(phases.get(k) or 0.0) for k in ("tokenize_s", "build_model_s", "train_and_evaluate_s",
                                                     "save_s", "inference_s"))


def budget_rows(output_dir: Path, part: str, short: dict, long: dict) -> list:
    """Per method in both setups: Δ vs full FT at each budget, the method's own change, verdicts, rates, hours."""
    rows = []
    for method, (g_long, s_long) in long["best"].items():
        if method not in short["best"]:
            continue
        g_short, s_short = short["best"][method]
        row = {"method": method, "lr": (g_short["learning_rate"], g_long["learning_rate"]),
               "change": compare(output_dir, g_short, g_long), "summaries": (s_short, s_long),
               "collapsed": (bool(s_short["collapsed"]), bool(s_long["collapsed"])),
               "acc": (s_short["acc_mean"], s_long["acc_mean"]),
               "hours": compute_hours(output_dir, part, long, method)}
        if method != "full":
            row["vs_full"] = (compare(output_dir, short["best"]["full"][0], g_short),
                              compare(output_dir, long["best"]["full"][0], g_long))
        rows.append(row)
    return rows


def budget_verdicts(rows: list) -> tuple:
    """(changed, kept): each method's verdict against full fine-tuning at the shorter and the longer budget."""
    changed, kept = [], []
    for r in rows:
        if "vs_full" not in r:
            continue
        a, b = (verdict(c, col) for c, col in zip(r["vs_full"], r["collapsed"]))
        name = method_name(r["method"])
        (kept if a.split(" by ")[0] == b.split(" by ")[0] else changed).append(
            f"{name} ({a} → {b})" if a != b else f"{name} ({a})")
    return changed, kept


def budget_sentences(rows: list, short_epochs, long_epochs) -> list:
    """Which verdicts against full fine-tuning change with the budget and which do not, from the intervals."""
    changed, kept = budget_verdicts(rows)
    out = []
    if changed:
        out.append(f"- Verdicts against full fine-tuning that change from {plural(short_epochs, 'epoch')} to "
                   f"{plural(long_epochs, 'epoch')}: {'; '.join(changed)}.")
    if kept:
        out.append(f"- Verdicts that hold at both budgets (the size of a gap may move): {'; '.join(kept)}.")
    return out


def budget_note(short: dict, long: dict, rows: list) -> str:
    """One sentence for the Findings: what the longer budget changes."""
    changed, kept = budget_verdicts(rows)
    text = (f"At {plural(long['key']['epochs'], 'epoch')} (profile `{long['key']['profile']}`, seeds "
            f"{seed_list(setup_seeds(long))}; [Budget](#budget)): ")
    parts = ([f"verdicts that change: {'; '.join(changed)}"] if changed else []) + \
        ([f"that hold: {', '.join(k.split(' (')[0] for k in kept)}"] if kept else [])
    return text + ("; ".join(parts) or "no method to compare") + "."


def draw_budget_curves(output_dir: Path, part: str, long: dict) -> Path:
    """Validation accuracy against optimizer step for every method of the longer budget, mean over seeds (band:
    min-max), epoch ends marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    epochs = int(long["key"]["epochs"])
    last = 0
    for method, (g, _) in long["best"].items():
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
    ax.set_xlabel(f"optimizer step ({plural(epochs, 'epoch')}; dashed: epoch ends)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{setup_title(part, long)}\nvalidation accuracy during training (mean over seeds, band: min–max)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    plot_dir = output_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, plot_dir / f"budget_{part}_val_accuracy.png")


# Keys that differ between two budgets by construction or per run, or that change speed and not the science
# (records.NOT_SCIENCE; the precision and dropout kernel a setup resolved to are part of its key), so the sentence on
# what else differs skips them.
_PER_RUN_KEYS = {"train.epochs", "train.seeds", "profile", "output.dir", "train.lr_grid", "data.dir", "data.cache_dir",
                 "train.allocator", *records.NOT_SCIENCE}


def _shown(value) -> str:
    return "not recorded" if value is None else repr(value)  # a key added after the run was made


def setup_differences(output_dir: Path, short: dict, long: dict) -> list:
    """'key (short's value, long's value)' for every config value and the device that differ between the two
    setups' full fine-tuning runs, other than the budget itself and what each run sets for itself."""
    recs = [read_record(output_dir, st["best"]["full"][0]["rows"][0]["run_id"]) or {} for st in (short, long)]
    a, b = (flatten(r.get("config", {})) for r in recs)
    out = [f"{k} ({_shown(a.get(k))}, {_shown(b.get(k))})" for k in sorted(set(a) | set(b))
           if k not in _PER_RUN_KEYS and a.get(k) != b.get(k)]
    devices = [r.get("env", {}).get("device") for r in recs]
    if devices[0] != devices[1]:
        out.append(f"the machine ({devices[0]}, {devices[1]})")
    return out


def budget_data(output_dir: Path, part: str, all_setups: list) -> list:
    """(shorter, longer, rows) for each pair of budgets of one part."""
    return [(short, long, budget_rows(output_dir, part, short, long)) for short, long in budget_pairs(all_setups)]


def also(differences: list) -> str:
    """The clause on what else differs between two budgets, or that nothing else does."""
    if not differences:
        return "nothing else different; "
    return "also different in " + ", ".join(differences) + "; "


def budget_section(output_dir: Path, part: str, pairs: list, plots: bool = True) -> list:
    """The Budget section of one part: a table per pair of budgets, its sentences and its curve plot."""
    lines = []
    for short, long, rows in pairs:
        e1, e2 = short["key"]["epochs"], long["key"]["epochs"]
        seeds1, seeds2 = setup_seeds(short), setup_seeds(long)
        b1, b2 = plural(e1, "epoch"), plural(e2, "epoch")
        lines += [f"### {PARTS[part][0].split(':')[0]}: {b1} vs {b2}", "",
                  f"Profiles `{short['key']['profile']}` ({b1}, seeds {seed_list(seeds1)}) and "
                  f"`{long['key']['profile']}` ({b2}, seeds {seed_list(seeds2)}): the same model, data and test "
                  f"reviews, {also(setup_differences(output_dir, short, long))}each "
                  f"budget at its own picked rate. The change pairs seeds by number on the same test reviews; "
                  f"compute is the CPU or GPU hours of the longer budget's runs, sweep included; each rate's "
                  f"validation accuracy is in `other_runs.md`.", ""]
        body = []
        for r in rows:
            vs = r.get("vs_full")
            cells = ["–", "–"] if vs is None else [" ".join(dict.fromkeys(delta_cells(c, s)))
                                                   for c, s in zip(vs, r["summaries"])]
            acc = " → ".join("–" if a is None else f"{100 * a:.2f}%" for a in r["acc"])
            change = "collapsed" if any(r["collapsed"]) else diff_text(r["change"])
            body.append([method_name(r["method"]), cells[0], cells[1], acc, change,
                         f"{format_rate(r['lr'][0])} → {format_rate(r['lr'][1])}", f"{r['hours']:.2f}"])
        lines += table(["Method", f"Δ vs full FT, {b1} [95% CI]", f"Δ vs full FT, {b2} [95% CI]",
                        f"Accuracy, {b1} → {b2}", "Change [95% CI]", "Learning rate", f"Compute, {b2} (h)"], body)
        lines += [""] + budget_sentences(rows, e1, e2) + [""]
        if plots:
            path = draw_budget_curves(output_dir, part, long)
            lines += [f"![{path.stem}](plots/{path.name})", ""]
    return lines
