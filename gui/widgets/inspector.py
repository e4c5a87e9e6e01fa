"""Node inspector dock: every fact about the selected node, and its links."""

from __future__ import annotations

import html
import json

from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from engine.graph.snapshot import GraphSnapshot
from gui.views.text import human_size


class Inspector(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QTextBrowser(self)
        self.text.setOpenLinks(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.text)
        self.key: str | None = None
        self.show_node(None, None)

    def show_node(self, snapshot: GraphSnapshot | None, key: str | None) -> None:
        self.key = key
        if snapshot is None or key is None or key not in snapshot.nodes:
            self.text.setHtml("<p><i>Select a node to inspect it.</i></p>")
            return
        n = snapshot.nodes[key]
        rows: list[tuple[str, str]] = [("key", n.key), ("kind", n.kind)]
        if n.kind == "block-node":
            rows += [
                ("node-name", n.name + ("  (auto-named)" if n.auto_named else "")),
                ("driver", n.driver),
                ("file", n.filename),
                ("virtual size", f"{human_size(n.virtual_size)} ({n.virtual_size} bytes)"
                 if n.virtual_size is not None else "?"),
                ("allocated on host", human_size(n.actual_size)),
                ("cluster size", human_size(n.cluster_size) if n.cluster_size else "—"),
                ("read-only", "yes" if n.read_only else "no"),
                ("header backing", n.header_backing or "—"),
                ("header backing format", n.header_backing_format or "—"),
            ]
            if n.implicit:
                rows.append(("implicit", "job filter (hidden by QEMU in most queries)"))
        elif n.kind == "block-job":
            rows += [("id", n.name), ("type", n.driver)]
            rows += [(k, str(v)) for k, v in n.info.items() if k not in ("type", "device")]
        else:
            rows.append(("name", n.name or "(anonymous)"))
        out = ["<table cellspacing=2>"]
        for k, v in rows:
            out.append(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>")
        out.append("</table>")
        for title, edges, other in (("Children", snapshot.children(key), "child"),
                                    ("Parents", snapshot.parents(key), "parent")):
            if not edges:
                continue
            out.append(f"<h4>{title}</h4><ul>")
            for e in edges:
                perm = ", ".join(e.perm) or "none"
                shared = ", ".join(e.shared_perm) or "none"
                frozen = " <i>(frozen)</i>" if getattr(e, "frozen", False) else ""
                out.append(f"<li><b>{html.escape(e.role)}</b>: "
                           f"{html.escape(getattr(e, other))}{frozen}<br>"
                           f"<small>perm: {perm}; shared: {shared}</small></li>")
            out.append("</ul>")
        if n.info:
            raw = json.dumps(dict(n.info), indent=2, default=str)
            out.append(f"<h4>QMP data</h4><pre>{html.escape(raw)}</pre>")
        self.text.setHtml("".join(out))
