"""The planner as a pure function on hand-built snapshots: option reconstruction,
renderings, peer variants and expectation checks (no peer needed)."""

from __future__ import annotations

import json

import pytest

from engine.graph.snapshot import EdgeInfo, GraphSnapshot, NodeInfo
from gui.planner import PlanContext, check_intent, plan_intent, plan_staged, simulate
from gui.planner.intents import Commit, Delete, DetachBacking, SetBacking, SetReadOnly
from gui.planner.options import current_options, json_filename_options
from gui.planner.plan import EdgeFact, Expectation
from gui.session.graph_reader import synthesize_debug_graph


def node(name: str, driver: str = "qcow2", *, ro: bool = False, filename: str = "",
         header: str | None = None, cache_direct: bool = False, dz: str = "off") -> NodeInfo:
    return NodeInfo(key=name, kind="block-node", name=name, driver=driver, read_only=ro,
                    filename=filename or f"/img/{name}", header_backing=header,
                    info={"cache": {"writeback": True, "direct": cache_direct,
                                    "no-flush": False}, "detect_zeroes": dz})


def graph() -> GraphSnapshot:
    """top -> mid -> base (qcow2 by reference), each over an auto-named file node."""
    nodes = [node("top", header="/img/mid", cache_direct=True, dz="unmap"),
             node("mid", header="/img/base"), node("base"),
             node("#block1", "file", filename="/img/top"),
             node("#block2", "file", filename="/img/mid"),
             node("#block3", "file", filename="/img/base")]
    edges = [EdgeInfo("top", "#block1", "file"), EdgeInfo("top", "mid", "backing"),
             EdgeInfo("mid", "#block2", "file"), EdgeInfo("mid", "base", "backing"),
             EdgeInfo("base", "#block3", "file")]
    return GraphSnapshot(nodes, edges)


def test_options_come_from_queries_and_known_options() -> None:
    g = graph()
    opts = current_options(g, "top")
    assert opts == {"driver": "qcow2", "node-name": "top", "read-only": False,
                    "cache": {"direct": True, "no-flush": False},
                    "detect-zeroes": "unmap", "discard": "unmap",
                    "file": "#block1", "backing": "mid"}
    known = {"top": {"driver": "qcow2", "node-name": "top", "l2-cache-size": 262144,
                     "discard": "unmap", "file": {"driver": "file", "filename": "/img/top"},
                     "read-only": True}}
    opts = current_options(g, "top", known)
    assert opts["l2-cache-size"] == 262144          # only known from what we sent
    assert opts["read-only"] is False               # the query wins over what we sent
    assert opts["file"] == "#block1"                # children by reference


def test_detached_node_whose_header_names_a_backing_gets_backing_null() -> None:
    g = graph()
    plan = plan_intent(PlanContext(g), DetachBacking("mid"))
    assert current_options(simulate(g, [DetachBacking("mid")]), "mid")["backing"] is None
    assert plan.commands()[0].arguments["options"][0]["backing"] is None


def test_json_filename_strong_options() -> None:
    name = 'json:{"offset": 1048576, "driver": "raw", "file": {"driver": "file", "filename": "/x"}}'
    assert json_filename_options(name) == {"offset": 1048576}
    assert json_filename_options("/plain/file") == {}
    # dotted keys name a child's options, as QEMU reads them, not the node's own
    dotted = 'json:{"driver": "raw", "file.driver": "file", "file.filename": "/x", "size": 512}'
    assert json_filename_options(dotted) == {"size": 512}
    assert json_filename_options("json:[1]") == {}


def test_renderings_and_old_reopen_command() -> None:
    g = graph()
    plan = plan_intent(PlanContext(g), SetBacking("top", "base"))
    (line,) = plan.as_json().splitlines()
    assert json.loads(line)["execute"] == "blockdev-reopen"
    shell = plan.as_qmp_shell()
    assert shell.startswith("blockdev-reopen options=[{")
    assert json.loads(shell.split("=", 1)[1]) == plan.commands()[0].arguments["options"]
    assert "summary" not in shell and plan.summary == "Re-point the backing of top from mid to base"
    old = plan_staged(PlanContext(g, reopen_command="x-blockdev-reopen"),
                      [SetBacking("top", "base"), SetReadOnly("mid", True)])
    assert [c.command for c in old.commands()] == ["x-blockdev-reopen"] * 2
    assert old.commands()[0].arguments["node-name"] == "top"


def test_preflight_refusals_on_a_snapshot() -> None:
    g = graph()
    ctx = PlanContext(g)
    assert [str(r) for r in check_intent(ctx, SetBacking("base", "top"))] == [
        "Making 'top' a backing child of 'base' would create a cycle"]
    # an auto-named node is reopened through its named parent: a file node has no
    # backing member, and QAPI says so for the nested dict
    assert [str(r) for r in check_intent(ctx, SetBacking("#block1", "base"))] == [
        "Parameter 'options[0].file.backing' is unexpected"]
    assert [str(r) for r in check_intent(ctx, SetBacking("nope", "base"))] == [
        "Failed to find node with node-name='nope'"]
    assert [str(r) for r in check_intent(ctx, SetBacking("top", "nope"))] == [
        "Cannot find device='' nor node-name='nope'"]
    refused = plan_intent(ctx, SetBacking("base", "top"))
    assert not refused.ok and refused.steps == () and refused.inverse is None


def test_expectation_reports_each_contradiction() -> None:
    g = graph()
    exp = Expectation(edges=(EdgeFact("top", "backing", "base"),), present=("x",),
                      absent=("mid",), read_only=(("base", True),))
    assert exp.mismatches(g) == ["node x is missing", "node mid still exists",
                                 "top.backing is mid, expected base",
                                 "base is read-write, expected read-only"]


def test_graph_without_debug_query_is_pieced_from_flat_nodes() -> None:
    named = [{"node-name": "top", "file": "/img/top", "backing_file": "/img/base"},
             {"node-name": "base", "file": "/img/base"}]
    debug = synthesize_debug_graph(named)
    g = GraphSnapshot.from_qmp(debug, named, [])
    assert g.backing("top") == "base"
    modern = [{"node-name": "top", "file": "/img/top",
               "children": [{"child": "backing", "node-name": "base"}]},
              {"node-name": "base", "file": "/img/base", "children": []}]
    g = GraphSnapshot.from_qmp(synthesize_debug_graph(modern), modern, [])
    assert g.backing("top") == "base"


def test_commit_into_a_shared_base_warns() -> None:
    g = graph()
    nodes = [*g.nodes.values(), node("other", header="/img/base"),
             node("#block4", "file", filename="/img/other")]
    edges = [*g.edges, EdgeInfo("other", "#block4", "file"),
             EdgeInfo("other", "base", "backing")]
    shared = GraphSnapshot(nodes, edges)
    plan = plan_intent(PlanContext(shared), Commit("mid", "base"))
    assert plan.ok and plan.warnings == (
        "base is also the backing of other: what they read changes when mid's data is "
        "written into it",)
    assert plan_intent(PlanContext(g), Commit("mid", "base")).warnings == ()


def test_only_link_edits_stage() -> None:
    with pytest.raises(ValueError, match="only link and read-only edits"):
        plan_staged(PlanContext(graph()), [SetBacking("top", "base"), Delete("mid")])
    old = plan_staged(PlanContext(graph(), reopen_command="x-blockdev-reopen"),
                      [SetBacking("top", "base"), SetReadOnly("mid", True)])
    assert "not atomically" in old.warnings[0]
