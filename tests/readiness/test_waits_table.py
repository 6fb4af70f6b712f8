"""devtools/waits.py names tests that exist: a renamed test must not leave a row unproven."""

from __future__ import annotations

import ast
from pathlib import Path

from devtools.waits import WAITS

ROOT = Path(__file__).resolve().parents[2]


def test_every_row_is_proven_by_tests_that_exist() -> None:
    assert WAITS
    for row in WAITS:
        assert row.on_create and row.on_update and row.proof, row.thing
        for node in row.proof:
            path, _, name = node.partition("::")
            tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
            defined = {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
            assert name in defined, f"{row.thing}: {node} does not exist"
