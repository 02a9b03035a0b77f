"""The Findings that open the summary: what ran, one table of the widest headline, and what the numbers resolve."""
from __future__ import annotations

import textwrap
from pathlib import Path

from common.report.cells import (
    REFERENCE_REPORT,
    REFERENCE_SETTINGS,
    delta_cells,
    is_collapsed,
    reference_accuracy,
    reference_gap,
    seconds_cell,
    share_cell,
    size_cell,
    table,
)
from common.report.comparison import compare, diff_text
from common.report.runs import PARTS, method_name, model_label, plural, reviews_text, seeds_text, setup_seeds

# A gap of this many points is what the reference report is about (92.2 vs 89.9, 93.09 vs 90.79): an interval narrower
# than it on each side can tell such a gap from none.
RESOLVES_POINTS = 1.0


def widest_part(heads: dict):
    """The part whose headline compares the most methods (then the most seeds; the later part of equals)."""
    return max((p for p in heads if heads[p]), key=lambda p: (len(heads[p]["best"]), heads[p]["seeds"], p),
               default=None)


def what_ran(part: str, head: dict, val_reviews) -> str:
    """One sentence: model, data, budget, precision, device and seeds of the headline."""
    key = head["key"]
    full = head["best"].get("full")
    total = full[1].get("total_params") if full else None
    size = "" if not total else f", {total / 1e6:.1f}M parameters" if total >= 1e6 else f", {total:,.0f} parameters"
    name, reference_model = model_label(key["model"]), PARTS[part][1]
    model = name + size + ("" if name == reference_model else f", standing in for {reference_model}")
    if key["init"] != "pretrained":
        model += f", {key['init']} weights"
    return (f"**What ran:** {model}; profile `{key['profile']}`: {reviews_text(key, val_reviews)}, "
            f"{key['max_length']} tokens, {plural(key['epochs'], 'epoch')}, {key['precision']} on {key['device']}, "
            f"{seeds_text(setup_seeds(head))}.")


def findings_rows(output_dir: Path, head: dict) -> list:
    """Per method of the headline: (group, summary, comparison with full FT or {}, comparison with head only or {})."""
    base, floor = head["best"].get("full"), head["best"].get("head")
    floor = None if floor is None or is_collapsed(floor[1]) else floor
    return [(g, s, compare(output_dir, base[0], g) if base and g["method"] != "full" else {},
             compare(output_dir, floor[0], g) if floor and g["method"] != "head" and not is_collapsed(s) else {})
            for g, s in head["best"].values()]


def findings_table(head: dict, rows: list) -> list:
    full = head["best"].get("full")
    full_params = full[1]["trainable_params"] if full else None
    denom = f"% of full FT's {full_params:,.0f}" if full_params else "% of full FT's"
    reference = any(reference_accuracy(g["method"]) != "–" for g, *_ in rows)
    floor = any(h for *_, h in rows)
    header = ["Method", f"Trainable, {denom}", "Accuracy", "Δ vs full FT, points [95% CI]", "Verdict"] + \
        (["Δ vs head only [95% CI]"] if floor else []) + ["Train time / seed", "Saved"] + \
        (["Reference report"] if reference else [])
    body = []
    for g, s, c, h in rows:
        acc = "–" if s["acc_mean"] is None else f"{100 * s['acc_mean']:.2f}%"
        d, v = delta_cells(c, s) if g["method"] != "full" else ("–", "reference")
        cells = [method_name(g["method"]) + ("¹" if g["train_pooler"] else ""), share_cell(s, full_params), acc, d, v]
        if floor:
            cells.append(diff_text(h) if h.get("diff_ci") else "–")
        cells += [seconds_cell(s["train_time_s"]), size_cell(s["saved_bytes"])]
        if reference:
            cells.append(reference_accuracy(g["method"]))
        body.append(cells)
    return table(header, body)


def _excludes_zero(c: dict) -> bool:
    return c["diff_ci"][0] > 0 or c["diff_ci"][1] < 0


def head_only_bullet(head: dict, rows: list) -> list:
    """What the methods add over training the head alone (the encoder frozen): which beat it, from the table's
    Δ vs head only; [] when head only did not run or collapsed."""
    compared = [(g, h) for g, _, _, h in rows if h.get("diff_ci")]
    if not compared:
        return []
    acc = 100 * head["best"]["head"][1]["acc_mean"]
    beat = [g for g, h in compared if h["diff_ci"][0] > 0]
    rest = [(g, h) for g, h in compared if not h["diff_ci"][0] > 0]
    text = (f"Head-only training (the encoder frozen) scores {acc:.2f}%; "
            + ("every method adds" if not rest else f"{len(beat)} of {len(compared)} methods add") + " to it with an "
            "interval that excludes zero (Δ vs head only)")
    if rest:
        text += "; not " + ", ".join(f"{method_name(g['method'])} ({diff_text(h)})" for g, h in rest)
    return [text + "."]


