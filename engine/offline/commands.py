"""The ``qemu-img`` command line equivalent to each offline edit.

Every offline edit is shown to the user as the command that would do the same with
QEMU's own tools, so what the editor does on disk can be read, copied and repeated.
Arguments are shell-quoted (``shlex.join``); an empty backing name shows as ``''``.
"""

from __future__ import annotations

import shlex


def rebase_command(image: str, image_format: str, backing: str | None,
                   backing_format: str | None, *, safe: bool) -> str:
    """``qemu-img rebase [-u] -f FMT -b NEW [-F BFMT] IMAGE``."""
    args = ["qemu-img", "rebase"]
    if not safe:
        args.append("-u")
    args += ["-f", image_format, "-b", backing or ""]
    if backing and backing_format:
        args += ["-F", backing_format]
    args.append(image)
    return shlex.join(args)


def convert_command(image: str, image_format: str, output: str, output_format: str) -> str:
    """``qemu-img convert -f FMT -O OFMT IMAGE OUTPUT``."""
    return shlex.join(["qemu-img", "convert", "-f", image_format, "-O", output_format,
                       image, output])


def commit_command(image: str, image_format: str, base: str | None, *, drop: bool) -> str:
    """``qemu-img commit -f FMT [-b BASE] [-d] IMAGE``."""
    args = ["qemu-img", "commit", "-f", image_format]
    if base is not None:
        args += ["-b", base]
    if not drop:
        args.append("-d")
    args.append(image)
    return shlex.join(args)
