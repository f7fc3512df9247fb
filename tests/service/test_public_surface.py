"""The public surface stays what users and their integrations rely on: the sidecar's OpenAPI document, the mapping
file's JSON Schema (`okrsync mappings schema`) and every CLI command with its help and options.

``tests/service/golden/`` holds them as generated from 4413afa, before the CRM seam (issue 23) moved code around; a
refactoring must leave them byte for byte. A deliberate change of the surface regenerates them:
``OKRSYNC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/service/test_public_surface.py`` — and says so in the
commit and the changelog."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import create_engine

from mappings.validate import json_schema
from service.app import create_app
from service.cli import app as cli
from service.kit.settings import Settings

GOLDEN = Path(__file__).with_name("golden")


def _openapi() -> str:
    app = create_app(settings=Settings(), engine=create_engine("sqlite://"), crms={})  # type: ignore[call-arg]
    return json.dumps(app.openapi(), indent=1, sort_keys=True)


def _schema() -> str:
    return json.dumps(json_schema(), indent=1, sort_keys=True)


def _cli() -> str:
    """Every command: its path, help, and options (name, flags, type, help)."""
    lines: list[str] = []

    def walk(command: Any, path: list[str]) -> None:
        lines.append("## " + " ".join(path))
        params = [
            (p.name, tuple(getattr(p, "opts", ())), str(getattr(p, "type", "")), getattr(p, "help", None))
            for p in command.params
        ]
        lines.append(repr((command.help, params)))
        for name in sorted(getattr(command, "commands", {})):
            walk(command.commands[name], [*path, name])

    walk(typer.main.get_command(cli), ["okrsync"])
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("name", "render"), [("openapi.json", _openapi), ("mapping-schema.json", _schema), ("cli.txt", _cli)]
)
def test_the_public_surface_is_unchanged(name: str, render: Any) -> None:
    now = render()
    if os.environ.get("OKRSYNC_UPDATE_GOLDEN"):
        (GOLDEN / name).write_text(now, encoding="utf-8")
    assert now == (GOLDEN / name).read_text(encoding="utf-8"), (
        f"{name} changed: if deliberate, regenerate tests/service/golden (see this module's docstring)"
    )
