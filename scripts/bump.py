"""Bump one distribution's version and every dependent's range for it.

    .venv/bin/python scripts/bump.py DIST NEW_VERSION [--dry-run] [--no-lock]

Sets ``version`` in packages/DIST/pyproject.toml to NEW_VERSION (X.Y.Z, PEP
440, greater than the current one) and, in every distribution of the
repository (the meta-package ``chia`` included), rewrites each requirement on
DIST in ``[project] dependencies`` and in every ``[project.optional-dependencies]``
extra to the compatible range of NEW_VERSION: ``>=0.Y.Z,<0.(Y+1)`` in 0.x,
where a minor bump is breaking; ``>=X.Y.Z,<(X+1)`` from 1.0. Extras and
markers of those requirements are kept as written.

Only those strings change: comments and layout stay, and each edited file is
parsed back and compared with the intended document before anything is
written. Every file is computed first, then each is replaced atomically; then
``uv lock`` runs (``--no-lock`` skips it). ``--dry-run`` prints the diff and
writes nothing. RELEASING.md says where this fits in a release.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]

# The two places of a pyproject.toml where a distribution names what it needs.
DEPENDENCY_KEYS = (("project", "dependencies"), ("project", "optional-dependencies"))

# The name and extras at the start of a requirement, as written ("chia-ops[cache]").
NAME_AND_EXTRAS = re.compile(r"\s*[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(?:\[[^\]]*\])?")


class BumpError(Exception):
    """Input or a file the bump refuses; the message names the value or file and what is valid."""


@dataclass(frozen=True, slots=True)
class Distribution:
    """One packages/<dir>/pyproject.toml: its text as on disk and as parsed."""

    name: str
    pyproject: Path
    text: str
    data: dict[str, Any]

    @property
    def version(self) -> Version:
        """The ``[project] version``; a distribution without a literal one cannot be bumped."""
        version = self.data["project"].get("version")
        if not isinstance(version, str):
            raise BumpError(f'{self.pyproject}: [project] version must be a literal string such as version = "0.1.0"')
        try:
            return Version(version)
        except InvalidVersion:
            raise BumpError(f"{self.pyproject}: [project] version {version!r} is not a PEP 440 version") from None


@dataclass(frozen=True, slots=True)
class StringValue:
    """A string value in a TOML text: the key path of the entry holding it and its span, quotes included."""

    path: tuple[str, ...]
    start: int
    end: int
    value: str
    literal: bool  # written in single quotes (no escapes)


def distributions(root: Path) -> dict[str, Distribution]:
    """Every distribution under ``root/packages``, by canonical name."""
    found: dict[str, Distribution] = {}
    for pyproject in sorted((root / "packages").glob("*/pyproject.toml")):
        text = pyproject.read_bytes().decode("utf-8")  # bytes: keep the line endings as they are
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise BumpError(f"{pyproject}: not valid TOML: {error}") from None
        name = data.get("project", {}).get("name")
        if not isinstance(name, str):
            raise BumpError(f"{pyproject}: no [project] name")
        found[canonicalize_name(name)] = Distribution(name, pyproject, text, data)
    if not found:
        raise BumpError(f"no packages/*/pyproject.toml under {root}")
    return found


def compatible_range(version: Version) -> str:
    """``>=version,<`` the next breaking release: the next minor in 0.x, the next major from 1.0."""
    upper = f"0.{version.minor + 1}" if version.major == 0 else f"{version.major + 1}"
    return f">={version},<{upper}"


def new_version_of(dist: Distribution, text: str) -> Version:
    """``text`` as the next version of ``dist``, or a BumpError saying why it cannot be."""
    try:
        version = Version(text)
    except InvalidVersion:
        raise BumpError(f"version {text!r} is not a PEP 440 version; valid: X.Y.Z such as 0.2.0") from None
    if len(version.release) != 3 or version.local is not None or version.epoch:
        raise BumpError(f"version {text!r} must be X.Y.Z (an optional pre/post/dev suffix), such as 0.2.0")
    if version <= dist.version:
        raise BumpError(
            f"version {text!r} is not greater than {dist.name}'s current version {dist.version} ({dist.pyproject})"
        )
    return version


def retarget(requirement: str, dist: str, new_range: str, where: str) -> str | None:
    """``requirement`` with its range set to ``new_range`` if it names ``dist``; None if it names another.

    The name, extras and marker are kept exactly as written.
    """
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement as error:
        raise BumpError(f"{where}: {requirement!r} is not a valid requirement: {error}") from None
    if canonicalize_name(parsed.name) != canonicalize_name(dist):
        return None
    if parsed.url is not None:
        raise BumpError(f"{where}: {requirement!r} names {dist} by URL; only a version range can be bumped")
    head = NAME_AND_EXTRAS.match(requirement)
    assert head is not None  # packaging accepted it, so it starts with a name
    _, semicolon, marker = requirement.partition(";")
    return f"{head.group().strip()}{new_range}{semicolon}{marker}"


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end < 0 else end


def _string_end(text: str, start: int) -> int:
    """The offset just past the TOML string starting at ``start`` (basic or literal, one- or multi-line)."""
    quote = text[start]
    close = quote * 3 if text.startswith(quote * 3, start) else quote
    index = start + len(close)
    while index < len(text):
        if quote == '"' and text[index] == "\\":
            index += 2
        elif text.startswith(close, index):
            end = index + len(close)
            while len(close) == 3 and end < len(text) and text[end] == quote and end - index < 5:
                end += 1  # up to two quotes may end a multi-line string's content: """a"""" is 'a"'
            return end
        else:
            index += 1
    raise ValueError(f"unterminated string at offset {start}")


def _key_path(key: str) -> tuple[str, ...]:
    """The path of a (dotted, maybe quoted) TOML key, resolved by tomllib itself."""
    node: Any = tomllib.loads(f"{key.strip()} = 0")
    path: list[str] = []
    while isinstance(node, dict):
        (name, node), *_ = node.items()
        path.append(name)
    return tuple(path)


def _header_end(text: str, start: int) -> int:
    """The offset just past the ``[table]`` or ``[[array]]`` header starting at ``start``."""
    close = "]]" if text.startswith("[[", start) else "]"
    index = start + len(close)
    while not text.startswith(close, index):
        if index >= len(text) or text[index] == "\n":
            raise ValueError(f"unterminated table header at offset {start}")
        index = _string_end(text, index) if text[index] in "\"'" else index + 1
    return index + len(close)


def string_values(text: str) -> list[StringValue]:
    """Every string value of a TOML text with the key path of the top-level entry holding it.

    A scanner of just what the bump needs: table headers, ``key =``, comments,
    the four string forms, and brackets nesting inside a value. tomllib
    resolves keys (quoted, dotted) and decodes strings, so neither is guessed.
    """
    found: list[StringValue] = []
    table: tuple[str, ...] = ()
    key: tuple[str, ...] | None = None  # None: between entries, reading a key or a header
    pending = ""  # the key read so far
    depth = 0  # brackets open inside the current value
    index = 0
    while index < len(text):
        char = text[index]
        if char == "#":
            index = _line_end(text, index)
        elif char in "\"'":
            end = _string_end(text, index)
            if key is None:
                pending += text[index:end]
            else:
                value = tomllib.loads(f"v = {text[index:end]}")["v"]
                found.append(StringValue(table + key, index, end, value, char == "'"))
            index = end
        elif key is None and char == "[" and not pending.strip():
            end = _header_end(text, index)
            table = _key_path(text[index:end].strip("[]"))
            index = end
        elif key is None:
            if char == "=":
                key, pending, depth = _key_path(pending), "", 0
            elif char == "\n":
                pending = ""
            else:
                pending += char
            index += 1
        else:
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
            elif char == "\n" and depth == 0:
                key = None
            index += 1
    return found


def _toml_string(value: str, literal: bool) -> str:
    if literal and "'" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _intended(dist: Distribution, target: str, version: Version | None, new_range: str) -> dict[str, Any]:
    """The document ``dist``'s pyproject.toml must parse to after the bump, computed from the parsed data."""
    data = copy.deepcopy(dist.data)
    project = data["project"]
    if version is not None:
        project["version"] = str(version)

    def requirements(values: list[str], where: str) -> list[str]:
        return [retarget(value, target, new_range, where) or value for value in values]

    if "dependencies" in project:
        project["dependencies"] = requirements(project["dependencies"], f"{dist.pyproject} [project] dependencies")
    for extra, values in project.get("optional-dependencies", {}).items():
        where = f"{dist.pyproject} [project.optional-dependencies] {extra}"
        project["optional-dependencies"][extra] = requirements(values, where)
    return data


