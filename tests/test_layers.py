"""The package's shape as tests: one name per concept.

A class name defined twice (``Decision`` in the HPA and in the control loop, ``SpecError`` in the HPA spec and in
the catalog) makes an import line ambiguous to read and a wrong import silently plausible.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import rlscale

PACKAGE = Path(rlscale.__file__).parent


def class_definitions() -> dict[str, list[str]]:
    """Every class name defined anywhere in the package (nested ones included), with where each is defined."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return where


def test_no_class_name_is_defined_twice():
    twice = {name: places for name, places in class_definitions().items() if len(places) > 1}
    assert not twice, f"one name per concept; defined more than once: {twice}"
