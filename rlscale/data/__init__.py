"""The scenarios and agents rlscale ships, found by name or by path, from a clone and from an installed wheel alike.

In a clone the files are the top-level ``envs/`` and ``agents/`` folders, which users edit; ``rlscale/data/envs``
and ``rlscale/data/agents`` are links to them, so that a wheel ships the same files as package data
(``pyproject.toml``'s ``package-data``). Nothing looks for the source checkout's root: a reference is a path
(absolute, or relative to where it is read from) or, failing that, a shipped file:

* ``--scenario steady``, ``steady.yaml`` or ``envs/steady.yaml``: the shipped ``envs/steady.yaml``;
* ``--agent hpa-slots-used``, ``agents/hpa-slots-used.yaml``, ``tuned/hpa-slots-used.diurnal``: the shipped agent
  (a trained policy's ``residual_agent: agents/hpa-slots-used.yaml`` resolves the same way).

A name that is neither is an error listing the shipped ones.

A scenario or agent file may say ``extends: <file>`` (found as :func:`resolve` finds a file, from its own folder
first): it is then that file with its own fields over it (:func:`read_extended`), so a variant says only how it
differs (``envs/production-day-heldout.yaml``: the production day on a held-out day).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from rlscale.config import merge
from rlscale.specs.catalog import SpecError, read_document

SHIPPED = Path(__file__).resolve().parent
SCENARIOS, AGENTS = "envs", "agents"
SUFFIX = ".yaml"


def shipped_names(folder: str) -> list[str]:
    """The shipped files of ``folder`` (``envs`` or ``agents``) by name: their paths within it, without ``.yaml``."""
    root = SHIPPED / folder
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob(f"*{SUFFIX}"))


def shipped_file(ref: str | Path, folder: str) -> Path | None:
    """The shipped file ``ref`` names in ``folder``: ``name``, ``name.yaml``, ``<folder>/name.yaml``; else None."""
    path = Path(ref)
    if path.is_absolute():
        return None
    if path.parts[:1] == (folder,):
        path = Path(*path.parts[1:])
    root = SHIPPED / folder
    for candidate in (root / path, root / f"{path}{SUFFIX}"):
        if candidate.is_file():
            return candidate.resolve()  # in a clone, the top-level file the link points at: the one to edit
    return None


def _find(ref: str | Path, folder: str, what: str) -> Path:
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    found = shipped_file(path, folder)
    if found is None:
        shipped = ", ".join(shipped_names(folder))
        raise SpecError(
            f"{ref}: cannot read (no such file, and rlscale ships no {what} of that name; shipped: {shipped})"
        )
    return found


def scenario_file(ref: str | Path) -> Path:
    """A scenario file: ``ref`` if it is one, else the shipped scenario it names (``steady``, ``envs/steady.yaml``)."""
    return _find(ref, SCENARIOS, "scenario")


def agent_file(ref: str | Path) -> Path:
    """An agent file: ``ref`` if it is one, else the shipped agent it names (``hpa-slots-used``,
    ``agents/hpa-slots-used.yaml``)."""
    return _find(ref, AGENTS, "agent")


def project_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that holds ``pyproject.toml`` or ``.git``."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").exists() or (folder / ".git").exists():
            return folder
    return None


def resolve(ref: str, base: Path, where: str) -> Path:
    """A file another file names (an experiment's scenarios and agents, an agent's baseline): absolute, or relative
    to ``base`` (that file's folder), its project root or the working directory, else a shipped file
    (``envs/steady.yaml``, ``agents/hpa-slots-used.yaml``). An error names ``where`` and every folder looked in."""
    path = Path(ref).expanduser()
    candidates = [path] if path.is_absolute() else [base / path, Path.cwd() / path]
    root = project_root(base)
    if root is not None and not path.is_absolute():
        candidates.insert(1, root / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    shipped = next((f for folder in (SCENARIOS, AGENTS) if (f := shipped_file(path, folder)) is not None), None)
    if shipped is not None and path.parts[:1] in ((SCENARIOS,), (AGENTS,)):
        return shipped
    looked = ", ".join(dict.fromkeys([*(str(c.parent) for c in candidates), str(SHIPPED)]))
    raise SpecError(f"{where}: no such file {ref!r} (looked in {looked})")


EXTENDS = "extends"


def read_extended(path: Path, own: Collection[str] = ()) -> dict[str, Any]:
    """A file's fields over those of the file it ``extends:`` (itself read so, a chain ends at a file without
    ``extends``): mappings merged key by key, values and lists replaced. The fields in ``own`` are never inherited
    (a scenario's ``name`` is its own file's). A cycle, or an ``extends`` that is not a file name, is an error naming
    the file."""
    return _read_extended(Path(path), own, ())


def _read_extended(path: Path, own: Collection[str], chain: tuple[Path, ...]) -> dict[str, Any]:
    data = read_document(path)
    ref = data.pop(EXTENDS, None)
    if ref is None:
        return data
    where = f"{path}: {EXTENDS}"
    if not isinstance(ref, str):
        raise SpecError(f"{where}: expected the name of a file, got {ref!r}")
    chain = (*chain, path.resolve())
    base = resolve(ref, path.resolve().parent, where)
    if base in chain:
        raise SpecError(f"{where}: {ref} extends back to {chain[0]} (a cycle)")
    inherited = {k: v for k, v in _read_extended(base, own, chain).items() if k not in own}
    return merge(inherited, data)
