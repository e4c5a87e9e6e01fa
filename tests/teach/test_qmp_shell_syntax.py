"""The one reader and writer of qmp-shell syntax, checked against qemu.qmp's qmp-shell.

Every line is read by our reader and by qmp-shell's own parser (``QMPShell._build_cmd``
from the installed ``qemu.qmp``, no connection needed): both must give the same
command. Everything the writer writes is read back by both as the value written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from qemu.qmp.qmp_shell import QMPShell, QMPShellError

from gui.scripting.qmp_shell import (
    QmpShellError,
    Unrepresentable,
    format_command,
    format_value,
    parse_command,
    parse_lines,
)


@pytest.fixture
def shell() -> Iterator[QMPShell]:
    sh = QMPShell("/nonexistent/qmp.sock")      # only its parser is used
    try:
        yield sh
    finally:
        sh.close()


def theirs(shell: QMPShell, line: str) -> tuple[str, dict[str, Any]] | str:
    try:
        msg = shell._build_cmd(line)
    except QMPShellError as exc:
        return f"error: {exc}"
    assert msg is not None
    return msg["execute"], msg["arguments"]


def ours(line: str) -> tuple[str, dict[str, Any]] | str:
    try:
        return parse_command(line)
    except QmpShellError as exc:
        return f"error: {exc}"


LINES = [
    "query-block",
    "blockdev-add driver=qcow2 node-name=n1 file.driver=file",
    'x name="two words" other=\'single quoted\' mixed=a"b c"d',
    "x n=12 neg=-3 plus=+4 under=1_000 big=123456789012345678901234567890",
    "x t=true f=FALSE T=True word=truex",
    'x obj={"a":[1,2,{"b":null}],"c":"d e"} lst=[1,"two",false]',
    "x fuzzy={'a':true,'b':null} bad={not json} br=[",
    "x empty= dotted.deep.key=1",
    "x a=1 a=2",
    "x a=1 a.b=2",
    "x novalue",
    "x backing= read-only=true",
    'x esc="quote \\" inside" tab=a\tb',
]


@pytest.mark.parametrize("line", LINES)
def test_our_reader_reads_what_qmp_shell_reads(shell: QMPShell, line: str) -> None:
    expected = theirs(shell, line)
    got = ours(line)
    if isinstance(expected, str):
        assert isinstance(got, str), f"qmp-shell refuses ({expected}); we read {got}"
    else:
        assert got == expected


def test_qmp_shell_nests_every_argument_after_a_dotted_one(shell: QMPShell) -> None:
    """qemu.qmp's qmp-shell keeps descending after a dotted key: the arguments after it
    land inside it. Our reader nests each argument by its own key (as qmp-shell's help
    describes), and our writer never writes a dotted key, so what we write reads the
    same in both."""
    line = "blockdev-add file.driver=file file.filename=/x node-name=n"
    assert theirs(shell, line) == ("blockdev-add", {"file": {
        "driver": "file", "file": {"filename": "/x", "node-name": "n"}}})
    assert ours(line) == ("blockdev-add", {"file": {"driver": "file", "filename": "/x"},
                                           "node-name": "n"})
    written = format_command("blockdev-add", ours(line)[1])
    assert "." not in written.split("=")[0] and theirs(shell, written) == ours(written)


VALUES: list[Any] = [
    "plain", "/abs/path/to-an_image.qcow2", "#block123", "node.with.dots", "", 0, 7, -12,
    True, False, {"driver": "file", "filename": "/with space/and'quote\"s.img"},
    [{"node-name": "a", "backing": None}, 3, "x"], {"nested": {"deep": [True, None]}},
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: json.dumps(v)[:40])
def test_what_we_write_both_readers_read_back(shell: QMPShell, value: Any) -> None:
    line = format_command("cmd", {"arg": value})
    assert theirs(shell, line) == ("cmd", {"arg": value})
    assert ours(line) == ("cmd", {"arg": value})


@pytest.mark.parametrize("value", ["two words", '"quoted"', "it's", "123", "true", "False",
                                   "{not json", "[x", 1.5, None, "tab\there"])
def test_what_would_read_back_otherwise_is_refused(shell: QMPShell, value: Any) -> None:
    with pytest.raises(Unrepresentable):
        format_value(value)


def test_blockdev_add_backing_null_is_the_empty_string_qemu_also_takes(shell: QMPShell) -> None:
    line = format_command("blockdev-add", {"driver": "qcow2", "node-name": "ov",
                                           "file": "ov-file", "backing": None})
    assert line == "blockdev-add driver=qcow2 node-name=ov file=ov-file backing="
    assert theirs(shell, line) == ours(line) == (
        "blockdev-add", {"driver": "qcow2", "node-name": "ov", "file": "ov-file",
                         "backing": ""})
    with pytest.raises(Unrepresentable):
        format_command("blockdev-reopen", {"backing": None})


def test_transaction_blocks_read_as_one_command(shell: QMPShell) -> None:
    lines = ["transaction(",
             "blockdev-snapshot node=a overlay=b",
             "blockdev-snapshot node=c overlay=d )"]
    expected = None
    for line in lines:
        expected = shell._build_cmd(line) or expected
    assert expected is not None
    ((_, command, args),) = list(parse_lines(lines))
    assert (command, args) == (expected["execute"], expected["arguments"])
