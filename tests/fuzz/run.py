"""Long fuzz runs: ``python -m tests.fuzz.run 30m`` (what ``scripts/fuzz`` calls).

Each target of :mod:`tests.fuzz.targets` gets an equal share of the time. With
``atheris`` installed (``pip install atheris``; the ``fuzz`` extra) the run is
coverage-guided: libFuzzer mutates byte inputs, keeping those that reach new
lines of ``engine/``. Without it, inputs are random bytes. Either way a case that
breaks the property is not the end of the run: it is bucketed by exception type
and the innermost project frame, its input saved under ``tests/fuzz/out/crashes/``,
and the run goes on. A case running over the time limit counts as a hang.

The report (Markdown, also printed) lists examples run per target, crashes and
hangs with one reproducer each; ``--report PATH`` chooses where it is written.
Replay a saved input with ``python -m tests.fuzz.run --replay TARGET FILE``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
OUT = HERE / "out"
REPO = HERE.parent.parent
EXAMPLE_LIMIT = 20.0


def parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    if text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def bucket_of(exc: BaseException) -> str:
    """Exception type + the innermost frame in engine/ or gui/ (else the innermost one)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/engine/" in f.filename or "/gui/" in f.filename]
    f = (ours or frames or [None])[-1]
    where = f"{os.path.relpath(f.filename, REPO)}:{f.lineno}" if f else "?"
    return f"{type(exc).__name__} at {where}"


class Stats:
    """What one target's run saw; saved as JSON so a child process can report it."""

    def __init__(self, target: str, path: Path, resume: bool = False) -> None:
        self.target, self.path = target, path
        self.examples = 0
        self.buckets: dict[str, dict[str, Any]] = {}
        self.last_save = 0.0
        if resume and path.exists():      # a restarted libFuzzer child adds to the run
            saved = json.loads(path.read_text())
            self.examples, self.buckets = saved["examples"], saved["buckets"]

    def record(self, data: bytes, exc: BaseException, describe: Any) -> None:
        key = bucket_of(exc)
        entry = self.buckets.get(key)
        if entry is None:
            digest = hashlib.sha1(data).hexdigest()[:12]
            crash_dir = OUT / "crashes"
            crash_dir.mkdir(parents=True, exist_ok=True)
            file = crash_dir / f"{self.target}-{digest}.bin"
            file.write_bytes(data)
            try:
                case = describe(data)
            except Exception as err:  # a describe failure must not stop the run
                case = f"(could not describe: {err})"
            entry = self.buckets[key] = {
                "count": 0, "hang": type(exc).__name__ == "Hang", "input": str(file),
                "case": case[:500], "message": str(exc)[:300],
                "traceback": "".join(traceback.format_exception(exc))[-3000:]}
            self.save()
        entry["count"] += 1

    def tick(self) -> None:
        self.examples += 1
        if time.monotonic() - self.last_save > 2:
            self.save()

    def save(self) -> None:
        self.last_save = time.monotonic()
        self.path.write_text(json.dumps({"target": self.target, "examples": self.examples,
                                         "buckets": self.buckets}, indent=1))


def run_one(target_name: str, data: bytes, stats: Stats) -> None:
    from tests.fuzz.budget import time_limit
    from tests.fuzz.targets import TARGETS

    target, describe = TARGETS[target_name]
    try:
        with time_limit(EXAMPLE_LIMIT, target_name):
            target(data)
    except Exception as exc:   # every violation is recorded; the run goes on
        stats.record(data, exc, describe)
    stats.tick()


def random_loop(target: str, seconds: float, stats: Stats, seed: int) -> None:
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        data = rng.randbytes(rng.randint(4, 160))
        run_one(target, data, stats)
    stats.save()


def atheris_child(target: str, seconds: float, stats_path: Path, artifacts: str) -> None:
    """Runs in its own process: libFuzzer exits the process when time is up, or when
    it catches an out-of-memory, a timeout or a crash itself (saving the input under
    the ``artifacts`` prefix)."""
    import atheris

    with atheris.instrument_imports(include=["engine", "gui.planner"]):
        import engine.formats
        import engine.graph.rules
        import engine.qmp
        import engine.server  # noqa: F401
        import gui.planner  # noqa: F401
    stats = Stats(target, stats_path, resume=True)
    stats.save()

    def one_input(data: bytes) -> None:
        run_one(target, data, stats)

    corpus = OUT / f"corpus-{target}"
    corpus.mkdir(parents=True, exist_ok=True)
    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={int(seconds)}", "-timeout=300",
                   "-max_len=256", "-print_final_stats=1", f"-artifact_prefix={artifacts}"],
                  one_input)
    atheris.Fuzz()


#: libFuzzer restarts allowed per target after it stopped on a finding of its own
MAX_RESTARTS = 20
_ARTIFACT_KINDS = {"oom": "out of memory (libFuzzer's RSS limit, 2 GB)",
                   "timeout": "one input ran longer than libFuzzer's timeout",
                   "crash": "the process crashed", "leak": "memory leak",
                   "slow-unit": "one input ran very slowly"}


