"""The Findings that open the summary: what ran, one table of the widest headline, and what the numbers resolve."""
from __future__ import annotations

from common import analysis
from common.methods import label as method_name
from common.report import cells, runs

# A gap of this many points is what the reference report is about (92.2 vs 89.9, 93.09 vs 90.79): an interval narrower
# than it on each side can tell such a gap from none.
RESOLVES_POINTS = 1.0


def findings_table(head: dict, rows: list) -> list:
    full = head["best"].get("full")
    full_params = full[1]["trainable_params"] if full else None
    denom = f"% of full FT's {full_params:,.0f}" if full_params else "% of full FT's"
    return cells.method_table([
        ("Method", lambda g, *_: method_name(g["method"]) + ("¹" if g["train_pooler"] else "")),
        (f"Trainable, {denom}", lambda g, s, *_: cells.share_cell(s, full_params)),
        ("Accuracy", lambda g, s, *_: "–" if s["acc_mean"] is None else f"{100 * s['acc_mean']:.2f}%"),
        "Δ vs full FT, points [95% CI]", "Verdict",
        *([("Δ vs head only [95% CI]", lambda g, s, h: cells.diff_text(h) if h.get("diff_ci") else "–")]
          if any(h for *_, h in rows) else []), "Train time / seed", "Saved",
        *([("Reference report", lambda g, *_: cells.reference_accuracy(g["method"]))]
          if any(cells.reference_accuracy(g["method"]) != "–" for g, *_ in rows) else [])], rows)


def head_only_bullet(head: dict, rows: list) -> list:
    """What the methods add over training the head alone (the encoder frozen): which beat it, from the table's
    Δ vs head only; [] when head only did not run or collapsed."""
    compared = [(g, h) for g, _, h in rows if h.get("diff_ci")]
    if not compared:
        return []
    rest = [(g, h) for g, h in compared if h["side"] != "above"]
    text = (f"Head-only training (the encoder frozen) scores {100 * head['best']['head'][1]['acc_mean']:.2f}%; "
            + ("every method adds" if not rest else f"{len(compared) - len(rest)} of {len(compared)} methods add")
            + " to it with an interval that excludes zero (Δ vs head only)")
    if rest:
        text += "; not " + ", ".join(f"{method_name(g['method'])} ({cells.diff_text(h)})" for g, h in rest)
    return [text + "."]


def first_bullet(head: dict, peft: list) -> str:
    """What the headline resolves against full FT: how many methods below, above and not told apart, and how fine."""
    epochs = runs.plural(head["key"]["epochs"], "epoch")
    below, above, tied = ([(g, c) for g, c in peft if c["side"] == side] for side in ("below", "above", "tied"))
    worst = max((-100 * c["diff_ci"][0] for _, c in tied), default=0.0)
    if len(peft) == 1:
        (g, _), = peft
        side = "below" if below else "above" if above else None
        text = (f"At {epochs}, {method_name(g['method'])} is {side} full FT, the interval excluding zero" if side
                else f"At {epochs}, {method_name(g['method'])} is not told apart from full FT, the interval "
                     f"ruling out a loss over {worst:.1f} points")
    else:
        # Names where they are few; past that the Verdict column already lists them, row by row.
        said = [f"{len(xs)} {what}" + (": " + ", ".join(method_name(g["method"]) for g, _ in xs) if len(xs) <= 4
                                       else "") for xs, what in (
            (below, "below full FT, the interval excluding zero"), (above, "above it"),
            (tied, f"not resolved, ruling out a loss over {worst:.1f} points")) if xs]
        text = f"At {epochs}, of {len(peft)} PEFT methods, " + "; ".join(said)
    halves = sorted(50 * (c["diff_ci"][1] - c["diff_ci"][0]) for _, c in peft)
    fine = sum(h < RESOLVES_POINTS for h in halves)
    widths = f"Half-width {halves[0]:.2f} points" if len(halves) == 1 else \
        f"Half-widths {halves[0]:.2f}-{halves[-1]:.2f} points ({fine} of {len(halves)} under {RESOLVES_POINTS:.0f})"
    return text + f". {widths}: " + ("fine enough for" if fine else "too wide for") + \
        " the 1-2 point gaps the reference report is about."


def findings_bullets(head: dict, rows: list, budget_note: str = "") -> list:
    """At most five sentences on what the intervals resolve, generated from them."""
    peft = [(g, s["vs_full"]) for g, s, _ in rows if s["vs_full"].get("diff_ci")]  # none for full FT or a collapse
    out = [first_bullet(head, peft), *head_only_bullet(head, rows)] if peft else []
    collapsed = [(g, s) for g, s, *_ in rows if s["collapsed"]]
    if collapsed:
        out.append("Collapsed (one class for at least 99% of reviews): " + ", ".join(
            f"{method_name(g['method'])} ({s['collapsed']} of {runs.plural(s['n'], 'seed')})" for g, s in collapsed)
            + ": failed runs, not measures of their methods.")
    seen = [f"{method_name(g['method'])}'s {gap:+.2f} ({model}) " + {"inside": "lies inside this interval"}.get(
        analysis.side_of(gap, c["diff_ci"]), f"{analysis.side_of(gap, c['diff_ci'])} it")
        for g, c in peft for gap, model in analysis.reference_gap(g["method"])]
    if seen:
        reference_models = " and ".join(f"{p['model']}-base" for p in analysis.REFERENCE_REPORT.values())
        out.append(f"The reference report ({reference_models}, {analysis.REFERENCE_SETTINGS}, no interval): "
                   + "; ".join(seen) + ": two measurements, not a replication.")
    if budget_note:
        out.append(budget_note)
    return [line for b in out[:5] for line in runs.wrap(b, 116, indent="  ", first="- ")]


def findings_section(part: str, head: dict, budget_note: str = "") -> list:
    """The Findings lines: what ran, the table (the model's size in its share column), what it resolves."""
    rows = analysis.findings_rows(head)
    ran = runs.setup_text(part, head["key"], analysis.setup_seeds(head),
                          analysis.validation_reviews(analysis.head_rows(head)))
    return ["## Findings", "", *runs.wrap(f"**What ran:** {ran}."), "",
            *findings_table(head, rows), "", *findings_bullets(head, rows, budget_note), ""]
