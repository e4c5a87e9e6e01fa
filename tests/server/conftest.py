"""Fixtures for the QMP server tests: a running ``blockgraph serve`` in a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.support import ServeProcess


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path) as proc:
        yield proc
