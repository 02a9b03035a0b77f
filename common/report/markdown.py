"""The markdown of results/summary.md (Findings, a section per part, how verdicts move with training, learning
rates, how to read it) and of results/other_runs.md (every group of runs outside the headlines)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from common import records, stats
from common.env import now_iso
from common.report.budget import SECTION, budget_data, budget_note, budget_section
from common.report.cells import (
    REFERENCE_REPORT,
    accuracy_cell,
    delta_cells,
    delta_verdict_cell,
    is_collapsed,
    labels,
    latency_cell,
    loss_cell,
    mcnemar_cell,
    memory_cell,
    rate_cell,
    seconds_cell,
    share_cell,
    size_cell,
    table,
)
from common.report.comparison import compare, summarize_group
from common.report.findings import findings_rows, findings_section, widest_part
from common.report.latest import last_command_section
from common.report.plots import plot_paths, write_plots
from common.report.runs import (
    HEADLINE_PROFILE,
    PARTS,
    SETUP_KEYS,
    format_rate,
    group_rows,
    head_rows,
    load_table,
    method_name,
    model_label,
    part_rows,
    pick_headline,
    plural,
    read_record,
    reviews_text,
    seeds_text,
    select,
    setup_seeds,
    setups,
    validation_reviews,
    warn_once,
    write_part_csvs,
)

OTHER_RUNS = "other_runs.md"
SETUP_LABELS = {"model": "model", "init": "weights", "profile": "profile", "train_samples": "train reviews",
                "test_samples": "test reviews", "max_length": "max tokens", "epochs": "epochs", "device": "device",
                "precision": "precision", "dropout_kernel": "dropout kernel"}


def wrap(text: str, width: int = 118) -> list:
    """A paragraph as lines a reader can read without scrolling sideways (markdown joins them again)."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


def setup_heading(part: str, key: dict, seeds: list, val_reviews=None) -> str:
    """What actually ran, in words: the model (and whose place it takes), data, device, precision, seeds."""
    reference_model = PARTS[part][1]
    name = model_label(key["model"])
    model = name if name == reference_model else f"{name} in place of {reference_model}"
    if key["init"] != "pretrained":
        model += f" ({key['init']} weights)"
    return (f"{model}; profile `{key['profile']}`: {reviews_text(key, val_reviews)}, {key['max_length']} tokens, "
            f"{plural(key['epochs'], 'epoch')}; {key['device']}, "
            f"{key['precision']}, {key['dropout_kernel']} dropout kernel; {seeds_text(seeds)}")


def differences(key: dict, head: dict) -> str:
    diffs = [f"{SETUP_LABELS[k]} {key[k]}" + (f" (headline: {head[k]})" if k != "model" else "")
             for k in SETUP_KEYS if key[k] != head[k]]
    return "; ".join(diffs) or "same setup, other learning rates"


# ------------------------------------------------------------------------------------------------ tables


def part_table(output_dir: Path, part: str, members: list, base, said: bool, reference: bool) -> list:
    """One row per group. said: the Findings already give this part's share, Δ, verdict, time and size, so the
    table keeps only what they do not."""
    full_params = base[1]["trainable_params"] if base else None
    header = ["Method"] + ([] if said else ["Trainable, % of full FT", "Δ vs full FT, points [95% CI]", "Verdict"]) + \
        ["Accuracy, mean ± sd [95% CI]", "McNemar p < 0.05", "Loss", "Learning rate"] + \
        ([] if said else ["Train time / seed", "Saved"]) + ["Latency, batch 1"]
    gpu = any(s.get("peak_mem_allocated_mib") is not None for _, s in members)
    header += ["Peak GPU memory"] if gpu else []
    header += (["Reference report: accuracy"] if reference and not said else []) + \
        (["Reference report: cost"] if reference else [])
    body = []
    for name, (g, s) in zip(labels(members), members):
        c = compare(output_dir, base[0], g) if base and g["method"] != "full" else {}
        listed = any(r["made_for"] != r["part"] for r in g["rows"])  # made for another part
        row = [name + ("¹" if g["train_pooler"] else "") + ("²" if listed else "")]
        if not said:
            d, v = delta_cells(c, s) if g["method"] != "full" else ("–", "reference")
            row += [share_cell(s, full_params), d, v]
        row += [accuracy_cell(s), mcnemar_cell(c, s), loss_cell(s), rate_cell(g, s)]
        if not said:
            row += [seconds_cell(s["train_time_s"]), size_cell(s["saved_bytes"])]
        row += [latency_cell(s)] + ([memory_cell(s)] if gpu else [])
        if reference:
            ref = REFERENCE_REPORT.get(part, {})
            acc = ref.get("accuracy", {}).get(g["method"])
            row += ([] if said else [f"{acc}%" if acc else "–"]) + [ref.get("cost", {}).get(g["method"], "–")]
        body.append(row)
    return table(header, body)


