"""The statistics of a comparison: a configuration's accuracy over seeds and test reviews, and one method minus
another on the same reviews (paired seeds, exact McNemar per seed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common import stats
from common.report.runs import _f, _predictions

# The interval every comparison of two methods uses (and a method's own accuracy, with 2+ seeds).
CROSSED_HOW = ("seeds and test reviews both counted: variance components, `common.stats.crossed_interval`")


def _correct_matrix(output_dir: Path, rows: list):
    """correct[seed, review] (0/1) for runs scored on the same test reviews, or None when a predictions file is
    missing or the runs saw different reviews."""
    preds = [_predictions(output_dir, r) for r in rows]
    if any(p is None for p in preds) or any(not np.array_equal(p["row"], preds[0]["row"]) for p in preds):
        return None
    return np.array([(p["pred"] == p["label"]).astype(float) for p in preds])


def summarize_group(output_dir: Path, g: dict) -> dict:
    rows = g["rows"]
    acc = [_f(r["accuracy"]) for r in rows]
    loss = [_f(r["loss"]) for r in rows if _f(r["loss"]) is not None]
    s = {"n": len(rows), "seeds": sorted(int(r["seed"]) for r in rows),
         "collapsed": sum(r["collapsed"] for r in rows)}
    s["acc_mean"], s["acc_std"] = stats.mean_std(acc)
    s["loss_mean"], s["loss_std"] = stats.mean_std(loss) if loss else (None, None)
    correct = _correct_matrix(output_dir, rows)
    if len(rows) > 1 and correct is not None:
        s["acc_ci"], s["ci_how"] = tuple(map(float, stats.crossed_interval(correct)[:2])), CROSSED_HOW
    elif len(rows) > 1:
        s["acc_ci"], s["ci_how"] = stats.t_interval(acc), f"t-interval over {len(rows)} seeds (no predictions)"
    else:
        p = _predictions(output_dir, rows[0])
        if p is not None:
            s["acc_ci"] = stats.bootstrap_interval(np.mean, [p["pred"] == p["label"]])
            s["ci_how"] = f"bootstrap over {len(p['label'])} test reviews (1 seed)"
        else:
            s["acc_ci"], s["ci_how"] = None, "no predictions file"
    for k in ("train_time_s", "peak_mem_allocated_mib", "peak_mem_reserved_mib", "peak_rss_mib",
              "trainable_params", "total_params", "trainable_pct", "val_accuracy", "saved_bytes",
              "test_reviews_per_s", "latency_ms", "latency_merged_ms"):
        vals = [_f(r.get(k)) for r in rows if _f(r.get(k)) is not None]
        # Train time: the median, so that one seed which shared the machine with other work (the study's full FT
        # seed 0: 188 s against 112-126 s) does not move the figure: median 116 s, mean 131 s.
        s[k] = (float(np.median(vals)) if k == "train_time_s" else float(np.mean(vals))) if vals else None
        s[k + "_all"] = vals
    swept = [r["lr_source"] for r in rows if (r.get("lr_source") or "").startswith("sweep")]
    # A swept rate's group may hold a run made earlier at the same rate from the config (same identity, reused).
    s["lr_source"] = ("swept over " + swept[0].split(" over ")[-1]) if swept else "config"
    s["date"] = max(r.get("date") or "" for r in rows)
    return s


def compare(output_dir: Path, base: dict, other: dict) -> dict:
    """Other method minus full FT on the same test reviews: per-seed paired differences and exact McNemar."""
    return contrast(output_dir, [(other, 1), (base, -1)])


def change(output_dir: Path, base_a: dict, other_a: dict, base_b: dict, other_b: dict) -> dict:
    """How a method's gap to full FT moves from setup a to setup b: (other_b - base_b) - (other_a - base_a), on the
    seeds all four groups ran and the test reviews they share."""
    return contrast(output_dir, [(other_b, 1), (base_b, -1), (other_a, -1), (base_a, 1)])


def contrast(output_dir: Path, terms: list) -> dict:
    """sum(sign x accuracy) over (group, sign) terms, seed by seed on the same test reviews, with its 95% interval;
    exact McNemar per seed when it is one group minus another."""
    by_seed = [({int(r["seed"]): r for r in g["rows"]}, sign) for g, sign in terms]
    seeds = sorted(set.intersection(*(set(rows) for rows, _ in by_seed)))
    out = {"seeds": seeds, "diffs": [], "mcnemar": {}}
    scored, review_rows = [], []
    for s in seeds:
        out["diffs"].append(sum(sign * _f(rows[s]["accuracy"]) for rows, sign in by_seed))
        preds = [_predictions(output_dir, rows[s]) for rows, _ in by_seed]
        if all(p is not None and np.array_equal(p["row"], preds[0]["row"]) for p in preds):
            correct = [(p["pred"] == p["label"]) for p in preds]
            if len(terms) == 2:
                out["mcnemar"][s] = stats.mcnemar_exact(correct[1], correct[0])
            scored.append(sum(sign * c.astype(float) for c, (_, sign) in zip(correct, by_seed)))
            review_rows.append(preds[0]["row"])
    if not seeds:
        return out
    out["diff_mean"] = float(np.mean(out["diffs"]))
    # Every seed scored on the same reviews in the same order: only then is [seed, review] a crossed design.
    aligned = all(np.array_equal(r, review_rows[0]) for r in review_rows)
    if len(seeds) > 1 and len(scored) == len(seeds) and aligned:
        out["diff_ci"], out["ci_how"] = tuple(map(float, stats.crossed_interval(np.array(scored))[:2])), CROSSED_HOW
    elif len(seeds) > 1:
        out["diff_ci"] = stats.t_interval(out["diffs"])
        why = "no predictions" if len(scored) < len(seeds) else "seeds scored on different reviews"
        out["ci_how"] = f"t-interval over {len(seeds)} paired seeds ({why})"
    elif scored:
        out["diff_ci"] = stats.bootstrap_interval(np.mean, [scored[0]])
        out["ci_how"] = "paired bootstrap over test reviews (1 seed)"
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
