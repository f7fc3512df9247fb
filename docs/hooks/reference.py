"""MkDocs hook: the reference pages generated from okrsync's own code at build time, so they cannot drift.

- ``mapping-reference.md``: every model and field of the mapping file, from the JSON Schema that
  ``okrsync mappings schema`` prints (``mappings.validate.json_schema``), with type, default, description and
  example; the schema itself is published beside it as ``mapping-schema.json``.
- ``api.md``: the sidecar's routes, from the OpenAPI document of the FastAPI app factory (``service.app.create_app``
  on an in-memory SQLite engine: no server is started, no database is touched); the document is published as
  ``openapi.json``.
- ``operations.md``: the Prometheus metrics ``/metrics`` exposes, from the sidecar's own registry
  (``service.kit.metrics.Metrics``).
- ``deploy-guide.md``: ``deploy/README.md`` as a page of the site (it stays where it is, beside the files it
  describes); links from the docs to ``../deploy/README.md`` (right on GitHub) are pointed at that page.

A page asks for a generated part with an HTML comment such as ``<!-- generated: mapping-reference -->``, so the
hand-written file reads sensibly on GitHub too.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

DEPLOY_README = "deploy/README.md"
DEPLOY_PAGE = "deploy-guide.md"
_MARKER = re.compile(r"<!--\s*generated:\s*([a-z-]+)\s*-->")


def _root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    root = str(_root(config))
    if root not in sys.path:  # the project's packages, also when mkdocs is not run from an editable install
        sys.path.insert(0, root)
    return config


# ------------------------------------------------------------------------------------------------ sources


def mapping_schema() -> dict[str, Any]:
    from mappings.validate import json_schema  # what `okrsync mappings schema` prints

    schema: dict[str, Any] = json.loads(json_schema())
    return schema


def openapi_document() -> dict[str, Any]:
    from sqlalchemy import create_engine

    from service.app import create_app
    from service.kit.settings import Settings

    # no .env, no CRM, no worker: the routes and their models are all the document needs
    settings = Settings(_env_file=None)  # type: ignore[call-arg]  # pydantic-settings init option mypy cannot see
    app = create_app(settings=settings, engine=create_engine("sqlite://"), worker=False)
    return app.openapi()


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = _root(config)
    generated = {
        "mapping-schema.json": json.dumps(mapping_schema(), indent=2),
        "openapi.json": json.dumps(openapi_document(), indent=2),
        DEPLOY_PAGE: (root / DEPLOY_README).read_text(encoding="utf-8"),
    }
    for src_uri, content in generated.items():
        files.append(File.generated(config, src_uri, content=content))
    return files


# ------------------------------------------------------------------------------------------------ pages


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    root = _root(config)

    def generate(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "mapping-reference":
            return render_mapping_reference(mapping_schema())
        if name == "mapping-examples":
            return render_examples(root)
        if name == "api-routes":
            return render_routes(openapi_document())
        if name == "prometheus-metrics":
            return render_prometheus()
        raise ValueError(f"{page.file.src_uri}: no generator named {name!r} (see docs/hooks/reference.py)")

    markdown = _MARKER.sub(generate, markdown)
    return markdown.replace("](../" + DEPLOY_README, "](" + DEPLOY_PAGE)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "`" + _cell(text).replace("`", "'") + "`"


# ------------------------------------------------------------------------------------------------ mapping file


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _anchor(name: str) -> str:
    return "model-" + name.lower()


def _refs(node: Any) -> list[str]:
    """The $defs a schema node names, in the order they appear."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(_ref_name(value))
            elif key != "discriminator":
                found += _refs(value)
    elif isinstance(node, list):
        for item in node:
            found += _refs(item)
    return found


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in node:
        name = _ref_name(node["$ref"])
        return f"[{name}](#{_anchor(name)})"
    if "const" in node:
        return _code(node["const"])
    if "enum" in node:
        return "one of " + ", ".join(_code(v) for v in node["enum"])
    for union in ("oneOf", "anyOf"):
        if union in node:
            options = [o for o in node[union] if o.get("type") != "null"]
            text = " or ".join(_type(o, defs) for o in options)
            if "discriminator" in node:
                by_tag = {_ref_name(r): tag for tag, r in node["discriminator"]["mapping"].items()}
                text = "one of " + ", ".join(
                    f"{_type(o, defs)} (`{node['discriminator']['propertyName']}: {by_tag.get(_ref_name(o['$ref']))}`)"
                    for o in options
                )
            return text + (" or `null`" if len(options) < len(node[union]) else "")
    kind = node.get("type")
    if kind == "array":
        return "list of " + _type(node.get("items", {}), defs)
    if kind == "object":
        values = node.get("additionalProperties")
        return "map: name → " + _type(values, defs) if isinstance(values, dict) else "object"
    if kind is None:
        return "any"
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind + (f" ({node['format']})" if "format" in node else "")


_LIMITS = [
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minItems", "items ≥ {}"),
    ("maxItems", "items ≤ {}"),
    ("maxProperties", "entries ≤ {}"),
    ("pattern", "matches `{}`"),
]


def _limits(node: dict[str, Any]) -> str:
    found = [text.format(node[key]) for key, text in _LIMITS if key in node]
    items = node.get("items")
    if isinstance(items, dict):
        found += [f"each {text.format(items[key])}" for key, text in _LIMITS if key in items]
    return "; ".join(_cell(f) for f in found)


