"""The markdown of results/summary.md (Findings, a section per part, how verdicts move with training, learning
rates, how to read it) and of results/other_runs.md (every group of runs outside the headlines)."""
from __future__ import annotations

import os
from pathlib import Path

from common import analysis, records, stats
from common.analysis import part_setups
from common.env import now_iso
from common.methods import label as method_name
from common.report import budget, cells, runs
from common.report.findings import findings_section
from common.report.latest import last_command_section
from common.report.plots import plot_paths, write_plots
from common.report.runs import wrap
from common.schema import PROJECT_ROOT
from common.table import load_sweep_table, load_table, read_json, select, write_part_csvs

OTHER_RUNS = "other_runs.md"
SETUP_LABELS = {"model": "model", "init": "weights", "profile": "profile", "train_samples": "train reviews",
                "test_samples": "test reviews", "max_length": "max tokens", "epochs": "epochs", "device": "device",
                "precision": "precision", "dropout_kernel": "dropout kernel"}
# Up to this many methods the pairwise table sits in the summary with its columns named; past it, it moves to
# other_runs.md with its columns numbered (18 names across would not fit a page).
NAMED_COLUMNS = 8
PAIRWISE = "Which methods beat which?"


def part_table(part: str, members: list, base, said: bool, reference: bool) -> list:
    """One row per group. said: the Findings already give this part's share, Δ, verdict, time and size, so the
    table keeps only what they do not."""
    full_params = base[1]["trainable_params"] if base else None
    ref = analysis.REFERENCE_REPORT.get(part, {})
    name = dict(zip((id(g) for g, _ in members), cells.labels(members)))
    return cells.method_table([
        ("Method", lambda g, *_: name[id(g)] + ("¹" if g["train_pooler"] else "")
         + ("²" if any(r["made_for"] != r["part"] for r in g["rows"]) else "")),  # ²: made for another part
        *([] if said else [("Trainable, % of full FT", lambda g, s: cells.share_cell(s, full_params)),
                           "Δ vs full FT, points [95% CI]", "Verdict"]),
        "Accuracy, mean ± sd [95% CI]", "McNemar p < 0.05", "Loss", "Learning rate",
        *([] if said else ["Train time / seed", "Saved"]), "Latency, batch 1",
        *(["Peak GPU memory"] if any(s.get("peak_mem_allocated_mib") is not None for _, s in members) else []),
        *([("Reference report: accuracy", lambda g, *_: f"{ref['accuracy'][g['method']]}%"
            if g["method"] in ref.get("accuracy", {}) else "–")] if reference and not said else []),
        *([("Reference report: cost", lambda g, *_: ref.get("cost", {}).get(g["method"], "–"))] if reference else [])],
        members)


