"""Debian's source package of the installed QEMU, fetched into the user's cache.

``apt-get source`` needs a ``deb-src`` entry; the machine may have none, so one is
derived from the machine's own ``deb`` entries (the same mirrors, suites, components
and keys) into a private apt configuration under the cache directory. Nothing in the
system's apt state is changed, and the unpacked tree lives under
``$XDG_CACHE_HOME/blockgraph/qemu-source/VERSION`` (GPL code that is run, not copied
into the project).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

#: the binary package whose source is fetched: the one that provides qemu-system-x86_64
QEMU_BINARY_PACKAGE = "qemu-system-x86"
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
APT_SOURCES_LIST = Path("/etc/apt/sources.list")


class SourceError(RuntimeError):
    """The QEMU source could not be found or fetched (the message says why)."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/blockgraph`` (``~/.cache/blockgraph`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "blockgraph"


def installed_source_version(package: str = QEMU_BINARY_PACKAGE) -> tuple[str, str]:
    """(source package name, source version) of the installed ``package``."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${source:Package} ${source:Version}", package],
            check=True, capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SourceError(f"{package} is not installed (dpkg-query: {exc})") from None
    if len(out) != 2:
        raise SourceError(f"dpkg-query gave no source version for {package}")
    return out[0], out[1]


def deb_src_entries(sources_dir: Path = APT_SOURCES_DIR,
                    sources_list: Path = APT_SOURCES_LIST) -> str:
    """The machine's ``deb`` entries turned into ``deb-src`` ones, in deb822 form.

    Reads every enabled ``*.sources`` (deb822) and ``*.list`` (one-line) file.
    """
    stanzas: list[dict[str, str]] = []
    for path in sorted(sources_dir.glob("*.sources")):
        stanzas.extend(_deb822_stanzas(path.read_text(encoding="utf-8")))
    lists = sorted(sources_dir.glob("*.list"))
    if sources_list.exists():
        lists.insert(0, sources_list)
    for path in lists:
        stanzas.extend(_one_line_stanzas(path.read_text(encoding="utf-8")))
    out = []
    seen = set()
    for st in stanzas:
        if "deb" not in st.get("Types", "").split():
            continue
        if st.get("Enabled", "yes").lower() == "no":
            continue
        key = (st.get("URIs"), st.get("Suites"), st.get("Components"))
        if key in seen:
            continue
        seen.add(key)
        fields = {"Types": "deb-src", **{k: v for k, v in st.items()
                                         if k in ("URIs", "Suites", "Components",
                                                  "Signed-By")}}
        out.append("\n".join(f"{k}: {v}" for k, v in fields.items()))
    if not out:
        raise SourceError("no 'deb' entry in the machine's apt sources to derive "
                          "a 'deb-src' entry from")
    return "\n\n".join(out) + "\n"


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last = {}, ""
        elif line[0] in " \t" and last:
            current[last] += "\n" + line
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            current[last] = value.strip()
    return stanzas


def _one_line_stanzas(text: str) -> list[dict[str, str]]:
    stanzas = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        options = ""
        m = re.match(r"(\S+)\s+\[([^\]]*)\]\s+(.*)", line)
        if m:
            kind, options, rest = m.group(1), m.group(2), m.group(3)
        else:
            kind, _, rest = line.partition(" ")
        parts = rest.split()
        if len(parts) < 2:
            continue
        stanza = {"Types": kind, "URIs": parts[0], "Suites": parts[1],
                  "Components": " ".join(parts[2:])}
        for opt in options.split():
            key, _, value = opt.partition("=")
            if key == "signed-by":
                stanza["Signed-By"] = value
        stanzas.append(stanza)
    return stanzas


def qemu_source_tree(*, quiet: bool = False) -> Path:
    """The unpacked source of the installed QEMU, fetched on first use.

    Returns the tree's root (it holds ``tests/qemu-iotests`` and ``python/qemu``).
    """
    name, version = installed_source_version()
    safe_version = version.replace(":", "_")
    home = cache_dir() / "qemu-source" / safe_version
    done = home / ".unpacked"
    if done.exists():
        return Path(done.read_text(encoding="utf-8").strip())
    if shutil.which("dpkg-source") is None:
        raise SourceError("dpkg-source (package dpkg-dev) is needed to unpack the source")
    apt = home / "apt"
    (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (apt / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = apt / "deb-src.sources"
    sources.write_text(deb_src_entries(), encoding="utf-8")
    options = ["-o", f"Dir::Etc::SourceList={sources}",
               "-o", "Dir::Etc::SourceParts=-",
               "-o", f"Dir::State::Lists={apt / 'lists'}",
               "-o", f"Dir::Cache={apt / 'cache'}",
               "-o", "APT::Sandbox::User=root"]
    out = subprocess.DEVNULL if quiet else None
    _run(["apt-get", *options, "update"], out)
    work = home / "unpack"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    _run(["apt-get", *options, "source", f"{name}={version}"], out, cwd=work)
    trees = [p for p in work.iterdir() if p.is_dir() and (p / "tests" / "qemu-iotests").is_dir()]
    if len(trees) != 1:
        raise SourceError(f"apt-get source {name}={version} left no QEMU tree in {work}")
    for leftover in work.iterdir():  # the tarballs are not needed once unpacked
        if leftover.is_file():
            leftover.unlink()
    shutil.rmtree(apt / "cache", ignore_errors=True)
    done.write_text(str(trees[0]), encoding="utf-8")
    return trees[0]


def _run(argv: list[str], out: int | None, cwd: Path | None = None) -> None:
    try:
        subprocess.run(argv, check=True, stdout=out, stderr=subprocess.STDOUT if out else None,
                       cwd=cwd)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SourceError(f"{' '.join(argv[:1] + argv[-2:])} failed: {exc}") from None
