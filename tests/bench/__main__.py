"""``python -m tests.bench [NAME ...]``: run benchmarks and print one table.

Every ``tests/bench/bench_*.py`` module exposes ``run(report: Report) -> None``.
The table is also written as JSON to ``tests/bench/out/report.json``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path

from tests.bench.report import Report

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmark names (default: all), e.g. formats")
    parser.add_argument("--json", type=Path, default=HERE / "out" / "report.json")
    args = parser.parse_args(argv)
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.names:
        modules = [m for m in modules if m.removeprefix("bench_") in args.names]
    report = Report()
    failed = []
    for name in modules:
        print(f"== {name}", flush=True)
        try:
            importlib.import_module(f"tests.bench.{name}").run(report)
        except Exception:
            traceback.print_exc()
            failed.append(name)
    print()
    print(report.table())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report.write_json(args.json)
    print(f"\nJSON: {args.json}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
