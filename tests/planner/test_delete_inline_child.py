"""Undoing a delete re-creates a named file child that was created inline with the node."""

from __future__ import annotations

from engine.graph.snapshot import EdgeInfo, GraphSnapshot, NodeInfo
from gui.planner import PlanContext, plan_intent
from gui.planner.intents import Delete


def test_inverse_of_delete_inlines_a_named_inline_file_child() -> None:
    graph = GraphSnapshot(
        [NodeInfo("spare", "block-node", "spare", driver="qcow2", filename="/i/spare.qcow2"),
         NodeInfo("spare-file", "block-node", "spare-file", driver="file",
                  filename="/i/spare.qcow2")],
        [EdgeInfo("spare", "spare-file", "file")])
    known = {"spare": {"driver": "qcow2", "node-name": "spare", "backing": None,
                       "file": {"driver": "file", "node-name": "spare-file",
                                "filename": "/i/spare.qcow2"}}}
    plan = plan_intent(PlanContext(graph, known_options=known), Delete("spare"))
    assert plan.ok and plan.inverse is not None
    readd = plan.inverse.commands()[0]
    assert readd.command == "blockdev-add"
    assert readd.arguments["file"] == {"driver": "file", "filename": "/i/spare.qcow2",
                                       "node-name": "spare-file"}