def findings_bullets(output_dir: Path, head: dict, rows: list, budget_note: str = "") -> list:
    """At most five sentences on what the intervals resolve, generated from them."""
    epochs = plural(head["key"]["epochs"], "epoch")
    peft = [(g, s, c) for g, s, c, _ in rows if g["method"] != "full" and c.get("diff_ci") and not is_collapsed(s)]
    below = [(g, c) for g, s, c in peft if c["diff_ci"][1] < 0]
    above = [(g, c) for g, s, c in peft if c["diff_ci"][0] > 0]
    tied = [(g, c) for g, s, c in peft if not _excludes_zero(c)]
    # Names where they are few; past that the Verdict column already lists them, row by row.
    names = lambda xs: (": " + ", ".join(method_name(g["method"]) for g, _ in xs)) if len(xs) <= 4 else ""  # noqa: E731
    out = []
    if peft:
        worst = max((-100 * c["diff_ci"][0] for _, c in tied), default=0.0)
        if len(peft) == 1:
            (g, _, c), = peft
            side = "below" if below else "above" if above else None
            text = (f"At {epochs}, {method_name(g['method'])} is {side} full FT, the interval excluding zero" if side
                    else f"At {epochs}, {method_name(g['method'])} is not told apart from full FT, the interval "
                         f"ruling out a loss over {worst:.1f} points")
        else:
            said = [f"{len(xs)} {what}{names(xs)}" for xs, what in (
                (below, "below full FT, the interval excluding zero"), (above, "above it"),
                (tied, f"not resolved, ruling out a loss over {worst:.1f} points")) if xs]
            text = f"At {epochs}, of {len(peft)} PEFT methods, " + "; ".join(said)
        halves = sorted(50 * (c["diff_ci"][1] - c["diff_ci"][0]) for _, _, c in peft)
        fine = sum(h < RESOLVES_POINTS for h in halves)
        widths = f"Half-width {halves[0]:.2f} points" if len(halves) == 1 else \
            f"Half-widths {halves[0]:.2f}-{halves[-1]:.2f} points ({fine} of {len(halves)} under {RESOLVES_POINTS:.0f})"
        out.append(text + f". {widths}: " + ("fine enough for" if fine else "too wide for") +
                   " the 1-2 point gaps the reference report is about.")
        out += head_only_bullet(head, rows)
    collapsed = [(g, s) for g, s, *_ in rows if is_collapsed(s)]
    if collapsed:
        out.append("Collapsed (one class for at least 99% of reviews): " + ", ".join(
            f"{method_name(g['method'])} ({s['collapsed']} of {plural(s['n'], 'seed')})" for g, s in collapsed)
            + ": failed runs, not measures of their methods.")
    seen = []
    for g, s, c, _ in rows:
        ci = c.get("diff_ci") if not is_collapsed(s) else None
        for gap, model in reference_gap(g["method"]) if ci else []:
            where = "inside" if 100 * ci[0] <= gap <= 100 * ci[1] else ("below" if gap < 100 * ci[0] else "above")
            seen.append(f"{method_name(g['method'])}'s {gap:+.2f} ({model}) lies {where} this interval")
    if seen:
        reference_models = " and ".join(f"{p['model']}-base" for p in REFERENCE_REPORT.values())
        out.append(f"The reference report ({reference_models}, {REFERENCE_SETTINGS}, no interval): "
                   + "; ".join(seen).replace(" lies above this interval", " above it").replace(
                       " lies below this interval", " below it") + ": two measurements, not a replication.")
    if budget_note:
        out.append(budget_note)
    return [line for b in out[:5] for line in textwrap.wrap(b, 116, initial_indent="- ", subsequent_indent="  ",
                                                              break_on_hyphens=False)]


def findings_section(output_dir: Path, part: str, head: dict, val_reviews, budget_note: str = "") -> tuple:
    """The Findings lines, and the rows they show (the part sections leave out what is said here)."""
    rows = findings_rows(output_dir, head)
    lines = ["## Findings", "", *textwrap.wrap(what_ran(part, head, val_reviews), 118, break_on_hyphens=False), "",
             *findings_table(head, rows), "", *findings_bullets(output_dir, head, rows, budget_note), ""]
    return lines, rows
