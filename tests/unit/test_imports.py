"""The README's import rules, read from the code: what each folder may import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from components.config import PROJECT_DIR


def imports(path: Path) -> set[str]:
    """The top-level names a module imports (relative imports aside: there are none)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def modules(folder: str) -> list[Path]:
    return sorted((PROJECT_DIR / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("server"), ids=lambda p: p.name)
def test_server_programs_need_only_the_standard_library(path: Path) -> None:
    """A server has python3 and nothing else: its programs import the standard library and
    the client beside them, which the user-data ships."""
    siblings = {p.stem for p in modules("server")}
    outside = imports(path) - set(sys.stdlib_module_names) - siblings - {"__future__"}
    assert not outside, f"{path.name} imports {sorted(outside)}"


@pytest.mark.parametrize("path", [*modules("components"), PROJECT_DIR / "__main__.py"],
                         ids=lambda p: str(p.relative_to(PROJECT_DIR)))
def test_the_program_never_imports_the_harness_tools_or_server_code(path: Path) -> None:
    assert not imports(path) & {"deploy", "devtools", "scripts", "server", "tests"}


@pytest.mark.parametrize("path", modules("devtools"), ids=lambda p: p.name)
def test_the_harness_never_imports_tests(path: Path) -> None:
    assert "tests" not in imports(path)
