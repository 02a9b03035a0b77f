"""The statistics of a comparison: a configuration's accuracy over seeds and test reviews, and one method minus
another on the same reviews (paired seeds, exact McNemar per seed)."""
from __future__ import annotations

import numpy as np

from common import stats
from common.report import runs
from common.table import as_float, part_rows

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


def part_setups(table, part: str) -> list:
    """A part's completed runs gathered into setups, each group with its statistics."""
    groups = runs.group_rows(part_rows(table, part))
    return runs.setups(groups, [summarize_group(g) for g in groups])


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
    return out


def verdict(c: dict, collapsed: bool = False) -> str:
    """A comparison in words, from its 95% interval: "below by 1.3", "above by 0.4", "no difference resolved"."""
    if collapsed:
        return "collapsed"
    ci = c.get("diff_ci")
    if "diff_mean" not in c or not ci:
        return "no interval"
    if ci[0] > 0:
        return f"above by {100 * c['diff_mean']:.1f}"
    if ci[1] < 0:
        return f"below by {-100 * c['diff_mean']:.1f}"
    return "no difference resolved"


def diff_text(c: dict) -> str:
    """'-1.28 [-1.87, -0.69]' in points, or – without a comparison."""
    if "diff_mean" not in c:
        return "–"
    ci = c.get("diff_ci")
    return f"{100 * c['diff_mean']:+.2f}" + (f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else "")
