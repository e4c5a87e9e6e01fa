"""Colour schemes for the canvas and the application, light and dark.

Colours are set explicitly rather than taken from the platform: the offscreen
platform (tests, ``blockgraph render``) cannot switch schemes, and a graph must
look the same on every desktop. :func:`qt_palette` derives the widgets' palette
from the same scheme, so docks and canvas match.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette


@dataclass(frozen=True)
class Scheme:
    """Every colour the editor draws with, by purpose (``#rrggbb`` strings)."""

    name: str
    background: str
    grid: str
    window: str
    base: str
    text: str
    text_dim: str
    card: str
    card_border: str
    selected: str
    format_header: str
    protocol_header: str
    filter_header: str
    backend_header: str
    job_header: str
    edge_backing: str
    edge_file: str
    edge_root: str
    edge_job: str
    edge_other: str
    drag_ok: str
    drag_refused: str
    alloc_bg: str
    alloc_fill: str
    badge: str
    read_only: str
    error: str
    highlight: str
    frame: str = "#eaeef4"
    frame_border: str = "#c9d1dc"
    folded_header: str = "#4d5f80"

    def color(self, purpose: str) -> QColor:
        return QColor(getattr(self, purpose))


LIGHT = Scheme(
    name="light",
    background="#f4f5f7",
    grid="#e3e6ea",
    window="#eef0f3",
    base="#ffffff",
    text="#1d2330",
    text_dim="#7a8291",
    card="#ffffff",
    card_border="#b9c0cb",
    selected="#2f7de1",
    format_header="#3b6fb6",
    protocol_header="#6b7a8f",
    filter_header="#8a5cb8",
    backend_header="#2e8a5a",
    job_header="#c9761a",
    edge_backing="#2f5fa3",
    edge_file="#8d96a3",
    edge_root="#2e8a5a",
    edge_job="#d9822b",
    edge_other="#8a5cb8",
    drag_ok="#1f9d55",
    drag_refused="#d03b3b",
    alloc_bg="#e3e8ef",
    alloc_fill="#5b9bd5",
    badge="#e0892e",
    read_only="#a05a00",
    error="#c62828",
    highlight="#ffd54a",
)

DARK = Scheme(
    name="dark",
    background="#1e2127",
    grid="#2a2e36",
    window="#262a31",
    base="#1b1e23",
    text="#e4e8ef",
    text_dim="#8d95a3",
    card="#2c313a",
    card_border="#4a5260",
    selected="#5aa2ff",
    format_header="#3f73bd",
    protocol_header="#5b6777",
    filter_header="#8a61c2",
    backend_header="#2f9461",
    job_header="#d07f22",
    edge_backing="#6fa3f0",
    edge_file="#78818e",
    edge_root="#4cc38a",
    edge_job="#f0a050",
    edge_other="#b48ee6",
    drag_ok="#3ccf7c",
    drag_refused="#ff6b6b",
    alloc_bg="#3a404b",
    alloc_fill="#5b9bd5",
    badge="#f0a050",
    read_only="#f0b35a",
    error="#ff6b6b",
    highlight="#c9a227",
    frame="#23272e",
    frame_border="#3a414c",
    folded_header="#56698e",
)

SCHEMES = {"light": LIGHT, "dark": DARK}


def qt_palette(scheme: Scheme) -> QPalette:
    """A widget palette matching ``scheme``."""
    p = QPalette()
    c = scheme.color
    p.setColor(QPalette.ColorRole.Window, c("window"))
    p.setColor(QPalette.ColorRole.WindowText, c("text"))
    p.setColor(QPalette.ColorRole.Base, c("base"))
    p.setColor(QPalette.ColorRole.AlternateBase, c("window"))
    p.setColor(QPalette.ColorRole.Text, c("text"))
    p.setColor(QPalette.ColorRole.Button, c("window"))
    p.setColor(QPalette.ColorRole.ButtonText, c("text"))
    p.setColor(QPalette.ColorRole.ToolTipBase, c("base"))
    p.setColor(QPalette.ColorRole.ToolTipText, c("text"))
    p.setColor(QPalette.ColorRole.PlaceholderText, c("text_dim"))
    p.setColor(QPalette.ColorRole.Highlight, c("selected"))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    p.setColor(QPalette.ColorRole.Link, c("selected"))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText,
                 QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, c("text_dim"))
    return p