def edited(dist: Distribution, target: str, version: Version | None, new_range: str) -> str:
    """The new text of ``dist``'s pyproject.toml: the version (if given) and every requirement on ``target``."""
    try:
        strings = string_values(dist.text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise BumpError(f"{dist.pyproject}: cannot follow its layout ({error}); edit it by hand") from None
    replacements: list[tuple[int, int, str]] = []
    for string in strings:
        if version is not None and string.path == ("project", "version"):
            replacements.append((string.start, string.end, _toml_string(str(version), string.literal)))
        elif string.path[:2] in DEPENDENCY_KEYS:
            where = f"{dist.pyproject} [{'.'.join(string.path)}]"
            requirement = retarget(string.value, target, new_range, where)
            if requirement is not None and requirement != string.value:
                replacements.append((string.start, string.end, _toml_string(requirement, string.literal)))
    text = dist.text
    for start, end, replacement in sorted(replacements, reverse=True):
        text = text[:start] + replacement + text[end:]
    if tomllib.loads(text) != _intended(dist, target, version, new_range):
        raise BumpError(f"{dist.pyproject}: the edit would not give the intended document; edit it by hand")
    return text


def plan(root: Path, target: str, version_text: str) -> tuple[Distribution, Version, list[tuple[Distribution, str]]]:
    """Validate the request; return the distribution, its new version and each changed file's new text."""
    everything = distributions(root)
    dist = everything.get(canonicalize_name(target))
    if dist is None:
        valid = ", ".join(sorted(d.name for d in everything.values()))
        raise BumpError(f"unknown distribution {target!r}; valid: {valid}")
    version = new_version_of(dist, version_text)
    new_range = compatible_range(version)
    changes: list[tuple[Distribution, str]] = []
    for other in everything.values():
        text = edited(other, dist.name, version if other is dist else None, new_range)
        if text != other.text:
            changes.append((other, text))
    return dist, version, changes


def write_atomically(texts: dict[Path, str]) -> None:
    """Replace each file with its new text; every file is staged before the first is replaced."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in texts.items():
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((Path(name), path))
            with os.fdopen(handle, "wb") as stream:
                stream.write(text.encode("utf-8"))
            shutil.copymode(path, name)
        for temporary, path in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)  # left over only if something failed before its replace


def lock(root: Path) -> None:
    """``uv lock`` at the root: the lock file records every workspace member's version."""
    beside = Path(sys.executable).with_name("uv")
    uv = str(beside) if beside.exists() else shutil.which("uv")
    if uv is None:
        raise BumpError(f"uv is neither beside {sys.executable} nor on PATH; run `uv lock` yourself")
    status = subprocess.run([uv, "lock"], cwd=root).returncode
    if status != 0:
        raise BumpError(f"the pyproject files are updated but `uv lock` failed in {root} (exit {status}); re-run it")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bump.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("distribution", help="the distribution to release, e.g. chia-dispatch")
    parser.add_argument("version", help="its new version, X.Y.Z")
    parser.add_argument("--dry-run", action="store_true", help="print the diff; write nothing, do not lock")
    parser.add_argument("--no-lock", action="store_true", help="do not run `uv lock` afterwards")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository root holding packages/ (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    try:
        dist, version, changes = plan(root, args.distribution, args.version)
        if args.dry_run:
            for changed, text in changes:
                name = str(changed.pyproject.relative_to(root))
                diff = difflib.unified_diff(changed.text.splitlines(True), text.splitlines(True), name, name)
                sys.stdout.writelines(diff)
            return 0
        write_atomically({changed.pyproject: text for changed, text in changes})
        dependents = ", ".join(changed.name for changed, _ in changes if changed is not dist) or "none"
        print(f"{dist.name} {dist.version} -> {version}; {compatible_range(version)} now required by: {dependents}")
        if not args.no_lock:
            lock(root)
    except BumpError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
