"""``python -m tests.bench [NAME ...]``: run benchmarks and print one table.

Every ``tests/bench/bench_*.py`` module exposes ``run(report: Report) -> None``.
The table is also written as JSON: a run of every benchmark to
``tests/bench/out/report.json`` (the report the README quotes), a run of some of them
to ``tests/bench/out/report-NAME[-NAME…].json``, so that trying one benchmark never
replaces the whole report.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

from tests.bench.report import Report, machine

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmark names (default: all), e.g. formats")
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write the report (default: see above)")
    args = parser.parse_args(argv)
    available = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)} "
                     f"(there are: {', '.join(available)})")
    names = [n for n in available if not args.names or n in args.names]
    path = args.json or (OUT / "report.json" if names == available
                         else OUT / f"report-{'-'.join(names)}.json")
    m = machine()
    print(f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
          f"{m['virtual_machine']} VM; load {os.getloadavg()[0]:.2f}", flush=True)
    report = Report()
    failed = []
    t0 = time.monotonic()
    for name in names:
        print(f"== bench_{name}", flush=True)
        try:
            importlib.import_module(f"tests.bench.bench_{name}").run(report)
        except Exception:
            traceback.print_exc()
            failed.append(name)
    print()
    print(report.table())
    path.parent.mkdir(parents=True, exist_ok=True)
    report.write_json(path)
    print(f"\nJSON: {path}  ({time.monotonic() - t0:.0f} s, load now "
          f"{os.getloadavg()[0]:.2f})")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
