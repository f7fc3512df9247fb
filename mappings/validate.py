"""From YAML text to a validated ``MappingConfig``, or every problem with its file, line and column.

Three passes, each reported in full before giving up: YAML (syntax, duplicate keys), the schema (types, unknown
keys, unknown metric or rule names), then references across sections (sprints, rules, fields of the catalogue).
Checks against synced CRM data happen in the service, which knows the database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic

from mappings.config import Loc, MappingConfig, check_references
from mappings.source import Locator, MappingFileError, Problem, load_file, load_yaml, problems_from_validation


def parse(text: str, *, filename: str = "<mapping>") -> MappingConfig:
    data, locator = load_yaml(text, filename=filename)
    return from_data(data, locator, filename=filename)


def parse_file(path: Path) -> tuple[MappingConfig, str]:
    """The validated config and the source text (stored with each applied version)."""
    data, locator = load_file(path)
    return from_data(data, locator, filename=str(path)), path.read_text(encoding="utf-8")


def from_data(data: Any, locator: Locator, *, filename: str) -> MappingConfig:
    try:
        config = MappingConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise MappingFileError(problems_from_validation(exc, locator, filename=filename)) from None
    problems = located(check_references(config), locator, filename=filename)
    if problems:
        raise MappingFileError(problems)
    return config


def located(problems: list[tuple[Loc, str]], locator: Locator, *, filename: str) -> list[Problem]:
    out = []
    for loc, message in problems:
        line, column = locator.locate(loc)
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in locator.resolve(loc)).lstrip(".")
        out.append(Problem(filename, line, column, f"{path}: {message}" if path else message))
    return sorted(out, key=lambda p: (p.line or 0, p.column or 0))


def json_schema() -> str:
    """The mapping file's JSON Schema, for editors (yaml-language-server) to validate as people type."""
    return json.dumps(MappingConfig.model_json_schema(), indent=2)
