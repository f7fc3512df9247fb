"""mappings/ is pure: it builds queries and computes scores, but never imports the service, a connector, a web
framework or a database session."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
FORBIDDEN = ("service", "connectors", "fastapi", "sqlmodel", "httpx", "requests", "sqlalchemy.orm")


@pytest.mark.parametrize("module", sorted(MAPPINGS.glob("*.py")), ids=lambda p: p.name)
def test_no_impure_imports(module: Path) -> None:
    tree = ast.parse(module.read_text())
    imported = [
        name
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    ]
    bad = [name for name in imported if name.split(".")[0] in FORBIDDEN or name.startswith(FORBIDDEN)]
    assert not bad, f"{module.name} imports {bad}"