# Up to this many methods the pairwise table sits in the summary with its columns named; past it, it moves to
# other_runs.md with its columns numbered (18 names across would not fit a page).
NAMED_COLUMNS = 8


def pairwise_apart(members: list) -> bool:
    """Whether a headline's pairwise table is too wide for the summary: in other_runs.md, columns numbered."""
    return len(members) > NAMED_COLUMNS

PAIRWISE = "Which methods beat which?"
PAIRWISE_ANCHOR = "which-methods-beat-which"


def pairwise_lines(output_dir: Path, members: list) -> list:
    """With three or more methods: every pair, row minus column on paired seeds, a star where the 95% interval
    excludes zero. Collapsed methods are left out (a failed run is no measure of a method)."""
    kept = [(g, s) for g, s in members if not is_collapsed(s)]
    if len(kept) < 3:
        return []
    names = labels(kept)
    numbered = pairwise_apart(members)
    heads = [str(i + 1) for i in range(len(names))] if numbered else names
    names = [f"{i + 1}. {n}" for i, n in enumerate(names)] if numbered else names
    lines = [("" if numbered else f"**{PAIRWISE}** ") + "Accuracy of the row minus the column, points, on paired "
             "seeds; * marks a 95% interval that excludes zero"
             + ("; columns numbered as the rows." if numbered else "."), "",
             "| | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for i, (ga, _) in enumerate(kept):
        cells = []
        for j, (gb, _) in enumerate(kept):
            c = compare(output_dir, gb, ga) if i != j else {}
            ci = c.get("diff_ci")
            cells.append("–" if i == j else "?" if "diff_mean" not in c else
                         f"{100 * c['diff_mean']:+.1f}" + ("*" if ci and (ci[0] > 0 or ci[1] < 0) else ""))
        lines.append(f"| {names[i]} | " + " | ".join(cells) + " |")
    left = [method_name(g["method"]) for g, s in members if is_collapsed(s)]
    return lines + ([""] + wrap(f"Left out, collapsed: {', '.join(left)}.") if left else []) + [""]


def part_setups(output_dir: Path, part: str, run_table) -> list:
    """A part's completed runs gathered into setups, each group with its statistics."""
    groups = group_rows(part_rows(run_table, part))
    return setups(groups, [summarize_group(output_dir, g) for g in groups])


def _sources(st: dict) -> set:
    return {r["run_id"] for r in head_rows(st)}


def part_section(output_dir: Path, part: str, head, findings: dict, plots: bool) -> list:
    """A part's headline: its table (less what the Findings said), pairwise table and plots. A part whose runs are
    all in the Findings' table points there instead of repeating them."""
    lines = [f"## {PARTS[part][0]}", ""]
    if head is None:
        return lines + ["No completed runs yet.", ""]
    seeds = setup_seeds(head)
    members = list(head["best"].values())
    base = head["best"].get("full")
    covered = findings["part"] != part and _sources(head) <= findings["sources"]
    if covered:
        names = " and ".join(method_name(g["method"]) for g, _ in members)
        cost = REFERENCE_REPORT.get(part, {}).get("cost", {})
        lines += wrap(f"Its headline runs are the Findings' {names} rows (`made_for` in its CSV where they were "
                      f"not trained again). The reference report's cost, loss and size: "
                      + "; ".join(f"{method_name(g['method'])} {cost.get(g['method'], '–')}" for g, _ in members)
                      + ".") + [""]
        for stale in plot_paths(output_dir, part).values() if plots else ():  # they would be the Findings', again
            stale.unlink(missing_ok=True)
        return lines
    said = findings["part"] == part
    if not said:
        lines += wrap(f"Setup: {setup_heading(part, head['key'], seeds, validation_reviews(output_dir, head_rows(head)))}"
                      f".") + [""]
    lines += part_table(output_dir, part, members, base, said, reference=part in REFERENCE_REPORT) + [""]
    reused = sorted({r["made_for"] for r in head_rows(head) if r["made_for"] != r["part"]})
    if reused:
        lines += wrap(f"² Runs made for {' or '.join(reused)} with the same model, data and settings, listed here "
                      f"without training again (`made_for` in the CSV, `parts` in the record).") + [""]
    if pairwise_apart(members):  # a matrix this size is a reference, not a glance
        lines += wrap(f"Every pair of methods, row minus column: [{OTHER_RUNS}]({OTHER_RUNS}#{PAIRWISE_ANCHOR}).") + [""]
    elif len(members) >= 3:
        lines += pairwise_lines(output_dir, members)
    if plots:
        made = write_plots(output_dir, part, head)
        lines += [" ".join(f"![{p.stem}](plots/{p.name})" for p in made), ""]
    return lines


def other_runs_lines(output_dir: Path, part: str, all_setups: list, head) -> list:
    """Every group of a part's runs outside its headline, by setup, labelled by what differs from the headline."""
    others = [st for st in all_setups if st is not head] + ([dict(head, extra_only=True)] if head and head["extra"]
                                                           else [])
    if not others:
        return []
    lines = [f"## {PARTS[part][0]}", ""]
    for st in others:
        members = st["extra"] if st.get("extra_only") else list(st["best"].values()) + st["extra"]
        sd = sorted({x for _, s in members for x in s["seeds"]})
        st_rows = [r for g, _ in members for r in g["rows"]]
        lines += [f"### {differences(st['key'], head['key'])}", "",
                  *wrap(f"{setup_heading(part, st['key'], sd, validation_reviews(output_dir, st_rows))}."), ""]
        lines += part_table(output_dir, part, members, st["best"].get("full"), said=False, reference=False) + [""]
    return lines


# ------------------------------------------------------------------------------------------------ learning rates


def _val_samples(sweep_dir: Path, score: dict):
    """Validation reviews behind a score: in the pick, or (picks made before it was kept there) in the run's record."""
    if score.get("val_samples"):
        return score["val_samples"]
    rec = read_record(sweep_dir, score["run_id"])
    return (rec or {}).get("data", {}).get("val_samples")


def _val_cell(score: dict, n) -> str:
    """One rate's validation accuracy with its 95% Wilson interval over the n validation reviews."""
    rate = format_rate(score["learning_rate"])
    acc = score.get("val_accuracy")
    if acc is None:
        return f"{rate}: –"
    if score.get("collapsed"):
        return f"{rate}: collapsed"
    text = f"{rate}: {100 * acc:.1f}%"
    if n:
        lo, hi = stats.wilson_interval(round(acc * n), n)
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text


def _runner_up_cell(p: dict) -> str:
    gap = p.get("runner_up")
    if not gap:
        return "–" if "runner_up" in p else "not compared (an earlier sweep)"
    verdict = "resolved" if gap["resolved"] else "**not distinguishable**"
    return (f"{format_rate(gap['learning_rate'])}: {100 * gap['diff']:+.1f} [{100 * gap['ci'][0]:+.1f}, "
            f"{100 * gap['ci'][1]:+.1f}], {verdict}")


def _edge_flag(p: dict) -> str:
    """A pick on the lowest or highest rate searched: the best rate may lie past it."""
    grid = sorted(p.get("grid") or [])
    if len(grid) < 2 or grid[0] < p["learning_rate"] < grid[-1]:
        return ""
    return f" **at the {'lowest' if p['learning_rate'] == grid[0] else 'highest'} rate searched**"


def lr_lines(output_dir: Path, keep) -> list:
    """The learning-rate picks whose profile keep(profile) accepts, one row each."""
    picks = output_dir / "sweep" / "picks.json"
    try:
        all_picks = json.loads(picks.read_text()) if picks.is_file() else {}
    except ValueError as e:
        warn_once(picks, "damaged picks file, the learning-rate table left out", e)
        all_picks = {}
    rows = {}
    for key, p in all_picks.items():
        part, method, profile = key.split("/", 2)  # a profile may be a path
        if not keep(profile):
            continue
        scores = ", ".join(_val_cell(sc, _val_samples(output_dir / "sweep", sc)) for sc in p["scores"])
        row = [scores, f"{format_rate(p['learning_rate'])}{_edge_flag(p)}", _runner_up_cell(p)]
        # The parts share one sweep where they share a setup (full FT in all three): one row, its parts named.
        rows.setdefault((method, profile, tuple(row)), []).append(part)
    rows = [[f"{'+'.join(parts)}/{method}/{profile}", *row] for (method, profile, row), parts in rows.items()]
    if not rows:
        return []
    return table(["Part / method / profile", "Validation accuracy per rate [95% CI]", "Picked",
                  "Pick − runner-up, points [95% CI]"], rows) + [""]


def lr_pointer(output_dir: Path, keep) -> list:
    """The summary's word on the headlines' learning rates: where the table is, and the picks on a grid's edge."""
    rows = lr_lines(output_dir, keep)
    if not rows:
        return []
    picks = [r for r in rows[2:] if r.startswith("| ")]
    edge = [r.split(" | ")[0].strip("| ").split("/")[1] for r in picks if "rate searched**" in r]
    text = (f"Each headline rate was picked on the validation reviews, never the test reviews, one run per rate at "
            f"seed 0 (every rate's score and the pick's margin: [{OTHER_RUNS}]({OTHER_RUNS}#learning-rate-selection)).")
    if edge:
        text += (f" {len(edge)} of {len(picks)} picks sit on an edge of their grid, where the best rate may lie "
                 f"past it: {', '.join(method_name(m) for m in edge)}.")
    return ["## Learning-rate selection", "", *wrap(text), ""]


# ------------------------------------------------------------------------------------------------ how to read


def how_to_read(output_dir: Path, n_runs: int, essential: bool = True) -> list:
    """The notes the tables point to, each said once: the four every table needs (essential) in the summary, the
    others in other_runs.md, which the summary links."""
    notes = [
        "**Intervals** are 95%. Over several seeds they count both sources of chance: seed-to-seed variation and "
        "the sample of test reviews every seed is scored on (`common.stats.crossed_interval`: two-way variance "
        "components of seeds x reviews, Satterthwaite's degrees of freedom; `tests/test_coverage.py` requires it to "
        "cover a known true gap "
        "93-97% of the time, in simulated studies of 3 and 5 seeds and in the study's own regime). One seed: a "
        "bootstrap over the test reviews. A Δ pairs each method with full fine-tuning seed by seed on the same reviews.",
        "**Verdicts**: \"below by x\" / \"above by x\" when the interval of the difference excludes zero; \"no "
        "difference resolved\" when it holds zero (its width says how large a gap it rules out).",
        f"**Collapsed**: a run whose test predictions are at least {stats.COLLAPSE_SHARE:.0%} one class. A method "
        "with any collapsed seed gets no Δ, interval or test: a failed run, not a measure of the method.",
        "**McNemar p < 0.05**: seeds whose exact McNemar test on paired test predictions finds the two methods' "
        "errors different, with the largest p.",
        "**Headline**: per part, the `" + HEADLINE_PROFILE + "` profile's setup where it has runs, else the setup "
        "comparing the most methods with the most seeds. The Findings show the part whose headline compares the "
        f"most methods. Every other group of runs is in [{OTHER_RUNS}]({OTHER_RUNS}). {n_runs} completed runs in all.",
        "**¹ Pooler**: the BERT pooler trained too (`peft.train_pooler`), counted in the trainable parameters. "
        "all-MiniLM-L6-v2 was trained with mean pooling, so its pooler (the dense + tanh over [CLS] that the "
        "classifier reads) is barely trained; full fine-tuning trains it, so every method that reads it does too, "
        "standing in for the head layer the reference settings train. Frozen, it cost LoRA 2-5 points and made "
        "prompt-style methods collapse. Off at the reference settings, which keep the reference's counts.",
        "**Loss** is the mean cross-entropy over the test reviews. It can disagree with accuracy: it also charges "
        "for confidence, heavily for confident mistakes. A lower loss with a lower accuracy is calibration, not "
        "evidence of being \"more stable\".",
        "**Train time** is the median over seeds of the training loop: a seed that shared the machine with other "
        "work moves a mean, not a median (each run's own time and the machine's load around it are in its record, "
        "`metrics.train_time_s` and, in runs from 2026-12-06 on, `metrics.cpu_load`). **Memory** is shown for GPU runs only "
        "(`torch.cuda.max_memory_allocated`): a CPU process's peak RSS includes what it held before training "
        "(libraries, data, earlier runs of the same command), so it does not compare methods; the records keep it "
        "(`metrics.peak_rss_mib`, `metrics.rss_start_mib`).",
        "**Saved**: what `output.save_model` kept in `results/models/` (auto: the adapter with its trained head; "
        "full fine-tuning keeps nothing unless `output.save_model: full`). **Latency**: one review per forward pass "
        "after 3 warm-up passes (median of 32), on one CPU thread or the run's GPU; merged: LoRA-style weights "
        "folded into the base model.",
        "**Reference report** figures are quoted from it (one run each on an A100, full data, 3 epochs), not produced "
        "here; its memory was probably read from nvidia-smi and does not compare with these runs.",
        "**Learning rates** are picked by `make sweep` on the validation split (never the test split), one run per "
        "rate at seed 0: the best final validation accuracy, ties to the lower validation loss, then the smaller "
        "rate; a collapsed rate is never picked while another learned. Rates are Wilson 95% intervals over the "
        "validation reviews; the last column compares the pick with the runner-up on the same reviews. A pick at "
        "the edge of its grid is flagged: the best rate may lie past it.",
    ]
    keep = ("**Intervals**", "**Verdicts**", "**Collapsed**", "**¹ Pooler**", "**Loss**", "**Reference report**")
    notes = [n for n in notes if n.startswith(keep) == essential]
    head = ["## How to read this report", ""] if essential else ["## How to read these reports", ""]
    if essential:
        notes.append(f"The other notes (headline, train time and memory, saved weights, learning rates): "
                     f"[{OTHER_RUNS}]({OTHER_RUNS}#how-to-read-these-reports).")
    return head + [line for n in notes for line in ["- " + wrap(n, 116)[0]] + ["  " + x for x in wrap(n, 116)[1:]]]


# ------------------------------------------------------------------------------------------------ summary


def summary_lines(out: Path, run_table, plots: bool, latest: bool = True) -> tuple:
    """(lines of summary.md, what other_runs.md needs) from one table of runs; latest: open with the folder's last
    command."""
    all_setups = {part: part_setups(out, part, run_table) for part in PARTS}
    heads = {part: pick_headline(all_setups[part]) for part in PARTS}
    budgets = {part: budget_data(out, part, all_setups[part], heads[part]) for part in PARTS}
    n_runs = sum(len(head_rows(st)) + sum(s["n"] for _, s in st["extra"]) for ss in all_setups.values() for st in ss)
    lines = ["# imdb-peft: results summary", ""] + (last_command_section(out, run_table) if latest else [])
    top = widest_part(heads)
    findings = {"part": top, "sources": set()}
    if top:
        head = heads[top]
        columns, rows = budgets[top]
        note = budget_note(columns, rows) if columns else ""
        section, _ = findings_section(out, top, head, validation_reviews(out, head_rows(head)), note)
        lines += section
        findings["sources"] = _sources(head)
    for part in PARTS:
        lines += part_section(out, part, heads[part], findings, plots)
    budget = [line for part in PARTS for line in budget_section(out, part, *budgets[part], plots)]
    if budget:
        lines += [f"## {SECTION}", ""] + budget
    # The headlines' picks here; the other budgets' (their rates are in the training table) and the rest with the
    # other runs.
    shown = {st["key"]["profile"] for st in heads.values() if st}
    lines += lr_pointer(out, lambda profile: profile in shown)
    lines += how_to_read(out, n_runs)
    return lines, (all_setups, heads, shown, n_runs)


def write_summary(output_dir: str = "results", plots: bool = True) -> Path:
    """Regenerate summary.md, other_runs.md and the part CSVs from the run records (and their predictions), the
    sweep's CSVs too where it has runs."""
    out = Path(output_dir)
    run_table = load_table(out)
    write_part_csvs(out, run_table)
    sweep = records.sweep_dir(output_dir)
    if records.runs_dir(str(sweep)).is_dir():
        write_part_csvs(sweep, load_table(sweep))
    lines, other = summary_lines(out, run_table, plots)
    lines += [""] + wrap(f"Generated by `python -m common.report --output-dir {output_dir}` at {now_iso()} from "
                         f"the run records (runs/, the part CSVs too); the other runs: [{OTHER_RUNS}]({OTHER_RUNS}).")
    path = out / "summary.md"
    records.write_atomic(path, ("\n".join(lines) + "\n").encode())
    write_other_runs(out, *other)
    return path


def selected_summary(output_dir: str, **selection) -> str:
    """The summary of the runs a selection keeps (runs.select), as text: the folder's own files are left as they are."""
    out = Path(output_dir)
    lines, _ = summary_lines(out, select(load_table(out), **selection), plots=False, latest=False)
    said = ", ".join(f"{k} {' '.join(v) if isinstance(v, (list, tuple)) else v}" for k, v in selection.items() if v)
    return "\n".join(lines[:2] + [f"Runs of `{output_dir}` selected by {said or 'nothing'}.", ""] + lines[2:]) + "\n"


def side_by_side(dirs: list, **selection) -> str:
    """Two or more output folders' headline comparisons in one table per part: each method's accuracy and Δ vs
    full FT [95% CI] in each folder, with the setup each headline ran."""
    lines = ["# imdb-peft: " + " beside ".join(f"`{d}`" for d in dirs), ""]
    heads = []
    for d in dirs:
        runs = select(load_table(Path(d)), **selection)
        heads.append({part: pick_headline(part_setups(Path(d), part, runs)) for part in PARTS})
    for part in PARTS:
        shown = [(Path(d), h[part]) for d, h in zip(dirs, heads) if h[part]]
        if not shown:
            continue
        lines += [f"## {PARTS[part][0]}", ""]
        lines += [f"- `{d}`: {setup_heading(part, h['key'], setup_seeds(h))}" for d, h in shown] + [""]
        cells = {}
        for i, (d, h) in enumerate(shown):
            for g, s, c, _ in findings_rows(d, h):
                cells.setdefault(g["method"], ["–"] * (2 * len(shown)))[2 * i: 2 * i + 2] = [
                    accuracy_cell(s, with_ci=False), delta_verdict_cell(c, s) if g["method"] != "full" else "reference"]
        header = ["Method"] + [x for d, _ in shown for x in (f"`{d}`: accuracy", f"`{d}`: Δ vs full FT [95% CI]")]
        lines += table(header, [[method_name(m), *row] for m, row in cells.items()]) + [""]
    return "\n".join(lines) + "\n"


def write_other_runs(out: Path, all_setups: dict, heads: dict, shown: set, n_runs: int) -> Path:
    """results/other_runs.md: the groups of runs and learning-rate picks that summary.md does not show."""
    lines = ["# imdb-peft: other runs", "", *wrap("Every group of completed runs outside the headlines of "
             "[summary.md](summary.md), per part and setup, labelled by what differs from that part's headline; "
             "the notes in its \"How to read this report\" apply here too."), ""]
    for part in PARTS:
        lines += other_runs_lines(out, part, all_setups[part], heads[part])
    big = [(part, st) for part, st in heads.items() if st and pairwise_apart(list(st["best"].values()))]
    if big:
        lines += [f"## {PAIRWISE}", ""]
        for part, st in big:
            lines += [f"### {PARTS[part][0]}", "", *pairwise_lines(out, list(st["best"].values()))]
    lr = lr_lines(out, lambda profile: profile in shown)
    if lr:
        lines += ["## Learning-rate selection", ""] + lr
    lr = lr_lines(out, lambda profile: profile not in shown)
    if lr:
        lines += ["## Learning-rate picks of other profiles", ""] + lr
    lines += how_to_read(out, n_runs, essential=False)
    path = out / OTHER_RUNS
    records.write_atomic(path, ("\n".join(lines) + "\n").encode())
    return path
