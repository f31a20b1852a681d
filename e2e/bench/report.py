#!/usr/bin/env python3
"""Draws the charts and rewrites README's generated benchmark sections from a results.json
(target/bench/results.json by default), e.g. of a run cut short: bench.py writes the rows
so far after every run.

    python3 e2e/bench/report.py [RESULTS_JSON]   (in the bench venv: matplotlib)
"""
import json
import os
import sys

import charts
from table import print_scaling, write_readme

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "bench",
                                                              "results.json")
    with open(path) as f:
        d = json.load(f)
    rows, scale, machine = d["rows"], d.get("scaling_rows", []), d["machine"]
    if scale:
        print_scaling(scale)
    charts_dir = os.environ.get("BENCH_CHARTS_DIR", os.path.join(ROOT, "docs", "bench"))
    for png in charts.draw(rows, scale, machine, os.path.dirname(path), charts_dir):
        print(f"wrote {png}")
    for section in write_readme(os.path.join(ROOT, "README.md"), rows, scale, machine):
        print(f"wrote README.md section {section}")


if __name__ == "__main__":
    main()
