"""The analysis every report reads: the run table's rows grouped into configurations (seeds of one setting) and
setups (what a comparison holds fixed), their statistics, one configuration minus another on the same test reviews
(paired seeds, exact McNemar per seed), the budgets of a setup, per-seed curves, and the reference report's figures."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from common import records, stats
from common.table import as_float, part_rows

# The setup a reader sees first when it has runs: the study profile, made for comparisons that resolve.
HEADLINE_PROFILE = "study"
# A setup: everything a comparison holds fixed. Rows of one setup are compared with each other, never across.
# Where a learning rate came from (config or sweep) is not part of it: the same rate computes the same run.
SETUP_KEYS = ("model", "init", "profile", "train_samples", "test_samples", "max_length", "epochs", "device",
              "precision", "dropout_kernel")
# Rows with the same setup, method, learning rate and extra trained modules are seeds of one configuration.
GROUP_KEYS = SETUP_KEYS + ("method", "learning_rate", "train_pooler")


def group_rows(rows: list) -> list:
    groups = OrderedDict()
    for r in rows:
        groups.setdefault(tuple(r.get(k, "") for k in GROUP_KEYS), []).append(r)
    return [dict(zip(GROUP_KEYS, k), rows=v) for k, v in groups.items()]


def setups(groups: list, summaries: list) -> list:
    """Row groups gathered by setup. Each setup: {'key', 'best': method -> (group, summary), 'extra': [...]}.
    best holds, per method, the group with the most seeds (then the most recent); extra the other groups."""
    out = OrderedDict()
    for g, s in zip(groups, summaries):
        key = tuple(g[k] for k in SETUP_KEYS)
        out.setdefault(key, {"key": dict(zip(SETUP_KEYS, key)), "members": []})["members"].append((g, s))
    for st in out.values():
        st["best"], st["extra"] = OrderedDict(), []
        for g, s in sorted(st["members"], key=lambda gs: (gs[1]["n"], gs[1]["date"]), reverse=True):
            if g["method"] in st["best"]:
                st["extra"].append((g, s))
            else:
                st["best"][g["method"]] = (g, s)
        # Most accurate first (a collapsed group last): the table reads as a ranking.
        st["best"] = OrderedDict(sorted(st["best"].items(),
                                        key=lambda kv: (kv[1][1]["collapsed"] == kv[1][1]["n"], -kv[1][1]["acc_mean"])))
        full = st["best"].get("full")
        for g, s in st["members"]:  # Δ vs full FT, once for every view; none for a collapsed group: a failed run
            s["vs_full"] = compare(full[0], g) if full and g["method"] != "full" and not s["collapsed"] else {}
        st["seeds"] = min(s["n"] for _, s in st["best"].values())
        st["date"] = max(s["date"] for _, s in st["best"].values())
    return list(out.values())


def pick_headline(all_setups: list):
    """The setup a reader sees first: the study profile's where it has runs, then the one comparing the most
    methods, then with the most seeds (its least-repeated method's count), then the most recent."""
    return max(all_setups, default=None, key=lambda st: (st["key"]["profile"] == HEADLINE_PROFILE, len(st["best"]),
                                                         st["seeds"], st["date"]))


def head_rows(st: dict) -> list:
    return [r for g, _ in st["best"].values() for r in g["rows"]]


def setup_seeds(st: dict) -> list:
    """Every seed the headline groups of a setup ran."""
    return sorted({x for _, s in st["best"].values() for x in s["seeds"]})


def validation_reviews(rows: list):
    """Validation reviews the runs held out of train (from their records), or None when unknown or they disagree."""
    sizes = {r.get("val_samples") for r in rows}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


def part_setups(table, part: str) -> list:
    """A part's completed runs gathered into setups, each group with its statistics."""
    return row_setups(part_rows(table, part))


def row_setups(rows: list) -> list:
    """Rows of the run table gathered into setups, each group with its statistics."""
    groups = group_rows(rows)
    return setups(groups, [summarize_group(g) for g in groups])


# The interval every comparison of two methods uses (and a method's own accuracy, with 2+ seeds).
CROSSED_HOW = "seeds and test reviews both counted: variance components, `common.stats.crossed_interval`"
# A run's figures summarized over its seeds: the mean, but train time the median, so that one seed which shared the
# machine with other work (the study's full FT seed 0: 188 s against 112-126 s) does not move it: 116 s, not 131 s.
FIGURES = ("train_time_s", "peak_mem_allocated_mib", "peak_mem_reserved_mib", "peak_rss_mib", "trainable_params",
           "total_params", "trainable_pct", "val_accuracy", "saved_bytes", "test_reviews_per_s", "latency_ms",
           "latency_merged_ms")


def interval(values: list, scored, why: str) -> tuple:
    """(95% interval, how) of a mean over seeds: seeds x reviews where every seed's per-review scores line up
    (scored[seed, review]), else a t-interval over seeds (why not), and one seed a bootstrap over its reviews."""
    if len(values) > 1 and scored is not None:
        return tuple(map(float, stats.crossed_interval(np.array(scored))[:2])), CROSSED_HOW
    if len(values) > 1:
        return stats.t_interval(values), why
    if scored is not None:
        return stats.bootstrap_interval(np.mean, [scored[0]]), f"bootstrap over {len(scored[0])} test reviews (1 seed)"
    return None, "no predictions file"


def _aligned(rows: list):
    """Each row's per-review correctness, when every row has one on the same reviews in the same order."""
    if any(r["correct"] is None for r in rows) or any(not np.array_equal(r["review_rows"], rows[0]["review_rows"])
                                                       for r in rows):
        return None
    return [r["correct"].astype(float) for r in rows]


def summarize_group(g: dict) -> dict:
    rows = g["rows"]
    acc = [as_float(r["accuracy"]) for r in rows]
    loss = [as_float(r["loss"]) for r in rows if as_float(r["loss"]) is not None]
    s = {"n": len(rows), "seeds": sorted(int(r["seed"]) for r in rows), "collapsed": sum(r["collapsed"] for r in rows),
         "date": max(r.get("date") or "" for r in rows)}
    s["acc_mean"], s["acc_std"] = stats.mean_std(acc)
    s["loss_mean"], s["loss_std"] = stats.mean_std(loss) if loss else (None, None)
    s["acc_ci"], s["ci_how"] = interval(acc, _aligned(rows), f"t-interval over {len(rows)} seeds (no predictions)")
    for k in FIGURES:
        vals = [as_float(r.get(k)) for r in rows if as_float(r.get(k)) is not None]
        s[k] = (float(np.median(vals)) if k == "train_time_s" else float(np.mean(vals))) if vals else None
        s[k + "_all"] = vals
    swept = [r["lr_source"] for r in rows if (r.get("lr_source") or "").startswith("sweep")]
    # A swept rate's group may hold a run made earlier at the same rate from the config (same identity, reused).
    s["lr_source"] = ("swept over " + swept[0].split(" over ")[-1]) if swept else "config"
    return s


def compare(base: dict, other: dict) -> dict:
    """Other method minus full FT on the same test reviews: per-seed paired differences and exact McNemar."""
    return contrast([(other, 1), (base, -1)])


def change(base_a: dict, other_a: dict, base_b: dict, other_b: dict) -> dict:
    """How a method's gap to full FT moves from setup a to setup b: (other_b - base_b) - (other_a - base_a), on the
    seeds all four groups ran and the test reviews they share."""
    return contrast([(other_b, 1), (base_b, -1), (other_a, -1), (base_a, 1)])


def contrast(terms: list) -> dict:
    """sum(sign x accuracy) over (group, sign) terms, seed by seed on the same test reviews, with its 95% interval;
    exact McNemar per seed when it is one group minus another."""
    by_seed = [({int(r["seed"]): r for r in g["rows"]}, sign) for g, sign in terms]
    seeds = sorted(set.intersection(*(set(rows) for rows, _ in by_seed)))
    out = {"seeds": seeds, "diffs": [], "mcnemar": {}}
    scored, review_rows = [], []
    for s in seeds:
        out["diffs"].append(sum(sign * as_float(rows[s]["accuracy"]) for rows, sign in by_seed))
        correct = _aligned([rows[s] for rows, _ in by_seed])
        if correct is not None:
            if len(terms) == 2:
                out["mcnemar"][s] = stats.mcnemar_exact(correct[1] > 0, correct[0] > 0)
            scored.append(sum(sign * c for c, (_, sign) in zip(correct, by_seed)))
            review_rows.append(by_seed[0][0][s]["review_rows"])
    if not seeds:
        return out
    out["diff_mean"] = float(np.mean(out["diffs"]))
    # Every seed scored on the same reviews in the same order: only then is [seed, review] a crossed design.
    aligned = len(scored) == len(seeds) and all(np.array_equal(r, review_rows[0]) for r in review_rows)
    why = "no predictions" if len(scored) < len(seeds) else "seeds scored on different reviews"
    out["diff_ci"], out["ci_how"] = interval(out["diffs"], scored if aligned else None,
                                             f"t-interval over {len(seeds)} paired seeds ({why})")
    if out["diff_ci"] is None:
        del out["diff_ci"]
    else:  # the verdict, decided here once: the views word it
        out["side"] = "above" if out["diff_ci"][0] > 0 else "below" if out["diff_ci"][1] < 0 else "tied"
    return out


def pairwise(members: list) -> list:
    """Row minus column for every pair of (group, summary) members, on paired seeds; {} on the diagonal."""
    return [[compare(gb, ga) if ga is not gb else {} for gb, _ in members] for ga, _ in members]


def points(c: dict):
    """(Δ, low, high) of a comparison with a 95% interval in accuracy points, else None."""
    return tuple(100 * x for x in (c["diff_mean"], *c["diff_ci"])) if c.get("diff_ci") else None


def widest_part(heads: dict):
    """The part whose headline compares the most methods (then the most seeds; the later part of equals)."""
    return max((p for p in heads if heads[p]), key=lambda p: (len(heads[p]["best"]), heads[p]["seeds"], p),
               default=None)


def findings_rows(head: dict) -> list:
    """Per method of the headline: (group, summary, comparison with head only or {}); Δ vs full FT is the summary's."""
    floor = head["best"].get("head")
    floor = None if floor is None or floor[1]["collapsed"] else floor
    return [(g, s, compare(floor[0], g) if floor and g["method"] != "head" and not s["collapsed"] else {})
            for g, s in head["best"].values()]


# What makes two runs the same computation on any machine: every group key but the profile's name and the device.
SAME_SCIENCE = tuple(k for k in GROUP_KEYS if k not in ("profile", "device"))


def command_rows(cmd: dict, table) -> list:
    """The runs of its part that a noted command made or found; by computation, so a run made for another part is
    found under the id it was made with."""
    wanted = {records.computation(r["run_id"]) for r in cmd.get("runs", [])}
    return [r for r in part_rows(table, cmd.get("part")) if records.computation(r["run_id"]) in wanted]


def computations(rows: list) -> dict:
    """Rows' groups by the computation they ran (SAME_SCIENCE)."""
    return {tuple(g[k] for k in SAME_SCIENCE): g for g in group_rows(rows)}


def reproduction(g: dict, committed: dict) -> tuple:
    """(how, comparison) of a group against the committed study's group of the same computation (computations): how
    is 'absent', 'listed' (the committed runs themselves, found done), 'no seeds' (none in common), 'reproduced' (the
    paired difference's 95% interval covers zero) or 'differs'."""
    twin = committed.get(tuple(g[k] for k in SAME_SCIENCE))
    if twin is None or all(records.is_study(r["_dir"]) for r in g["rows"]):
        return ("absent" if twin is None else "listed"), {}
    c = compare(twin, g)
    if "diff_mean" not in c:
        return "no seeds", c
    return ("reproduced" if c.get("side", "tied" if c["diff_mean"] == 0 else "") == "tied" else "differs"), c


# What may differ between the budgets of one setup: the budget itself (epochs, training reviews), the profile that
# asked for it, and the machine (hardware does not change what a run computes; precision and dropout kernel do, and
# must match). The test reviews must match: every Δ here is paired review by review.
BUDGET_KEYS = ("epochs", "train_samples")
BUDGET_FREE_KEYS = BUDGET_KEYS + ("profile", "device")


def budget_of(st: dict) -> tuple:
    return tuple(int(st["key"][k]) for k in BUDGET_KEYS)


def examples_seen(st: dict) -> int:
    """Training examples the budget shows the model: reviews x epochs (3,000 x 3 = 9,000)."""
    epochs, reviews = budget_of(st)
    return epochs * reviews


def budget_setups(all_setups: list, head) -> list:
    """The headline, then every other budget of the same setup that has full fine-tuning, fewest examples seen
    first; of several setups at one budget, the one comparing the most methods with the most seeds."""
    if head is None or "full" not in head["best"]:
        return []
    same = [st for st in all_setups if st is not head and "full" in st["best"] and budget_of(st) != budget_of(head)
            and all(st["key"][k] == head["key"][k] for k in SETUP_KEYS if k not in BUDGET_FREE_KEYS)]
    best = {}
    for st in sorted(same, key=lambda st: (len(st["best"]), st["seeds"], st["date"])):
        best[budget_of(st)] = st  # the last one sorted wins
    return [head, *sorted(best.values(), key=examples_seen)] if best else []


def compute_hours(part: str, st: dict, method: str, sweep) -> float:
    """Hours of one method's runs in a setup: its sweep's runs (every rate, from the sweep's table rows of the same
    profile and budget) and its final runs that trained (a run listed from the sweep or the committed study, or made
    for another part, is counted where it trained). Summed from each record's phases, without the command's start-up."""
    total = sum(r["run_seconds"] for r in st["best"][method][0]["rows"]
                if r["made_for"] == part and not r["listed_from"])
    key = st["key"]
    for _, r in sweep[sweep["part"] == sweep["made_for"]].iterrows() if sweep is not None else ():
        if r["run_id"].startswith(f"{part}-{method}-s") and r["profile"] == key["profile"] and \
                str(r["epochs"]) == str(key["epochs"]) and str(r["config"].get("data.train_samples")) == \
                str(key["train_samples"]):
            total += r["run_seconds"]
    return total / 3600


def budget_rows(part: str, columns: list, sweep) -> list:
    """Per method of the headline that ran at another budget too: at each budget its Δ vs full FT (None where it did
    not run), the change of that Δ from the headline's, its accuracy, rate and compute hours."""
    head, rows = columns[0], []
    for method in head["best"]:
        row = {"method": method, "cells": []}
        for st in columns:
            if method not in st["best"]:
                row["cells"].append(None)
                continue
            g, s = st["best"][method]
            cell = {"group": g, "summary": s, "collapsed": bool(s["collapsed"]), "vs_full": s["vs_full"],
                    "hours": compute_hours(part, st, method, sweep)}
            if method != "full":
                first = row["cells"][0] if row["cells"] else None
                if first and not (cell["collapsed"] or first["collapsed"]):
                    cell["change"] = change(head["best"]["full"][0], head["best"][method][0], st["best"]["full"][0], g)
            row["cells"].append(cell)
        if any(c is not None for c in row["cells"][1:]):  # one that ran at the headline's budget alone cannot move
            rows.append(row)
    return rows


def verdict_moves(rows: list, i: int) -> tuple:
    """(changed, kept) at budget column i against the headline: (method, cell there, cell here) per PEFT method with
    a verdict at both; kept where its side holds (below by 1.3 and below by 2.4 are one verdict)."""
    changed, kept = [], []
    for r in rows:
        a, b = r["cells"][0], r["cells"][i]
        sides = [c and ("collapsed" if c["collapsed"] else c["vs_full"].get("side")) for c in (a, b)]
        if r["method"] != "full" and None not in sides:
            (kept if sides[0] == sides[1] else changed).append((r["method"], a, b))
    return changed, kept


def budget_data(part: str, all_setups: list, head, sweep) -> tuple:
    """(columns, rows) of one part: its budgets, headline first, and each method's cells; ([], []) with one."""
    columns = budget_setups(all_setups, head)
    return (columns, budget_rows(part, columns, sweep)) if columns else ([], [])


# Keys that differ between two budgets by construction or per run, or that change speed and not the science
# (records.NOT_SCIENCE; the precision and dropout kernel a setup resolved to are part of its key), so the sentence on
# what else differs skips them.
_PER_RUN_KEYS = {"train.epochs", "data.train_samples", "train.seeds", "profile", "output.dir", "train.lr_grid", "part",
                 "train.report_to", "data.dir", "data.cache_dir", "train.allocator", *records.NOT_SCIENCE}


def setup_differences(head: dict, st: dict) -> list:
    """'key (headline's value, this budget's value)' for every config value and the device that differ between the
    two setups' full fine-tuning runs, other than the budget itself and what each run sets for itself."""
    # Only the sections the runs read (the table's config): full FT reads no method's own peft section.
    ra, rb = (x["best"]["full"][0]["rows"][0] for x in (head, st))
    a, b = ra["config"], rb["config"]
    shown = lambda v: "not recorded" if v is None else repr(v)  # noqa: E731 - a key added after the run was made
    out = [f"{k} ({shown(a.get(k))}, {shown(b.get(k))})" for k in sorted(set(a) | set(b))
           if k not in _PER_RUN_KEYS and a.get(k) != b.get(k)]
    return out + ([f"the machine ({ra['device']}, {rb['device']})"] if ra["device"] != rb["device"] else [])


def rate_picks(picks: dict, sweep, keep) -> list:
    """The learning-rate picks whose profile keep(profile) accepts, parts that share a sweep (full FT in all three: one
    setup) sharing one: {'parts', 'method', 'profile', 'pick', 'n': validation reviews per score, 'edge': 'lowest' or
    'highest' for a pick on an end of the rates searched (the best rate may lie past it), else ''}."""
    # Validation reviews behind a score: in the pick, or (picks made before it was kept there) in the run's record.
    val = dict(zip(sweep["run_id"], sweep["val_samples"])) if sweep is not None and len(sweep) else {}
    out = {}
    for key, p in picks.items():
        part, method, profile = key.split("/", 2)  # a profile may be a path
        grid, lr = sorted(p.get("grid") or []), p["learning_rate"]
        n = [sc.get("val_samples") or val.get(sc["run_id"]) for sc in p["scores"]]
        if keep(profile):  # one pick where the scores say the same (each part's sweep has its own run ids)
            same = (method, profile, repr([[(sc["learning_rate"], sc.get("val_accuracy"), sc.get("collapsed"))
                                            for sc in p["scores"]], n, lr, p.get("runner_up", "none")]))
            out.setdefault(same, {"parts": [], "method": method, "profile": profile, "pick": p, "n": n, "edge": ""
                                  if len(grid) < 2 or grid[0] < lr < grid[-1] else "lowest" if lr == grid[0]
                                  else "highest"})["parts"].append(part)
    return list(out.values())


def curves(g: dict, which: str, field: str) -> tuple:
    """Per-seed curves of one group, aligned on the steps they share: (steps, values[seed, step])."""
    series = []
    for r in g["rows"]:
        # Records made before curves carried steps have epochs only: steps = epoch x steps per epoch.
        per_epoch = (r.get("train_steps") or 0) / (r.get("epochs") or 1)
        pts = [(p.get("step", round(p.get("epoch", 0) * per_epoch) or None), p.get(field))
               for p in (r.get("curves") or {}).get(which, [])]
        pts = {int(s): v for s, v in pts if s is not None and v is not None}
        if pts:
            series.append(pts)
    if not series:
        return np.array([]), np.zeros((0, 0))
    steps = sorted(set.intersection(*(set(s) for s in series)))
    return np.array(steps), np.array([[s[k] for k in steps] for s in series], dtype=float)


# The reference report's own figures (one run each, A100, fp16, the full 25,000 / 25,000 split, 256 tokens, 3 epochs),
# quoted, not produced here. Its memory was probably read from nvidia-smi (reserved + CUDA context).
REFERENCE_REPORT = {
    "part1": {"model": "DistilBERT", "accuracy": {"full": "92.2", "lora": "89.9"},
              "cost": {"full": "~4.5 min, ~3340 MB", "lora": "4m24s, ~2588 MB"}},
    "part2": {"model": "BERT", "accuracy": {"full": "93.09", "prefix": "90.79"},
              "cost": {"full": "loss 0.3227, 109,483,778 params", "prefix": "loss 0.2374, 9,866,242 params"}},
}
REFERENCE_SETTINGS = "25,000 train / 25,000 test reviews, 256 tokens, 3 epochs, fp16 on one A100, one run per method"


def reference_gap(method: str) -> list:
    """(points, model) of the reference report's method minus its full FT, one run each, per part that has both."""
    return [(float(p["accuracy"][method]) - float(p["accuracy"]["full"]), p["model"]) for p in REFERENCE_REPORT.values()
            if method != "full" and method in p["accuracy"] and "full" in p["accuracy"]]


def side_of(gap: float, ci) -> str:
    """Where a gap in points falls against a 95% interval (fractions): 'inside', 'below' or 'above'."""
    return "inside" if 100 * ci[0] <= gap <= 100 * ci[1] else "below" if gap < 100 * ci[0] else "above"
