"""Table cells of the report: one way to write an accuracy, a difference, a verdict, a share, a size, a time."""
from __future__ import annotations

from common import analysis
from common.methods import label as method_name
from common.report.runs import format_rate


def verdict(c: dict, collapsed: bool = False) -> str:
    """A comparison's side in words: "below by 1.3", "above by 0.4", "no difference resolved"."""
    side = "collapsed" if collapsed else c.get("side", "no interval")
    if side in ("above", "below"):
        return f"{side} by {abs(100 * c['diff_mean']):.1f}"
    return "no difference resolved" if side == "tied" else side


def diff_text(c: dict) -> str:
    """'-1.28 [-1.87, -0.69]' in points, or – without a comparison."""
    if "diff_mean" not in c:
        return "–"
    ci = c.get("diff_ci")
    return f"{100 * c['diff_mean']:+.2f}" + (f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else "")


def reference_accuracy(method: str) -> str:
    """The reference report's accuracy for a method, with its model: '92.2% (DistilBERT), 93.09% (BERT)', or –."""
    return ", ".join(f"{p['accuracy'][method]}% ({p['model']})" for p in analysis.REFERENCE_REPORT.values()
                     if method in p["accuracy"]) or "–"


def accuracy_cell(s: dict, with_ci: bool = True) -> str:
    """'82.49% ± 0.53 [81.49, 83.50]' over seeds; one seed alone; a collapsed group says so, with no interval."""
    if s["acc_mean"] is None:
        return "–"
    text = f"{100 * s['acc_mean']:.2f}%" + (f" ± {100 * s['acc_std']:.2f}" if s["n"] > 1 else " (1 seed)")
    if s["collapsed"]:  # any seed predicting one class: a failed run, with no interval or test drawn from it
        return f"{text} **collapsed** ({s['collapsed']} of {s['n']} seed{'s' if s['n'] > 1 else ''})"
    ci = s.get("acc_ci")
    if with_ci and ci and 0.0 <= ci[0] and ci[1] <= 1.0:  # an interval past 0 or 100% would mean nothing
        text += f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
    return text


def delta_cells(g: dict, s: dict) -> tuple:
    """(Δ [95% CI], verdict) of a method against full FT; full FT is the reference, a collapsed method has neither."""
    if g["method"] == "full":
        return "–", "reference"
    if s["collapsed"]:
        return "collapsed", "collapsed"
    return (diff_text(s["vs_full"]), verdict(s["vs_full"])) if "diff_mean" in s["vs_full"] else ("–", "–")


def delta_verdict_cell(g: dict, s: dict) -> str:
    """'-1.28 [-1.87, -0.69] below by 1.3' in one cell; 'collapsed' or '–' once, not twice."""
    return "reference" if g["method"] == "full" else " ".join(dict.fromkeys(delta_cells(g, s)))


def mcnemar_cell(s: dict) -> str:
    """Seeds whose exact McNemar test finds a method's errors different from full FT's: '5 of 5 (p ≤ 0.023)'."""
    ps = [m["p_value"] for m in s["vs_full"].get("mcnemar", {}).values()]
    return f"{sum(p < 0.05 for p in ps)} of {len(ps)} (p ≤ {max(ps):.2g})" if ps else "–"


def share_cell(s: dict, full_params) -> str:
    """Trainable parameters as a share of full FT's (the one denominator every table uses)."""
    if s.get("trainable_params") is None or not full_params:
        return "–"
    return f"{100 * s['trainable_params'] / full_params:.2f}%"


def labels(members: list) -> list:
    """Method names for a table's rows; a method shown twice carries its learning rate (no duplicate labels)."""
    names = [method_name(g["method"]) for g, *_ in members]
    return [f"{n}, lr {format_rate(m[0]['learning_rate'])}" if names.count(n) > 1 else n for n, m in zip(names, members)]


# Columns every per-method table may show: header -> cell of a (group, summary, ...) row.
COLUMNS = {
    "Δ vs full FT, points [95% CI]": lambda g, s, *_: delta_cells(g, s)[0],
    "Verdict": lambda g, s, *_: delta_cells(g, s)[1],
    "Accuracy, mean ± sd [95% CI]": lambda g, s, *_: accuracy_cell(s),
    "McNemar p < 0.05": lambda g, s, *_: mcnemar_cell(s),
    "Loss": lambda g, s, *_: "–" if s["loss_mean"] is None else f"{s['loss_mean']:.4f}"
    + (f" ± {s['loss_std']:.4f}" if s["n"] > 1 else ""),
    "Learning rate": lambda g, s, *_: format_rate(g["learning_rate"])
    + (" (picked)" if s["lr_source"].startswith("swept") else ""),
    "Train time / seed": lambda g, s, *_: "–" if s["train_time_s"] is None else f"{s['train_time_s']:,.0f} s",
    "Saved": lambda g, s, *_: "not kept" if s["saved_bytes"] is None else f"{s['saved_bytes'] / 2**20:,.1f} MiB"
    if s["saved_bytes"] >= 2**20 else f"{s['saved_bytes'] / 2**10:,.0f} KiB",
    "Latency, batch 1": lambda g, s, *_: "–" if s.get("latency_ms") is None else f"{s['latency_ms']:.1f} ms"
    + (f" ({s['latency_merged_ms']:.1f} merged)" if s.get("latency_merged_ms") is not None else ""),
    "Peak GPU memory": lambda g, s, *_: "–" if s.get("peak_mem_allocated_mib") is None
    else f"{s['peak_mem_allocated_mib']:,.0f} MiB",
}


def method_table(columns: list, rows: list) -> list:
    """A table with a row per (group, summary, ...) and a column per entry of columns: a COLUMNS header,
    or (header, cell(*row)) for a column of one table's own."""
    columns = [(c, COLUMNS[c]) if isinstance(c, str) else c for c in columns]
    return table([h for h, _ in columns], [[cell(*r) for _, cell in columns] for r in rows])


def table(header: list, rows: list) -> list:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(r) + " |" for r in rows]