def pairwise_lines(members: list) -> list:
    """With three or more methods: every pair, row minus column on paired seeds, a star where the 95% interval
    excludes zero. Collapsed methods are left out (a failed run is no measure of a method)."""
    kept = [(g, s) for g, s in members if not s["collapsed"]]
    if len(kept) < 3:
        return []
    names, numbered = cells.labels(kept), len(members) > NAMED_COLUMNS
    heads = [str(i + 1) for i in range(len(names))] if numbered else names
    names = [f"{i + 1}. {n}" for i, n in enumerate(names)] if numbered else names
    lines = [("" if numbered else f"**{PAIRWISE}** ") + "Accuracy of the row minus the column, points, on paired "
             "seeds; * marks a 95% interval that excludes zero" + ("; columns numbered as the rows." if numbered
                                                                    else "."), "",
             "| | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for name, row in zip(names, analysis.pairwise(kept)):  # – on the diagonal, ? without paired seeds
        said = ["–" if not c else "?" if "diff_mean" not in c else f"{100 * c['diff_mean']:+.1f}"
                + "*" * (c.get("side", "tied") != "tied") for c in row]
        lines.append(f"| {name} | " + " | ".join(said) + " |")
    left = [method_name(g["method"]) for g, s in members if s["collapsed"]]
    return lines + ([""] + wrap(f"Left out, collapsed: {', '.join(left)}.") if left else []) + [""]


def part_section(out: Path, part: str, head, findings: dict, plots: bool) -> list:
    """A part's headline: its table (less what the Findings said), pairwise table and plots. A part whose runs are
    all in the Findings' table points there instead of repeating them."""
    lines = [f"## {runs.PARTS[part][0]}", ""]
    if head is None:
        return lines + ["No completed runs yet.", ""]
    members = list(head["best"].values())
    if findings["part"] != part and {r["run_id"] for r in analysis.head_rows(head)} <= findings["sources"]:
        cost = analysis.REFERENCE_REPORT.get(part, {}).get("cost", {})
        lines += wrap(f"Its headline runs are the Findings' {' and '.join(method_name(g['method']) for g, _ in members)}"
                      f" rows (`made_for` in its CSV where they were not trained again). The reference report's cost, "
                      f"loss and size: " + "; ".join(f"{method_name(g['method'])} {cost.get(g['method'], '–')}"
                                                    for g, _ in members) + ".") + [""]
        for stale in plot_paths(out, part).values() if plots else ():  # they would be the Findings', again
            stale.unlink(missing_ok=True)
        return lines
    said = findings["part"] == part
    if not said:
        val = analysis.validation_reviews(analysis.head_rows(head))
        lines += wrap(f"Setup: {runs.setup_text(part, head['key'], analysis.setup_seeds(head), val)}.") + [""]
    lines += part_table(part, members, head["best"].get("full"), said, part in analysis.REFERENCE_REPORT) + [""]
    reused = sorted({r["made_for"] for r in analysis.head_rows(head) if r["made_for"] != r["part"]})
    if reused:
        lines += wrap(f"² Runs made for {' or '.join(reused)} with the same model, data and settings, listed here "
                      f"without training again (`made_for` in the CSV, `parts` in the record).") + [""]
    if len(members) > NAMED_COLUMNS:  # a matrix this size is a reference, not a glance
        lines += wrap(f"Every pair of methods, row minus column: [{OTHER_RUNS}]({OTHER_RUNS}#which-methods-beat-which)"
                      f".") + [""]
    elif len(members) >= 3:
        lines += pairwise_lines(members)
    if plots:
        lines += [" ".join(f"![{p.stem}](plots/{p.name})" for p in write_plots(out, part, head)), ""]
    return lines


def other_runs_lines(part: str, all_setups: list, head) -> list:
    """Every group of a part's runs outside its headline, by setup, labelled by what differs from the headline."""
    others = [(st, list(st["best"].values()) + st["extra"]) for st in all_setups if st is not head] + \
        ([(head, head["extra"])] if head and head["extra"] else [])  # the headline's other learning rates
    lines = [f"## {runs.PARTS[part][0]}", ""] if others else []
    for st, members in others:
        seeds = sorted({x for _, s in members for x in s["seeds"]})
        diffs = "; ".join(f"{SETUP_LABELS[k]} {st['key'][k]}" + (f" (headline: {head['key'][k]})" if k != "model" else "")
            for k in analysis.SETUP_KEYS if st["key"][k] != head["key"][k]) or "same setup, other learning rates"
        val = analysis.validation_reviews([r for g, _ in members for r in g["rows"]])
        lines += [f"### {diffs}", "", *wrap(f"{runs.setup_text(part, st['key'], seeds, val)}."), "",
                  *part_table(part, members, st["best"].get("full"), said=False, reference=False), ""]
    return lines


def _val_cell(score: dict, n) -> str:
    """One rate's validation accuracy with its 95% Wilson interval over the n validation reviews."""
    rate, acc = runs.format_rate(score["learning_rate"]), score.get("val_accuracy")
    if acc is None or score.get("collapsed") or not n:
        return f"{rate}: " + ("–" if acc is None else "collapsed" if score.get("collapsed") else f"{100 * acc:.1f}%")
    lo, hi = stats.wilson_interval(round(acc * n), n)
    return f"{rate}: {100 * acc:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def _runner_up_cell(p: dict) -> str:
    gap = p.get("runner_up")
    if not gap:
        return "–" if "runner_up" in p else "not compared (an earlier sweep)"
    return (f"{runs.format_rate(gap['learning_rate'])}: {100 * gap['diff']:+.1f} [{100 * gap['ci'][0]:+.1f}, "
            f"{100 * gap['ci'][1]:+.1f}], " + ("resolved" if gap["resolved"] else "**not distinguishable**"))


def lr_lines(picks: list) -> list:
    """The learning-rate table: per pick (analysis.rate_picks) every rate's validation accuracy, the pick, its margin."""
    return cells.table(["Part / method / profile", "Validation accuracy per rate [95% CI]", "Picked",
                        "Pick − runner-up, points [95% CI]"], [[
                            f"{'+'.join(x['parts'])}/{x['method']}/{x['profile']}",
                            ", ".join(_val_cell(sc, n) for sc, n in zip(x["pick"]["scores"], x["n"])),
                            runs.format_rate(x["pick"]["learning_rate"])
                            + (f" **at the {x['edge']} rate searched**" if x["edge"] else ""),
                            _runner_up_cell(x["pick"])] for x in picks]) + [""] if picks else []


def lr_pointer(picks: list) -> list:
    """The summary's word on the headlines' learning rates: where the table is, and the picks on a grid's edge."""
    if not picks:
        return []
    edge = [method_name(x["method"]) for x in picks if x["edge"]]
    text = (f"Each headline rate was picked on the validation reviews, never the test reviews, one run per rate at "
            f"seed 0 (every rate's score and the pick's margin: [{OTHER_RUNS}]({OTHER_RUNS}#learning-rate-selection)).")
    if edge:
        text += (f" {len(edge)} of {len(picks)} picks sit on an edge of their grid, where the best rate may lie "
                 f"past it: {', '.join(edge)}.")
    return ["## Learning-rate selection", "", *wrap(text), ""]


NOTES = PROJECT_ROOT / "docs" / "results.md"  # the notes every table needs, said once: there


def how_to_read(out: Path) -> list:
    """The notes every table needs, quoted from docs/results.md, and a link to its other notes."""
    notes = NOTES.read_text().split("<!-- summary notes -->\n")[1].split("<!-- end of summary notes -->")[0]
    return ["## How to read this report", "", *notes.splitlines(), *wrap(
        "- The other notes (which setup is the headline, train time and memory, saved weights and latency, McNemar, "
        f"learning rates): [docs/results.md]({_docs(out)}#reading-the-report).", 116, indent="  ")]


def _docs(out: Path) -> str:
    """docs/results.md as a link from a report in out."""
    return os.path.relpath(NOTES, Path(out).resolve())


def summary_lines(out: Path, run_table, sweep, plots: bool, latest: bool = True) -> tuple:
    """(lines of summary.md, what other_runs.md needs) from one table of runs; latest: open with the folder's last
    command."""
    all_setups = {part: part_setups(run_table, part) for part in runs.PARTS}
    heads = {part: analysis.pick_headline(all_setups[part]) for part in runs.PARTS}
    budgets = {part: analysis.budget_data(part, all_setups[part], heads[part], sweep) for part in runs.PARTS}
    lines = ["# imdb-peft: results summary", ""] + (last_command_section(out, run_table) if latest else [])
    top = analysis.widest_part(heads)
    findings = {"part": top, "sources": set()}
    if top:
        columns, rows = budgets[top]
        lines += findings_section(top, heads[top], budget.budget_note(columns, rows) if columns else "")
        findings["sources"] = {r["run_id"] for r in analysis.head_rows(heads[top])}
    for part in runs.PARTS:
        lines += part_section(out, part, heads[part], findings, plots)
    moves = [line for part in runs.PARTS for line in budget.budget_section(out, part, *budgets[part], plots)]
    lines += [f"## {budget.SECTION}", "", *moves] if moves else []
    # The headlines' picks here; the other budgets' (their rates are in the training table) with the other runs.
    shown = {st["key"]["profile"] for st in heads.values() if st}
    picks = read_json(out / "sweep" / "picks.json", "damaged picks file, the learning-rate table left out")
    lines += lr_pointer(analysis.rate_picks(picks, sweep, lambda profile: profile in shown))
    return lines + how_to_read(out), (all_setups, heads, shown, sweep, picks)


def write_summary(output_dir: str = "results", plots: bool = True) -> Path:
    """Regenerate summary.md, other_runs.md and the part CSVs from the run records (and their predictions), the
    sweep's CSVs too where it has runs."""
    out = Path(output_dir)
    run_table = load_table(out)
    write_part_csvs(out, run_table)
    sweep = load_sweep_table(out)
    if sweep is not None:
        write_part_csvs(records.sweep_dir(output_dir), sweep)
    lines, other = summary_lines(out, run_table, sweep, plots)
    lines += [""] + wrap(f"Generated by `python -m common.report --output-dir {output_dir}` at {now_iso()} from "
                         f"the run records (runs/, the part CSVs too); the other runs: [{OTHER_RUNS}]({OTHER_RUNS}).")
    path = out / "summary.md"
    records.write_atomic(path, ("\n".join(lines) + "\n").encode())
    write_other_runs(out, *other)
    return path


def selected_summary(output_dir: str, **selection) -> str:
    """The summary of the runs a selection keeps (table.select), as text: the folder's own files are left as they are."""
    out = Path(output_dir)
    lines, _ = summary_lines(out, select(load_table(out), **selection), load_sweep_table(out), plots=False,
                             latest=False)
    said = ", ".join(f"{k} {' '.join(v) if isinstance(v, (list, tuple)) else v}" for k, v in selection.items() if v)
    return "\n".join(lines[:2] + [f"Runs of `{output_dir}` selected by {said or 'nothing'}.", ""] + lines[2:]) + "\n"


def side_by_side(dirs: list, **selection) -> str:
    """Two or more output folders' headline comparisons in one table per part: each method's accuracy and Δ vs
    full FT [95% CI] in each folder, with the setup each headline ran."""
    lines = ["# imdb-peft: " + " beside ".join(f"`{d}`" for d in dirs), ""]
    tables = [select(load_table(Path(d)), **selection) for d in dirs]
    heads = [{part: analysis.pick_headline(part_setups(t, part)) for part in runs.PARTS} for t in tables]
    for part in runs.PARTS:
        shown = [(Path(d), h[part]) for d, h in zip(dirs, heads) if h[part]]
        if not shown:
            continue
        lines += [f"## {runs.PARTS[part][0]}", ""]
        lines += [f"- `{d}`: {runs.setup_text(part, h['key'], analysis.setup_seeds(h))}" for d, h in shown] + [""]
        by_method = {}
        for i, (d, h) in enumerate(shown):
            for g, s in h["best"].values():
                by_method.setdefault(g["method"], ["–"] * (2 * len(shown)))[2 * i: 2 * i + 2] = [
                    cells.accuracy_cell(s, with_ci=False), cells.delta_verdict_cell(g, s)]
        header = ["Method"] + [x for d, _ in shown for x in (f"`{d}`: accuracy", f"`{d}`: Δ vs full FT [95% CI]")]
        lines += cells.table(header, [[method_name(m), *row] for m, row in by_method.items()]) + [""]
    return "\n".join(lines) + "\n"


def write_other_runs(out: Path, all_setups: dict, heads: dict, shown: set, sweep, picks: dict) -> Path:
    """results/other_runs.md: the groups of runs and learning-rate picks that summary.md does not show."""
    n_runs = sum(len(analysis.head_rows(st)) + sum(s["n"] for _, s in st["extra"]) for ss in all_setups.values()
                 for st in ss)
    lines = ["# imdb-peft: other runs", "", *wrap(f"Every group of completed runs ({n_runs} in all) outside the "
             "headlines of [summary.md](summary.md), per part and setup, labelled by what differs from that part's "
             f"headline; the notes in its \"How to read this report\" and in [docs/results.md]({_docs(out)}"
             "#reading-the-report) apply here too."), ""]
    for part in runs.PARTS:
        lines += other_runs_lines(part, all_setups[part], heads[part])
    big = [(part, st) for part, st in heads.items() if st and len(st["best"]) > NAMED_COLUMNS]
    if big:
        lines += [f"## {PAIRWISE}", ""]
        for part, st in big:
            lines += [f"### {runs.PARTS[part][0]}", "", *pairwise_lines(list(st["best"].values()))]
    for title, keep in (("Learning-rate selection", lambda profile: profile in shown),
                        ("Learning-rate picks of other profiles", lambda profile: profile not in shown)):
        rows = analysis.rate_picks(picks, sweep, keep)
        lines += [f"## {title}", "", *lr_lines(rows)] if rows else []
    path = out / OTHER_RUNS
    records.write_atomic(path, ("\n".join(lines) + "\n").encode())
    return path
