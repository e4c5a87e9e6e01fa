"""Property: whenever the engine refuses a command, every file is as it was.

Random graphs of real image files (chains opened from their headers or layer by layer,
read-only or not, raw windows, nodes sharing a file) and random commands with random
arguments aimed at those files and nodes: snapshots into files in use, image creation
over them, transactions, jobs, reopens, deletions. After every command the engine
answers with an error (and after every ``blockdev-create`` job that ends with one),
the bytes of every file in the directory must be exactly what they were before.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.formats import create_qcow2, create_raw, open_image
from engine.qmp import Engine, QMPError
from tests.fuzz.budget import fuzz_settings, time_limit
from tests.fuzz.images import fresh_dir

MiB = 1 << 20
FILES = ("a0.qcow2", "a1.qcow2", "a2.qcow2", "b.qcow2", "r.raw")


def make_files(d: Path) -> None:
    create_qcow2(d / "a0.qcow2", MiB)
    create_qcow2(d / "a1.qcow2", MiB, backing_file="a0.qcow2", backing_format="qcow2")
    create_qcow2(d / "a2.qcow2", MiB, backing_file="a1.qcow2", backing_format="qcow2")
    create_qcow2(d / "b.qcow2", 2 * MiB)
    create_raw(d / "r.raw", 2 * MiB)
    for name, pattern in (("a0.qcow2", 1), ("a1.qcow2", 2), ("b.qcow2", 3), ("r.raw", 4)):
        with open_image(d / name, writable=True) as img:
            img.write(pattern * 65536 % (1 << 20), bytes([pattern]) * 65536)


def digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.iterdir()) if p.is_file()}


files = st.sampled_from((*FILES, "new.qcow2", "./a1.qcow2", "nodir/x.qcow2"))


def path_in(d: Path) -> st.SearchStrategy[str]:
    return files.map(lambda f: str(d / f))


def qcow2_opts(d: Path, name: str, backing: Any, ro: bool) -> dict[str, Any]:
    opts: dict[str, Any] = {"driver": "qcow2", "node-name": name, "read-only": ro,
                            "file": {"driver": "file", "node-name": name + "-file",
                                     "filename": str(d / f"{name}.qcow2")}}
    if backing != "header":
        opts["backing"] = backing
    return opts


def graph_recipe(d: Path) -> st.SearchStrategy[list[dict[str, Any]]]:
    """blockdev-add options that build one graph: the ``a`` chain (from its headers or
    layer by layer), ``b``, a raw window on ``r.raw``, a bare file node ``w`` on one
    of the files (in use by another node or not)."""
    def build(a_named: bool, a_ro: bool, with_b: bool, b_ro: bool, with_r: bool,
              r_offset: int, w_file: str | None, w_ro: bool) -> list[dict[str, Any]]:
        adds: list[dict[str, Any]] = []
        if a_named:
            adds += [qcow2_opts(d, "a0", None, True), qcow2_opts(d, "a1", "a0", True),
                     qcow2_opts(d, "a2", "a1", a_ro)]
        else:
            adds.append(qcow2_opts(d, "a2", "header", a_ro))
        if with_b:
            adds.append(qcow2_opts(d, "b", None, b_ro))
        if with_r:
            adds.append({"driver": "raw", "node-name": "r", "offset": r_offset,
                         "file": {"driver": "file", "node-name": "r-file",
                                  "filename": str(d / "r.raw")}})
        if w_file is not None:
            adds.append({"driver": "file", "node-name": "w", "read-only": w_ro,
                         "filename": str(d / w_file)})
        return adds

    return st.builds(build, st.booleans(), st.booleans(), st.booleans(), st.booleans(),
                     st.booleans(), st.sampled_from((0, MiB)),
                     st.one_of(st.none(), st.sampled_from(FILES)), st.booleans())


def commands(d: Path, nodes: list[str]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    names = st.sampled_from([*nodes, "nosuch"])
    snap = st.fixed_dictionaries(
        {"node-name": names, "snapshot-file": path_in(d),
         "snapshot-node-name": st.sampled_from(("s1", "s2", *nodes[:1]))},
        optional={"format": st.sampled_from(("qcow2", "raw", "foo")),
                  "mode": st.sampled_from(("existing", "absolute-paths"))})
    create_file = st.fixed_dictionaries({"driver": st.just("file"), "filename": path_in(d),
                                         "size": st.sampled_from((0, MiB))})
    create_qcow2_opts = st.fixed_dictionaries(
        {"driver": st.just("qcow2"), "size": st.sampled_from((MiB, 1000)),
         "file": st.one_of(names, path_in(d).map(lambda f: {"driver": "file",
                                                              "filename": f}))},
        optional={"cluster-size": st.sampled_from((65536, 3000)),
                  "backing-fmt": st.just("qcow2")})
    return st.one_of(
        st.tuples(st.just("blockdev-snapshot-sync"), snap),
        st.tuples(st.just("transaction"), st.lists(snap, min_size=1, max_size=2).map(
            lambda acts: {"actions": [{"type": "blockdev-snapshot-sync", "data": a}
                                      for a in acts]})),
        st.tuples(st.just("blockdev-create"), st.one_of(create_file, create_qcow2_opts).map(
            lambda o: {"job-id": "create", "options": o})),
        st.tuples(st.just("block-stream"), st.fixed_dictionaries(
            {"device": names}, optional={"base-node": names, "job-id": st.just("st")})),
        st.tuples(st.just("block-commit"), st.fixed_dictionaries(
            {"device": names}, optional={"top-node": names, "base-node": names,
                                         "job-id": st.just("cm")})),
        st.tuples(st.just("blockdev-reopen"), st.builds(
            lambda n, b, ro: {"options": [{"driver": "qcow2", "node-name": n,
                                           "file": n + "-file", "backing": b,
                                           "read-only": ro}]},
            names, st.one_of(st.none(), names), st.booleans())),
        st.tuples(st.just("blockdev-del"), st.fixed_dictionaries({"node-name": names})),
    )


def open_graph(engine: Engine, adds: list[dict[str, Any]]) -> list[str]:
    """Add what can be added; the node names the engine has then."""
    for opts in adds:
        with contextlib.suppress(QMPError):
            engine.execute("blockdev-add", opts)
    return [n["node-name"] for n in engine.execute("query-named-block-nodes", {"flat": True})
            if not n["node-name"].startswith("#")]


def run_case(engine: Engine, d: Path, todo: list[tuple[str, dict[str, Any]]]) -> int:
    """Run the commands; returns how many refusals were checked."""
    ended = threading.Event()

    def listen(ev: dict[str, Any]) -> None:
        if ev["event"] == "JOB_STATUS_CHANGE" and ev["data"]["status"] in ("concluded", "null"):
            ended.set()

    engine.add_listener(listen)
    checked = 0
    try:
        for command, args in todo:
            before = digests(d)
            ended.clear()
            try:
                engine.execute(command, args)
            except QMPError as err:
                checked += 1
                assert digests(d) == before, f"{command} {args} refused ({err}) but wrote"
                continue
            if command == "blockdev-create":
                checked += _check_create(engine, d, before, ended)
            elif command in ("block-stream", "block-commit"):
                for job in engine.execute("query-block-jobs"):
                    engine.execute("block-job-cancel", {"device": job["device"],
                                                        "force": True})
                    ended.wait(20)
        return checked
    finally:
        engine.close()


def _check_create(engine: Engine, d: Path, before: dict[str, str],
                  ended: threading.Event) -> int:
    """A create job that ends with an error wrote nothing to an existing file."""
    assert ended.wait(20), "the create job never ended"
    jobs = engine.execute("query-jobs")
    engine.execute("job-dismiss", {"id": "create"})
    if not (jobs and jobs[0].get("error")):
        return 0
    after = digests(d)
    changed = {n for n, h in before.items() if after.get(n) != h}
    assert not changed, f"create refused ({jobs[0]['error']}) but wrote {changed}"
    return 1


_counter = iter(range(1 << 30))
#: refusals checked per example (the test below makes sure the property was exercised)
REFUSALS: list[int] = []


@fuzz_settings(short_examples=60)
@given(data=st.data())
def test_a_refused_command_changes_no_file(tmp_path_factory: Any, data: st.DataObject) -> None:
    d = fresh_dir(tmp_path_factory.getbasetemp(), next(_counter))
    make_files(d)
    engine = Engine(rng_seed=3)
    nodes = open_graph(engine, data.draw(graph_recipe(d)))
    todo = data.draw(st.lists(commands(d, nodes), min_size=1, max_size=5))
    with time_limit(60, "refusal case"):
        REFUSALS.append(run_case(engine, d, todo))


def test_the_property_checked_many_refusals() -> None:
    """Runs after the property (same module, file order): it did check refusals."""
    assert REFUSALS and sum(REFUSALS) >= len(REFUSALS), REFUSALS
