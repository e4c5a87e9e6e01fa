"""``blockgraph info IMAGE``: describe an image file like ``qemu-img info``.

The JSON output uses qemu-img's field names for every field both tools have, so
the two can be compared member by member. Errors are one line on stderr and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from engine.formats.chain import close_chain, open_chain
from engine.formats.errors import ImageError
from engine.formats.image import Image
from engine.formats.probe import FORMATS, open_image

PROG = "blockgraph info"


def human_size(n: int) -> str:
    """Sizes the way qemu-img prints them: three significant digits, binary units."""
    if n <= 0:
        return "0 B"
    _, exp = math.frexp(n / (1000.0 / 1024.0))
    i = min((exp - 1) // 10, 6)
    value = n / (1 << (i * 10))
    unit = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")[i]
    return f"{value:.3g} {unit}B"


def _bool(v: object) -> str:
    return "true" if v else "false"


def format_human(info: dict[str, Any]) -> str:
    """One image's facts in the layout of ``qemu-img info``."""
    lines = [
        f"image: {info['filename']}",
        f"file format: {info['format']}",
        f"virtual size: {human_size(info['virtual-size'])} ({info['virtual-size']} bytes)",
        f"disk size: {human_size(info['actual-size'])}",
    ]
    if "cluster-size" in info:
        lines.append(f"cluster_size: {info['cluster-size']}")
    if "backing-filename" in info:
        line = f"backing file: {info['backing-filename']}"
        if info.get("full-backing-filename") != info["backing-filename"]:
            line += f" (actual path: {info['full-backing-filename']})"
        lines.append(line)
    if "backing-filename-format" in info:
        lines.append(f"backing file format: {info['backing-filename-format']}")
    if info.get("dirty-flag"):
        lines.append("cleanly shut down: no")
    if info.get("snapshots"):
        lines.append("Snapshot list:")
        lines.append(f"{'ID':<10}{'TAG':<18}{'VM SIZE':>7}{'DATE':>21}{'VM CLOCK':>13}"
                     f"{'ICOUNT':>11}")
        for s in info["snapshots"]:
            date = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["date-sec"]))
            secs = s["vm-clock-sec"]
            clock = (f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}."
                     f"{s['vm-clock-nsec'] // 1_000_000:03d}")
            lines.append(f"{s['id']:<10}{s['name']:<18}{human_size(s['vm-state-size']):>7}"
                         f"{date:>21}{clock:>13}{s.get('icount', ''):>11}")
    specific = info.get("format-specific")
    if specific:
        lines.append("Format specific information:")
        _dump(specific["data"], 1, lines)
    return "\n".join(lines)


def _dump(value: Any, depth: int, lines: list[str]) -> None:
    """Nested format-specific data, indented like qemu-img's human output."""
    pad = "    " * depth
    items = value.items() if isinstance(value, dict) else (
        (f"[{i}]", v) for i, v in enumerate(value))
    for key, item in items:
        label = key.replace("-", " ") if isinstance(value, dict) else key
        if isinstance(item, dict | list):
            lines.append(f"{pad}{label}:")
            _dump(item, depth + 1, lines)
        else:
            lines.append(f"{pad}{label}: {_bool(item) if isinstance(item, bool) else item}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("image", help="the image file")
    p.add_argument("--backing-chain", action="store_true",
                   help="describe every image of the backing chain, top first")
    p.add_argument("--output", choices=("human", "json"), default="human",
                   help="output format (default: human)")
    p.add_argument("-f", "--format", dest="fmt", choices=FORMATS,
                   help="the image format (default: probe)")
    return p


def collect(image: str, fmt: str | None, backing_chain: bool) -> list[dict[str, Any]]:
    """The info dicts: one image, or the whole chain top first."""
    if not backing_chain:
        img: Image = open_image(image, fmt)
        try:
            return [img.info()]
        finally:
            img.close()
    chain = open_chain(image, fmt)
    try:
        return [i.info() for i in chain]
    finally:
        close_chain(chain)


def main(argv: list[str] | None = None) -> int:
    """Run ``blockgraph info``; returns the exit status (0 ok, 1 image error, 2 usage)."""
    parser = _parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:   # --help (0) or a usage error (2): argparse printed it
        return int(exc.code or 0)
    try:
        infos = collect(args.image, args.fmt, args.backing_chain)
    except ImageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:   # never a traceback from the CLI
        print(f"{PROG}: internal error reading '{args.image}': {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1
    if args.output == "json":
        doc: Any = infos if args.backing_chain else infos[0]
        print(json.dumps(doc, indent=4))
    else:
        print("\n\n".join(format_human(i) for i in infos))
    return 0


if __name__ == "__main__":
    sys.exit(main())