def _default(name: str, node: dict[str, Any], required: set[str]) -> str:
    if name in required:
        return "**required**"
    if "default" in node:
        return _code(node["default"])
    if node.get("type") == "array":
        return "`[]`"
    if node.get("type") == "object":
        return "`{}`"
    return "the defaults of its fields"


def _field_row(name: str, node: dict[str, Any], required: set[str], defs: dict[str, Any]) -> str:
    kind = _type(node, defs)
    limits = _limits(node)
    title = node.get("title")
    words = [f"**{_cell(title)}**" if title and title.lower() != name.replace("_", " ") else ""]
    words.append(_cell(node.get("description", "")))
    examples = " ".join(_code(e) for e in node.get("examples", []))
    return (
        f"| `{name}` | {kind}{'<br>' + limits if limits else ''} | {_default(name, node, required)} | "
        f"{' '.join(w for w in words if w) or '—'} | {examples or '—'} |"
    )


def _model_section(name: str, model: dict[str, Any], defs: dict[str, Any], *, heading: str = "###") -> list[str]:
    lines = [f"{heading} {name} {{ #{_anchor(name)} }}", ""]
    if model.get("description"):
        lines += [" ".join(model["description"].split()), ""]
    if "enum" in model:
        lines += ["A text, one of: " + ", ".join(_code(v) for v in model["enum"]) + ".", ""]
        return lines
    properties = model.get("properties", {})
    if not properties:
        lines += [f"Type: {_type(model, defs)}.", ""]
        return lines
    tag = properties.get("type", {}).get("const")
    if tag is not None:
        lines += [f"Chosen with `type: {tag}`.", ""]
    if model.get("additionalProperties") is False:
        lines += ["Unknown keys are refused.", ""]
    required = set(model.get("required", []))
    lines += ["| field | type | default | description | example |", "|---|---|---|---|---|"]
    lines += [_field_row(field, node, required, defs) for field, node in properties.items()]
    return [*lines, ""]


def render_mapping_reference(schema: dict[str, Any]) -> str:
    """Every model of the mapping file: the file itself first, then each model in the order the file reaches it."""
    defs: dict[str, Any] = schema.get("$defs", {})
    order: list[str] = []
    queue = _refs(schema.get("properties", {}))
    while queue:
        name = queue.pop(0)
        if name in order or name not in defs:
            continue
        order.append(name)
        queue += _refs(defs[name])
    order += sorted(set(defs) - set(order))
    root = {k: v for k, v in schema.items() if k != "$defs"}
    models = [n for n in order if "enum" not in defs[n]]
    choices = [n for n in order if "enum" in defs[n]]
    lines = [
        f"{len(models)} models and {len(choices)} lists of choices, generated from the JSON Schema of this okrsync "
        "version ([mapping-schema.json](mapping-schema.json), the same as `okrsync mappings schema` prints).",
        "",
        "## The file { #model-mappingconfig }",
        "",
    ]
    lines += _model_section("MappingConfig", root, defs)[2:]
    lines += ["## Models", ""]
    for name in models:
        lines += _model_section(name, defs[name], defs)
    lines += ["## Choices", ""]
    for name in choices:
        lines += _model_section(name, defs[name], defs)
    return "\n".join(lines)


def render_examples(root: Path) -> str:
    lines: list[str] = []
    for path in sorted((root / "mappings" / "examples").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        lines += [f'??? example "mappings/examples/{path.name}"', "", "    ```yaml"]
        lines += [("    " + line).rstrip() for line in text.splitlines()]
        lines += ["    ```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ sidecar API


def render_routes(document: dict[str, Any]) -> str:
    """One row per route of the OpenAPI document: method, path, what it does, the status codes it answers."""
    lines = [
        f"{document['info']['title']} API version {document['info']['version']}: "
        f"{len(document.get('paths', {}))} paths, generated from the app at build time. The full document: "
        "[openapi.json](openapi.json) (open it in any OpenAPI viewer; a running sidecar serves the same at "
        "`/openapi.json` and as Swagger UI at `/docs`).",
        "",
        "| method | path | what it does | answers |",
        "|---|---|---|---|",
    ]
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            summary = operation.get("summary") or ""
            description = (operation.get("description") or "").strip().split("\n\n")[0]
            text = _cell(description) if description else _cell(summary)
            codes = ", ".join(sorted(operation.get("responses", {})))
            lines.append(f"| {method.upper()} | `{_cell(path)}` | {text or '—'} | {codes} |")
    return "\n".join(lines)


def render_prometheus() -> str:
    """One row per metric of the sidecar's registry: the name as scraped, its kind, labels and meaning."""
    from prometheus_client import Counter, Gauge, Histogram

    from service.kit.metrics import Metrics

    suffix = {Counter: "_total", Gauge: "", Histogram: "_bucket, _sum, _count"}
    lines = ["| metric | kind | labels | what it counts |", "|---|---|---|---|"]
    for collector in vars(Metrics()).values():
        kind = next((k for k in suffix if isinstance(collector, k)), None)
        if kind is None:
            continue
        for family in collector.describe():
            # prometheus_client keeps the label names only on the collector (no public accessor)
            labels = ", ".join(f"`{label}`" for label in getattr(collector, "_labelnames", ())) or "—"
            names = ", ".join(f"`{family.name}{s.strip()}`" for s in suffix[kind].split(","))
            lines.append(f"| {names} | {family.type} | {labels} | {_cell(family.documentation)} |")
    return "\n".join(lines)