def run_atheris(name: str, seconds: float, stats_path: Path) -> None:
    """Fuzz ``name`` with libFuzzer for ``seconds``, in child processes.

    The harness records every exception and carries on, but what libFuzzer catches
    itself (running out of memory, a crash) ends the child: the input it saved is
    recorded as a failure and a new child fuzzes for the time left.
    """
    crash_dir = OUT / "crashes"
    crash_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"libfuzzer-{name}-"
    stats_path.unlink(missing_ok=True)
    end = time.monotonic() + seconds
    with open(OUT / f"libfuzzer-{name}.log", "w") as log:
        for _ in range(MAX_RESTARTS + 1):
            left = end - time.monotonic()
            if left < 5:
                break
            before = set(crash_dir.glob(prefix + "*"))
            subprocess.run([sys.executable, "-m", "tests.fuzz.run", "--atheris-child", name,
                            str(left), str(stats_path), str(crash_dir / prefix)], cwd=REPO,
                           stdout=log, stderr=subprocess.STDOUT, check=False)
            found = sorted(set(crash_dir.glob(prefix + "*")) - before)
            if not found:
                break            # time is up (anything else is in the child's log)
            for artifact in found:
                record_artifact(name, stats_path, artifact)


def record_artifact(name: str, stats_path: Path, artifact: Path) -> None:
    """Add an input libFuzzer saved (``libfuzzer-TARGET-KIND-HASH``) to the target's stats."""
    from tests.fuzz.targets import TARGETS

    kind = artifact.name[len(f"libfuzzer-{name}-"):].rsplit("-", 1)[0]
    stats = Stats(name, stats_path, resume=True)
    key = f"libFuzzer {kind}"
    entry = stats.buckets.get(key)
    if entry is None:
        try:
            case = TARGETS[name][1](artifact.read_bytes())
        except Exception as err:  # a describe failure must not stop the run
            case = f"(could not describe: {err})"
        entry = stats.buckets[key] = {
            "count": 0, "hang": kind in ("timeout", "slow-unit"), "input": str(artifact),
            "case": case[:500], "message": _ARTIFACT_KINDS.get(kind, kind), "traceback": ""}
    entry["count"] += 1
    stats.save()


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def report(results: list[dict[str, Any]], seconds: float, engine: str) -> str:
    lines = [f"# Fuzz run: {seconds / 60:g} minutes, engine {engine}", "",
             f"Started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(time.time() - seconds))}"
             f" on {os.cpu_count()} cores (`nice`), Python {sys.version.split()[0]}.", "",
             "| target | examples | distinct failures | crashes | hangs |",
             "|---|---:|---:|---:|---:|"]
    for r in results:
        b = r["buckets"].values()
        lines.append(f"| {r['target']} | {r['examples']} | {len(r['buckets'])} | "
                     f"{sum(x['count'] for x in b if not x['hang'])} | "
                     f"{sum(x['count'] for x in b if x['hang'])} |")
    for r in results:
        for key, x in r["buckets"].items():
            lines += ["", f"## {r['target']}: {key} ({x['count']}×)", "",
                      f"- case: `{x['case']}`", f"- message: {x['message']}",
                      f"- input: `{os.path.relpath(x['input'], REPO)}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("duration", nargs="?", default="5m", help="e.g. 90s, 30m, 1h (default 5m)")
    p.add_argument("--targets", default="formats,qmp,planner")
    p.add_argument("--engine", choices=["auto", "atheris", "random"], default="auto")
    p.add_argument("--report", type=Path, default=OUT / "report.md")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--replay", nargs=2, metavar=("TARGET", "FILE"))
    p.add_argument("--atheris-child", nargs=4, help=argparse.SUPPRESS)
    args, _ = p.parse_known_args(argv)

    if args.atheris_child:
        name, secs, path, artifacts = args.atheris_child
        atheris_child(name, float(secs), Path(path), artifacts)
        return 0
    from tests.fuzz.targets import TARGETS  # after the atheris child had its chance

    if args.replay:
        name, file = args.replay
        TARGETS[name][0](Path(file).read_bytes())
        print("no failure")
        return 0

    seconds = parse_duration(args.duration)
    names = [t for t in args.targets.split(",") if t in TARGETS]
    engine = args.engine if args.engine != "auto" else ("atheris" if have_atheris()
                                                         else "random")
    OUT.mkdir(parents=True, exist_ok=True)
    share = seconds / len(names)
    results = []
    for name in names:
        stats_path = OUT / f"stats-{name}.json"
        if engine == "atheris":
            run_atheris(name, share, stats_path)
        else:
            stats = Stats(name, stats_path)
            random_loop(name, share, stats, args.seed if args.seed is not None
                        else int.from_bytes(os.urandom(4), "big"))
        results.append(json.loads(stats_path.read_text()))
    text = report(results, seconds, engine)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text)
    return 1 if any(r["buckets"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
