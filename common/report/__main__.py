"""python -m common.report [--output-dir results] [--no-plots]: regenerate results/summary.md from the part CSVs."""
import argparse

from common.report.markdown import write_summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate results/summary.md from the part CSVs.")
    ap.add_argument("--output-dir", default="results")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args(argv)
    print(write_summary(a.output_dir, plots=not a.no_plots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
