"""How verdicts move with training: the headline setup beside the same setup trained longer or on more reviews."""
from __future__ import annotations

from pathlib import Path

from common import analysis
from common.methods import label as method_name
from common.report import cells, plots, runs
from common.report.runs import plural

SECTION = "How verdicts move with training"
ANCHOR = "#" + SECTION.lower().replace(" ", "-")


def budget_label(st: dict) -> str:
    """'3,000 × 3 epochs': training reviews times epochs, the two axes of a budget."""
    epochs, reviews = analysis.budget_of(st)
    return f"{runs.count_text(reviews)} × {plural(epochs, 'epoch')}"


def verdict_moves(rows: list, i: int) -> tuple:
    """(changed, kept) at column i against the headline (analysis.verdict_moves), each verdict in words."""
    said = lambda c: cells.verdict(c["vs_full"], c["collapsed"])  # noqa: E731
    return tuple([(m, said(a), said(b)) for m, a, b in moves] for moves in analysis.verdict_moves(rows, i))


def budget_note(columns: list, rows: list) -> str:
    """One sentence for the Findings: which verdicts change at each other budget (the section lists those that hold)."""
    said, n = [], 0
    for i, st in enumerate(columns[1:], start=1):
        changed, kept = verdict_moves(rows, i)
        n += len(changed)
        to = {}
        for m, _, b in changed:  # 'LoRA and (IA)³ → no difference resolved'
            to.setdefault(b, []).append(method_name(m))
        moved = ", ".join(f"{' and '.join(ms)} → {b}" for b, ms in to.items()) or "none"
        said.append(f"at {budget_label(st)} ({runs.seeds_text(analysis.setup_seeds(st))}) {moved}, {len(kept)} "
                    + ("holds" if len(kept) == 1 else "hold"))
    return f"[More training]({ANCHOR}) changes {plural(n, 'verdict')}: " + "; ".join(said) + "."


def _reference_bullets(rows: list, columns: list) -> list:
    """Where the reference report's own gap falls in each budget's interval, per method it measured."""
    out = []
    for r in rows:
        for gap, model in analysis.reference_gap(r["method"]):
            where = [(f"{analysis.side_of(gap, c['vs_full']['diff_ci'])} the interval" if c and
                      c["vs_full"].get("diff_ci") else "–") + f" at {budget_label(st)}"
                     for st, c in zip(columns, r["cells"])]
            out.append(f"- The reference report's {gap:+.2f} for {method_name(r['method'])} ({model}, one run) lies "
                       f"{'; '.join(where)}.")
    return out


def budget_tables(rows: list, columns: list) -> list:
    """The verdict table (Δ vs full FT and its change from the headline per budget), then what each cost."""
    labels = [budget_label(st) for st in columns]
    header = ["Method", f"Δ vs full FT, {labels[0]} [95% CI]"]
    for label in labels[1:]:
        header += [f"Δ vs full FT, {label} [95% CI]", f"Change of Δ, {labels[0]} → {label} [95% CI]"]
    delta = lambda c: "–" if c is None else cells.delta_verdict_cell(c["group"], c["summary"])  # noqa
    body = [[method_name(r["method"]), delta(r["cells"][0])] +
            [x for c in r["cells"][1:] for x in (delta(c), cells.diff_text(c["change"]) if c and "change" in c else "–")]
            for r in rows]
    cost = [[method_name(r["method"]),
             " / ".join("–" if c is None or c["summary"]["acc_mean"] is None else
                        f"{100 * c['summary']['acc_mean']:.2f}%" for c in r["cells"]),
             " / ".join("–" if c is None else runs.format_rate(c["group"]["learning_rate"]) for c in r["cells"]),
             " / ".join("–" if c is None else f"{c['hours']:.2f}" for c in r["cells"][1:])] for r in rows]
    joined = " / ".join(labels)
    # Compute for the longer budgets only: the headline's runs are counted where they trained (Parts 1 and 2).
    return cells.table(header, body) + [""] + cells.table(
        ["Method", f"Accuracy, {joined}", f"Learning rate, {joined}", f"Compute (h), {' / '.join(labels[1:])}"], cost)


