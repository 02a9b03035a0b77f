"""The summary's first section in a folder of one's own runs: what the last command made, and whether each run
reproduces the committed study's run of the same computation."""
from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

from common import analysis, records
from common.analysis import compare
from common.methods import label as method_name
from common.report import cells, runs
from common.table import load_table, part_rows, read_json

SECTION = "Your last command"
# What makes two runs the same computation on any machine: every group key but the profile's name and the device.
SAME_SCIENCE = tuple(k for k in analysis.GROUP_KEYS if k not in ("profile", "device"))


def reproduction_cell(g: dict, committed: dict) -> str:
    """'reproduced' where the committed run of the same computation and seeds scores the same within the 95%
    interval of their paired difference (same test reviews), else 'differs by x points [CI]'; – without one."""
    twin = committed.get(tuple(g[k] for k in SAME_SCIENCE))
    if twin is None:
        return "– (not in the committed study)"
    if all(records.is_study(r["_dir"]) for r in g["rows"]):  # found done in the study: nothing was reproduced
        return f"– (the committed {'run' if len(g['rows']) == 1 else 'runs'}, listed: not trained here)"
    c = compare(twin, g)
    if "diff_mean" not in c:
        return "– (no committed run of these seeds)"
    ci = c.get("diff_ci") or (c["diff_mean"], c["diff_mean"])
    seeds = runs.plural(len(c["seeds"]), "seed")
    if ci[0] <= 0 <= ci[1]:
        return f"reproduced ({seeds}, {100 * c['diff_mean']:+.2f} [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}])"
    return f"differs by {100 * c['diff_mean']:+.2f} points [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}] ({seeds})"


def last_command_section(output_dir: Path, run_table) -> list:
    """The command, its date, machine and profile, then per setup it ran: each method's accuracy, Δ vs full FT
    [95% CI], verdict, train time and reproduction of the committed run; [] where no command is noted."""
    cmd = read_json(records.last_command_path(str(output_dir)), "damaged last-command file, its section left out")
    if not cmd or records.is_study(str(output_dir)):
        return []
    part = cmd.get("part")
    # By computation: a run made for another part is listed for this one under the id it was made with.
    wanted = {records.computation(r["run_id"]) for r in cmd.get("runs", [])}
    rows = [r for r in part_rows(run_table, part) if records.computation(r["run_id"]) in wanted] \
        if part in runs.PARTS else []
    outcomes = Counter(r["outcome"] for r in cmd.get("runs", []))
    said = (f"`{cmd['command']}` at {cmd['date']} on {cmd['device']}, profile "
            f"{', '.join(f'`{p}`' for p in cmd.get('profiles', []))}: "
            + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) + ".")
    lines = [f"## {SECTION}", "", *textwrap.wrap(said, 118, break_long_words=False, break_on_hyphens=False), ""]
    if not rows:
        return lines + ["No completed run to show.", ""]
    committed = {tuple(g[k] for k in SAME_SCIENCE): g for g in analysis.group_rows(part_rows(load_table(records.STUDY_DIR),
                                                                                        part))}
    for st in analysis.row_setups(rows):
        key = st["key"]
        lines += [f"{runs.PARTS[part][0]}; {runs.reviews_text(key)}, {runs.plural(key['epochs'], 'epoch')}, "
                  f"{key['precision']}, {runs.seeds_text(analysis.setup_seeds(st))}.", ""]
        lines += cells.method_table([("Method", lambda g, *_: method_name(g["method"])),
                                     ("Accuracy [95% CI]", lambda g, s, *_: cells.accuracy_cell(s)),
                                     "Δ vs full FT, points [95% CI]", "Verdict", "Train time / seed",
                                     ("Against the committed study", lambda g, *_: reproduction_cell(g, committed))],
                                    list(st["best"].values()) + st["extra"]) + [""]
    return lines
