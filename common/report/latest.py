"""The summary's first section in a folder of one's own runs: what the last command made, and whether each run
reproduces the committed study's run of the same computation."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from common import analysis, records
from common.methods import label as method_name
from common.report import cells, runs
from common.table import load_table, part_rows, read_json

SECTION = "Your last command"
NO_REPRODUCTION = {"absent": "– (not in the committed study)", "no seeds": "– (no committed run of these seeds)"}


def reproduction_cell(g: dict, committed: dict) -> str:
    """'reproduced' where the committed run of the same computation and seeds scores the same within the 95%
    interval of their paired difference (same test reviews), else 'differs by x points [CI]'; – without one."""
    how, c = analysis.reproduction(g, committed)
    if how == "listed":
        return f"– (the committed {'run' if len(g['rows']) == 1 else 'runs'}, listed: not trained here)"
    if how in NO_REPRODUCTION:
        return NO_REPRODUCTION[how]
    seeds, (x, _, ci) = runs.plural(len(c["seeds"]), "seed"), cells.diff_text(c).partition(" ")
    return f"reproduced ({seeds}, {cells.diff_text(c)})" if how == "reproduced" else \
        f"differs by {x} points{' ' + ci if ci else ''} ({seeds})"


def last_command_section(output_dir: Path, run_table) -> list:
    """The command, its date, machine and profile, then per setup it ran: each method's accuracy, Δ vs full FT
    [95% CI], verdict, train time and reproduction of the committed run; [] where no command is noted."""
    cmd = read_json(records.last_command_path(str(output_dir)), "damaged last-command file, its section left out")
    if not cmd or records.is_study(str(output_dir)):
        return []
    part, rows = cmd.get("part"), analysis.command_rows(cmd, run_table)
    outcomes = Counter(r["outcome"] for r in cmd.get("runs", []))
    said = (f"`{cmd['command']}` at {cmd['date']} on {cmd['device']}, profile "
            f"{', '.join(f'`{p}`' for p in cmd.get('profiles', []))}: "
            + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) + ".")
    lines = [f"## {SECTION}", "", *runs.wrap(said), ""]
    if not rows:
        return lines + ["No completed run to show.", ""]
    committed = analysis.computations(part_rows(load_table(records.STUDY_DIR), part))
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