def draw_moves(output_dir: Path, part: str, columns: list, rows: list) -> Path:
    """Δ vs full FT against training examples seen (log scale), a line per method with its 95% intervals: every
    method on the left, the ones within a few points of full FT enlarged on the right."""
    import matplotlib.ticker

    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.9))
    xs = [analysis.examples_seen(st) for st in columns]
    peft = [r for r in rows if r["method"] != "full"]
    lines = []
    for i, r in enumerate(peft):
        # Side by side around each budget (x 0.9-1.1), so intervals at one budget do not hide each other.
        shift = 1 + 0.2 * (i - (len(peft) - 1) / 2) / max(len(peft) - 1, 1)
        pts = [(x * shift, *analysis.points(c["vs_full"])) for x, c in zip(xs, r["cells"])
               if c and analysis.points(c["vs_full"])]
        if pts:
            lines.append((r["method"], [list(v) for v in zip(*pts)]))
    gaps = sorted({(round(g, 2), method_name(r["method"]), m) for r in peft for g, m in analysis.reference_gap(r["method"])})
    zoom = -6.0  # the enlarged panel: methods whose every interval lies within 6 points of full FT
    for ax, keep in zip(axes, (lambda lo: True, lambda lo: min(lo) >= zoom)):
        for method, (x, y, lo, hi) in lines:
            if keep(lo):
                ax.errorbar(x, y, yerr=[[a - b for a, b in zip(y, lo)], [b - a for a, b in zip(y, hi)]], marker="o",
                            color=plots.method_color(method), ms=5, capsize=3, lw=1.3, label=method_name(method))
        ax.axhline(0, color="0.3", lw=0.9, label="Full FT")
        for g in sorted({g for g, _, _ in gaps}):
            who = ", ".join(f"{n} ({m})" for v, n, m in gaps if v == g)
            ax.axhline(g, color="0.5", lw=0.9, ls="--", label=f"reference report {g:+.2f}: {who}")
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{plots.count_label(x)}\n{budget_label(st)}" for x, st in zip(xs, columns)], fontsize=8)
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
    title = (f"{plots.setup_title(part, columns[0]).split(',')[0]}: Δ vs full fine-tuning as training grows (paired "
             "95% intervals over seeds and test reviews; no point where a method did not run)")
    return plots.save_figure(fig, output_dir / "plots" / f"budget_{part}_delta.png", title,
                             rect=(0, 0.02 + 0.035 * legend_rows, 1, 1))


def draw_curves(output_dir: Path, part: str, st: dict) -> Path:
    """Validation accuracy against optimizer step for every method of one budget, epoch ends marked."""
    epochs, reviews = analysis.budget_of(st)
    return plots.draw_validation(plots.pyplot(), list(st["best"].values()), plots.setup_title(part, st),
                                 output_dir / "plots" / f"budget_{part}_{reviews}x{epochs}_val_accuracy.png", epochs)


def budget_section(output_dir: Path, part: str, columns: list, rows: list, plots_too: bool = True) -> list:
    """One part's lines of the section: what differs, the two tables, what moved, and the plots."""
    if not columns:
        return []
    head = columns[0]
    said = "; ".join(
        f"`{st['key']['profile']}` ({budget_label(st)}, {runs.seeds_text(analysis.setup_seeds(st))}"
        + ("" if st is head else ": " + (", ".join(analysis.setup_differences(head, st)) or "nothing else different")) + ")"
        for st in columns)
    lines = [f"### {runs.PARTS[part][0].split(':')[0]}: " + ", ".join(budget_label(st) for st in columns), "",
             f"The same model and test reviews at each budget, each at its own picked rate; a dash where a method did "
             f"not run; methods that ran at {budget_label(head)} alone are the Findings'. Profiles, and what else "
             f"differs from the first: {said}. The change of Δ pairs seeds by "
             f"number on the same test reviews; compute is the CPU or GPU hours of each budget's runs, sweep "
             f"included; each rate's validation accuracy is in `other_runs.md`.", "", *budget_tables(rows, columns), ""]
    # The verdicts that change are the Findings' sentence; here the ones that hold.
    for i, st in enumerate(columns[1:], start=1):
        _, kept = verdict_moves(rows, i)
        if kept:
            lines.append(f"- Verdicts that hold at {budget_label(st)} (the size of a gap may move): "
                         + "; ".join(f"{method_name(m)} ({a}" + (f" → {b})" if a != b else ")") for m, a, b in kept)
                         + ".")
    lines += _reference_bullets(rows, columns) + [""]
    if plots_too:
        made = [draw_moves(output_dir, part, columns, rows)] + [draw_curves(output_dir, part, st) for st in columns[1:]]
        for stale in (output_dir / "plots").glob(f"budget_{part}_*.png"):  # an earlier layout's plots mislead
            if stale not in made:
                stale.unlink()
        lines += [" ".join(f"![{p.stem}](plots/{p.name})" for p in made), ""]
    return lines
