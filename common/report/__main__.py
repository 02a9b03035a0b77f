"""python -m common.report [--output-dir results] [--no-plots]: regenerate results/summary.md from the run records;
with a selection (--part, --profile, --since, --runs) or --beside DIR, print that report instead, writing nothing."""
import argparse
import sys
from pathlib import Path

from common.report.markdown import selected_summary, side_by_side, write_summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0].split(": ", 1)[1])
    ap.add_argument("--output-dir", default="results")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--part", nargs="+", help="only these parts (part1 part2 part3)")
    ap.add_argument("--profile", nargs="+", help="only runs of these profiles")
    ap.add_argument("--since", help="only runs made on or after this date (2026-12-07 or an ISO time)")
    ap.add_argument("--runs", nargs="+", metavar="RUN_ID", help="only these runs")
    ap.add_argument("--beside", nargs="+", metavar="DIR", help="print the headlines of --output-dir and these "
                    "folders side by side (e.g. --output-dir results --beside study)")
    a = ap.parse_args(argv)
    for d, flag in [(a.output_dir, "--output-dir"), *((d, "--beside") for d in a.beside or ())]:
        if not (Path(d) / "runs").is_dir():
            print(f"common.report: {flag} {d}: no run records there ({Path(d) / 'runs'} is not a folder)",
                  file=sys.stderr)
            return 2
    selection = {"parts": a.part, "profiles": a.profile, "since": a.since, "run_ids": a.runs}
    if a.beside:
        print(side_by_side([a.output_dir, *a.beside], **selection), end="")
    elif any(selection.values()):
        print(selected_summary(a.output_dir, **selection), end="")
    else:
        print(write_summary(a.output_dir, plots=not a.no_plots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
