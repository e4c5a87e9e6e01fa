"""QMP commands that query and steer jobs: query-jobs, job-*, block-job-*.

The two command families differ as in QEMU 7.2: ``job-*`` take ``id``, see every
job (create jobs too) and say ``Job not found``; ``block-job-*`` take ``device``
(``finalize``/``dismiss`` take ``id``), see block jobs only and say ``Block job
'x' not found`` (DeviceNotActive). ``job-cancel`` always forces;
``block-job-cancel`` forces only with ``force: true`` — after READY a soft cancel
completes an active commit without pivoting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.jobs.engine_jobs import jobs_of
from engine.jobs.errors import JobCommandError
from engine.qdict import qdict_sorted
from engine.qmp.registry import command
from engine.qmp.schema import Bool, Int, Str, Struct, members

if TYPE_CHECKING:
    from engine.qmp.engine import Engine


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
