"""Cases the fuzzers found, kept as plain tests (each failed before its fix)."""

from __future__ import annotations

import contextlib
import io
import shutil
import struct
from pathlib import Path

import pytest

from engine.formats import open_chain, open_image
from engine.formats.cli import main as info_main
from engine.formats.errors import BackingChainError, ImageError, ImageIOError
from tests.fuzz.images import CORPUS, Mutation, exercise, materialise


def _copy(tmp_path: Path, name: str) -> Path:
    for p in CORPUS.iterdir():
        shutil.copyfile(p, tmp_path / p.name)
    return tmp_path / name


def test_nul_byte_in_backing_name_is_a_typed_error(tmp_path: Path) -> None:
    """Was: ValueError('embedded null byte') from os.stat in open_chain."""
    path = _copy(tmp_path, "overlay.qcow2")
    data = bytearray(path.read_bytes())
    bfo, bfs = struct.unpack_from(">QI", data, 8)
    assert data[bfo:bfo + bfs] == b"base.raw"
    data[bfo + 4] = 0
    path.write_bytes(bytes(data))
    with pytest.raises(BackingChainError, match="NUL byte"):
        open_chain(path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert info_main([str(path), "--backing-chain"]) == 1
    assert "internal error" not in err.getvalue()
    assert "NUL byte" in err.getvalue()


def test_refcount_block_offset_beyond_off_t_is_a_typed_error(tmp_path: Path) -> None:
    """Was: OverflowError from os.pread when a write looked up that refcount block."""
    path = _copy(tmp_path, "v3-512.qcow2")
    data = bytearray(path.read_bytes())
    rt_off = struct.unpack_from(">Q", data, 48)[0]
    struct.pack_into(">Q", data, rt_off, 0xFFFF_FFFF_FFFF_FE00)
    path.write_bytes(bytes(data))
    img = open_image(path, writable=True)
    try:
        with pytest.raises(ImageIOError, match="out of range"):
            img.write(0x8000, b"x" * 512)
    finally:
        with contextlib.suppress(ImageError):
            img.close()


def test_feature_table_cut_short_by_end_of_file(tmp_path: Path) -> None:
    """Was: IndexError parsing a feature name table that the file's end cuts off."""
    seed = CORPUS / "extl2.qcow2"
    path = materialise(seed, [Mutation(120, 0, 0)], tmp_path)
    with pytest.raises(ImageError):
        open_image(path)
    exercise(path)


def test_commit_of_a_node_outside_the_chain_is_refused_by_preflight(tmp_path: Path) -> None:
    """Was: preflight accepted Commit(top=<a protocol node>) and the planner crashed
    (StopIteration) looking for its overlay; the engine refuses it with this text."""
    from engine.qmp import Engine, QMPError
    from gui.planner.intents import Commit
    from gui.planner.planner import PlanContext, plan_intent
    from tests.fuzz.planner_cases import GraphRecipe, StackRecipe, build, make_files, snapshot

    make_files(tmp_path)
    engine = Engine(rng_seed=1)
    try:
        build(engine, GraphRecipe((StackRecipe(0, True, False, False),)), tmp_path)
        plan = plan_intent(PlanContext(snapshot(engine)), Commit("n0l1-file", None, "c"))
        assert [str(r) for r in plan.refusals] == [
            "'n0l1-file' is not in this backing file chain"]
        with pytest.raises(QMPError) as err:
            engine.execute("block-commit", {"job-id": "c", "device": "n0l0",
                                            "top-node": "n0l1-file"})
        assert err.value.desc == "'n0l1-file' is not in this backing file chain"
    finally:
        engine.close()


def test_active_commit_of_a_read_only_top_completes_instead_of_hanging(tmp_path: Path,
                                                                      ) -> None:
    """Was: active commit of a read-only top raised in the job thread at completion and
    the job stayed 'pending' forever. The job's own write access to the base refused
    the base's read-only reopen; QEMU drops that access before pivoting, so on
    qemu-storage-daemon 7.2 the job concludes without error and the base ends
    read-only like the top."""
    from engine.qmp import Engine
    from tests.fuzz.planner_cases import GraphRecipe, StackRecipe, build, make_files, wait_job

    make_files(tmp_path)
    engine = Engine(rng_seed=1)
    try:
        build(engine, GraphRecipe((StackRecipe(0, False, True, False),)), tmp_path)
        engine.execute("block-commit", {"job-id": "c", "device": "n0l0",
                                        "auto-dismiss": False})
        wait_job(engine, "c", ("ready", "concluded"))
        engine.execute("job-complete", {"id": "c"})
        wait_job(engine, "c", ("concluded",))
        [job] = engine.execute("query-jobs")
        assert job["status"] == "concluded" and "error" not in job, job
        assert all(n["ro"] for n in engine.execute("query-named-block-nodes"))
    finally:
        engine.close()


def test_an_id_beyond_uint64_comes_back_as_qemu_prints_it() -> None:
    """Found by the QMP fuzzer: the reply to an id of 10**400 is ``"id": inf`` — not
    JSON, but byte for byte what qemu-storage-daemon 7.2 answers, so the fuzzer's
    validity check accepts QEMU's bare non-finite numbers and nothing else."""
    from engine.server.inprocess import InProcessServer
    from tests.fuzz.qmp_cases import Client, validate_line

    with InProcessServer() as srv:
        c = Client(srv.connect())
        c.sock.sendall(b'{"execute": "query-version", "id": ' + b"9" * 400 + b"}")
        line = b""
        while not line.endswith(b"\n"):
            line += c.sock.recv(4096)
        assert line == (b'{"id": inf, "error": {"class": "CommandNotFound", "desc": '
                        b'"Expecting capabilities negotiation with \'qmp_capabilities\'"}}\r\n')
        assert validate_line(line.rstrip(b"\n"))["id"] is None
        c.sock.close()


def test_a_failed_job_is_a_failed_plan_not_a_broken_expectation(tmp_path: Path) -> None:
    """Found by the long planner run: an intermediate commit on a read-only chain failed
    (the overlay's header could not be rewritten) and the job was auto-dismissed; the
    harness polled query-jobs, saw no job and took it for success. Failures come from the
    BLOCK_JOB_COMPLETED event now. (The engine now reopens the read-only overlay
    read-write to rewrite its header, as QEMU does, so this commit succeeds; the plan's
    expectation is checked on the graph it leaves.)"""
    from tests.fuzz.planner_cases import GraphRecipe, StackRecipe, check_case

    recipe = GraphRecipe((StackRecipe(0, True, True, False),))
    [outcome] = check_case(recipe, [(5, 1, 0, False)], tmp_path)   # Commit(top=n0l1)
    assert outcome.failed is None and outcome.steps == 2, outcome


def test_dirty_image_pointing_past_its_end_is_not_repaired(tmp_path: Path) -> None:
    """Was: MemoryError. A dirty image (refcounts to rebuild before the first write)
    whose L2 table points gigabytes past the end of the file had the repair count and
    allocate refcount blocks for all of it. Found by the 30-minute atheris run."""
    from engine.formats.errors import CorruptImageError

    seed = CORPUS / "refcount1.qcow2"
    path = materialise(seed, [Mutation(2509, 4, 0xCDCDCDCD), Mutation(72, 8, 1)], tmp_path)
    before = path.read_bytes()
    img = open_image(path, writable=True)
    try:
        with pytest.raises(CorruptImageError, match="past the end of the file"):
            img.write(0, b"x" * 512)
    finally:
        with contextlib.suppress(ImageError):
            img.close()
    assert path.read_bytes() == before          # nothing was written
    exercise(path)                              # and the fuzz property holds


def test_commit_under_a_node_added_by_name_keeps_what_it_links_to(tmp_path: Path) -> None:
    """Found by the 30-minute atheris run: snapshot n0l0 (whose chain was opened from
    its image headers, auto-named), then commit n0l0 down to the bottom. The overlay
    now skips n0l0, but n0l0 was added by name, so it stays — and keeps its backing,
    the auto-named node under it. The plan expected that node gone (PromiseBroken);
    the engine, like QEMU, kept it."""
    from tests.fuzz.planner_cases import GraphRecipe, StackRecipe, check_case

    recipe = GraphRecipe((StackRecipe(0, False, False, False),))
    outcomes = check_case(recipe, [(3, 102, 105, False), (3, 65, 5, False), (5, 0, 0, False)],
                          tmp_path)
    commit = outcomes[-1]
    assert type(commit.intent).__name__ == "Commit" and commit.intent.top == "n0l0"
    assert not commit.refused and commit.failed is None, commit


@pytest.mark.parametrize("confined", [False, True], ids=["plain", "root"])
def test_a_nul_byte_in_a_filename_is_not_an_internal_error(tmp_path: Path,
                                                           confined: bool) -> None:
    """Was: "Internal error in blockdev-add: embedded null byte" (ValueError from
    os.open, or from realpath under --root). Found by the fourth 30-minute run.
    qemu-storage-daemon 7.2 answers this GenericError (checked by hand) when no file
    is named like the part before the NUL."""
    from engine.qmp import Engine, QMPError

    eng = Engine(root=str(tmp_path)) if confined else Engine()
    try:
        with pytest.raises(QMPError) as err:
            eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "top",
                                         "file": {"driver": "file",
                                                  "filename": str(tmp_path / "top\0x")}})
        assert err.value.error_class == "GenericError"
        name = f"{tmp_path / 'top'}\0x"
        assert err.value.desc == f"Could not open '{name}': No such file or directory"
    finally:
        eng.close()
