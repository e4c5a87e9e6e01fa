"""The edit planner: pure functions from (graph snapshot, intent) to a plan. No I/O, no Qt.

    from gui.planner import PlanContext, plan_intent, plan_staged, check_intent
    from gui.planner.intents import SetBacking, DetachBacking, SetReadOnly, ExternalSnapshot, \
        Stream, Commit, Delete, AddImage, ChangeMedium

    ctx = PlanContext(snapshot, reopen_command="blockdev-reopen", known_options={})
    reasons = check_intent(ctx, SetBacking("top", "base"))   # typed reasons, fast (drag hover)
    plan = plan_intent(ctx, SetBacking("top", "base"))
    plan.ok, plan.refusals        # refused plans have reasons and no steps
    plan.summary                  # one line for humans
    plan.warnings                 # allowed, but confirm: data a commit changes for others
    plan.steps                    # QmpCommand(command, arguments) and WaitJob(job_id, until)
    plan.as_json(), plan.as_qmp_shell()   # copy-as-JSON / copy-as-qmp-shell
    plan.expected.mismatches(graph_after) # what the real graph contradicts
    plan.inverse or plan.irreversible     # undo plan, or why there is none

    staged = plan_staged(ctx, [SetBacking("a", "b"), SetReadOnly("c", True)])
    # -> one atomic blockdev-reopen carrying every touched node's full options
    #    (only link/read-only intents stage; others raise ValueError)

Link changes become ``blockdev-reopen`` transactions that repeat each node's full option
set (reopen resets what it is not given) — see :mod:`gui.planner.options`.
"""

from gui.planner.context import PlanContext
from gui.planner.planner import check_plan, plan_intent, plan_staged
from gui.planner.preflight import check as check_intent
from gui.planner.simulate import simulate
from gui.planner.summary import describe

__all__ = ["PlanContext", "check_intent", "check_plan", "describe", "plan_intent",
           "plan_staged", "simulate"]
