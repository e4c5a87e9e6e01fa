"""QMP commands that start, query and steer jobs.

``block-stream`` and ``block-commit`` run QEMU's checks (:mod:`engine.graph.rules`)
and hand the plan to the job layer (:mod:`engine.jobs`); ``blockdev-create`` opens
its file and starts a create job. The job verbs differ as in QEMU 7.2: ``job-*``
take ``id``, see every job (create jobs too) and say ``Job not found``;
``block-job-*`` take ``device`` (``finalize``/``dismiss`` take ``id``), see block jobs
only and say ``Block job 'x' not found`` (DeviceNotActive). ``job-cancel`` always
forces; ``block-job-cancel`` forces only with ``force: true`` — after READY a soft
cancel completes an active commit without pivoting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.graph import rules
from engine.jobs.commit import start_commit
from engine.jobs.create import CreateDriver, open_target
from engine.jobs.engine_jobs import jobs_of
from engine.jobs.errors import JobCommandError
from engine.jobs.stream import start_stream
from engine.qdict import qdict_sorted
from engine.qmp.block_schema import BlockdevRef, Driver
from engine.qmp.registry import command
from engine.qmp.schema import Bool, Enum, Int, Str, Struct, Union, members

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

ON_ERROR = Enum("BlockdevOnError", ["report", "ignore", "enospc", "stop", "auto"])

BLOCK_STREAM = Struct("block-stream", members({
    "*job-id": Str(), "device": Str(), "*base": Str(), "*base-node": Str(),
    "*backing-file": Str(), "*bottom": Str(), "*speed": Int(), "*on-error": ON_ERROR,
    "*filter-node-name": Str(), "*auto-finalize": Bool(), "*auto-dismiss": Bool(),
}))

BLOCK_COMMIT = Struct("block-commit", members({
    "*job-id": Str(), "device": Str(), "*base-node": Str(), "*base": Str(),
    "*top-node": Str(), "*top": Str(), "*backing-file": Str(), "*speed": Int(),
    "*on-error": ON_ERROR, "*filter-node-name": Str(), "*auto-finalize": Bool(),
    "*auto-dismiss": Bool(),
}))

_PREALLOC = Enum("PreallocMode", ["off", "metadata", "falloc", "full"])

BlockdevCreateOptions = Union("BlockdevCreateOptions", members({"driver": Driver}), variants={
    "file": members({"filename": Str(), "size": Int(non_negative=True),
                     "*preallocation": _PREALLOC, "*nocow": Bool(),
                     "*extent-size-hint": Int(non_negative=True)}),
    "qcow2": members({"file": BlockdevRef, "*data-file": BlockdevRef, "*data-file-raw": Bool(),
                      "*extended-l2": Bool(), "size": Int(non_negative=True),
                      "*version": Enum("BlockdevQcow2Version", ["v2", "v3"]),
                      "*backing-file": Str(), "*backing-fmt": Driver, "*encrypt": BlockdevRef,
                      "*cluster-size": Int(non_negative=True), "*preallocation": _PREALLOC,
                      "*lazy-refcounts": Bool(), "*refcount-bits": Int(),
                      "*compression-type": Enum("Qcow2CompressionType", ["zlib", "zstd"])}),
    "raw": (),
})

BLOCKDEV_CREATE = Struct("blockdev-create", members({"job-id": Str(),
                                                     "options": BlockdevCreateOptions}))


@command("block-stream", BLOCK_STREAM)
def block_stream(engine: Engine, args: dict[str, Any]) -> Any:
    """QEMU's checks first (:func:`engine.graph.rules.plan_stream`), then the job."""
    plan = rules.plan_stream(
        engine.graph, args["device"], base=args.get("base"), base_node=args.get("base-node"),
        bottom=args.get("bottom"), backing_file=args.get("backing-file"),
        job_id=args.get("job-id"))
    start_stream(engine, plan, args)
    return {}


