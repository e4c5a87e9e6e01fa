"""Run chosen iotests against real QEMU and against ``blockgraph qemu``, side by side.

``python -m tests.iotests.runner [-f FMT] [--only qemu|blockgraph] TEST...`` (or
``scripts/iotests``): fetches Debian's source of the installed QEMU into the cache
(:mod:`tests.iotests.qemu_source`), prepares a build directory per target whose
``check`` is a link to the source's (so that scratch files stay out of the source
tree), runs ``check -tap`` for both targets at once, and prints each test's cases
passed, failed and skipped on each. The exit status is 0 when every case that
passes on real QEMU also passes on blockgraph.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.iotests import programs
from tests.iotests.qemu_source import SourceError, cache_dir, qemu_source_tree
from tests.iotests.results import TestResult, read_results

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("qemu", "blockgraph")


@dataclass
class Run:
    """One ``check`` run: the target, its results and its raw output."""

    target: str
    results: dict[str, TestResult]
    output: str


def prepare(source: Path, work: Path) -> tuple[Path, dict[str, str]]:
    """A build directory for ``check`` under ``work``; returns it and the common env."""
    iotests = work / "tests" / "qemu-iotests"
    iotests.mkdir(parents=True, exist_ok=True)
    check = iotests / "check"
    if check.is_symlink() or check.exists():
        check.unlink()
    check.symlink_to(source / "tests" / "qemu-iotests" / "check")
    env = dict(os.environ)
    env.update(QEMU_IMG_PROG=programs.QEMU_IMG, QEMU_IO_PROG=programs.QEMU_IO,
               QEMU_NBD_PROG=programs.QEMU_NBD, QSD_PROG=programs.QSD)
    return iotests, env


def start_check(target: str, source: Path, work: Path, fmt: str, tests: list[str],
                jobs: int) -> tuple[subprocess.Popen[str], Path]:
    """Start ``check -tap`` for one target; returns the process and its TEST_DIR."""
    iotests, env = prepare(source, work / target)
    bin_dir = work / "bin"
    if target == "qemu":
        env["QEMU_PROG"] = str(programs.write_qemu_wrapper(bin_dir))
    else:
        env["QEMU_PROG"] = str(programs.write_blockgraph_launcher(bin_dir, PROJECT_ROOT))
    test_dir = work / target / "scratch"
    if test_dir.exists():
        shutil.rmtree(test_dir)
    test_dir.mkdir(parents=True)
    env["TEST_DIR"] = str(test_dir)
    env["SOCK_DIR"] = tempfile.mkdtemp(prefix=f"iotests-{target}-")
    argv = ["./check", "-tap", f"-{fmt}", *(["-j", str(jobs)] if jobs > 1 else []), *tests]
    proc = subprocess.Popen(argv, cwd=iotests, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return proc, test_dir


def run(tests: list[str], *, fmt: str = "qcow2", targets: tuple[str, ...] = TARGETS,
        jobs: int = 1, work: Path | None = None, source: Path | None = None,
        ) -> dict[str, Run]:
    """Run ``tests`` on each target at the same time; returns the runs by target."""
    source = source or qemu_source_tree(quiet=True)
    work = work or cache_dir() / "iotests-work"
    started = {t: start_check(t, source, work, fmt, tests, jobs) for t in targets}
    runs = {}
    for target, (proc, test_dir) in started.items():
        output, _ = proc.communicate()
        results = read_results(output, test_dir, source / "tests" / "qemu-iotests", tests)
        runs[target] = Run(target, results, output)
    return runs


def regressions(qemu: TestResult, blockgraph: TestResult) -> list[str]:
    """Why ``blockgraph`` falls short of ``qemu`` on one test (empty when it does not)."""
    if qemu.verdict == "not run":
        return []
    if blockgraph.verdict == "not run":
        return [f"not run: {blockgraph.reason}"]
    if qemu.verdict == "pass" and blockgraph.verdict == "pass":
        return [f"skipped: {case}" for case in sorted(blockgraph.skipped - qemu.skipped)]
    problems = [f"failed: {case}" for case in sorted(blockgraph.failed - qemu.failed)]
    problems += [f"skipped: {case}" for case in sorted(blockgraph.skipped - qemu.skipped)]
    if qemu.cases is not None and blockgraph.cases != qemu.cases and not problems:
        problems.append(f"ran {blockgraph.cases} cases, QEMU {qemu.cases}")
    return problems


def report(runs: dict[str, Run], tests: list[str]) -> tuple[str, bool]:
    """The side-by-side table and whether blockgraph matched QEMU everywhere."""
    width = max(12, *(len(t) for t in tests))
    lines = [f"{'test':<{width}}  " + "  ".join(f"{t:<32}" for t in runs)]
    ok = True
    for test in tests:
        name = Path(test).name
        row = [runs[t].results[name].counts() for t in runs]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{c:<32}" for c in row))
        if "qemu" in runs and "blockgraph" in runs:
            problems = regressions(runs["qemu"].results[name], runs["blockgraph"].results[name])
            ok = ok and not problems
            lines += [f"{'':<{width}}    blockgraph {p}" for p in problems]
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run, print the table, exit 0 when blockgraph matches QEMU."""
    parser = argparse.ArgumentParser(
        prog="scripts/iotests",
        description="Run QEMU's iotests against real QEMU and blockgraph qemu, side by side.")
    parser.add_argument("tests", nargs="+", metavar="TEST", help="e.g. 245 030 040")
    parser.add_argument("-f", "--format", default="qcow2", help="image format (qcow2)")
    parser.add_argument("--only", choices=TARGETS, help="run on one target only")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="tests in parallel per target")
    parser.add_argument("--work", type=Path, help="scratch directory (default: in the cache)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print check's output")
    args = parser.parse_args(argv)
    targets = (args.only,) if args.only else TARGETS
    try:
        runs = run(args.tests, fmt=args.format, targets=targets, jobs=args.jobs, work=args.work)
    except SourceError as exc:
        print(f"iotests: {exc}", file=sys.stderr)
        return 2
    if args.verbose:
        for r in runs.values():
            print(f"== {r.target} ==\n{r.output}")
    table, ok = report(runs, args.tests)
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