@command("block-commit", BLOCK_COMMIT)
def block_commit(engine: Engine, args: dict[str, Any]) -> Any:
    """QEMU's checks first (:func:`engine.graph.rules.plan_commit`), then the job."""
    plan = rules.plan_commit(
        engine.graph, args["device"], top_node=args.get("top-node"), top=args.get("top"),
        base_node=args.get("base-node"), base=args.get("base"),
        backing_file=args.get("backing-file"), job_id=args.get("job-id"))
    start_commit(engine, plan, args)
    return {}


@command("blockdev-create", BLOCKDEV_CREATE)
def blockdev_create(engine: Engine, args: dict[str, Any]) -> Any:
    opts = args["options"]
    driver = opts["driver"]
    if driver not in ("file", "qcow2"):
        if driver == "raw":
            raise JobCommandError("Driver does not support blockdev-create")
        raise JobCommandError(f"Driver '{driver}' is not supported by the bundled engine")
    mgr = jobs_of(engine)
    mgr.check_new_id(args["job-id"])
    target = open_target(engine.graph, opts)
    try:
        job = mgr.create(args["job-id"], CreateDriver(engine.graph, engine.lock, opts, target),
                         auto_dismiss=False)
    except BaseException:
        target.close()
        raise
    job.start()
    return {}


def _id_schema(name: str, key: str = "id") -> Struct:
    return Struct(name, members({key: Str()}))


@command("query-jobs")
def query_jobs(engine: Engine, args: dict[str, Any]) -> Any:
    return qdict_sorted(jobs_of(engine).query_jobs())


@command("query-block-jobs")
def query_block_jobs(engine: Engine, args: dict[str, Any]) -> Any:
    return qdict_sorted(jobs_of(engine).query_block_jobs())


# -- job-* ------------------------------------------------------------------------------

@command("job-pause", _id_schema("job-pause"))
def job_pause(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_job(args["id"]).user_pause()
    return {}


@command("job-resume", _id_schema("job-resume"))
def job_resume(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_job(args["id"]).user_resume()
    return {}


@command("job-cancel", _id_schema("job-cancel"))
def job_cancel(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_job(args["id"]).user_cancel(True)
    return {}


@command("job-complete", _id_schema("job-complete"))
def job_complete(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_job(args["id"]).complete()
    return {}


@command("job-finalize", _id_schema("job-finalize"))
def job_finalize(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_job(args["id"]).finalize()
    return {}


@command("job-dismiss", _id_schema("job-dismiss"))
def job_dismiss(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_job(args["id"]).dismiss()
    return {}


# -- block-job-* -------------------------------------------------------------------------

@command("block-job-set-speed", Struct("block-job-set-speed",
                                       members({"device": Str(), "speed": Int()})))
def block_job_set_speed(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_block_job(args["device"]).set_speed(args["speed"])
    return {}


@command("block-job-cancel", Struct("block-job-cancel",
                                    members({"device": Str(), "*force": Bool()})))
def block_job_cancel(engine: Engine, args: dict[str, Any]) -> Any:
    job = jobs_of(engine).find_block_job(args["device"])
    force = bool(args.get("force", False))
    if job.user_paused and not force:
        raise JobCommandError(
            f"The block job for device '{args['device']}' is currently paused")
    job.user_cancel(force)
    return {}


@command("block-job-pause", _id_schema("block-job-pause", "device"))
def block_job_pause(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_block_job(args["device"]).user_pause()
    return {}


@command("block-job-resume", _id_schema("block-job-resume", "device"))
def block_job_resume(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_block_job(args["device"]).user_resume()
    return {}


@command("block-job-complete", _id_schema("block-job-complete", "device"))
def block_job_complete(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_block_job(args["device"]).complete()
    return {}


@command("block-job-finalize", _id_schema("block-job-finalize"))
def block_job_finalize(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_block_job(args["id"]).finalize()
    return {}


@command("block-job-dismiss", _id_schema("block-job-dismiss"))
def block_job_dismiss(engine: Engine, args: dict[str, Any]) -> Any:
    jobs_of(engine).find_block_job(args["id"]).dismiss()
    return {}
